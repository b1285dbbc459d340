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
use super::tools::{FileLock, run};
use super::{ImageError, cache_key, io_err, recipe, recipe_text};
use crate::paths::Dirs;

/// Size of the root filesystem in the base image; nodes' overlays are larger and systemd grows
/// the filesystem to the disk at boot.
const ROOTFS_SIZE: &str = "3G";
/// Where the hook's files go, in the build directory and in the tree's /tmp (removed by the
/// hook itself).
const HOOK_DIR: &str = "dcos-lab-hook";
/// The filesystem, made from mmdebstrap's tar (after its own cleanup) inside mmdebstrap's
/// unshare helper, where the tar's owners are root's and the rest: its standard input is the
/// tree as a tar, its standard output a tar of `disk.qcow2`, `vmlinuz` and `initrd.img`. It
/// works in a directory of its own under /tmp (a plain user's subordinate root cannot reach the
/// user's home, where the cache usually is), under the build's scratch directory. /dev's entries stay out (device
/// nodes cannot be made there; the guest mounts devtmpfs on /dev).
const FINISH: &str = r#"set -eu
exec 3>&1 1>&2
W=$(mktemp -d -p "$TMPDIR")
trap 'rm -rf "$W"' EXIT
mkdir "$W/root" "$W/out"
tar -C "$W/root" --numeric-owner --exclude='./dev/*' -xpf -
for f in vmlinuz initrd.img; do
    set -- "$W/root"/boot/"$f"-*
    if [ $# -ne 1 ] || [ ! -f "$1" ]; then
        echo "dcos-lab: expected one /boot/$f-* in the image, found: $*" >&2
        exit 1
    fi
    cp "$1" "$W/out/$f"
done
mkfs.ext4 -q -F -L root -d "$W/root" "$W/disk.raw" @SIZE@
rm -rf "$W/root"
qemu-img convert -q -f raw -O qcow2 "$W/disk.raw" "$W/out/disk.qcow2"
rm -f "$W/disk.raw"
tar -C "$W/out" -cf - disk.qcow2 vmlinuz initrd.img >&3"#;

/// Runs `cmds` as one pipeline (each one's output the next one's input), the last one's output
/// discarded; a failure names the first command that failed, with its last lines of errors.
/// Each command's errors go to a file in `dir`, unlinked as soon as it is open.
fn run_pipeline(dir: &Path, cmds: &mut [(&str, &mut Command)]) -> Result<(), ImageError> {
    let mut children = Vec::new();
    let mut input: Option<std::process::ChildStdout> = None;
    let n = cmds.len();
    for (i, (what, cmd)) in cmds.iter_mut().enumerate() {
        let tool = cmd.get_program().to_string_lossy().into_owned();
        tracing::debug!("running {cmd:?}");
        let err_path = dir.join(format!(".stderr-{i}"));
        let errs = fs::File::create(&err_path).map_err(io_err("cannot create", &err_path))?;
        let err_read = fs::File::open(&err_path).map_err(io_err("cannot open", &err_path))?;
        // Unlinked at once: the two open descriptors keep it until they are dropped.
        fs::remove_file(&err_path).map_err(io_err("cannot remove", &err_path))?;
        cmd.stdin(match input.take() {
            Some(out) => Stdio::from(out),
            None => Stdio::null(),
        })
        .stdout(if i + 1 == n {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stderr(Stdio::from(errs));
        let mut child = cmd
            .spawn()
            .map_err(|source| ImageError::Spawn { tool, source })?;
        input = child.stdout.take();
        // The pipe's ends given to the child are closed here, or a reader would never see
        // the end of its input, nor a writer that its reader is gone.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        children.push((what.to_string(), child, err_read));
    }
    // Every step that failed is named: one step's failure makes its neighbours fail too (a
    // writer whose reader is gone, a reader of a cut stream), and which one came first is not
    // always the one that says why.
    let mut failed: Vec<(bool, String, String, String)> = Vec::new();
    for (what, mut child, mut errs) in children {
        let status = child.wait().map_err(|source| ImageError::Spawn {
            tool: what.clone(),
            source,
        })?;
        if !status.success() {
            use std::io::Read;
            let mut text = String::new();
            let _ = errs.read_to_string(&mut text);
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
            // A writer whose reader went away dies of SIGPIPE: the reader says why.
            use std::os::unix::process::ExitStatusExt;
            let victim = status.signal() == Some(libc::SIGPIPE);
            failed.push((victim, what, status.to_string(), tail));
        }
    }
    failed.sort_by_key(|f| f.0);
    let failed: Vec<(String, String, String)> =
        failed.into_iter().map(|(_, w, st, t)| (w, st, t)).collect();
    let Some((what, status, mut tail)) = failed.first().cloned() else {
        return Ok(());
    };
    for (w, st, t) in &failed[1..] {
        tail.push_str(&format!("\n-- and {w} failed too ({st}):\n{t}"));
    }
    Err(ImageError::Tool { what, status, tail })
}

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

/// The tree (mmdebstrap), its filesystem (the unshare helper) and the image's files unpacked
/// into `tmp`, as one pipeline; both mmdebstrap steps keep their files under `scratch`.
fn build_in(
    tmp: &Path,
    hook_dir: &Path,
    scratch: &Path,
    r: &super::Recipe,
) -> Result<(), ImageError> {
    let mut include = vec![r.kernel.clone()];
    include.extend(r.packages.iter().cloned());
    // Unshare mode needs no privilege: as a plain user it runs in a user namespace on the
    // user's subordinate ids (uidmap's newuidmap, /etc/subuid); as root it only unshares the
    // mount namespace. The tree leaves it as a tar (mmdebstrap's own cleanup done), with root's
    // owners in it, and becomes a filesystem in the unshare helper: as a plain user, no file of
    // the tree is ever on the host with the user's subordinate ids as owners outside `scratch`.
    let mut tree = Command::new("mmdebstrap");
    tree.arg("--quiet")
        .arg("--mode=unshare")
        .arg("--format=tar")
        .arg(format!("--variant={}", r.variant))
        .arg(format!("--include={}", include.join(",")))
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-include=/usr/share/doc/*/copyright")
        .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
        // The hook's files, copied in by mmdebstrap itself (as the user: in unshare mode the
        // hooks run as a subordinate root that cannot read the user's home), run, removed.
        .arg(format!("--customize-hook=copy-in {} /tmp", hook_dir.display()))
        .arg(format!(
            "--customize-hook=sh \"$1/tmp/{HOOK_DIR}/customize.sh\" \"$1\" && rm -rf \"$1/tmp/{HOOK_DIR}\""
        ))
        .arg(&r.suite)
        .arg("-")
        // dpkg reads ~/.dpkg.cfg, which the namespace's root may not reach.
        .env("HOME", "/")
        .env("TMPDIR", scratch);
    let mut filesystem = Command::new("mmdebstrap");
    filesystem
        .arg("--unshare-helper")
        .args(["sh", "-c", &FINISH.replace("@SIZE@", ROOTFS_SIZE)])
        .env("HOME", "/")
        .env("TMPDIR", scratch);
    let mut unpack = Command::new("tar");
    unpack.arg("-C").arg(tmp).args(["-xf", "-"]);
    run_pipeline(
        tmp,
        &mut [
            ("mmdebstrap", &mut tree),
            (
                "making the filesystem (mkfs.ext4 -d, qemu-img)",
                &mut filesystem,
            ),
            ("unpacking the image's files (tar)", &mut unpack),
        ],
    )
}

/// The tools a build runs, and for a plain user the user-namespace helpers and a range of
/// subordinate ids: each missing one named with the package or the fix.
fn check_prerequisites(name: &str) -> Result<(), ImageError> {
    // A plain user's build runs in a user namespace on the user's subordinate ids.
    let userns: &[(&str, &str)] = if crate::host::euid() == 0 {
        &[]
    } else {
        &[("newuidmap", "uidmap"), ("newgidmap", "uidmap")]
    };
    for (tool, package) in [
        ("mmdebstrap", "mmdebstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("qemu-img", "qemu-utils"),
    ]
    .iter()
    .chain(userns)
    {
        if !crate::host::find_in_path(tool) {
            return Err(ImageError::MissingTool {
                name: name.to_string(),
                tool: tool.to_string(),
                package: package.to_string(),
            });
        }
    }
    let uid = crate::host::euid();
    if uid != 0 {
        for file in ["/etc/subuid", "/etc/subgid"] {
            if !crate::host::has_subordinate_ids(file, uid) {
                let user = crate::host::user_name(uid).unwrap_or_else(|| uid.to_string());
                return Err(ImageError::NoSubordinateIds {
                    name: name.to_string(),
                    file: file.to_string(),
                    user,
                });
            }
        }
    }
    Ok(())
}

/// Leftovers of interrupted builds of this image (the caller holds its lock, so none runs).
fn remove_interrupted_builds(images: &Path, name: &str, key: &str) -> Result<(), ImageError> {
    if let Ok(entries) = fs::read_dir(images) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&format!(".build-{name}-{key}")) {
                tracing::info!("removing an interrupted build: {}", e.path().display());
                remove_build_dir(&e.path())?;
            }
        }
    }
    Ok(())
}

/// The built image checked complete, its files readable by QEMU, its manifest written, synced
/// and renamed into place. Returns its disk's size on disk.
fn finish(
    tmp: &Path,
    hook_dir: &Path,
    final_dir: &Path,
    name: &str,
    key: &str,
    r: super::Recipe,
) -> Result<u64, ImageError> {
    for f in ["disk.qcow2", "vmlinuz", "initrd.img"] {
        if !tmp.join(f).is_file() {
            return Err(ImageError::Missing {
                what: f.to_string(),
                dir: tmp.to_path_buf(),
            });
        }
    }
    fs::remove_dir_all(hook_dir).map_err(io_err("cannot remove", hook_dir))?;
    let qcow = tmp.join("disk.qcow2");

    for f in ["disk.qcow2", "vmlinuz", "initrd.img"] {
        let p = tmp.join(f);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
            .map_err(io_err("cannot chmod", &p))?;
    }
    let disk_bytes = file_size_on_disk(&qcow);
    write_manifest(
        tmp,
        &Manifest {
            name: name.to_string(),
            kind: "built".into(),
            key: key.to_string(),
            recipe: Some(r),
            created_unix: crate::unix_time().as_secs(),
            tool_version: crate::render::TOOL_VERSION.into(),
            direct_boot: true,
        },
    )?;
    fs::set_permissions(tmp, fs::Permissions::from_mode(0o755))
        .map_err(io_err("cannot chmod", tmp))?;
    // Everything is on disk before the rename makes it visible.
    run("sync", Command::new("sync").arg("-f").arg(tmp))?;
    fs::rename(tmp, final_dir).map_err(io_err("cannot move the finished image to", final_dir))?;
    Ok(disk_bytes)
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
    check_prerequisites(name)?;
    remove_interrupted_builds(&images, name, &key)?;
    let tmp = images.join(format!(".build-{name}-{key}-{}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(io_err("cannot create", &tmp))?;
    // A failed build removes its directory; a killed one is removed by the next build.
    let _cleanup = BuildDirGuard(tmp.clone());
    // The hook's files, copied into the tree by mmdebstrap itself (`copy-in`, as the user): in
    // its unshare mode the hooks run as a root that is one of the user's subordinate ids and
    // cannot read the user's home, where the cache usually is.
    let hook_dir = tmp.join(HOOK_DIR);
    fs::create_dir_all(&hook_dir).map_err(io_err("cannot create", &hook_dir))?;
    let hook = hook_dir.join("customize.sh");
    fs::write(&hook, super::CUSTOMIZE_SCRIPT).map_err(io_err("cannot write", &hook))?;
    let firstboot = hook_dir.join("firstboot-early.sh");
    fs::write(&firstboot, super::FIRSTBOOT_SCRIPT).map_err(io_err("cannot write", &firstboot))?;

    step(&format!(
        "installing {} packages of Debian {} and making a {ROOTFS_SIZE} ext4 filesystem of them (mmdebstrap, mkfs.ext4 -d, qemu-img)",
        r.packages.len() + 1,
        r.suite
    ));
    // Scratch space for mmdebstrap and the filesystem step, made and removed by the unshare
    // helper (as a plain user its files belong to the user's subordinate ids, which only the
    // namespace may remove); one per image and user, so a build that was killed leaves it to
    // the next build of that image, which holds the image's lock and removes it first. Sticky
    // and open to all, as /tmp is: mmdebstrap makes its own directory there as the user.
    let scratch = std::env::temp_dir().join(format!(
        "dcos-lab-image-{name}-{key}-{}",
        crate::host::euid()
    ));
    let helper = |what: &str, script: &str| {
        run(
            what,
            Command::new("mmdebstrap")
                .args(["--unshare-helper", "sh", "-c", script])
                .arg(&scratch)
                .env("HOME", "/"),
        )
    };
    helper(
        "preparing the scratch directory (mmdebstrap --unshare-helper)",
        r#"rm -rf "$0" && mkdir -m 1777 "$0""#,
    )?;
    let built = build_in(&tmp, &hook_dir, &scratch, &r);
    let removed = helper(
        "removing the scratch directory (mmdebstrap --unshare-helper)",
        r#"rm -rf "$0""#,
    );
    built.and(removed)?;
    let disk_bytes = finish(&tmp, &hook_dir, &final_dir, name, &key, r)?;
    Ok(Built {
        name: name.to_string(),
        dir: final_dir,
        built: true,
        seconds: started.elapsed().as_secs_f64(),
        disk_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipeline passes each step's output on; a failure names the step and its errors, and
    /// a step failing because its neighbour did is named too.
    #[test]
    fn a_pipeline_names_every_step_that_failed() {
        let dir = tempfile::tempdir().expect("dir");
        let out = dir.path().join("out");
        let mut a = Command::new("sh");
        a.args(["-c", "printf 'one\\ntwo\\n'"]);
        let mut b = Command::new("sort");
        b.arg("-r");
        let mut c = Command::new("sh");
        c.args(["-c", &format!("cat > {}", out.display())]);
        run_pipeline(
            dir.path(),
            &mut [("a", &mut a), ("b", &mut b), ("c", &mut c)],
        )
        .expect("runs");
        assert_eq!(std::fs::read_to_string(&out).expect("out"), "two\none\n");

        let mut a = Command::new("yes");
        let mut b = Command::new("sh");
        b.args(["-c", "head -c 1 >/dev/null; echo 'no room' >&2; exit 4"]);
        let mut c = Command::new("cat");
        let e = run_pipeline(
            dir.path(),
            &mut [
                ("writer", &mut a),
                ("filesystem", &mut b),
                ("reader", &mut c),
            ],
        )
        .expect_err("fails");
        let msg = e.to_string();
        assert!(
            msg.contains("filesystem") && msg.contains("no room"),
            "{msg}"
        );
    }
}
