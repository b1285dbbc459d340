//! Golden labs: a whole lab at one of its snapshots, in one file, and `up --from` that brings it
//! back running, without booting [I/O: libvirt, files, qemu-img, tar].
//!
//! The file is a tar stream (ustar, written in one pass by `tarball`, each member hashed as it is
//! written; no compression: see docs/snapshots.md for the measurements):
//!
//! - `golden.json`: the manifest (format, lab, snapshot, the versions that must match, the base
//!   image by its cache key, the SHA-256 and size of every other member);
//! - `lab.yaml`: the lab file as it was loaded;
//! - `disks/<node>.qcow2`: each node's overlay, holding that one internal snapshot (disk and
//!   memory), backed by the base image;
//! - `snapshots/<node>.xml`: libvirt's metadata of the snapshot;
//! - `ssh/id_ed25519`, `ssh/known_hosts`: the lab's key and pinned host keys;
//! - `image/…`: the base image, only with `--with-image`.
//!
//! A golden comes back under its own lab name, MACs, addresses and keys: its memory holds them.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::BadInput;
use crate::driver::blocking;
use crate::model::Lab;
use crate::names::LabDirs;
use crate::names::ObjState;
use crate::ops::Ctx;
use crate::ops::lab::state::{self as lab_state, LabState};

/// The `format` of a golden's manifest.
pub const FORMAT: &str = "dcos-lab-golden/1";
const MANIFEST: &str = "golden.json";

/// What must be the same on the host that restores a golden as on the one that made it: a
/// snapshot's saved memory loads only into the same QEMU, machine type, CPU and accelerator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub dcos_lab: String,
    pub hypervisor: String,
    pub machine: String,
    pub cpu: String,
    pub accel: String,
}

/// The base image the disks are overlays of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageInfo {
    /// As the lab file names it (`debian-12`).
    pub name: String,
    /// Its directory in the cache, `<name>-<cache key>` (the key covers the recipe and tools).
    pub dir: String,
    /// Whether the file carries the image (`--with-image`).
    pub included: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub lab: String,
    pub snapshot: String,
    pub created_unix: u64,
    pub versions: Versions,
    pub image: ImageInfo,
    /// The lab's directory and the image cache where it was made: paths in the snapshot
    /// metadata are rewritten from these to the restoring host's.
    pub lab_root: String,
    pub images_dir: String,
    pub nodes: Vec<String>,
    pub members: BTreeMap<String, Member>,
}

/// What `snapshot export` reports.
#[derive(Debug, Serialize)]
pub struct ExportReport {
    pub lab: String,
    pub snapshot: String,
    pub file: PathBuf,
    pub bytes: u64,
    /// The longest any node was paused (while its disk was copied).
    pub paused_seconds: f64,
    pub seconds: f64,
}

/// The lab file's text, as `load_lab` read it.
fn lab_text(lab: &Lab) -> anyhow::Result<String> {
    if let Some(name) = lab
        .source
        .strip_prefix("labs/")
        .and_then(|s| s.strip_suffix(".yaml"))
        && let Some((_, text)) = crate::model::BUILTIN_LABS.iter().find(|(n, _)| *n == name)
    {
        return Ok((*text).to_string());
    }
    std::fs::read_to_string(&lab.source).with_context(|| format!("cannot read {}", lab.source))
}

/// Copies node `node`'s disk `from` to `to`: from the file where this process may read it (root's
/// lab), else through libvirt (a plain user's lab, whose disks libvirtd and QEMU own).
async fn copy_disk(
    hv: &crate::driver::Hv,
    lab: &str,
    node: &str,
    from: PathBuf,
    to: PathBuf,
) -> anyhow::Result<()> {
    match std::fs::File::open(&from) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let (pool, vol) = (
                crate::names::pool_name(lab),
                crate::names::disk_volume_name(node),
            );
            blocking(hv, move |h| h.download_volume(&pool, &vol, &to))
                .await
                .with_context(|| format!("cannot copy {} through libvirt", from.display()))
        }
        _ => tokio::task::spawn_blocking(move || {
            sparse_copy(&from, &to)
                .map(|_| ())
                .with_context(|| format!("cannot copy {}", from.display()))
        })
        .await
        .context("a copy task failed")?,
    }
}

/// Copies `from` to `to` keeping its holes (SEEK_DATA/SEEK_HOLE): a qcow2 overlay is mostly
/// unallocated, and a plain copy would write all of it.
fn sparse_copy(from: &Path, to: &Path) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::fd::AsRawFd;
    let mut src = std::fs::File::open(from)?;
    let len = src.metadata()?.len();
    let mut dst = std::fs::File::create(to)?;
    dst.set_len(len)?;
    let (fd, dst_fd) = (src.as_raw_fd(), dst.as_raw_fd());
    let mut copied = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for (data, len) in crate::tarball::data_map(&src, len) {
        let mut left = len;
        // The kernel copies the range itself (no trip through this process's memory) where it
        // can; otherwise, read and write.
        let (mut off_in, mut off_out) = (
            i64::try_from(data).unwrap_or(i64::MAX),
            i64::try_from(data).unwrap_or(i64::MAX),
        );
        while left > 0 {
            let want = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
            // SAFETY: both descriptors are owned here and open; the offsets are locals.
            let k =
                unsafe { libc::copy_file_range(fd, &mut off_in, dst_fd, &mut off_out, want, 0) };
            if k <= 0 {
                break;
            }
            left -= k as u64;
            copied += k as u64;
        }
        src.seek(SeekFrom::Start(u64::try_from(off_in).unwrap_or(0)))?;
        dst.seek(SeekFrom::Start(u64::try_from(off_out).unwrap_or(0)))?;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let k = src.read(&mut buf[..want])?;
            if k == 0 {
                break;
            }
            dst.write_all(&buf[..k])?;
            left -= k as u64;
            copied += k as u64;
        }
    }
    // No fsync: the copy is read back at once (the tar, the import), through the page cache; an
    // export or import that does not finish is started over.
    Ok(copied)
}

/// A staging directory that is removed when dropped (also when the operation fails).
struct Staging(PathBuf);

impl Staging {
    /// Makes `.<what>-<pid>-<nanos>` in `parent`, after removing any such directory whose process
    /// is gone (an export or `up --from` that was killed cannot remove its own).
    fn new(parent: &Path, what: &str) -> anyhow::Result<Staging> {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        Staging::sweep(parent, what);
        let dir = parent.join(format!(
            ".{what}-{}-{}",
            std::process::id(),
            crate::unix_time().as_nanos()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Staging(dir))
    }
}

impl Staging {
    /// Removes the staging directories of `what` left in `parent` by processes that no longer
    /// run. Only names of exactly our shape are touched; a live process's (ours or another
    /// command's) is left alone.
    fn sweep(parent: &Path, what: &str) {
        let Ok(entries) = std::fs::read_dir(parent) else {
            return;
        };
        let prefix = format!(".{what}-");
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            let Some((pid, nanos)) = rest.split_once('-') else {
                continue;
            };
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !digits(pid) || !digits(nanos) || Path::new("/proc").join(pid).exists() {
                continue;
            }
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => tracing::info!(
                    "removed {}, left by a {what} that was stopped",
                    e.path().display()
                ),
                Err(err) => tracing::warn!("cannot remove {}: {err}", e.path().display()),
            }
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Each node's console log where the exporting host kept it (root's labs in `console/`, a plain
/// user's in the pool, `disks/console-<node>.log`), moved to where this host keeps it.
fn console_rewrites(root: &str, nodes: &[String], here: &LabDirs) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for n in nodes {
        let ours = here.console_log(n).display().to_string();
        let root = Path::new(root);
        let theirs = [
            LabDirs::local(root.to_path_buf()).console_log(n),
            root.join("disks")
                .join(crate::names::console_volume_name(n)),
        ];
        out.extend(theirs.map(|t| (t.display().to_string(), ours.clone())));
    }
    out
}

/// Renames `from` to `to`, or copies it (keeping its holes) where they are on two filesystems
/// (a plain user's golden unpacked in their home, moved to their shared directory).
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            sparse_copy(from, to)?;
            std::fs::remove_file(from)
        }
        r => r,
    }
}

fn qemu_img(args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let out = std::process::Command::new("qemu-img")
        .args(args)
        .output()
        .context("cannot run qemu-img (scripts/setup-host.sh installs it)")?;
    if !out.status.success() {
        bail!(
            "qemu-img {}: {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The host's CPU model (`model name` in /proc/cpuinfo).
fn host_cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// The versions this host gives `lab`: its QEMU, the machine type the rendered alias stands
/// for, the CPU the guest sees (under KVM the host's own model; under TCG the model QEMU
/// emulates, which its version decides), the accelerator.
async fn versions_here(ctx: &Ctx, lab: &Lab) -> anyhow::Result<Versions> {
    let accel = crate::ops::decide_accel(lab, None).accel;
    let (info, machine) =
        blocking(ctx.hv(), |h| Ok((h.version()?, h.machine_type("q35")?))).await?;
    Ok(Versions {
        dcos_lab: crate::render::TOOL_VERSION.to_string(),
        hypervisor: info.hypervisor,
        machine: machine.unwrap_or_else(|| "q35".into()),
        cpu: match accel {
            crate::model::Accel::Kvm => format!("host: {}", host_cpu()),
            crate::model::Accel::Tcg => "emulated (QEMU's default model)".into(),
        },
        accel: accel.to_string(),
    })
}

/// `snapshot export`: writes `file` with the lab at snapshot `name`. The lab's running nodes are
/// paused only while their disks are copied (a consistent copy: pausing makes QEMU flush them).
pub async fn export(
    ctx: &Ctx,
    lab: &Lab,
    name: &str,
    file: &Path,
    with_image: bool,
) -> anyhow::Result<ExportReport> {
    let t0 = Instant::now();
    let (state, snaps) = exportable(ctx, lab, name, file).await?;
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let lab_dirs = ctx.dirs.lab(&lab.name);
    let stage = Staging::new(parent, "golden-export")?;
    for d in ["disks", "snapshots", "ssh"] {
        std::fs::create_dir_all(stage.0.join(d))?;
    }
    let versions = versions_here(ctx, lab).await?;
    let image = crate::image::boot_image(&ctx.dirs, &lab.image);
    let image_dir = image
        .disk
        .parent()
        .context("the image's directory")?
        .to_path_buf();
    let image_dir_name = image_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let paused_seconds = copy_disks(ctx, lab, &state, &stage, &lab_dirs).await?;
    keep_only(&state, &snaps, name, &stage).await?;
    stage_the_rest(
        ctx,
        lab,
        &state,
        name,
        &stage,
        with_image.then_some(image_dir.as_path()),
    )
    .await?;
    let manifest = Manifest {
        format: FORMAT.to_string(),
        lab: lab.name.clone(),
        snapshot: name.to_string(),
        created_unix: crate::unix_time().as_secs(),
        versions,
        image: ImageInfo {
            name: lab.image.to_string(),
            dir: image_dir_name,
            included: with_image,
        },
        lab_root: lab_dirs.path().display().to_string(),
        images_dir: ctx.dirs.qemu_images().display().to_string(),
        nodes: state.nodes.iter().map(|n| n.name.clone()).collect(),
        members: BTreeMap::new(),
    };
    write_golden(file, &stage, manifest).await?;
    let bytes = std::fs::metadata(file)?.len();
    Ok(ExportReport {
        lab: lab.name.clone(),
        snapshot: name.to_string(),
        file: file.to_path_buf(),
        bytes,
        paused_seconds,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// What `export` needs before anything is made: the lab, on this host, with snapshot `name`
/// on every node, and no file where the golden goes.
async fn exportable(
    ctx: &Ctx,
    lab: &Lab,
    name: &str,
    file: &Path,
) -> anyhow::Result<(LabState, Vec<crate::ops::lab::snapshots::LabSnapshot>)> {
    let state = lab_state::read(ctx, &lab.name).await?;
    if !state.exists() {
        return Err(BadInput(format!(
            "lab {} does not exist; `dcos-lab up {}` makes it",
            lab.name, lab.name
        ))
        .into());
    }
    if let Some(n) = state
        .nodes
        .iter()
        .find(|n| n.host != crate::model::LOCAL_HOST)
    {
        return Err(BadInput(format!(
            "lab {} spans hosts (node {} runs on {}): a golden lab is one host's lab\n  fix: export a lab whose nodes all run on this host",
            lab.name, n.name, n.host
        ))
        .into());
    }
    // A golden is restored in the lab file's order of addresses: a lab whose nodes hold others
    // (agents added mid-file or removed while it ran) would come back with its guests'
    // addresses changed under them.
    let made = crate::ops::lab::indices::as_made(ctx, lab).await?;
    if let Some(n) = made
        .nodes
        .iter()
        .zip(&lab.nodes)
        .find(|(m, n)| m.index != n.index)
        .map(|(m, _)| m)
    {
        return Err(BadInput(format!(
            "lab {} holds addresses out of its lab file's order (node {} was made as node #{}; agents were added or removed while it ran), and a golden lab comes back in the file's order\n  fix: list the nodes in the order they were made, or `dcos-lab down {}` and `up` it afresh before exporting",
            lab.name, n.name, n.index, lab.name
        ))
        .into());
    }
    let snaps = crate::ops::lab::snapshots::list(ctx, &lab.name).await?;
    let Some(snap) = snaps.iter().find(|s| s.name == name) else {
        return Err(BadInput(format!(
            "lab {} has no snapshot {name}; `dcos-lab snapshots {}` lists them",
            lab.name, lab.name
        ))
        .into());
    };
    if !snap.complete {
        return Err(BadInput(format!(
            "snapshot {name} of lab {} is not on every node; it cannot be exported",
            lab.name
        ))
        .into());
    }
    if file.exists() {
        return Err(BadInput(format!(
            "{} exists already\n  fix: remove it or name another file",
            file.display()
        ))
        .into());
    }
    Ok((state, snaps))
}

/// Each node's overlay copied into `stage`'s `disks/`. Returns the longest a node was paused.
async fn copy_disks(
    ctx: &Ctx,
    lab: &Lab,
    state: &LabState,
    stage: &Staging,
    lab_dirs: &LabDirs,
) -> anyhow::Result<f64> {
    let hv = ctx.hv();
    // The snapshot in each overlay is already one consistent cut of the lab; what a
    // copy needs is an overlay QEMU does not write meanwhile. So each running node is paused
    // (QEMU flushes its disk) only while its own overlay is copied, one node after another, and
    // resumed at once: each node is paused for a third of the copying, not all of it.
    let mut paused_seconds = 0.0f64;
    for n in &state.nodes {
        let (from, to) = (
            lab_dirs.disk(&n.name),
            stage.0.join("disks").join(format!("{}.qcow2", n.name)),
        );
        let running = n.state == ObjState::Active;
        let d = n.domain.clone();
        let paused_at = Instant::now();
        if running {
            blocking(hv, move |h| h.suspend_domain(&d))
                .await
                .with_context(|| format!("cannot pause {}", n.domain))?;
        }
        let copied = copy_disk(hv, &lab.name, &n.name, from, to).await;
        if running {
            let d = n.domain.clone();
            let resumed = blocking(hv, move |h| h.resume_domain(&d)).await;
            paused_seconds = paused_seconds.max(paused_at.elapsed().as_secs_f64());
            resumed.with_context(|| {
                format!(
                    "lab {}: node {} did not resume after its disk was copied",
                    lab.name, n.name
                )
            })?;
        }
        copied.with_context(|| format!("cannot export lab {}", lab.name))?;
    }

    Ok(paused_seconds)
}

/// Only snapshot `name` stays in the copies (the nodes' copies at once).
async fn keep_only(
    state: &LabState,
    snaps: &[crate::ops::lab::snapshots::LabSnapshot],
    name: &str,
    stage: &Staging,
) -> anyhow::Result<()> {
    let drops = state.nodes.iter().map(|n| {
        let copy = stage.0.join("disks").join(format!("{}.qcow2", n.name));
        let others: Vec<String> = snaps
            .iter()
            .filter(|s| s.name != name && s.nodes.contains(&n.name))
            .map(|s| s.name.clone())
            .collect();
        (copy, others)
    });
    let dropped = crate::ops::lab::nodes::all_at_once(drops, |(copy, others)| async move {
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            for other in others {
                qemu_img(&[
                    "snapshot".as_ref(),
                    "-d".as_ref(),
                    other.as_ref(),
                    copy.as_os_str(),
                ])?;
            }
            Ok(())
        })
        .await
        .context("a qemu-img task failed")?
    })
    .await?;
    dropped.into_iter().collect()
}

/// Beside the disks: each node's snapshot metadata, the lab file, the lab's key and pinned
/// host keys, and the base image when asked for.
async fn stage_the_rest(
    ctx: &Ctx,
    lab: &Lab,
    state: &LabState,
    name: &str,
    stage: &Staging,
    image_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let (hv, lab_dirs) = (ctx.hv(), ctx.dirs.lab(&lab.name));
    for n in &state.nodes {
        let (d, s) = (n.domain.clone(), name.to_string());
        let xml = blocking(hv, move |h| h.snapshot_xml(&d, &s)).await?;
        std::fs::write(
            stage.0.join("snapshots").join(format!("{}.xml", n.name)),
            xml,
        )?;
    }
    std::fs::write(stage.0.join("lab.yaml"), lab_text(lab)?)?;
    for f in ["id_ed25519", "known_hosts"] {
        let to = stage.0.join("ssh").join(f);
        let from = lab_dirs.ssh_dir().join(f);
        match std::fs::copy(&from, &to) {
            Ok(_) => {}
            // No host key pinned yet (no node ever answered): an empty list, as `up` starts.
            Err(e) if f == "known_hosts" && e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::write(&to, b"")?;
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot read {}", from.display()))
                );
            }
        }
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))?;
    }
    if let Some(image_dir) = image_dir {
        std::fs::create_dir_all(stage.0.join("image"))?;
        for entry in std::fs::read_dir(image_dir)
            .with_context(|| format!("cannot read {}", image_dir.display()))?
        {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                sparse_copy(
                    &entry.path(),
                    &stage.0.join("image").join(entry.file_name()),
                )?;
            }
        }
    }

    Ok(())
}

/// The tar stream of `stage` into `file`, written beside and renamed: every member hashed as
/// it is written, the manifest (which holds the hashes) first in the file, written last.
async fn write_golden(file: &Path, stage: &Staging, mut manifest: Manifest) -> anyhow::Result<()> {
    let root = stage.0.clone();
    let mut files = Vec::new();
    for dir in ["lab.yaml", "ssh", "snapshots", "disks", "image"] {
        let p = root.join(dir);
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&p)?.flatten().map(|e| e.path()).collect();
            v.sort();
            files.extend(v);
        } else if p.is_file() {
            files.push(p);
        }
    }
    // Room for the manifest: what it holds without members, and more than a member's line
    // (name, hash, size) for each.
    let reserve = serde_json::to_string_pretty(&manifest)?.len() + 4096 + 512 * files.len();
    let part = file.with_extension("part");
    let (p, created) = (part.clone(), manifest.created_unix);
    let written = tokio::task::spawn_blocking(move || -> anyhow::Result<Manifest> {
        let mut w = crate::tarball::Writer::create(&p, MANIFEST, reserve, created)
            .with_context(|| format!("cannot write {}", p.display()))?;
        for f in &files {
            let rel = f
                .strip_prefix(&root)
                .map(|r| r.display().to_string())
                .unwrap_or_default();
            let (sha256, bytes) = w
                .append_file(&rel, f)
                .with_context(|| format!("cannot write {} into {}", f.display(), p.display()))?;
            manifest.members.insert(rel, Member { sha256, bytes });
        }
        w.finish(serde_json::to_string_pretty(&manifest)?.as_bytes())
            .with_context(|| format!("cannot write {}", p.display()))?;
        Ok(manifest)
    })
    .await
    .context("the export task failed");
    if let Err(e) = written.and_then(|r| r) {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, file).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(())
}

/// A golden file unpacked and checked: its manifest, where its members are.
struct Unpacked {
    manifest: Manifest,
    stage: Staging,
}

/// Unpacks `file` into a staging directory under `parent` and checks it member by member.
/// Anything wrong with the file is bad input naming the member; the directory goes with it.
async fn unpack(file: &Path, parent: &Path) -> anyhow::Result<Unpacked> {
    let bad = |what: String| -> anyhow::Error {
        BadInput(format!(
            "{} is not a usable golden lab: {what}\n  fix: export it again (`dcos-lab snapshot export LAB NAME FILE`)",
            file.display()
        ))
        .into()
    };
    if !file.is_file() {
        return Err(BadInput(format!("{}: no such file", file.display())).into());
    }
    let stage = Staging::new(parent, "golden-import")?;
    // One pass: every member written and hashed as it is read.
    let t0 = Instant::now();
    let (from, into) = (file.to_path_buf(), stage.0.clone());
    let found = tokio::task::spawn_blocking(move || crate::tarball::unpack(&from, &into))
        .await
        .context("the unpacking task failed")?
        .with_context(|| format!("cannot unpack {}", file.display()))?;
    tracing::debug!("unpacked it in {:.2} s", t0.elapsed().as_secs_f64());
    let manifest_path = stage.0.join(MANIFEST);
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(t) => t,
        Err(_) => {
            return Err(bad(match &found.error {
                Some(e) => format!("it cannot be read as a tar stream: {e}"),
                None => format!("it has no {MANIFEST}"),
            }));
        }
    };
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| bad(format!("{MANIFEST} is not a golden's manifest ({e})")))?;
    if manifest.format != FORMAT {
        return Err(bad(format!(
            "its format is {:?}, this dcos-lab reads {FORMAT:?}",
            manifest.format
        )));
    }
    // Every member there, whole, with its hash: a truncated file loses its last members or
    // shortens one; a changed byte changes a hash.
    let root = stage.0.clone();
    let members = manifest.members.clone();
    // Sizes first (a truncated file shows there), then the hashes taken while unpacking.
    for (name, m) in &members {
        // Members name files inside the golden, never a path out of it.
        if !Path::new(name)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(bad(format!(
                "its manifest names a member {name:?} outside the golden"
            )));
        }
        match std::fs::metadata(root.join(name)) {
            Err(e) => return Err(bad(format!("member {name} is missing ({e})"))),
            Ok(md) if md.len() != m.bytes => {
                return Err(bad(format!(
                    "member {name} is {} bytes, the manifest says {} (a truncated file?)",
                    md.len(),
                    m.bytes
                )));
            }
            Ok(_) => {}
        }
    }
    for (name, m) in &members {
        match found.members.get(name) {
            None => return Err(bad(format!("member {name} is missing"))),
            Some((h, _)) if *h != m.sha256 => {
                return Err(bad(format!("member {name} does not match its SHA-256")));
            }
            Some(_) => {}
        }
    }
    if let Some(e) = found.error {
        return Err(bad(e));
    }
    Ok(Unpacked { manifest, stage })
}

/// A golden refused for what one of its members holds: bad input naming the member.
fn refused(file: &Path, member: &str, why: &str) -> anyhow::Error {
    BadInput(format!(
        "{}: {member} is refused: {why}\n  fix: restore only goldens made by `dcos-lab snapshot export` from this lab file; a golden from someone else can point the host at its own files, and dcos-lab takes nothing of it unchecked (docs/snapshots.md)",
        file.display()
    ))
    .into()
}

/// The golden's own lab file, used when the user names the lab only: nothing in it may reach
/// outside the restored lab. An image given by path is refused (the user's own lab file may
/// name one); the installer is dropped (`up --from` installs nothing; `install` needs the
/// user's lab file).
fn golden_lab_stays_in(lab: &mut Lab, file: &Path) -> anyhow::Result<()> {
    if let crate::model::ImageRef::File(p) = &lab.image {
        return Err(refused(
            file,
            "lab.yaml",
            &format!(
                "its image is a path on the host, {}; a golden's lab file may name only an image recipe or an imported image\n  (to use that image, give your own lab file naming it: `dcos-lab up LAB.yaml --from FILE`)",
                p.display()
            ),
        ));
    }
    if let Some(p) = lab.dcos.installer.take() {
        tracing::info!(
            "the golden's lab file names the installer {}; it is not used (give your own lab file to install)",
            p.display()
        );
    }
    Ok(())
}

/// What the manifest names that becomes a file or a libvirt name here: exactly the lab's
/// nodes, a snapshot name dcos-lab would take.
fn check_names(file: &Path, m: &Manifest, lab: &Lab) -> anyhow::Result<()> {
    let mut theirs = m.nodes.clone();
    theirs.sort();
    let mut ours: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
    ours.sort();
    if theirs != ours {
        return Err(refused(
            file,
            MANIFEST,
            &format!(
                "it names the nodes {}, the lab file has {}",
                theirs.join(", "),
                ours.join(", ")
            ),
        ));
    }
    crate::ops::lab::snapshots::check_name(&m.snapshot)
        .map_err(|e| refused(file, MANIFEST, &format!("its snapshot name: {}", e.0)))
}

/// A golden's qcow2 member's header, read without opening anything it names; anything else
/// refuses the golden.
fn read_qcow2(
    file: &Path,
    path: &Path,
    member: &str,
) -> anyhow::Result<crate::image::qcow2::Qcow2> {
    use crate::image::qcow2::DiskFile;
    match DiskFile::read(path) {
        Ok(DiskFile::Qcow2(q)) => Ok(q),
        Ok(other) => Err(refused(
            file,
            member,
            &format!("it is a {} image, not qcow2", other.format()),
        )),
        Err(e) => Err(refused(file, member, &format!("cannot read it ({e})"))),
    }
}

/// Every node's disk: a qcow2 overlay of the base image the manifest names (by its cache
/// directory, which must be this host's: checked before), of the size the lab file gives the
/// node, with no external data file; read by our own parser, which opens nothing it names.
/// Returns each node's backing file as its header names it.
fn check_disks(
    file: &Path,
    stage: &Path,
    m: &Manifest,
    lab: &Lab,
    image: &crate::render::BootImage,
) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    use crate::image::qcow2::Backing;
    let mut backing = BTreeMap::new();
    let base = image
        .disk
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for node in &lab.nodes {
        let member = format!("disks/{}.qcow2", node.name);
        let q = read_qcow2(file, &stage.join(&member), &member)?;
        q.check(Backing::CacheImage {
            dir: &m.image.dir,
            file: &base,
            format: &image.format,
        })
        .map_err(|e| refused(file, &member, &e.0))?;
        if q.virtual_size != node.disk.bytes() {
            return Err(refused(
                file,
                &member,
                &format!(
                    "it is a disk of {} bytes; the lab file gives node {} {} ({} bytes)",
                    q.virtual_size,
                    node.name,
                    node.disk,
                    node.disk.bytes()
                ),
            ));
        }
        backing.insert(node.name.clone(), q.backing);
    }
    Ok(backing)
}

/// The files of an image the golden carries (`--with-image`): the disk, self-contained
/// qcow2, and the kernel, initrd and manifest, plain files; nothing else.
fn check_included_image(file: &Path, stage: &Path) -> anyhow::Result<()> {
    use crate::image::qcow2::Backing;
    const FILES: [&str; 4] = ["disk.qcow2", "vmlinuz", "initrd.img", "manifest.json"];
    let dir = stage.join("image");
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        refused(
            file,
            "image/",
            &format!("the manifest says the image is included, but {e}"),
        )
    })?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let member = format!("image/{name}");
        if !FILES.contains(&name.as_str()) || !e.file_type().is_ok_and(|t| t.is_file()) {
            return Err(refused(
                file,
                &member,
                &format!("an image holds only {}", FILES.join(", ")),
            ));
        }
    }
    let member = "image/disk.qcow2";
    read_qcow2(file, &dir.join("disk.qcow2"), member)?
        .check(Backing::None)
        .map_err(|e| refused(file, member, &e.0))
}

/// Where an import in progress is recorded (the lab's directory): a lab that has it is half
/// made by an `up --from` that did not finish, and the next `up --from` starts it over.
fn import_record(ctx: &Ctx, lab: &str) -> PathBuf {
    ctx.dirs.lab(lab).private.join("import-in-progress")
}

/// `up LAB --from FILE`: the lab made from the golden and resumed running at its snapshot,
/// clocks corrected and random state renewed (the revert does both), SSH answering with the
/// pinned keys. `arg` is how the user named the lab (a lab file, a built-in, or its name).
pub async fn restore(
    ctx: &Ctx,
    arg: &str,
    file: &Path,
    wait: Duration,
) -> anyhow::Result<crate::ops::lab::making::UpReport> {
    let t0 = Instant::now();
    let unpacked = unpack(file, &ctx.dirs.state).await?;
    tracing::debug!(
        "unpacked and checked at {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let manifest = unpacked.manifest.clone();
    let m = &manifest;
    let stage = unpacked.stage.0.clone();
    let lab = golden_lab(ctx, arg, file, m, &stage)?;
    let _lock = ctx.lock(&lab.name)?;
    let record = import_record(ctx, &lab.name);
    take_over_unfinished(ctx, &lab, &record).await?;

    // The versions the saved memory needs, against this host's (what it would give the lab).
    let accel = crate::ops::decide_accel(&lab, None);
    let here = versions_here(ctx, &lab).await?;
    check_versions(file, m, &here)?;
    // Everything the golden holds, checked before anything is made (docs/snapshots.md): the
    // base image it was made on, what it names, its disks' headers, the included image, the
    // snapshot metadata.
    let cached = crate::image::boot_image(&ctx.dirs, &lab.image);
    check_image_dir(file, m, &cached)?;
    check_names(file, m, &lab)?;
    if cached.disk.is_file() {
        crate::ops::lab::making::check_image_file(&lab, &cached)?;
    }
    let backing = check_disks(file, &stage, m, &lab, &cached)?;
    if m.image.included {
        check_included_image(file, &stage)?;
    }
    let r = Restoring {
        ctx,
        file,
        m,
        stage: &stage,
        addrs: crate::plan::plan_addresses(&lab),
        lab_dirs: ctx.dirs.lab(&lab.name),
        // Where QEMU reads the image (for a plain user, a copy of the cache's).
        image: crate::image::qemu_image(&ctx.dirs, &lab.image),
        lab: &lab,
    };
    let nodes = r.check_snapshots(accel.accel, &here).await?;

    // The lab: the base image, its files, then the objects `up` would make, the disks from the
    // golden.
    r.place_image(&cached).await?;
    r.make_lab(&record).await?;
    let key = crate::guest::LabKey::load(&r.lab_dirs.ssh_key())?;
    for node in &m.nodes {
        let (xml, facts) = nodes
            .get(node)
            .ok_or(crate::render::RenderError::Invariant(
                "every node of the golden has its snapshot checked",
            ))?;
        let named = backing.get(node).and_then(Option::as_deref);
        r.place_node(node, named, &key, xml, facts).await?;
    }
    let names_warning = crate::ops::lab::host_names::add(ctx, &lab, &r.addrs);
    drop(unpacked);
    tracing::debug!("lab defined at {:.2} s", t0.elapsed().as_secs_f64());

    // Every node resumed from its saved memory: the revert corrects clocks and renews random
    // state, and waits until each node answers over SSH with its pinned key.
    crate::ops::lab::snapshots::revert(ctx, &lab.name, Some(&r.m.snapshot), wait)
        .await
        .with_context(|| format!("cannot resume lab {} from {}", lab.name, file.display()))?;
    std::fs::remove_file(&record).with_context(|| format!("cannot remove {}", record.display()))?;
    crate::fault::step("clear the import record");
    let nodes = lab_state::read(ctx, &lab.name).await?.nodes;
    Ok(crate::ops::lab::making::UpReport {
        lab: lab.name.clone(),
        accel,
        actions: vec![format!("restore lab {} from {}", lab.name, file.display())],
        nodes,
        seconds: t0.elapsed().as_secs_f64(),
        warnings: names_warning.into_iter().collect(),
    })
}

/// The lab a golden comes back as: the lab file `arg` names, or the golden's own `lab.yaml`
/// when `arg` is the golden's lab name and no such file exists; the restoring user's, under the
/// golden's name, on one host.
fn golden_lab(
    ctx: &Ctx,
    arg: &str,
    file: &Path,
    m: &Manifest,
    stage: &Path,
) -> anyhow::Result<Lab> {
    let mut lab = match crate::ops::load_lab(arg) {
        Ok(l) => l,
        Err(crate::model::ModelError::NotFound { .. }) if arg == m.lab => {
            let text = std::fs::read_to_string(stage.join("lab.yaml"))?;
            let known = crate::ops::image_names();
            let names: Vec<&str> = known.iter().map(String::as_str).collect();
            let mut lab = crate::model::parse(
                &text,
                &format!("{} (lab.yaml)", file.display()),
                None,
                &names,
            )?;
            golden_lab_stays_in(&mut lab, file)?;
            lab
        }
        Err(e) => return Err(e.into()),
    };
    // The restored lab is the restoring user's, whoever made the golden.
    lab.owner = ctx.owner;
    if lab.name != m.lab {
        return Err(BadInput(format!(
            "{} is a golden of lab {}, not of lab {}\n  fix: `dcos-lab up {} --from {}` (a golden comes back under its own name: its memory holds its addresses and keys)",
            file.display(),
            m.lab,
            lab.name,
            m.lab,
            file.display()
        ))
        .into());
    }
    if lab.spans_hosts() {
        return Err(BadInput(format!(
            "{}: hosts: a golden lab comes back on one host, and this lab file names others\n  fix: `dcos-lab up {arg}` without --from, or a lab file without `hosts:`",
            lab.source
        ))
        .into());
    }
    Ok(lab)
}

/// A lab of that name on this host is refused, unless an earlier `up --from` left it half
/// made (its record says so): then it is removed, and the restore starts over.
async fn take_over_unfinished(ctx: &Ctx, lab: &Lab, record: &Path) -> anyhow::Result<()> {
    let state = lab_state::read(ctx, &lab.name).await?;
    let p = crate::names::pool_name(&lab.name);
    let has_pool = blocking(ctx.hv(), move |h| h.pool(&p)).await?.is_some();
    let dirs_here = ctx.dirs.lab(&lab.name);
    if !(state.exists() || has_pool || dirs_here.root.exists() || dirs_here.private.exists()) {
        return Ok(());
    }
    if !record.exists() {
        return Err(BadInput(format!(
            "lab {} exists on this host already\n  fix: `dcos-lab down {}` first, or restore it on another host",
            lab.name, lab.name
        ))
        .into());
    }
    tracing::warn!(
        "lab {}: an earlier `up --from` did not finish; removing what it made and starting over",
        lab.name
    );
    crate::ops::lab::teardown::down(ctx, &lab.name).await?;
    Ok(())
}

/// The versions the golden's saved memory needs, against this host's.
fn check_versions(file: &Path, m: &Manifest, here: &Versions) -> anyhow::Result<()> {
    let mut differs = Vec::new();
    for (what, ours, theirs) in [
        ("dcos-lab", &here.dcos_lab, &m.versions.dcos_lab),
        ("hypervisor", &here.hypervisor, &m.versions.hypervisor),
        ("machine type", &here.machine, &m.versions.machine),
        ("CPU", &here.cpu, &m.versions.cpu),
        ("accelerator", &here.accel, &m.versions.accel),
    ] {
        if ours != theirs {
            differs.push(format!("{what} {ours} here, {theirs} in the golden"));
        }
    }
    if differs.is_empty() {
        return Ok(());
    }
    Err(BadInput(format!(
        "{} cannot be restored here: {}\n  fix: restore it on a host like the one that made it, or make a new golden here",
        file.display(),
        differs.join("; ")
    ))
    .into())
}

/// The base image the golden was made on must be the one this host's recipe gives (its cache
/// directory's name: in the cache, in the file, or built when missing).
fn check_image_dir(
    file: &Path,
    m: &Manifest,
    cached: &crate::render::BootImage,
) -> anyhow::Result<()> {
    let have = cached
        .disk
        .parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if have.as_deref() == Some(m.image.dir.as_str()) {
        return Ok(());
    }
    Err(BadInput(format!(
        "{} was made on image {} ({}); this host's recipe gives {}\n  fix: restore it on a host whose dcos-lab has the same image recipe (images/{}.yaml), or make a new golden here",
        file.display(),
        m.image.name,
        m.image.dir,
        have.unwrap_or_default(),
        m.image.name
    ))
    .into())
}

/// A golden being restored: what every step of `restore` after the checks works with.
struct Restoring<'a> {
    ctx: &'a Ctx,
    file: &'a Path,
    m: &'a Manifest,
    stage: &'a Path,
    lab: &'a Lab,
    addrs: crate::plan::AddressPlan,
    lab_dirs: LabDirs,
    /// Where QEMU reads the base image.
    image: crate::render::BootImage,
}

/// A node's domain as rendered (what is defined) and what its snapshot takes from the golden.
type CheckedNode = (String, crate::ops::golden_check::SnapshotFacts);

impl Restoring<'_> {
    /// Each node's snapshot XML in the golden, compared with the domain this host renders for it
    /// (paths of the exporting host moved to this host's).
    async fn check_snapshots(
        &self,
        accel: crate::model::Accel,
        here: &Versions,
    ) -> anyhow::Result<BTreeMap<String, CheckedNode>> {
        let (m, lab_dirs) = (self.m, &self.lab_dirs);
        let render_ctx = crate::render::RenderCtx {
            accel,
            dirs: lab_dirs.clone(),
            image: self.image.clone(),
        };
        let emulator = blocking(self.ctx.hv(), |h| h.emulator()).await?;
        let host = crate::ops::golden_check::HostFacts {
            machine: here.machine.clone(),
            emulator,
            rewrite: console_rewrites(&m.lab_root, &m.nodes, lab_dirs)
                .into_iter()
                .chain([
                    (m.lab_root.clone(), lab_dirs.path().display().to_string()),
                    (
                        m.images_dir.clone(),
                        self.ctx.dirs.qemu_images().display().to_string(),
                    ),
                ])
                .collect(),
        };
        let mut nodes = BTreeMap::new();
        for node in &m.nodes {
            let member = format!("snapshots/{node}.xml");
            let text = std::fs::read_to_string(self.stage.join(&member))
                .with_context(|| format!("cannot read {member} of {}", self.file.display()))?;
            let rendered = crate::render::domain_xml(self.lab, &self.addrs, node, &render_ctx)?;
            let facts =
                crate::ops::golden_check::check_snapshot(&text, &m.snapshot, &rendered, &host)
                    .map_err(|why| refused(self.file, &member, &why))?;
            nodes.insert(node.clone(), (rendered, facts));
        }
        Ok(nodes)
    }

    /// The base image in the cache: from the golden when it holds it, else built.
    async fn place_image(&self, cached: &crate::render::BootImage) -> anyhow::Result<()> {
        let (ctx, m) = (self.ctx, self.m);
        if !cached.disk.is_file() {
            if m.image.included {
                let image_dir = cached.disk.parent().context("image dir")?;
                let tmp = ctx.dirs.images().join(format!(".{}-restore", m.image.dir));
                let _ = std::fs::remove_dir_all(&tmp);
                std::fs::create_dir_all(&tmp)?;
                for entry in std::fs::read_dir(self.stage.join("image"))? {
                    let entry = entry?;
                    std::fs::rename(entry.path(), tmp.join(entry.file_name()))?;
                }
                std::fs::rename(&tmp, image_dir)
                    .with_context(|| format!("cannot write {}", image_dir.display()))?;
            } else {
                crate::ops::lab::making::ensure_image(
                    &ctx.dirs,
                    self.lab,
                    &crate::progress::Progress::new(),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The lab's directories, the import's record, the base image where QEMU reads it, the
    /// lab's key and pinned host keys from the golden, its pool and networks.
    async fn make_lab(&self, record: &Path) -> anyhow::Result<()> {
        let (ctx, lab, lab_dirs) = (self.ctx, self.lab, &self.lab_dirs);
        let hv = ctx.hv();
        crate::ops::lab::storage::prepare_lab(ctx, lab_dirs).await?;
        std::fs::write(record, format!("{}\n", self.file.display()))?;
        crate::fault::step("record the import");
        let (d, i) = (ctx.dirs.clone(), lab.image.clone());
        tokio::task::spawn_blocking(move || crate::image::publish(&d, &i))
            .await?
            .with_context(|| format!("cannot put image {} where QEMU reads it", lab.image))?;
        std::fs::create_dir_all(lab_dirs.ssh_dir())?;
        std::fs::set_permissions(lab_dirs.ssh_dir(), std::fs::Permissions::from_mode(0o700))?;
        for f in ["id_ed25519", "known_hosts"] {
            let to = lab_dirs.ssh_dir().join(f);
            std::fs::rename(self.stage.join("ssh").join(f), &to)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))?;
        }
        let xml = crate::render::pool_xml(lab, lab_dirs, ctx.dirs.pool_owner())?;
        let p = crate::names::pool_name(&lab.name);
        blocking(hv, move |h| {
            h.define_pool(&xml)?;
            h.start_pool(&p, true)
        })
        .await?;
        for kind in self
            .addrs
            .networks
            .iter()
            .map(|n| n.kind)
            .collect::<Vec<_>>()
        {
            let xml = crate::render::network_xml(lab, &self.addrs, kind)?;
            let name = crate::names::network_name(&lab.name, kind);
            blocking(hv, move |h| {
                h.define_network(&xml)?;
                h.start_network(&name)
            })
            .await?;
        }
        Ok(())
    }

    /// Node `node`: its disk from the golden (its header made to name this host's image where
    /// it `named` another), its seed, its domain as rendered, and its snapshot around it.
    async fn place_node(
        &self,
        node: &str,
        named: Option<&str>,
        key: &crate::guest::LabKey,
        xml: &str,
        facts: &crate::ops::golden_check::SnapshotFacts,
    ) -> anyhow::Result<()> {
        let (hv, lab, lab_dirs, image) = (self.ctx.hv(), self.lab, &self.lab_dirs, &self.image);
        let pool = crate::names::pool_name(&lab.name);
        let disk = lab_dirs.disk(node);
        move_file(
            &self.stage.join("disks").join(format!("{node}.qcow2")),
            &disk,
        )
        .with_context(|| format!("cannot write {}", disk.display()))?;
        // The header names the exporting host's image (checked: the same cache directory);
        // it is made to name this host's, so that qemu-img, too, reads what the domain does.
        // (`rebase -u` opens neither the old backing file nor the disk's.)
        if named != image.disk.to_str() {
            qemu_img(&[
                "rebase".as_ref(),
                "-u".as_ref(),
                "-F".as_ref(),
                image.format.as_ref(),
                "-b".as_ref(),
                image.disk.as_os_str(),
                disk.as_os_str(),
            ])?;
        }
        crate::fault::step(&format!("place the disk of {node}"));
        let seed = crate::render::cloudinit::seed(lab, &self.addrs, node, &key.public_openssh())?;
        crate::ops::lab::making::write_seed(lab_dirs, node, &seed)?;
        blocking(hv, move |h| h.refresh_pool(&pool)).await?;
        let xml = xml.to_string();
        blocking(hv, move |h| h.define_domain(&xml).map(|_| ())).await?;
        // The snapshot libvirt is given: the golden's name, state, time and guest CPU (checked
        // above), around the definition libvirt now holds for the node (its UUID, the lab
        // file's devices). Nothing else of the golden's XML reaches libvirt.
        let domain = crate::names::domain_name(&lab.name, node);
        let d = domain.clone();
        let live = blocking(hv, move |h| h.domain_xml(&d)).await?;
        let snap_xml = crate::ops::golden_check::snapshot_xml(facts, &lab.name, &live);
        blocking(hv, move |h| h.redefine_snapshot(&domain, &snap_xml)).await?;
        Ok(())
    }
}

/// The `up --from` command: Ctrl-C stops it at once, saying what exists (the next `up --from`
/// or `down` takes over).
pub async fn restore_command(
    ctx: &Ctx,
    arg: &str,
    file: &Path,
    wait: Duration,
) -> anyhow::Result<crate::ops::lab::making::UpReport> {
    crate::ops::lab::ctrl_c::until_ctrl_c(restore(ctx, arg, file, wait), || async {
        let name = crate::ops::lab_name(arg).unwrap_or_else(|_| arg.to_string());
        crate::ops::lab::ctrl_c::interrupted(ctx, &name, arg, "up --from").await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A golden root exported restores as a plain user's lab and the other way round: each
    /// node's console log, where the exporter kept it (root: `console/`; a plain user: in the
    /// pool), is moved to where this host keeps it.
    #[test]
    fn console_logs_move_between_roots_and_a_plain_users_layout() {
        let nodes = vec!["master".to_string()];
        let user = LabDirs {
            root: "/var/lib/libvirt/dcos-lab/user-1000/labs/x".into(),
            private: "/home/u/.local/state/dcos-lab/labs/x".into(),
            remote: false,
            logs_in_pool: true,
        };
        let root = LabDirs::local("/var/lib/dcos-lab/labs/x".into());
        let pairs = console_rewrites("/var/lib/dcos-lab/labs/x", &nodes, &user);
        assert!(pairs.contains(&(
            "/var/lib/dcos-lab/labs/x/console/master.log".into(),
            "/var/lib/libvirt/dcos-lab/user-1000/labs/x/disks/console-master.log".into()
        )));
        let pairs = console_rewrites("/var/lib/libvirt/dcos-lab/user-1000/labs/x", &nodes, &root);
        assert!(pairs.contains(&(
            "/var/lib/libvirt/dcos-lab/user-1000/labs/x/disks/console-master.log".into(),
            "/var/lib/dcos-lab/labs/x/console/master.log".into()
        )));
    }

    #[test]
    fn staging_left_by_a_killed_process_is_swept_and_nothing_else() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path();
        // A PID above the kernel's pid_max (at most 2^22) never runs.
        let dead = p.join(".golden-import-999999999-17");
        let live = p.join(format!(".golden-import-{}-17", std::process::id()));
        let other = [
            p.join(".golden-importx-999999999-1"),
            p.join(".golden-import-999999999"),
            p.join(".golden-export-999999999-17"),
            p.join("golden-import-999999999-17"),
        ];
        for d in other.iter().chain([&dead, &live]) {
            std::fs::create_dir_all(d.join("disks")).expect("dir");
        }
        let stage = Staging::new(p, "golden-import").expect("staging");
        assert!(stage.0.is_dir());
        assert!(!dead.exists(), "a killed import's staging is gone");
        assert!(live.exists(), "a running process's is left");
        for d in &other {
            assert!(d.exists(), "{} is not ours to remove", d.display());
        }
        drop(stage);
    }

    #[test]
    fn a_sparse_copy_keeps_holes_and_bytes() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().expect("dir");
        let from = dir.path().join("a");
        let mut f = std::fs::File::create(&from).expect("create");
        f.write_all(b"head").expect("write");
        f.seek(SeekFrom::Start(64 << 20)).expect("seek");
        f.write_all(b"tail").expect("write");
        drop(f);
        let to = dir.path().join("b");
        let copied = sparse_copy(&from, &to).expect("copy");
        assert!(copied < 1 << 20, "copied {copied} bytes of a 64 MiB hole");
        assert_eq!(
            std::fs::read(&from).expect("a"),
            std::fs::read(&to).expect("b")
        );
        use std::os::unix::fs::MetadataExt;
        assert!(std::fs::metadata(&to).expect("meta").blocks() * 512 < 1 << 20);
    }
}
