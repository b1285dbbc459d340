//! Command-line arguments (clap) and a thin `exec` per command over `ops`.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::BadInput;
use crate::driver::{Hypervisor, Libvirt};
use crate::model::{AccelChoice, NetKind};
use crate::ops;
use crate::paths::Dirs;

/// Multi-node DC/OS-style cluster labs on libvirt/KVM.
#[derive(Debug, Parser)]
#[command(name = "dcos-lab", version, about, propagate_version = true)]
pub struct Cli {
    /// libvirt connection URI.
    #[arg(long, global = true, env = "DCOS_LAB_URI", default_value = crate::driver::DEFAULT_URI)]
    pub uri: String,
    /// More detail on stderr (or set DCOS_LAB_LOG=debug).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

impl From<AccelArg> for AccelChoice {
    fn from(a: AccelArg) -> Self {
        match a {
            AccelArg::Auto => AccelChoice::Auto,
            AccelArg::Kvm => AccelChoice::Kvm,
            AccelArg::Tcg => AccelChoice::Tcg,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NetArg {
    Private,
    Public,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the ordered actions `up` would take for a lab, changing nothing.
    Plan(PlanArgs),
    /// Print the libvirt XML of one of a lab's objects.
    Render(RenderArgs),
    /// Check that this host can run labs: libvirt, accelerator, memory, tools.
    Doctor(DoctorArgs),
    /// Bring a lab up (not implemented yet).
    Up(LabArg),
    /// Build, list, import and remove guest images.
    #[command(subcommand)]
    Image(ImageCmd),
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Build a recipe from Debian packages into the image cache (a cache hit when unchanged).
    Build {
        /// A built-in recipe.
        #[arg(default_value = crate::model::DEFAULT_IMAGE)]
        recipe: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the images in the cache.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove an image (every build of a recipe, or an imported image) from the cache.
    Rm {
        name: String,
    },
    /// Import your own cloud image (qcow2 or raw), booted through its own bootloader.
    Import {
        file: std::path::PathBuf,
        /// Name to use as `image:` in lab files.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct LabArg {
    /// A built-in lab (minimal, standard, ha) or the path of a lab file.
    pub lab: String,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A built-in lab (minimal, standard, ha) or the path of a lab file.
    pub lab: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Override the lab file's accelerator.
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
    /// Plan as if nothing of the lab existed, without asking libvirt.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["node", "network", "pool", "volume"])))]
pub struct RenderArgs {
    /// A built-in lab (minimal, standard, ha) or the path of a lab file.
    pub lab: String,
    /// Domain XML of this node.
    #[arg(long)]
    pub node: Option<String>,
    /// Network XML of this network.
    #[arg(long, value_enum)]
    pub network: Option<NetArg>,
    /// Storage pool XML of the lab.
    #[arg(long)]
    pub pool: bool,
    /// Storage volume XML of this node's disk.
    #[arg(long)]
    pub volume: Option<String>,
    /// Override the lab file's accelerator.
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .context("cannot write to stdout")
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut s = serde_json::to_string_pretty(v).context("cannot encode JSON")?;
    s.push('\n');
    print(&s)
}

/// Runs the command; returns the exit status on success paths that still report failure
/// (e.g. `doctor` finding problems).
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let dirs = Dirs::discover();
    match cli.command {
        Command::Plan(a) => {
            let lab = ops::load_lab(&a.lab)?;
            let accel = ops::decide_accel(&lab, a.accel.map(Into::into));
            let conn = if a.offline {
                None
            } else {
                match Libvirt::open(Some(&cli.uri)) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(
                            "{}; planning as if the lab did not exist",
                            crate::error_chain(&e)
                        );
                        None
                    }
                }
            };
            let report = ops::plan::plan(
                &lab,
                accel,
                &dirs,
                conn.as_ref().map(|c| c as &dyn Hypervisor),
            )?;
            if a.json {
                print_json(&report)?;
            } else {
                print(&ops::plan::describe(&report))?;
            }
            Ok(0)
        }
        Command::Render(a) => {
            let lab = ops::load_lab(&a.lab)?;
            let accel = ops::decide_accel(&lab, a.accel.map(Into::into));
            let target = match (a.node, a.network, a.pool, a.volume) {
                (Some(n), _, _, _) => ops::render::Target::Node(n),
                (_, Some(NetArg::Private), _, _) => ops::render::Target::Network(NetKind::Private),
                (_, Some(NetArg::Public), _, _) => ops::render::Target::Network(NetKind::Public),
                (_, _, true, _) => ops::render::Target::Pool,
                (_, _, _, Some(v)) => ops::render::Target::Volume(v),
                _ => {
                    return Err(BadInput(
                        "say what to render: --node, --network, --pool or --volume".into(),
                    )
                    .into());
                }
            };
            let xml = ops::render::render(&lab, &accel, &dirs, &target)
                .with_context(|| format!("cannot render lab {}", lab.name))?;
            print(&xml)?;
            Ok(0)
        }
        Command::Doctor(a) => {
            let report = ops::doctor::doctor(Some(&cli.uri), &dirs);
            if a.json {
                print_json(&report)?;
            } else {
                print(&ops::doctor::describe(&report))?;
            }
            Ok(if report.ready() {
                0
            } else {
                crate::EXIT_FAILURE
            })
        }
        Command::Image(cmd) => image(cmd, &dirs),
        Command::Up(a) => {
            let lab = ops::load_lab(&a.lab)?;
            anyhow::bail!(
                "up is not implemented yet (lab {} is valid; `dcos-lab plan {}` shows what up will do)",
                lab.name,
                a.lab
            )
        }
    }
}

fn image(cmd: ImageCmd, dirs: &Dirs) -> anyhow::Result<i32> {
    use crate::image;
    match cmd {
        ImageCmd::Build { recipe, json } => {
            if !image::recipe_names().contains(&recipe.as_str()) {
                return Err(BadInput(format!(
                    "no image recipe \"{recipe}\"; built-in recipes: {}",
                    image::recipe_names().join(", ")
                ))
                .into());
            }
            let progress = crate::progress::Progress::new();
            let spinner = progress.spinner(&format!("image {recipe}"));
            let built = image::build(dirs, &recipe, &|step| spinner.step(step))
                .with_context(|| format!("cannot build image {recipe}"))?;
            spinner.done(&if built.built {
                format!("built in {:.0} s", built.seconds)
            } else {
                "cached".to_string()
            });
            if json {
                print_json(&built)?;
            } else {
                print(&format!(
                    "{} {} ({} MiB on disk, {:.1} s)\n",
                    if built.built { "built" } else { "cached" },
                    built.dir.display(),
                    built.disk_bytes / (1024 * 1024),
                    built.seconds
                ))?;
            }
            Ok(0)
        }
        ImageCmd::List { json } => {
            let list = image::list(dirs)?;
            if json {
                print_json(&list)?;
            } else {
                let mut out = format!("{:<16} {:<9} {:>8}  {}\n", "NAME", "KIND", "MiB", "DIR");
                for i in &list {
                    out.push_str(&format!(
                        "{:<16} {:<9} {:>8}  {}{}\n",
                        i.name,
                        i.kind,
                        i.disk_bytes / (1024 * 1024),
                        i.dir.display(),
                        if i.kind == "built" && !i.current { " (stale)" } else { "" }
                    ));
                }
                print(&out)?;
            }
            Ok(0)
        }
        ImageCmd::Rm { name } => {
            let removed = image::remove(dirs, &name).map_err(|e| match e {
                image::ImageError::NotFound { .. } => anyhow::Error::new(BadInput(e.to_string())),
                other => other.into(),
            })?;
            for d in removed {
                print(&format!("removed {}\n", d.display()))?;
            }
            Ok(0)
        }
        ImageCmd::Import { file, name } => {
            let info = image::import(dirs, &file, &name).map_err(|e| match e {
                image::ImageError::BadName { .. } | image::ImageError::NotAnImage { .. } => {
                    anyhow::Error::new(BadInput(e.to_string()))
                }
                other => other.into(),
            })?;
            print(&format!("imported {} as {}\n", file.display(), info.name))?;
            Ok(0)
        }
    }
}
