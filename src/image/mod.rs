//! Guest images: built-in recipes, the content-addressed image cache, build and import [I/O in `store`/`build`].

mod build;
mod publish;
pub mod qcow2;
mod store;
mod tools;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use build::build;
pub use publish::{publish, qemu_image, unpublish};
pub use store::{ImageInfo, import, list, remove};

use crate::model::ImageRef;
use crate::paths::Dirs;
use crate::render::BootImage;

/// Built-in image recipes, shipped inside the binary from `images/`.
pub const RECIPES: &[(&str, &str)] = &[("debian-12", include_str!("../../images/debian-12.yaml"))];

/// The customize hook every built image gets; part of the cache key.
pub const CUSTOMIZE_SCRIPT: &str = include_str!("../../images/customize.sh");
/// The fast first boot's early stage, installed by the hook; part of the cache key.
pub const FIRSTBOOT_SCRIPT: &str = include_str!("../../images/firstboot-early.sh");

use crate::render::DIRECT_BOOT_CMDLINE;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("no image recipe \"{name}\" (built-in recipes: {known})")]
    UnknownRecipe { name: String, known: String },
    #[error("recipe {name} is not valid")]
    BadRecipe {
        name: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("{what} failed ({status}); last output:\n{tail}")]
    Tool {
        what: String,
        status: String,
        tail: String,
    },
    #[error(
        "{tool} is not installed, so image {name} cannot be built\n  fix: run scripts/setup-host.sh (or `apt install {package}`)"
    )]
    MissingTool {
        name: String,
        tool: String,
        package: String,
    },
    #[error(
        "image {name} cannot be built as {user}: {file} gives {user} no range of 65536 subordinate ids, which mmdebstrap's unshare mode maps the image's users to\n  fix: as root, once: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}` (Debian's adduser gives new users one), or build the image as root"
    )]
    NoSubordinateIds {
        name: String,
        file: String,
        user: String,
    },
    #[error("cannot run {tool}: is it installed? (scripts/setup-host.sh installs it)")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the build left no {what} in {}", dir.display())]
    Missing { what: String, dir: PathBuf },
    #[error("no image named \"{name}\" in {}", dir.display())]
    NotFound { name: String, dir: PathBuf },
    #[error(
        "image name \"{name}\" is taken by a built-in recipe or is not DNS-safe; pick another --name"
    )]
    BadName { name: String },
    #[error("{} is not a disk image qemu-img can read", path.display())]
    NotAnImage { path: PathBuf },
    #[error("{} is refused: {why}\n  fix: {fix}", path.display())]
    Refused {
        path: PathBuf,
        why: String,
        fix: String,
    },
}

pub(crate) fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
    let what = what.to_string();
    let path = path.to_path_buf();
    move |source| ImageError::Io { what, path, source }
}

/// An image recipe as written in `images/<name>.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    pub suite: String,
    pub variant: String,
    pub kernel: String,
    pub packages: Vec<String>,
}

/// A folder of the user's own recipes (`<name>.yaml`), found before the built-in ones.
pub const RECIPE_DIR_ENV: &str = "DCOS_LAB_RECIPE_DIR";

fn user_recipes() -> Vec<(String, String)> {
    let Some(dir) = std::env::var_os(RECIPE_DIR_ENV).filter(|d| !d.is_empty()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = entries
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_name()?.to_str()?.strip_suffix(".yaml")?.to_string();
            crate::model::is_dns_safe(&name).then_some(())?;
            Some((name, std::fs::read_to_string(&p).ok()?))
        })
        .collect();
    out.sort();
    out
}

/// Names of the recipes: the user's (DCOS_LAB_RECIPE_DIR), then the built-in ones.
pub fn recipe_names() -> Vec<String> {
    let mut names: Vec<String> = user_recipes().into_iter().map(|(n, _)| n).collect();
    for (n, _) in RECIPES {
        if !names.iter().any(|x| x == n) {
            names.push((*n).to_string());
        }
    }
    names
}

fn recipe_text(name: &str) -> Result<String, ImageError> {
    if let Some((_, t)) = user_recipes().into_iter().find(|(n, _)| n == name) {
        return Ok(t);
    }
    RECIPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| (*t).to_string())
        .ok_or_else(|| ImageError::UnknownRecipe {
            name: name.to_string(),
            known: recipe_names().join(", "),
        })
}

pub fn recipe(name: &str) -> Result<Recipe, ImageError> {
    serde_saphyr::from_str(&recipe_text(name)?).map_err(|source| ImageError::BadRecipe {
        name: name.to_string(),
        source: Box::new(source),
    })
}

/// 12 hex digits of SHA-256 over the recipe, the customize hook and the tool version: a change to
/// any of them is a new image, built beside the old one.
pub fn cache_key(recipe_text: &str) -> String {
    let mut h = Sha256::new();
    h.update(recipe_text.as_bytes());
    h.update(b"\0");
    h.update(CUSTOMIZE_SCRIPT.as_bytes());
    h.update(b"\0");
    h.update(FIRSTBOOT_SCRIPT.as_bytes());
    h.update(b"\0");
    h.update(crate::render::TOOL_VERSION.as_bytes());
    h.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Directory name of a built recipe in the cache: `<name>-<key>`.
pub fn built_dir_name(name: &str) -> Result<String, ImageError> {
    Ok(format!("{name}-{}", cache_key(&recipe_text(name)?)))
}

/// Where the image for `image` is, or will be once built. Built-in recipes live under their
/// content-addressed directory; an imported name under `imported-<name>`; a path is used as is.
pub fn boot_image(dirs: &Dirs, image: &ImageRef) -> BootImage {
    match image {
        ImageRef::Recipe(name) => {
            let dir = match built_dir_name(name) {
                Ok(d) => dirs.images().join(d),
                // An imported image, referred to by its name.
                Err(_) => {
                    return imported_boot_image(&dirs.images().join(format!("imported-{name}")));
                }
            };
            BootImage {
                disk: dir.join("disk.qcow2"),
                format: "qcow2".into(),
                kernel: Some(dir.join("vmlinuz")),
                initrd: Some(dir.join("initrd.img")),
                cmdline: Some(DIRECT_BOOT_CMDLINE.into()),
            }
        }
        ImageRef::File(path) => BootImage {
            disk: path.clone(),
            format: if path.extension().is_some_and(|e| e == "qcow2") {
                "qcow2".into()
            } else {
                "raw".into()
            },
            kernel: None,
            initrd: None,
            cmdline: None,
        },
    }
}

fn imported_boot_image(dir: &Path) -> BootImage {
    BootImage {
        disk: dir.join("disk.qcow2"),
        format: "qcow2".into(),
        kernel: None,
        initrd: None,
        cmdline: None,
    }
}

/// Checks an image file from outside (a lab file's `image:`, `image import`) before anything
/// opens it: a qcow2 must be self-contained (no backing file, no external data file: QEMU,
/// qemu-img and libvirt would open what those name, as whoever runs them); a format that can
/// name other files (vmdk, qed, …) is refused; anything else is raw. `format` is what the file
/// is to be read as, when that is already decided (a lab file's image, by its extension).
/// Returns the format to read it as.
pub fn check_outside_image(path: &Path, format: Option<&str>) -> Result<String, ImageError> {
    use qcow2::{Backing, DiskFile};
    let refused = |why: String, fix: &str| ImageError::Refused {
        path: path.to_path_buf(),
        why,
        fix: fix.to_string(),
    };
    let found = DiskFile::read(path).map_err(io_err("cannot read", path))?;
    match (&found, format) {
        (DiskFile::Qcow2(q), None | Some("qcow2")) => {
            q.check(Backing::None).map_err(|e| {
                refused(
                    e.0,
                    "make it self-contained first: `qemu-img convert -O qcow2 FILE NEW.qcow2` (as a user who may read what it names), then use NEW.qcow2",
                )
            })?;
            Ok("qcow2".into())
        }
        (DiskFile::Other(kind), _) => Err(refused(
            format!("it is a {kind} image, a format that can name other files on the host"),
            "convert it to a self-contained qcow2 first (`qemu-img convert -O qcow2 FILE NEW.qcow2`)",
        )),
        (DiskFile::Raw, None | Some("raw")) => Ok("raw".into()),
        (found, Some(want)) => Err(refused(
            format!("it is a {} image, and its name says {want}", found.format()),
            "name a qcow2 image *.qcow2, and a raw one *.img or *.raw",
        )),
    }
}

/// Path form of the base image as QEMU reads it, as plans print it.
pub fn backing_path(dirs: &Dirs, image: &ImageRef) -> PathBuf {
    qemu_image(dirs, image).disk
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_recipes_parse() {
        for name in recipe_names() {
            let r = recipe(&name).expect("valid recipe");
            assert_eq!(r.name, name);
            assert!(r.packages.iter().any(|p| p == "openssh-server"));
            assert!(r.packages.iter().any(|p| p == "cloud-init"));
        }
    }

    #[test]
    fn cache_key_follows_the_recipe() {
        let a = cache_key("name: x\n");
        assert_eq!(a, cache_key("name: x\n"));
        assert_ne!(a, cache_key("name: y\n"));
        assert_eq!(a.len(), 12);
    }
}
