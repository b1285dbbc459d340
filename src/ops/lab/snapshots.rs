//! Whole-lab snapshots: every node paused before any is captured, resumed after all are; revert
//! puts every node back running with its memory, then corrects the guests' clocks [I/O].
//!
//! Mechanism: libvirt internal snapshots (disk and memory inside each node's qcow2 overlay). See
//! docs/snapshots.md for why, with measurements.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::driver::{Hv, blocking};
use crate::names::LabDirs;
use crate::names::ObjState;
use crate::ops::Ctx;
use crate::ops::lab::clocks::Clocks;
use crate::ops::lab::state::{self as lab_state, LabState};

#[derive(Debug, Serialize)]
pub struct SnapshotReport {
    pub lab: String,
    pub snapshot: String,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct RevertReport {
    pub lab: String,
    pub snapshot: String,
    /// Until every node was running again.
    pub seconds_to_running: f64,
    /// Until every node answered over SSH with its clock corrected.
    pub seconds: f64,
    /// Each node's clock offset from the host after correction, in seconds.
    pub clock_offsets: Vec<(String, f64)>,
}

/// How `revert` fails, for a caller or a test to tell apart. All but `Unfinished` are bad
/// input, found before anything changes.
#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error("lab {lab} does not exist")]
    NoLab { lab: String },
    #[error("lab {lab} has no snapshot {name}; `dcos-lab snapshots {lab}` lists them")]
    NoSuchSnapshot { lab: String, name: String },
    #[error("lab {lab} has no snapshot; `dcos-lab snapshot {lab}` takes one")]
    NoSnapshot { lab: String },
    #[error(
        "snapshot {snapshot} of lab {lab} is on nodes {} only, not on every node; it cannot be reverted to",
        nodes.join(", ")
    )]
    Incomplete {
        lab: String,
        snapshot: String,
        nodes: Vec<String>,
    },
    #[error(
        "snapshot {snapshot} of node {node} has no memory state in {}; it cannot be reverted to running",
        disk.display()
    )]
    NoMemoryState {
        snapshot: String,
        node: String,
        disk: PathBuf,
    },
    #[error(
        "libvirt lists snapshot {snapshot} of node {node}, but its disk {} does not hold it; fix: revert to another snapshot (`dcos-lab snapshots`), or `snapshot rm` it",
        disk.display()
    )]
    NotOnDisk {
        snapshot: String,
        node: String,
        disk: PathBuf,
    },
    /// A node could not be put back; the revert is recorded, `left` says how the nodes were left.
    #[error(
        "revert of lab {lab} to {snapshot} failed on {domain} ({REVERT_TRIES} tries); {left} and the revert is recorded as unfinished; fix: `dcos-lab revert {lab} {snapshot}` or `dcos-lab up {lab}` finishes it (or `dcos-lab down {lab}`)"
    )]
    Unfinished {
        lab: String,
        snapshot: String,
        domain: String,
        left: String,
        #[source]
        source: anyhow::Error,
    },
}

impl RevertError {
    /// Whether the user's input is at fault (nothing changed).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, RevertError::Unfinished { .. })
    }
}

/// One snapshot of the lab, as `snapshots` lists it.
#[derive(Debug, Serialize)]
pub struct LabSnapshot {
    pub name: String,
    pub created_unix: u64,
    /// Nodes that hold it (a complete snapshot is on every node).
    pub nodes: Vec<String>,
    pub complete: bool,
    /// Bytes of saved memory state across the nodes (from qemu-img); the disk part shares
    /// clusters with the live overlay and is not counted.
    pub vm_state_bytes: u64,
}

/// A valid snapshot name: used in libvirt and shell-free, so DNS-safe-like.
pub fn check_name(name: &str) -> Result<(), crate::BadInput> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(crate::BadInput(format!(
            "snapshot name \"{name}\" is not valid; use up to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A default name from the time: `s20261125-224800`.
pub fn default_name() -> String {
    let (y, mo, d, h, mi, s) = crate::calendar::civil(crate::unix_time().as_secs());
    format!("s{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

fn running(state: &LabState) -> anyhow::Result<Vec<String>> {
    if !state.exists() {
        return Err(crate::BadInput(format!("lab {} does not exist", state.lab)).into());
    }
    state.refuse_suspended("snapshot")?;
    let stopped: Vec<&str> = state
        .nodes
        .iter()
        .filter(|n| n.state == ObjState::Inactive)
        .map(|n| n.name.as_str())
        .collect();
    if !stopped.is_empty() {
        bail!(
            "nodes {} of lab {} are not running; fix: `dcos-lab up {}` first",
            stopped.join(", "),
            state.lab,
            state.lab
        );
    }
    Ok(state.nodes.iter().map(|n| n.domain.clone()).collect())
}

/// Takes snapshot `name` of every node at one moment. On failure the lab is left as it was
/// (snapshots already taken are deleted, every node resumed), and the error says so.
pub async fn snapshot(ctx: &Ctx, lab: &str, name: &str) -> anyhow::Result<SnapshotReport> {
    let dirs = &ctx.dirs;
    check_name(name)?;
    if let Some(pending) = unfinished_revert(&dirs.lab(lab))? {
        return Err(crate::BadInput(format!(
            "lab {lab} is half way through a revert to {pending} that was interrupted; a snapshot now would freeze that; fix: `dcos-lab up {lab}` or `dcos-lab revert {lab} {pending}` finishes it"
        ))
        .into());
    }
    let t0 = Instant::now();
    let state = lab_state::read(ctx, lab).await?;
    let domains = running(&state)?;
    if state.snapshots.iter().any(|s| s == name) {
        return Err(crate::BadInput(format!(
            "lab {lab} already has a snapshot {name}; fix: pick another name, or `dcos-lab snapshot rm {lab} {name}`"
        ))
        .into());
    }
    // Pause all, then capture all, then resume all: one consistent moment for the cluster.
    let mut errors: Vec<anyhow::Error> = ctx
        .for_domains(&domains, |h, d| h.suspend_domain(d))
        .await
        .into_iter()
        .filter_map(|(d, r)| r.err().map(|e| e.context(format!("cannot pause {d}"))))
        .collect();
    if errors.is_empty() {
        let (n, desc) = (name.to_string(), format!("dcos-lab lab {lab}"));
        errors = ctx
            .for_domains(&domains, move |h, d| h.create_snapshot(d, &n, &desc))
            .await
            .into_iter()
            .filter_map(|(d, r)| r.err().map(|e| e.context(format!("cannot snapshot {d}"))))
            .collect();
        if !errors.is_empty() {
            // All or nothing: remove the snapshots that were taken.
            let n = name.to_string();
            for (d, r) in ctx
                .for_domains(&domains, move |h, d| h.delete_snapshot(d, &n))
                .await
            {
                if let Err(e) = r {
                    tracing::warn!("cannot delete the partial snapshot of {d}: {e:#}");
                }
            }
        }
    }
    let resumed: Vec<anyhow::Error> = ctx
        .for_domains(&domains, |h, d| h.resume_domain(d))
        .await
        .into_iter()
        .filter_map(|(d, r)| r.err().map(|e| e.context(format!("cannot resume {d}"))))
        .collect();
    if let Some(e) = errors.into_iter().next() {
        return Err(e.context(format!(
            "snapshot {name} of lab {lab} failed; the lab is as it was (no node holds {name}), nodes resumed"
        )));
    }
    if let Some(e) = resumed.into_iter().next() {
        return Err(e.context(format!(
            "snapshot {name} of lab {lab} was taken, but a node did not resume"
        )));
    }
    Ok(SnapshotReport {
        lab: lab.to_string(),
        snapshot: name.to_string(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The lab's snapshots: by name, with the nodes holding each.
pub async fn list(ctx: &Ctx, lab: &str) -> anyhow::Result<Vec<LabSnapshot>> {
    list_of(ctx, &lab_state::read(ctx, lab).await?).await
}

/// [`list`] with the saved memory sizes read from each node's disk (what `snapshots` shows).
pub async fn list_with_sizes(ctx: &Ctx, lab: &str) -> anyhow::Result<Vec<LabSnapshot>> {
    let mut snaps = list(ctx, lab).await?;
    add_sizes(ctx, lab, &mut snaps).await;
    Ok(snaps)
}

/// [`list`] for a lab already read from libvirt.
async fn list_of(ctx: &Ctx, state: &LabState) -> anyhow::Result<Vec<LabSnapshot>> {
    let mut by_name: BTreeMap<String, LabSnapshot> = BTreeMap::new();
    for n in &state.nodes {
        let d = n.domain.clone();
        let snaps = blocking(&ctx.hv_for(&n.domain), move |h| h.snapshots(&d)).await?;
        for s in snaps {
            let e = by_name
                .entry(s.name.clone())
                .or_insert_with(|| LabSnapshot {
                    name: s.name.clone(),
                    created_unix: s.created_unix,
                    nodes: Vec::new(),
                    complete: false,
                    vm_state_bytes: 0,
                });
            e.created_unix = e.created_unix.min(s.created_unix);
            e.nodes.push(n.name.clone());
        }
    }
    let mut out: Vec<LabSnapshot> = by_name.into_values().collect();
    for s in &mut out {
        s.complete = s.nodes.len() == state.nodes.len();
    }
    out.sort_by_key(|s| s.created_unix);
    Ok(out)
}

/// Adds the saved memory sizes from each node's disk (read-only). A disk that cannot be read
/// counts nothing and is said in the log: the listing itself came from libvirt.
async fn add_sizes(ctx: &Ctx, lab: &str, snaps: &mut [LabSnapshot]) {
    let mut nodes: Vec<String> = snaps.iter().flat_map(|s| s.nodes.clone()).collect();
    nodes.sort();
    nodes.dedup();
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    let reads = nodes.iter().map(|node| {
        let domain = crate::names::domain_name(lab, node);
        let disk = ctx.dirs.lab_on(lab, &ctx.host_of(&domain)).disk(node);
        let hv = ctx.hv_for(&domain);
        async move { blocking(&hv, move |h| h.disk_snapshots(&domain, &disk)).await }
    });
    let read = crate::driver::join_all(reads.collect()).await;
    for (node, r) in nodes.iter().zip(read) {
        match r {
            Ok(states) => {
                for (name, size) in states {
                    *sizes.entry(name).or_default() += size;
                }
            }
            Err(e) => tracing::warn!("sizes of {node}'s snapshots: {e:#}"),
        }
    }
    for s in snaps {
        s.vm_state_bytes = sizes.get(&s.name).copied().unwrap_or(0);
    }
}

/// Deletes snapshot `name` from every node.
pub async fn remove(ctx: &Ctx, lab: &str, name: &str) -> anyhow::Result<()> {
    let dirs = &ctx.dirs;
    if unfinished_revert(&dirs.lab(lab))?.as_deref() == Some(name) {
        return Err(crate::BadInput(format!(
            "lab {lab} is half way through a revert to {name} that was interrupted; it needs {name} to finish; fix: `dcos-lab up {lab}` or `dcos-lab revert {lab} {name}` first"
        ))
        .into());
    }
    let state = lab_state::read(ctx, lab).await?;
    if !state.snapshots.iter().any(|s| s == name) {
        return Err(crate::BadInput(format!(
            "lab {lab} has no snapshot {name}; `dcos-lab snapshots {lab}` lists them"
        ))
        .into());
    }
    let domains: Vec<String> = state.nodes.iter().map(|n| n.domain.clone()).collect();
    let n = name.to_string();
    for (d, r) in ctx
        .for_domains(&domains, move |h, d| h.delete_snapshot(d, &n))
        .await
    {
        r.with_context(|| format!("cannot delete snapshot {name} of {d}"))?;
    }
    Ok(())
}

/// Where a revert in progress is recorded: from before the first node is paused until every
/// node runs from the snapshot. A revert that did not get there (killed, libvirtd gone, a node
/// that would not revert) is finished by the next `revert` or `up`: reverts are idempotent, so
/// the lab goes forward to the snapshot instead of staying half reverted.
fn revert_record(lab_dirs: &LabDirs) -> PathBuf {
    lab_dirs.private.join("revert-in-progress")
}

/// The snapshot of an unfinished revert of the lab, if there is one.
pub fn unfinished_revert(lab_dirs: &LabDirs) -> anyhow::Result<Option<String>> {
    let path = revert_record(lab_dirs);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    }
}

fn record_revert(lab_dirs: &LabDirs, snapshot: &str) -> anyhow::Result<()> {
    let path = revert_record(lab_dirs);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{snapshot}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    crate::fault::step("record the revert");
    Ok(())
}

/// Drops the record of a revert: when it finished, or when it is stale (see `up`).
pub fn forget_revert(lab_dirs: &LabDirs) -> anyhow::Result<()> {
    let path = revert_record(lab_dirs);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(anyhow::Error::new(e).context(format!("cannot remove {}", path.display())));
        }
        _ => {}
    }
    crate::fault::step("clear the revert record");
    Ok(())
}

/// Every node's disk must hold the snapshot with its memory: libvirt's metadata alone does not
/// prove it (the qcow2 may have lost it), and a revert that cannot load a node's memory would
/// stop that node. Read-only, before anything changes.
/// `nodes`: each node with the connection to its host and its disk's path there.
async fn check_loadable(
    lab: &str,
    nodes: &[(String, Hv, PathBuf)],
    snapshot: &str,
) -> anyhow::Result<()> {
    // Every node's disk at once: read through libvirt, each read is a helper process libvirtd
    // starts.
    let reads = nodes.iter().map(|(node, hv, disk)| {
        let (domain, d) = (crate::names::domain_name(lab, node), disk.clone());
        blocking(hv, move |h| h.disk_snapshots(&domain, &d))
    });
    let read = crate::driver::join_all(reads.collect()).await;
    for ((node, _, disk), states) in nodes.iter().zip(read) {
        let states = states?;
        match states.get(snapshot) {
            Some(bytes) if *bytes > 0 => {}
            Some(_) => bail!(RevertError::NoMemoryState {
                snapshot: snapshot.to_string(),
                node: node.clone(),
                disk: disk.clone(),
            }),
            None => bail!(RevertError::NotOnDisk {
                snapshot: snapshot.to_string(),
                node: node.clone(),
                disk: disk.clone(),
            }),
        }
    }
    Ok(())
}

/// How often a node's revert is tried before the revert is reported unfinished.
const REVERT_TRIES: u32 = 3;

/// Puts every node back to snapshot `name` (the newest complete one when `None`), running, with
/// its clock corrected, and waits until each answers over SSH.
///
/// Every node is paused first, so none runs on in its old state while another is put back; each
/// node then runs again as soon as its own revert is done, and its clock is corrected as soon as
/// it answers. The revert is recorded before anything changes and goes forward: a node whose
/// revert fails is tried again, and a revert that still cannot finish (or is killed) leaves the
/// record in place, with every node paused when this process is the one giving up, so the next
/// `revert` or `up` finishes it.
pub async fn revert(
    ctx: &Ctx,
    lab: &str,
    name: Option<&str>,
    wait: Duration,
) -> anyhow::Result<RevertReport> {
    let dirs = &ctx.dirs;
    let t0 = Instant::now();
    let lab_dirs = dirs.lab(lab);
    let state = lab_state::read(ctx, lab).await?;
    if !state.exists() {
        return Err(RevertError::NoLab {
            lab: lab.to_string(),
        }
        .into());
    }
    let snaps = list_of(ctx, &state).await?;
    let snap_name = chosen_snapshot(lab, &snaps, name)?;
    let disks: Vec<(String, Hv, PathBuf)> = state
        .nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                ctx.hv_for(&n.domain),
                dirs.lab_on(lab, &n.host).disk(&n.name),
            )
        })
        .collect();
    let domains: Vec<String> = state.nodes.iter().map(|n| n.domain.clone()).collect();
    check_loadable(lab, &disks, &snap_name).await?;
    let access = crate::ops::lab::nodes::Access::load(&lab_dirs)?;

    record_revert(&lab_dirs, &snap_name)?;
    discard_suspended(ctx, &state).await?;
    // A stopped node needs no pause: the revert starts it from the snapshot.
    let active: Vec<String> = state
        .nodes
        .iter()
        .filter(|n| matches!(n.state, ObjState::Active | ObjState::Paused))
        .map(|n| n.domain.clone())
        .collect();
    pause_all(ctx, lab, &lab_dirs, &active).await?;
    tracing::debug!("paused at {:.2} s", t0.elapsed().as_secs_f64());

    let mut reverts = spawn_reverts(ctx, &state, &snap_name);
    let mut clocks = Clocks::new(ctx.guests.clone(), state.nodes.iter(), wait);
    let mut failed = Vec::new();
    while let Some(joined) = reverts.join_next().await {
        let (node, domain, ip, r) = joined.context("a revert task failed")?;
        match (r, ip) {
            (Err(e), _) => failed.push((domain, e)),
            (Ok(()), None) => failed.push((
                domain,
                anyhow::anyhow!("node {node} has no private address"),
            )),
            (Ok(()), Some(ip)) => {
                tracing::debug!("{node} runs at {:.2} s", t0.elapsed().as_secs_f64());
                clocks.running(access.target_at(&node, &domain, ip));
            }
        }
    }
    if let Some((d, e)) = failed.into_iter().next() {
        clocks.abort();
        let left = pause_again(ctx, &domains).await;
        return Err(RevertError::Unfinished {
            lab: lab.to_string(),
            snapshot: snap_name,
            domain: d,
            left,
            source: e,
        }
        .into());
    }
    forget_revert(&lab_dirs)?;
    let running_at = t0.elapsed().as_secs_f64();
    let clock_offsets = clocks.offsets().await?;
    Ok(RevertReport {
        lab: lab.to_string(),
        snapshot: snap_name,
        seconds_to_running: running_at,
        seconds: t0.elapsed().as_secs_f64(),
        clock_offsets,
    })
}

/// A suspended node goes back to the snapshot too: its saved memory, the state the revert
/// replaces, is dropped first (it is then a stopped node, which the revert starts).
async fn discard_suspended(ctx: &Ctx, state: &LabState) -> anyhow::Result<()> {
    let saved: Vec<String> = state
        .nodes
        .iter()
        .filter(|n| n.state == ObjState::Suspended)
        .map(|n| n.domain.clone())
        .collect();
    for (d, r) in ctx.for_domains(&saved, |h, d| h.discard_saved(d)).await {
        r.with_context(|| format!("cannot drop the saved memory of {d} before the revert"))?;
    }
    Ok(())
}

/// A reverted node: its name, domain, private address and how its revert ended.
type Reverted = (
    String,
    String,
    Option<std::net::Ipv4Addr>,
    anyhow::Result<()>,
);

/// Every node's revert to `snap_name`, each on its own task, each tried again (with a pause)
/// up to `REVERT_TRIES` times.
fn spawn_reverts(ctx: &Ctx, state: &LabState, snap_name: &str) -> tokio::task::JoinSet<Reverted> {
    let mut reverts = tokio::task::JoinSet::new();
    for n in &state.nodes {
        let (hv, node, domain, snap) = (
            ctx.hv_for(&n.domain),
            n.name.clone(),
            n.domain.clone(),
            snap_name.to_string(),
        );
        let ip = n.private_ipv4();
        reverts.spawn(async move {
            let mut tries = 0;
            let r = loop {
                tries += 1;
                let (d, s) = (domain.clone(), snap.clone());
                match blocking(&hv, move |h| h.revert_snapshot(&d, &s, false)).await {
                    Err(e) if tries < REVERT_TRIES => {
                        tracing::warn!("revert of {domain} to {snap} failed ({e:#}); trying again");
                        tokio::time::sleep(Duration::from_millis(500 * u64::from(tries))).await;
                    }
                    r => break r,
                }
            };
            (node, domain, ip, r)
        });
    }
    reverts
}

/// The snapshot a revert goes to: `name`, else the newest on every node; it must be on every
/// node.
fn chosen_snapshot(lab: &str, snaps: &[LabSnapshot], name: Option<&str>) -> anyhow::Result<String> {
    let chosen = match name {
        Some(n) => snaps.iter().find(|s| s.name == n),
        None => snaps
            .iter()
            .filter(|s| s.complete)
            .max_by_key(|s| s.created_unix),
    };
    let Some(snap) = chosen else {
        let lab = lab.to_string();
        return Err(match name {
            Some(n) => RevertError::NoSuchSnapshot {
                lab,
                name: n.to_string(),
            },
            None => RevertError::NoSnapshot { lab },
        }
        .into());
    };
    if !snap.complete {
        return Err(RevertError::Incomplete {
            lab: lab.to_string(),
            snapshot: snap.name.clone(),
            nodes: snap.nodes.clone(),
        }
        .into());
    }
    Ok(snap.name.clone())
}

/// Every node of `active` paused; when one cannot be, nothing was reverted yet: every node is
/// resumed and the revert's record cleared, the lab as it was.
async fn pause_all(
    ctx: &Ctx,
    lab: &str,
    lab_dirs: &LabDirs,
    active: &[String],
) -> anyhow::Result<()> {
    let paused = ctx
        .pause_all_or_none(active, |d| {
            format!("cannot pause {d}; revert of lab {lab} did not start, the lab is as it was")
        })
        .await;
    if paused.is_err() {
        // Nothing was reverted yet: the lab is as it was, with no record of a revert.
        forget_revert(lab_dirs)?;
    }
    paused
}

/// After a failed revert, every node paused again; says which could not be.
async fn pause_again(ctx: &Ctx, domains: &[String]) -> String {
    // Say what is true: every node paused, or which ones could not be paused again.
    let running: Vec<String> = ctx
        .for_domains(domains, |h, d| h.suspend_domain(d))
        .await
        .into_iter()
        .filter_map(|(d, r)| r.err().map(|e| format!("{d} ({e:#})")))
        .collect();
    if running.is_empty() {
        "every node is left paused".to_string()
    } else {
        format!(
            "these nodes could not be paused again and may be running: {}; the others are left paused",
            running.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// `revert` refuses, before changing anything, a snapshot a node's disk does not hold or
    /// holds without memory (real qcow2 files; the positive case is every VM test's revert).
    #[test]
    fn loadable_needs_the_snapshot_with_its_memory_on_disk() {
        let dir = tempfile::tempdir().expect("dir");
        let lab_dirs = LabDirs::local(dir.path().to_path_buf());
        std::fs::create_dir_all(lab_dirs.pool()).expect("pool dir");
        let disk = lab_dirs.disk("n1");
        let qemu_img = |args: &[&std::ffi::OsStr]| {
            let st = std::process::Command::new("qemu-img")
                .args(args)
                .status()
                .expect("qemu-img (scripts/setup-host.sh installs it)");
            assert!(st.success(), "qemu-img {args:?}");
        };
        let d = disk.as_os_str();
        qemu_img(&[
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            d,
            "16M".as_ref(),
        ]);
        qemu_img(&["snapshot".as_ref(), "-c".as_ref(), "disk-only".as_ref(), d]);
        // The disk check reads the qcow2 itself: libvirt's test driver stands for the connection.
        let hv: Hv =
            Arc::new(crate::driver::Libvirt::open(Some("test:///default")).expect("test driver"));
        let on = |n: &str| vec![(n.to_string(), hv.clone(), lab_dirs.disk(n))];
        let nodes = on("n1");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let check = |nodes: &[(String, Hv, PathBuf)], snap: &str| {
            rt.block_on(check_loadable("l", nodes, snap))
        };

        let err = check(&nodes, "disk-only").expect_err("no memory");
        assert!(
            matches!(
                err.downcast_ref(),
                Some(RevertError::NoMemoryState { node, .. }) if node == "n1"
            ),
            "{err:#}"
        );
        assert_eq!(
            crate::failure::kind_of(&err),
            crate::failure::Kind::BadInput
        );
        assert!(
            format!("{err:#}").contains("has no memory state"),
            "{err:#}"
        );

        let err = check(&nodes, "gone").expect_err("missing");
        assert!(
            matches!(err.downcast_ref(), Some(RevertError::NotOnDisk { .. })),
            "{err:#}"
        );
        assert!(format!("{err:#}").contains("does not hold it"), "{err:#}");
        assert!(format!("{err:#}").contains("fix:"), "{err:#}");

        let err = check(&on("n2"), "disk-only").expect_err("no disk");
        assert!(
            format!("{err:#}").contains("cannot read the snapshots in"),
            "{err:#}"
        );
    }

    #[test]
    fn snapshot_names() {
        assert!(check_name("before-install_2.1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("x/../y").is_err());
        assert!(default_name().starts_with('s'));
    }
}
