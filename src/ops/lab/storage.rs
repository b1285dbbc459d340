//! Where a lab's files go on the local host, and reading what QEMU wrote [I/O: files, libvirt].
//!
//! Root's labs keep everything under the state directory (`/var/lib/dcos-lab/labs/<lab>`),
//! which QEMU (as `libvirt-qemu`) reaches. A plain user's home is 0700 (or 0750), so a plain
//! user's lab is split (docs/laptop.md): what QEMU reads and writes (disks, seeds, console
//! logs, the base images) lives in the user's shared directory, which libvirtd makes as a
//! storage pool owned by the user (`/var/lib/libvirt/dcos-lab/user-<uid>`, 0711); the user's
//! own files (the lab's key, pinned host keys, records) stay in the state directory, 0700.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

use crate::driver::{Hv, Hypervisor, blocking};
use crate::names::LabDirs;
use crate::ops::Ctx;
use crate::paths::Shared;

/// Makes the directories of lab `lab_dirs` on the local host: for root one directory QEMU
/// reaches (0711); for a plain user the shared directory (through libvirtd), the lab's place
/// in it (0711) and the user's own directory of the lab (0700).
pub async fn prepare_lab(ctx: &Ctx, lab_dirs: &LabDirs) -> anyhow::Result<()> {
    let dirs = &ctx.dirs;
    if !lab_dirs.split() {
        for d in [&dirs.state, &dirs.labs(), &lab_dirs.root] {
            make_dir(d, 0o711)?;
        }
        if let Some(d) = lab_dirs.console_log("x").parent() {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        return Ok(());
    }
    ensure_shared(ctx).await?;
    for d in [&dirs.state, &dirs.labs(), &lab_dirs.private] {
        make_dir(d, 0o700)?;
    }
    if let Some(labs) = lab_dirs.root.parent() {
        make_dir(labs, 0o711)?;
    }
    make_dir(&lab_dirs.root, 0o711)
}

fn make_dir(d: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", d.display()))
}

/// A plain user's shared directory, made by libvirtd as the directory of a storage pool owned
/// by the user (`dcos-lab.user-<uid>`), so that the user writes in it and QEMU reaches it. Made
/// once; started when libvirtd was restarted. Nothing to do for root.
pub async fn ensure_shared(ctx: &Ctx) -> anyhow::Result<()> {
    let Some(shared) = ctx.dirs.shared.clone() else {
        return Ok(());
    };
    let hv = ctx.hv().clone();
    tokio::task::spawn_blocking(move || ensure_shared_dir(hv.as_ref(), &shared)).await?
}

/// `ensure_shared`, blocking, on connection `hv`.
pub fn ensure_shared_dir(hv: &dyn Hypervisor, shared: &Shared) -> anyhow::Result<()> {
    let name = crate::paths::shared_pool_name(shared.uid);
    match hv.pool(&name)? {
        Some(p) if Path::new(&p.path) != shared.dir => {
            return Err(crate::BadInput(format!(
                "storage pool {name} has the directory {}, not {}\n  fix: as root, `virsh pool-destroy {name}; virsh pool-undefine {name}`; the next `up` makes it again",
                p.path,
                shared.dir.display()
            ))
            .into());
        }
        Some(p) if p.state == crate::names::ObjState::Active => {}
        Some(_) => hv.start_pool(&name, true)?,
        None => {
            let xml =
                crate::render::dir_pool_xml(&name, &shared.dir, Some((shared.uid, shared.gid)))?;
            hv.define_pool(&xml)
                .and_then(|_| hv.start_pool(&name, true))
                .with_context(|| {
                    format!(
                        "cannot make your shared directory {} through libvirt",
                        shared.dir.display()
                    )
                })?;
        }
    }
    let meta = std::fs::metadata(&shared.dir).with_context(|| {
        format!(
            "cannot read {} (the directory of storage pool {name})\n  fix: `virsh pool-destroy {name}` (libvirt has it active without its directory); the next `up` makes it again",
            shared.dir.display()
        )
    })?;
    if meta.uid() != shared.uid {
        return Err(crate::BadInput(format!(
            "{} belongs to uid {}, not to you (uid {})\n  fix: as root, `chown {}:{} {}`",
            shared.dir.display(),
            meta.uid(),
            shared.uid,
            shared.uid,
            shared.gid,
            shared.dir.display()
        ))
        .into());
    }
    Ok(())
}

/// Removes the lab's directories on the local host (after its pool): what QEMU read, and the
/// user's own files of the lab. Returns what it removed.
pub fn remove_lab_files(lab_dirs: &LabDirs) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut dirs = vec![&lab_dirs.root];
    if lab_dirs.split() {
        dirs.push(&lab_dirs.private);
    }
    for d in dirs {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("cannot remove {}", d.display()))?;
            removed.push(format!("directory {}", d.display()));
        }
    }
    Ok(removed)
}

/// A node's console log as text. A log in the pool (a plain user's lab, a node on another
/// host) belongs to root, who runs virtlogd: it is read through libvirt.
pub async fn read_console(
    hv: &Hv,
    lab: &str,
    lab_dirs: &LabDirs,
    node: &str,
) -> anyhow::Result<String> {
    let path = lab_dirs.console_log(node);
    if !lab_dirs.logs_in_pool {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    let pool = crate::names::pool_name(lab);
    let volume = crate::names::console_volume_name(node);
    let bytes = blocking(hv, move |h| {
        h.refresh_pool(&pool)?;
        h.read_volume(&pool, &volume)
    })
    .await
    .with_context(|| format!("cannot read {} through libvirt", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
