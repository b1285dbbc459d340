//! Lab files: parse (`spec`), check (`validate`) into a [`Lab`], and find built-ins by name [pure].

mod dcos_keys;
mod ids;
mod lab;
mod size;
mod spec;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use ids::LabId;
pub use lab::{
    Accel, AccelChoice, DEFAULT_BOOTSTRAP_PORT, DEFAULT_DISK, DEFAULT_IMAGE, DEFAULT_MEMORY,
    DEFAULT_VCPUS, Dcos, FirstBoot, Hardening, Host, ImageRef, LOCAL_HOST, Lab, NetKind, NetMode,
    Network, Networks, Node, Placement, Role,
};
pub use size::{ByteSize, SizeError};
pub use spec::LabSpec;
pub use validate::{FIRST_NODE_OFFSET, MAX_NODES, ValidateCtx, is_dns_safe, validate};

/// The built-in labs, shipped inside the binary from `labs/`.
pub const BUILTIN_LABS: &[(&str, &str)] = &[
    ("minimal", include_str!("../../labs/minimal.yaml")),
    ("standard", include_str!("../../labs/standard.yaml")),
    ("ha", include_str!("../../labs/ha.yaml")),
];

/// A line and column in a lab file, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

/// One thing wrong with a lab file: where, which field, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Option<Pos>,
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl Problem {
    /// `file:line:col: field: message` and, on the next line, `  fix: ...`.
    pub fn render(&self, file: &str) -> String {
        let at = match self.pos {
            Some(p) => format!("{file}:{}:{}", p.line, p.column),
            None => file.to_string(),
        };
        format!(
            "{at}: {}: {}\n  fix: {}",
            self.field, self.message, self.fix
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read lab file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no lab \"{name}\": it is not a built-in lab ({}) and no file {name} exists\n  fix: name a built-in lab or give the path of a lab file",
        builtin_names()
    )]
    NotFound { name: String },
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

impl ModelError {
    /// The problems found, for callers that present them their own way (e.g. `--json`).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ModelError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn render_problems(file: &str, problems: &[Problem]) -> String {
    let mut out = format!("invalid lab file {file}");
    for p in problems {
        out.push('\n');
        out.push_str(&p.render(file));
    }
    out
}

fn builtin_names() -> String {
    BUILTIN_LABS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a lab file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabSource {
    Builtin { name: String, text: &'static str },
    File(PathBuf),
}

impl LabSource {
    /// A built-in name (`minimal`) or a path (`./my-lab.yaml`). Paths win when such a file exists.
    pub fn find(arg: &str) -> Result<LabSource, ModelError> {
        let path = Path::new(arg);
        let pathish = arg.contains('/') || arg.ends_with(".yaml") || arg.ends_with(".yml");
        if path.is_file() || pathish {
            return Ok(LabSource::File(path.to_path_buf()));
        }
        BUILTIN_LABS
            .iter()
            .find(|(n, _)| *n == arg)
            .map(|(n, text)| LabSource::Builtin {
                name: (*n).to_string(),
                text,
            })
            .ok_or_else(|| ModelError::NotFound {
                name: arg.to_string(),
            })
    }

    /// How the source is named in messages.
    pub fn display_name(&self) -> String {
        match self {
            LabSource::Builtin { name, .. } => format!("labs/{name}.yaml"),
            LabSource::File(p) => p.display().to_string(),
        }
    }
}

impl fmt::Display for LabSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

/// Reads, parses and validates a lab from `source`. Reads one file; changes nothing.
pub fn load(source: &LabSource, recipes: &[&str]) -> Result<Lab, ModelError> {
    match source {
        LabSource::Builtin { text, .. } => parse(text, &source.display_name(), None, recipes),
        LabSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ModelError::NotFound {
                    name: path.display().to_string(),
                },
                _ => ModelError::Read {
                    path: path.clone(),
                    source: e,
                },
            })?;
            parse(&text, &source.display_name(), path.parent(), recipes)
        }
    }
}

/// Parses and validates lab file text; `file` names it in messages.
pub fn parse(
    text: &str,
    file: &str,
    base_dir: Option<&Path>,
    recipes: &[&str],
) -> Result<Lab, ModelError> {
    let spec: LabSpec = serde_saphyr::from_str(text).map_err(|e| ModelError::Invalid {
        file: file.to_string(),
        problems: vec![syntax_problem(&e, text)],
    })?;
    let ctx = ValidateCtx {
        file,
        base_dir,
        recipes,
    };
    validate(&spec, &ctx).map_err(|problems| ModelError::Invalid {
        file: file.to_string(),
        problems,
    })
}

/// The mapping key on line `line` of `text` (`  - role: x` → `role`), to name the field of an error
/// serde reports by value only.
fn key_on_line(text: &str, line: u64) -> Option<String> {
    let l = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let l = l.trim_start().trim_start_matches("- ").trim_start();
    let (key, _) = l.split_once(':')?;
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    ok.then(|| key.to_string())
}

/// Turns a YAML or serde error into a [`Problem`], naming the field where serde does.
fn syntax_problem(e: &serde_saphyr::Error, text: &str) -> Problem {
    let pos = e.location().and_then(|l| {
        (l.line() > 0).then_some(Pos {
            line: l.line(),
            column: l.column(),
        })
    });
    let opts = serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off };
    let mut message = e.render_with_options(opts);
    // The plain rendering ends with " at line L column C"; the position is printed in front instead.
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    let between = |s: &str, a: &str| -> Option<String> {
        let start = s.find(a)? + a.len();
        let rest = &s[start..];
        let end = rest.find('`')?;
        Some(rest[..end].to_string())
    };
    let expected = |m: &str| {
        m.find("expected ")
            .map(|i| {
                m[i + "expected ".len()..]
                    .trim_start_matches("one of ")
                    .replace('`', "")
            })
            .unwrap_or_default()
    };
    let line_key = pos.and_then(|p| key_on_line(text, p.line));
    let (field, fix) = if let Some(f) = between(&message, "unknown field `") {
        let fix = format!(
            "remove it or correct its spelling; allowed here: {}",
            expected(&message)
        );
        if let Some(i) = message.find(", expected") {
            message.truncate(i);
        }
        (f, fix)
    } else if let Some(f) = between(&message, "missing field `") {
        (f, "add the field".to_string())
    } else if let Some(v) = between(&message, "unknown variant `") {
        let fix = format!("use one of {}", expected(&message));
        message = format!("unknown value \"{v}\"");
        (line_key.unwrap_or(v), fix)
    } else if message.contains("invalid type") || message.contains("expected") {
        if message.contains("externally tagged enum") {
            message = "expected one word here, not a list or a mapping".to_string();
        }
        (
            line_key.unwrap_or_else(|| "value".to_string()),
            "write the value in the form the field takes (see labs/minimal.yaml)".to_string(),
        )
    } else {
        (
            "yaml".to_string(),
            "fix the YAML there: indentation, a missing `:` or an unclosed bracket".to_string(),
        )
    };
    Problem {
        pos,
        field,
        message,
        fix,
    }
}
