//! Where QEMU reads a base image from, and putting it there for a plain user [pure mapping, plus
//! file I/O in `publish`].
//!
//! QEMU runs as `libvirt-qemu` under `qemu:///system`. Root's image cache
//! (`/var/cache/dcos-lab/images`) is reachable by it; a plain user's (`~/.cache/dcos-lab`) is
//! not: a home is 0700 or 0750. So a plain user's labs are backed by a copy of each image in
//! the user's shared directory (`paths::Dirs::shared`, made by libvirtd, owned by the user):
//! a hard link where the cache is on the same filesystem (no copy at all), else one copy per
//! image, made once and used by every lab of that user.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{ImageError, boot_image, io_err};
use crate::model::ImageRef;
use crate::paths::Dirs;
use crate::render::BootImage;

/// Where QEMU reads `image` from: the cache's files for root; for a plain user, their copies in
/// the shared directory's `images/<the cache directory's name>/`.
pub fn qemu_image(dirs: &Dirs, image: &ImageRef) -> BootImage {
    let src = boot_image(dirs, image);
    if dirs.shared.is_none() {
        return src;
    }
    let dir = dirs.qemu_images().join(published_dir_name(image, &src));
    let moved = |p: &Path| dir.join(p.file_name().unwrap_or(p.as_os_str()));
    BootImage {
        disk: match image {
            // A file named by the lab file keeps its format by the name it is given here.
            ImageRef::File(_) => dir.join(format!("disk.{}", src.format)),
            ImageRef::Recipe(_) => moved(&src.disk),
        },
        format: src.format.clone(),
        kernel: src.kernel.as_deref().map(moved),
        initrd: src.initrd.as_deref().map(moved),
        cmdline: src.cmdline.clone(),
    }
}

/// The cache directory's name for an image of the cache (`<name>-<key>`, `imported-<name>`);
/// `file-<hash of its path>` for a file the lab file names.
fn published_dir_name(image: &ImageRef, src: &BootImage) -> String {
    match image {
        ImageRef::Recipe(_) => src
            .disk
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ImageRef::File(p) => {
            let h = Sha256::digest(p.as_os_str().as_encoded_bytes());
            let hex: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
            format!("file-{hex}")
        }
    }
}

/// Puts `image`'s files where `qemu_image` says QEMU reads them (nothing to do for root).
/// A copy that is there with the source's size and modification time is kept; otherwise it is
/// linked (same filesystem) or copied beside and renamed into place, so a lab running on an
/// older copy keeps its file. The shared directory must exist (`ops::lab::storage`).
pub fn publish(dirs: &Dirs, image: &ImageRef) -> Result<BootImage, ImageError> {
    let (src, dst) = (boot_image(dirs, image), qemu_image(dirs, image));
    if dirs.shared.is_none() {
        return Ok(src);
    }
    for (from, to) in pairs(&src, &dst) {
        publish_file(&from, &to)?;
    }
    Ok(dst)
}

fn pairs(src: &BootImage, dst: &BootImage) -> Vec<(PathBuf, PathBuf)> {
    let mut out = vec![(src.disk.clone(), dst.disk.clone())];
    for (a, b) in [(&src.kernel, &dst.kernel), (&src.initrd, &dst.initrd)] {
        if let (Some(a), Some(b)) = (a, b) {
            out.push((a.clone(), b.clone()));
        }
    }
    out
}

fn publish_file(from: &Path, to: &Path) -> Result<(), ImageError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(from).map_err(io_err("cannot read", from))?;
    if let Ok(have) = std::fs::metadata(to)
        && have.len() == meta.len()
        && have.modified().ok() == meta.modified().ok()
    {
        return Ok(());
    }
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        .map_err(io_err("cannot set the mode of", dir))?;
    let tmp = dir.join(format!(
        ".{}.{}",
        to.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(from, &tmp).is_err() {
        std::fs::copy(from, &tmp).map_err(io_err("cannot copy the image to", &tmp))?;
        let f = std::fs::File::options()
            .write(true)
            .open(&tmp)
            .map_err(io_err("cannot open", &tmp))?;
        if let Ok(t) = meta.modified() {
            f.set_modified(t)
                .map_err(io_err("cannot set the time of", &tmp))?;
        }
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
        .map_err(io_err("cannot set the mode of", &tmp))?;
    std::fs::rename(&tmp, to).map_err(io_err("cannot write", to))?;
    Ok(())
}

/// Removes the copies of the image in directory `name` of the cache (`image rm`).
pub fn unpublish(dirs: &Dirs, name: &str) -> Result<(), ImageError> {
    if dirs.shared.is_none() {
        return Ok(());
    }
    let dir = dirs.qemu_images().join(name);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("cannot remove", &dir)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Shared;

    fn user_dirs(root: &Path) -> Dirs {
        Dirs {
            state: root.join("home/state"),
            cache: root.join("home/cache"),
            shared: Some(Shared {
                dir: root.join("shared"),
                uid: 1000,
                gid: 1000,
            }),
        }
    }

    #[test]
    fn root_reads_the_cache_and_a_plain_user_its_copies() {
        let d = user_dirs(Path::new("/r"));
        let r = Dirs {
            shared: None,
            ..d.clone()
        };
        let img = ImageRef::Recipe("debian-12".into());
        assert_eq!(qemu_image(&r, &img), boot_image(&r, &img));
        let q = qemu_image(&d, &img);
        let dir = boot_image(&d, &img)
            .disk
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_os_string())
            .expect("dir");
        assert_eq!(
            q.disk,
            Path::new("/r/shared/images").join(&dir).join("disk.qcow2")
        );
        assert_eq!(
            q.kernel.as_deref(),
            Some(
                Path::new("/r/shared/images")
                    .join(&dir)
                    .join("vmlinuz")
                    .as_path()
            )
        );
        let f = qemu_image(&d, &ImageRef::File("/home/u/my.img".into()));
        assert_eq!(f.format, "raw");
        assert!(
            f.disk.starts_with("/r/shared/images"),
            "{}",
            f.disk.display()
        );
        assert!(f.disk.ends_with("disk.raw"));
    }

    #[test]
    fn publish_links_once_and_replaces_a_changed_source() {
        let t = tempfile::tempdir().expect("dir");
        let d = user_dirs(t.path());
        let img = ImageRef::File(t.path().join("my.qcow2"));
        std::fs::write(t.path().join("my.qcow2"), b"one").expect("write");
        let q = publish(&d, &img).expect("publish");
        assert_eq!(std::fs::read(&q.disk).expect("read"), b"one");
        // Changed at the source: published again (a new file, so a running lab keeps its own).
        std::fs::remove_file(t.path().join("my.qcow2")).expect("rm");
        std::fs::write(t.path().join("my.qcow2"), b"second").expect("write");
        let q2 = publish(&d, &img).expect("publish");
        assert_eq!(q2.disk, q.disk);
        assert_eq!(std::fs::read(&q2.disk).expect("read"), b"second");
        let left: Vec<_> = std::fs::read_dir(q.disk.parent().expect("dir"))
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
    }
}
