//! Whole-lab snapshots: every node paused before any is captured, resumed after all are; revert
//! puts every node back running with its memory, then corrects the guests' clocks [I/O].
//!
//! Mechanism: libvirt internal snapshots (disk and memory inside each node's qcow2 overlay). See
//! docs/snapshots.md for why, with measurements.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use super::lab_state::{self, LabState};
use super::up::blocking;
use crate::driver::{Hypervisor, Libvirt};
use crate::guest::{KnownHosts, LabKey, Session};
use crate::paths::Dirs;
use crate::plan::ObjState;

/// The checkpoint `revert` takes of every node before reverting, and deletes after.
pub const PRE_REVERT: &str = "dcos-lab-pre-revert";

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
    let ok = name != PRE_REVERT
        && !name.is_empty()
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
    let (y, mo, d, h, mi, s) = civil(crate::unix_time().as_secs());
    format!("s{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// UTC calendar fields of a Unix time (days-from-civil, inverted).
fn civil(secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
}

async fn for_all<F, T>(
    hv: &Arc<Libvirt>,
    domains: &[String],
    f: F,
) -> Vec<(String, anyhow::Result<T>)>
where
    F: Fn(&Libvirt, &str) -> Result<T, crate::driver::DriverError> + Send + Sync + Clone + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for d in domains {
        let d = d.clone();
        let hv = hv.clone();
        let f = f.clone();
        set.spawn(async move {
            let d2 = d.clone();
            let r = blocking(&hv, move |h| f(h, &d2)).await;
            (d, r)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(x) => out.push(x),
            Err(e) => out.push((String::new(), Err(anyhow::Error::new(e)))),
        }
    }
    out
}

fn running(state: &LabState) -> anyhow::Result<Vec<String>> {
    if !state.exists() {
        return Err(crate::BadInput(format!("lab {} does not exist", state.lab)).into());
    }
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
pub async fn snapshot(hv: &Arc<Libvirt>, lab: &str, name: &str) -> anyhow::Result<SnapshotReport> {
    check_name(name)?;
    let t0 = Instant::now();
    let state = lab_state::read(hv, lab).await?;
    let domains = running(&state)?;
    for d in &domains {
        let d2 = d.clone();
        let snaps = blocking(hv, move |h| h.snapshots(&d2)).await?;
        if snaps.iter().any(|s| s.name == name) {
            return Err(crate::BadInput(format!(
                "lab {lab} already has a snapshot {name}; fix: pick another name, or `dcos-lab snapshot rm {lab} {name}`"
            ))
            .into());
        }
    }
    // Pause all, then capture all, then resume all: one consistent moment for the cluster.
    let mut errors: Vec<anyhow::Error> = for_all(hv, &domains, |h, d| h.suspend_domain(d))
        .await
        .into_iter()
        .filter_map(|(d, r)| r.err().map(|e| e.context(format!("cannot pause {d}"))))
        .collect();
    if errors.is_empty() {
        let (n, desc) = (name.to_string(), format!("dcos-lab lab {lab}"));
        errors = for_all(hv, &domains, move |h, d| h.create_snapshot(d, &n, &desc))
            .await
            .into_iter()
            .filter_map(|(d, r)| r.err().map(|e| e.context(format!("cannot snapshot {d}"))))
            .collect();
        if !errors.is_empty() {
            // All or nothing: remove the snapshots that were taken.
            let n = name.to_string();
            for (d, r) in for_all(hv, &domains, move |h, d| h.delete_snapshot(d, &n)).await {
                if let Err(e) = r {
                    tracing::warn!("cannot delete the partial snapshot of {d}: {e:#}");
                }
            }
        }
    }
    let resumed: Vec<anyhow::Error> = for_all(hv, &domains, |h, d| h.resume_domain(d))
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
pub async fn list(hv: &Arc<Libvirt>, lab: &str) -> anyhow::Result<Vec<LabSnapshot>> {
    let state = lab_state::read(hv, lab).await?;
    let mut by_name: std::collections::BTreeMap<String, LabSnapshot> =
        std::collections::BTreeMap::new();
    for n in &state.nodes {
        let d = n.domain.clone();
        let snaps = blocking(hv, move |h| h.snapshots(&d)).await?;
        for s in snaps.into_iter().filter(|s| s.name != PRE_REVERT) {
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

/// Adds the saved memory sizes from each node's disk (`qemu-img info -U`, read-only).
pub fn add_sizes(dirs: &Dirs, lab: &str, snaps: &mut [LabSnapshot]) {
    let lab_dirs = dirs.lab(lab);
    let mut nodes: Vec<&String> = snaps.iter().flat_map(|s| s.nodes.iter()).collect();
    nodes.sort();
    nodes.dedup();
    let mut sizes: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for node in nodes {
        let out = std::process::Command::new("qemu-img")
            .args(["info", "-U", "--output=json"])
            .arg(lab_dirs.disk(node))
            .output();
        let Ok(out) = out else { continue };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            continue;
        };
        for s in v["snapshots"].as_array().into_iter().flatten() {
            if let (Some(name), Some(size)) = (s["name"].as_str(), s["vm-state-size"].as_u64()) {
                *sizes.entry(name.to_string()).or_default() += size;
            }
        }
    }
    for s in snaps {
        s.vm_state_bytes = sizes.get(&s.name).copied().unwrap_or(0);
    }
}

/// Deletes snapshot `name` from every node.
pub async fn remove(hv: &Arc<Libvirt>, lab: &str, name: &str) -> anyhow::Result<()> {
    let snaps = list(hv, lab).await?;
    if !snaps.iter().any(|s| s.name == name) {
        return Err(crate::BadInput(format!(
            "lab {lab} has no snapshot {name}; `dcos-lab snapshots {lab}` lists them"
        ))
        .into());
    }
    let state = lab_state::read(hv, lab).await?;
    let domains: Vec<String> = state.nodes.iter().map(|n| n.domain.clone()).collect();
    let n = name.to_string();
    for (d, r) in for_all(hv, &domains, move |h, d| h.delete_snapshot(d, &n)).await {
        r.with_context(|| format!("cannot delete snapshot {name} of {d}"))?;
    }
    Ok(())
}

/// Puts every node back to snapshot `name`, running, with its clock corrected, and waits until
/// each answers over SSH. Every node is reverted paused and all are resumed together.
pub async fn revert(
    hv: &Arc<Libvirt>,
    dirs: &Dirs,
    lab: &str,
    name: Option<&str>,
    wait: Duration,
) -> anyhow::Result<RevertReport> {
    let t0 = Instant::now();
    let state = lab_state::read(hv, lab).await?;
    if !state.exists() {
        return Err(crate::BadInput(format!("lab {lab} does not exist")).into());
    }
    let snaps = list(hv, lab).await?;
    let chosen = match name {
        Some(n) => snaps.iter().find(|s| s.name == n),
        None => snaps
            .iter()
            .filter(|s| s.complete)
            .max_by_key(|s| s.created_unix),
    };
    let Some(snap) = chosen else {
        return Err(crate::BadInput(match name {
            Some(n) => {
                format!("lab {lab} has no snapshot {n}; `dcos-lab snapshots {lab}` lists them")
            }
            None => format!("lab {lab} has no snapshot; `dcos-lab snapshot {lab}` takes one"),
        })
        .into());
    };
    if !snap.complete {
        return Err(crate::BadInput(format!(
            "snapshot {} of lab {lab} is on nodes {} only, not on every node; it cannot be reverted to",
            snap.name,
            snap.nodes.join(", ")
        ))
        .into());
    }
    let snap_name = snap.name.clone();
    let domains: Vec<String> = state.nodes.iter().map(|n| n.domain.clone()).collect();
    running(&state)?;
    // Nothing runs ahead while the others are put back.
    for (d, r) in for_all(hv, &domains, |h, d| h.suspend_domain(d)).await {
        r.with_context(|| format!("cannot pause {d}"))?;
    }
    // A checkpoint of the moment before, so that a revert failing on one node can put every
    // node back as it was instead of leaving the lab half reverted.
    let _ = for_all(hv, &domains, |h, d| h.delete_snapshot(d, PRE_REVERT)).await;
    let desc = format!("dcos-lab lab {lab}: before a revert");
    let checkpoint: Vec<anyhow::Error> = for_all(hv, &domains, move |h, d| {
        h.create_snapshot(d, PRE_REVERT, &desc)
    })
    .await
    .into_iter()
    .filter_map(|(d, r)| r.err().map(|e| e.context(format!("cannot checkpoint {d}"))))
    .collect();
    if let Some(e) = checkpoint.into_iter().next() {
        let _ = for_all(hv, &domains, |h, d| h.delete_snapshot(d, PRE_REVERT)).await;
        let _ = for_all(hv, &domains, |h, d| h.resume_domain(d)).await;
        return Err(e.context(format!(
            "revert of lab {lab} did not start; the lab is as it was"
        )));
    }
    let n = snap_name.clone();
    let mut failed: Vec<(String, anyhow::Error)> =
        for_all(hv, &domains, move |h, d| h.revert_snapshot(d, &n, true))
            .await
            .into_iter()
            .filter_map(|(d, r)| r.err().map(|e| (d, e)))
            .collect();
    if !failed.is_empty() {
        // One more try for the nodes that failed: a revert is idempotent.
        let retry: Vec<String> = failed.iter().map(|(d, _)| d.clone()).collect();
        let n = snap_name.clone();
        failed = for_all(hv, &retry, move |h, d| h.revert_snapshot(d, &n, true))
            .await
            .into_iter()
            .filter_map(|(d, r)| r.err().map(|e| (d, e)))
            .collect();
    }
    if let Some((d, e)) = failed.into_iter().next() {
        // Roll every node back to the checkpoint.
        let rollback: Vec<String> =
            for_all(hv, &domains, |h, d| h.revert_snapshot(d, PRE_REVERT, true))
                .await
                .into_iter()
                .filter_map(|(d, r)| r.err().map(|_| d))
                .collect();
        let _ = for_all(hv, &domains, |h, d| h.resume_domain(d)).await;
        if rollback.is_empty() {
            let _ = for_all(hv, &domains, |h, d| h.delete_snapshot(d, PRE_REVERT)).await;
            return Err(e.context(format!(
                "revert of lab {lab} to {snap_name} failed on {d}; the lab was rolled back and is as it was"
            )));
        }
        return Err(e.context(format!(
            "revert of lab {lab} to {snap_name} failed on {d}, and rolling back failed on {}: the lab is HALF reverted; fix: `dcos-lab revert {lab} {snap_name}` again, or `down` and `up`",
            rollback.join(", ")
        )));
    }
    for (d, r) in for_all(hv, &domains, |h, d| h.resume_domain(d)).await {
        r.with_context(|| format!("cannot resume {d} after the revert"))?;
    }
    let running_at = t0.elapsed().as_secs_f64();
    // The checkpoint is not needed once every node runs from the snapshot; it is deleted while
    // the clocks are corrected.
    let cleanup = for_all(hv, &domains, |h, d| h.delete_snapshot(d, PRE_REVERT));
    let lab_dirs = dirs.lab(lab);
    let (deleted, clock_offsets) = tokio::join!(cleanup, fix_clocks(&state, &lab_dirs, wait));
    for (d, r) in deleted {
        if let Err(e) = r {
            tracing::warn!("cannot delete the revert checkpoint of {d}: {e:#}");
        }
    }
    let clock_offsets = clock_offsets?;
    Ok(RevertReport {
        lab: lab.to_string(),
        snapshot: snap_name,
        seconds_to_running: running_at,
        seconds: t0.elapsed().as_secs_f64(),
        clock_offsets,
    })
}

fn now_secs() -> f64 {
    crate::unix_time().as_secs_f64()
}

/// After a revert each guest's clock is as old as the snapshot: set it from the host's over SSH,
/// then measure the remaining offset (half the round trip is the uncertainty).
async fn fix_clocks(
    state: &LabState,
    lab_dirs: &crate::paths::LabDirs,
    wait: Duration,
) -> anyhow::Result<Vec<(String, f64)>> {
    let key = LabKey::load(&lab_dirs.ssh_key())?;
    let known = KnownHosts::load(&lab_dirs.known_hosts())?;
    let mut set = tokio::task::JoinSet::new();
    for n in &state.nodes {
        let Some(ip) = n.private_ipv4() else { continue };
        let (node, key, known) = (n.name.clone(), key.clone(), known.clone());
        set.spawn(async move {
            let addr = SocketAddr::new(IpAddr::V4(ip), 22);
            let t = Instant::now();
            let n2 = node.clone();
            let s: Session =
                crate::guest::wait_ready(&node, "true", addr, &key, &known, wait, &move |last| {
                    tracing::debug!("{n2}: {:.2} s: {last}", t.elapsed().as_secs_f64())
                })
                .await?;
            tracing::debug!(
                "{node}: SSH answers after {:.2} s",
                t.elapsed().as_secs_f64()
            );
            // Set and read back in one round trip.
            let before = now_secs();
            let out = s
                .exec(&format!(
                    "date -u -s @{before:.3} >/dev/null && date -u +%s.%N"
                ))
                .await?;
            let after = now_secs();
            s.close().await;
            let guest: f64 = out.stdout_str().trim().parse().unwrap_or(0.0);
            let offset = guest - (before + after) / 2.0;
            anyhow::Ok((node, offset))
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(1_795_560_000), (2026, 11, 24, 22, 40, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
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
