//! The image cache on disk: manifests, listing, removal, import of a user's own image [I/O].

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::tools::{FileLock, run};
use super::{ImageError, Recipe, io_err, recipe_names};
use crate::paths::Dirs;

/// `manifest.json` in an image directory; written last, so its presence marks a finished image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    /// `built` (from a recipe) or `imported`.
    pub kind: String,
    /// Cache key of a built image; empty for imported ones.
    pub key: String,
    pub recipe: Option<Recipe>,
    pub created_unix: u64,
    pub tool_version: String,
    /// Booted with the image's own kernel and initrd, outside the disk.
    pub direct_boot: bool,
}

pub(crate) fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), ImageError> {
    let p = dir.join("manifest.json");
    let text = serde_json::to_string_pretty(m).unwrap_or_default();
    fs::write(&p, text).map_err(io_err("cannot write", &p))
}

/// One image in the cache, as `image list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    pub name: String,
    pub kind: String,
    pub dir: PathBuf,
    /// Bytes the image's files take on disk.
    pub disk_bytes: u64,
    pub created_unix: u64,
    /// True for a built recipe whose cache key matches this tool and recipe (what `up` would use).
    pub current: bool,
}

fn size_on_disk(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

/// Finished images in the cache (directories with a manifest), by name.
pub fn list(dirs: &Dirs) -> Result<Vec<ImageInfo>, ImageError> {
    let images = dirs.images();
    let entries = match fs::read_dir(&images) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("cannot read", &images)(e)),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        let Ok(text) = fs::read_to_string(dir.join("manifest.json")) else {
            continue;
        };
        let Ok(m) = serde_json::from_str::<Manifest>(&text) else {
            continue;
        };
        let current = m.kind == "built"
            && super::built_dir_name(&m.name).ok().as_deref()
                == dir.file_name().and_then(|n| n.to_str());
        out.push(ImageInfo {
            name: m.name,
            kind: m.kind,
            disk_bytes: size_on_disk(&dir),
            dir,
            created_unix: m.created_unix,
            current,
        });
    }
    out.sort_by(|a, b| (&a.name, &a.dir).cmp(&(&b.name, &b.dir)));
    Ok(out)
}

/// Removes every cached image called `name` (all builds of a recipe, or an imported image).
pub fn remove(dirs: &Dirs, name: &str) -> Result<Vec<PathBuf>, ImageError> {
    let victims: Vec<PathBuf> = list(dirs)?
        .into_iter()
        .filter(|i| i.name == name)
        .map(|i| i.dir)
        .collect();
    if victims.is_empty() {
        return Err(ImageError::NotFound {
            name: name.to_string(),
            dir: dirs.images(),
        });
    }
    for d in &victims {
        // Hide it first (atomic), then delete: an interrupted rm never leaves a half image listed.
        let hidden = d.with_file_name(format!(
            ".rm-{}",
            d.file_name().and_then(|n| n.to_str()).unwrap_or("image")
        ));
        fs::rename(d, &hidden).map_err(io_err("cannot remove", d))?;
        fs::remove_dir_all(&hidden).map_err(io_err("cannot remove", &hidden))?;
        // A plain user's copy where QEMU reads it goes too (a lab running on it keeps its file
        // until it stops).
        if let Some(n) = d.file_name().and_then(|n| n.to_str()) {
            super::unpublish(dirs, n)?;
        }
    }
    Ok(victims)
}

/// Imports a user's own disk image (qcow2 or raw) as `name`; it boots through its own bootloader
/// and is configured by the same NoCloud seed as built images.
pub fn import(dirs: &Dirs, file: &Path, name: &str) -> Result<ImageInfo, ImageError> {
    if recipe_names().iter().any(|n| n == name) || !crate::model::is_dns_safe(name) {
        return Err(ImageError::BadName {
            name: name.to_string(),
        });
    }
    if !file.is_file() {
        return Err(ImageError::NotAnImage {
            path: file.to_path_buf(),
        });
    }
    let images = dirs.images();
    fs::create_dir_all(&images).map_err(io_err("cannot create", &images))?;
    let _ = fs::set_permissions(&images, fs::Permissions::from_mode(0o755));
    let _lock = FileLock::acquire(&images.join(format!(".imported-{name}.lock")))?;
    let final_dir = images.join(format!("imported-{name}"));
    let tmp = images.join(format!(".build-imported-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err("cannot create", &tmp))?;
    let result = (|| {
        // Its format read by us, and given to qemu-img: nothing it names is opened, and
        // qemu-img guesses nothing (an absolute path: no `json:` or protocol prefix either).
        let format = super::check_outside_image(file, None)?;
        let source = std::path::absolute(file).map_err(io_err("cannot read", file))?;
        run(
            "qemu-img info",
            Command::new("qemu-img")
                .args(["info", "-f", &format])
                .arg(&source),
        )
        .map_err(|_| ImageError::NotAnImage {
            path: file.to_path_buf(),
        })?;
        run(
            "qemu-img convert",
            Command::new("qemu-img")
                .args(["convert", "-q", "-f", &format, "-O", "qcow2"])
                .arg(&source)
                .arg(tmp.join("disk.qcow2")),
        )?;
        let disk = tmp.join("disk.qcow2");
        fs::set_permissions(&disk, fs::Permissions::from_mode(0o644))
            .map_err(io_err("cannot chmod", &disk))?;
        write_manifest(
            &tmp,
            &Manifest {
                name: name.to_string(),
                kind: "imported".into(),
                key: String::new(),
                recipe: None,
                created_unix: crate::unix_time().as_secs(),
                tool_version: crate::render::TOOL_VERSION.into(),
                direct_boot: false,
            },
        )?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
            .map_err(io_err("cannot chmod", &tmp))?;
        if final_dir.exists() {
            fs::remove_dir_all(&final_dir).map_err(io_err("cannot replace", &final_dir))?;
        }
        fs::rename(&tmp, &final_dir).map_err(io_err("cannot move the image to", &final_dir))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result?;
    list(dirs)?
        .into_iter()
        .find(|i| i.dir == final_dir)
        .ok_or(ImageError::NotFound {
            name: name.to_string(),
            dir: images,
        })
}
