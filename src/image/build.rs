//! `image build`: Debian packages → root directory (mmdebstrap) → ext4 (mkfs.ext4 -d) → qcow2 [I/O].
//!
//! The build happens in a hidden directory beside its destination and is renamed into place only
//! when complete, so an interrupted build never leaves something that looks like a finished image.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::store::{Manifest, write_manifest};
use super::{ImageError, cache_key, io_err, recipe, recipe_text};
use crate::paths::Dirs;

/// Size of the root filesystem in the base image; nodes' overlays are larger and systemd grows
/// the filesystem to the disk at boot.
const ROOTFS_SIZE: &str = "3G";

/// What a build produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub name: String,
    pub dir: PathBuf,
    /// False when the cache already had it.
    pub built: bool,
    pub seconds: f64,
    pub disk_bytes: u64,
}

/// An exclusive lock on a file, released on drop (flock).
pub(crate) struct FileLock {
    _file: fs::File,
}

impl FileLock {
    pub(crate) fn acquire(path: &Path) -> Result<FileLock, ImageError> {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err("cannot open lock", path))?;
        // SAFETY: flock on a file descriptor we own; blocks until the lock is ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(ImageError::Io {
                what: "cannot lock".into(),
                path: path.to_path_buf(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(FileLock { _file: file })
    }
}

pub(crate) fn run(what: &str, cmd: &mut Command) -> Result<(), ImageError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    tracing::debug!("running {cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ImageError::Spawn { tool, source })?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    Err(ImageError::Tool {
        what: what.to_string(),
        status: out.status.to_string(),
        tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

fn find_boot_file(boot: &Path, prefix: &str) -> Result<PathBuf, ImageError> {
    let mut found: Vec<PathBuf> = fs::read_dir(boot)
        .map_err(io_err("cannot read", boot))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found.pop().ok_or_else(|| ImageError::Missing {
        what: format!("{prefix}*"),
        dir: boot.to_path_buf(),
    })
}

fn file_size_on_disk(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).map(|m| m.blocks() * 512).unwrap_or(0)
}

/// Mount points at or below `dir`, deepest first (from /proc/self/mounts).
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        // /proc/mounts escapes spaces as \040; our paths have none.
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found
}

/// Removes an interrupted build. A killed mmdebstrap leaves /proc, /sys and /dev mounts inside its
/// tree: they are unmounted first, and nothing is deleted while anything is still mounted there,
/// so a removal can never reach into the host's /proc, /sys or /dev.
fn remove_build_dir(dir: &Path) -> Result<(), ImageError> {
    for m in mounts_below(dir) {
        // SAFETY: umount2 with a path we own (a C string); MNT_DETACH cannot block.
        let c = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()).map_err(|_| {
            ImageError::Io {
                what: "cannot unmount".into(),
                path: m.clone(),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            }
        })?;
        let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            tracing::warn!(
                "cannot unmount {}: {}",
                m.display(),
                std::io::Error::last_os_error()
            );
        }
    }
    let left = mounts_below(dir);
    if !left.is_empty() {
        return Err(ImageError::Io {
            what: format!("{} is still mounted below", left.len()),
            path: dir.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::ResourceBusy),
        });
    }
    fs::remove_dir_all(dir).map_err(io_err("cannot remove", dir))
}

/// Removes a build directory that was not renamed into place, when the build returns.
struct BuildDirGuard(PathBuf);

impl Drop for BuildDirGuard {
    fn drop(&mut self) {
        if self.0.exists()
            && let Err(e) = remove_build_dir(&self.0)
        {
            tracing::warn!("cannot remove the failed build {}: {e}", self.0.display());
        }
    }
}

/// Builds recipe `name` into the cache, or returns the cached image. `step` is told each step.
pub fn build(dirs: &Dirs, name: &str, step: &dyn Fn(&str)) -> Result<Built, ImageError> {
    let started = Instant::now();
    let r = recipe(name)?;
    let key = cache_key(&recipe_text(name)?);
    let images = dirs.images();
    fs::create_dir_all(&images).map_err(io_err("cannot create", &images))?;
    // QEMU (as libvirt-qemu) must traverse to the backing files.
    let _ = fs::set_permissions(&images, fs::Permissions::from_mode(0o755));
    let final_dir = images.join(format!("{name}-{key}"));
    let _lock = FileLock::acquire(&images.join(format!(".{name}-{key}.lock")))?;
    if final_dir.join("manifest.json").is_file() {
        return Ok(Built {
            name: name.to_string(),
            disk_bytes: file_size_on_disk(&final_dir.join("disk.qcow2")),
            dir: final_dir,
            built: false,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    for (tool, package) in [
        ("mmdebstrap", "mmdebstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("qemu-img", "qemu-utils"),
    ] {
        if !crate::host::find_in_path(tool) {
            return Err(ImageError::MissingTool {
                name: name.to_string(),
                tool: tool.to_string(),
                package: package.to_string(),
            });
        }
    }
    // Leftovers of interrupted builds of this image: we hold the lock, so none is running.
    if let Ok(entries) = fs::read_dir(&images) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&format!(".build-{name}-{key}")) {
                tracing::info!("removing an interrupted build: {}", e.path().display());
                remove_build_dir(&e.path())?;
            }
        }
    }
    let tmp = images.join(format!(".build-{name}-{key}-{}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(io_err("cannot create", &tmp))?;
    // A failed build removes its directory; a killed one is removed by the next build.
    let _cleanup = BuildDirGuard(tmp.clone());
    let rootfs = tmp.join("rootfs");
    let hook = tmp.join("customize.sh");
    fs::write(&hook, super::CUSTOMIZE_SCRIPT).map_err(io_err("cannot write", &hook))?;
    let firstboot = tmp.join("firstboot-early.sh");
    fs::write(&firstboot, super::FIRSTBOOT_SCRIPT).map_err(io_err("cannot write", &firstboot))?;

    step(&format!(
        "installing {} packages of Debian {} (mmdebstrap)",
        r.packages.len() + 1,
        r.suite
    ));
    let mut include = vec![r.kernel.clone()];
    include.extend(r.packages.iter().cloned());
    run(
        "mmdebstrap",
        Command::new("mmdebstrap")
            .arg("--quiet")
            .arg(format!("--variant={}", r.variant))
            .arg(format!("--include={}", include.join(",")))
            .arg("--aptopt=APT::Install-Recommends \"false\"")
            .arg("--dpkgopt=path-exclude=/usr/share/man/*")
            .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
            .arg("--dpkgopt=path-include=/usr/share/doc/*/copyright")
            .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
            .arg(format!("--customize-hook=sh {} \"$1\"", hook.display()))
            .arg(&r.suite)
            .arg(&rootfs),
    )?;

    step("extracting the kernel and initrd for direct kernel boot");
    let boot = rootfs.join("boot");
    for (prefix, dest) in [("vmlinuz-", "vmlinuz"), ("initrd.img-", "initrd.img")] {
        let src = find_boot_file(&boot, prefix)?;
        let to = tmp.join(dest);
        fs::copy(&src, &to).map_err(io_err("cannot copy", &src))?;
    }

    step(&format!(
        "making a {ROOTFS_SIZE} ext4 filesystem from the tree (mkfs.ext4 -d)"
    ));
    let raw = tmp.join("disk.raw");
    run(
        "mkfs.ext4",
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "root", "-d"])
            .arg(&rootfs)
            .arg(&raw)
            .arg(ROOTFS_SIZE),
    )?;
    fs::remove_dir_all(&rootfs).map_err(io_err("cannot remove", &rootfs))?;

    step("converting to qcow2");
    let qcow = tmp.join("disk.qcow2");
    run(
        "qemu-img convert",
        Command::new("qemu-img")
            .args(["convert", "-q", "-O", "qcow2"])
            .arg(&raw)
            .arg(&qcow),
    )?;
    fs::remove_file(&raw).map_err(io_err("cannot remove", &raw))?;
    fs::remove_file(&hook).map_err(io_err("cannot remove", &hook))?;
    fs::remove_file(&firstboot).map_err(io_err("cannot remove", &firstboot))?;

    for f in ["disk.qcow2", "vmlinuz", "initrd.img"] {
        let p = tmp.join(f);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
            .map_err(io_err("cannot chmod", &p))?;
    }
    let disk_bytes = file_size_on_disk(&qcow);
    write_manifest(
        &tmp,
        &Manifest {
            name: name.to_string(),
            kind: "built".into(),
            key: key.clone(),
            recipe: Some(r),
            created_unix: crate::unix_time().as_secs(),
            tool_version: crate::render::TOOL_VERSION.into(),
            direct_boot: true,
        },
    )?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
        .map_err(io_err("cannot chmod", &tmp))?;
    // Everything is on disk before the rename makes it visible.
    run("sync", Command::new("sync").arg("-f").arg(&tmp))?;
    fs::rename(&tmp, &final_dir)
        .map_err(io_err("cannot move the finished image to", &final_dir))?;
    Ok(Built {
        name: name.to_string(),
        dir: final_dir,
        built: true,
        seconds: started.elapsed().as_secs_f64(),
        disk_bytes,
    })
}
