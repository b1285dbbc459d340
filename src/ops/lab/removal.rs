//! `down LAB --node N`: agents removed from a lab alone — their domain, disk, seed, console log,
//! pinned host key, DHCP and DNS entries and their names on the other nodes and the host — every
//! other node untouched and running [I/O: libvirt, files, SSH].

use serde::Serialize;

use crate::driver::blocking;
use crate::model::LOCAL_HOST;
use crate::names::ObjState;
use crate::ops::Ctx;
use crate::ops::lab::nodes::{self, Access};
use crate::ops::lab::state::{self as lab_state, LabState};
use crate::plan::NetEntry;

/// What `down --node` reports.
#[derive(Debug, Serialize)]
pub struct RemoveReport {
    pub lab: String,
    pub nodes: Vec<String>,
    /// What was removed, in order.
    pub removed: Vec<String>,
    /// What could not be done now and is done later (a node that could not be reached has the
    /// names brought up to date by the next `up`).
    pub warnings: Vec<String>,
    pub seconds: f64,
}

/// How `down --node` refuses; all bad input, found before anything changes.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("lab {lab} does not exist")]
    NoLab { lab: String },
    #[error("lab {lab} has no node \"{node}\"; its nodes: {}", nodes.join(", "))]
    NoSuchNode {
        lab: String,
        node: String,
        nodes: Vec<String>,
    },
    #[error(
        "node {node} of lab {lab} is its {role}, which goes only with the whole lab: the boot node serves the DC/OS bootstrap, and DC/OS fixes its masters at install\n  fix: `dcos-lab down {lab}` removes the whole lab"
    )]
    Fixed {
        lab: String,
        node: String,
        role: String,
    },
}

/// Removes `nodes` (agents, or nodes not made yet) from lab `lab`. The others stop naming them
/// first, the network entries go last: until they go, the node is the lab's, and a `down --node`
/// cut short is taken over by the next one (or by `up`, which names the fix).
pub async fn remove_nodes(ctx: &Ctx, lab: &str, nodes: &[String]) -> anyhow::Result<RemoveReport> {
    let t0 = std::time::Instant::now();
    let state = lab_state::read(ctx, lab).await?;
    if !state.exists() {
        return Err(RemoveError::NoLab {
            lab: lab.to_string(),
        }
        .into());
    }
    state.refuse_suspended("down --node")?;
    let name = lab.to_string();
    let entries = blocking(ctx.hv(), move |h| {
        crate::ops::lab::observe::observe(h, &name)
    })
    .await?
    .network_entries;
    check(lab, &state, &entries, nodes)?;
    let mut removed = Vec::new();
    let mut warnings = Vec::new();

    let remaining: Vec<crate::plan::NodeName> = crate::plan::names_from_entries(&entries)
        .into_iter()
        .filter(|n| !nodes.contains(&n.node))
        .collect();
    warnings.extend(unname_in_guests(ctx, lab, &state, nodes, &remaining).await?);
    removed.extend(remove_made(ctx, lab, &state, nodes).await?);
    removed.extend(remove_entries(ctx, lab, &entries, nodes).await?);
    let names: Vec<(std::net::IpAddr, String)> = remaining
        .iter()
        .map(|n| (std::net::IpAddr::V4(n.ipv4), format!("{}.{lab}", n.node)))
        .collect();
    if let Some(w) = crate::ops::lab::host_names::set(ctx, lab, &names) {
        warnings.push(w);
    }
    Ok(RemoveReport {
        lab: lab.to_string(),
        nodes: nodes.to_vec(),
        removed,
        warnings,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Every node named is the lab's (a domain, or entries on its networks) and may go alone.
fn check(
    lab: &str,
    state: &LabState,
    entries: &std::collections::BTreeMap<crate::model::NetKind, Vec<NetEntry>>,
    nodes: &[String],
) -> Result<(), RemoveError> {
    let mut known: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    for e in entries.values().flatten() {
        if let Some(n) = e.node()
            && !known.iter().any(|k| k == n)
        {
            known.push(n.to_string());
        }
    }
    for n in nodes {
        if !known.contains(n) {
            return Err(RemoveError::NoSuchNode {
                lab: lab.to_string(),
                node: n.clone(),
                nodes: known.clone(),
            });
        }
        if let Some(s) = state.node(n)
            && matches!(s.role.as_str(), "boot" | "master")
        {
            return Err(RemoveError::Fixed {
                lab: lab.to_string(),
                node: n.clone(),
                role: if s.role == "boot" {
                    "boot node".to_string()
                } else {
                    "master".to_string()
                },
            });
        }
    }
    Ok(())
}

/// The running nodes that stay get the lab's names without the ones that go; a node that does
/// not run gets them at its next `up`, one that cannot be reached is said (the next `up` does it).
async fn unname_in_guests(
    ctx: &Ctx,
    lab: &str,
    state: &LabState,
    going: &[String],
    remaining: &[crate::plan::NodeName],
) -> anyhow::Result<Vec<String>> {
    let text = crate::render::cloudinit::etc_hosts_of(lab, remaining.to_vec());
    let staying: Vec<_> = state
        .nodes
        .iter()
        .filter(|n| !going.contains(&n.name) && n.state == ObjState::Active)
        .cloned()
        .collect();
    if staying.is_empty() {
        return Ok(Vec::new());
    }
    let access = Access::load(&ctx.dirs.lab(lab))?;
    let results = nodes::all_at_once(staying, |n| {
        let (guests, access, text) = (ctx.guests.clone(), access.clone(), text.clone());
        async move {
            let s = nodes::connect(&guests, &access, &n, crate::guest::CONNECT_TIMEOUT).await?;
            let r = crate::ops::lab::host_names::sync_in_guest(s.as_ref(), &text).await;
            s.close().await;
            r.map(|_| ())
                .map_err(|e| e.context(format!("node {}", n.name)))
        }
    })
    .await?;
    Ok(results
        .into_iter()
        .filter_map(Result::err)
        .map(|e| {
            format!(
                "{}; the next `dcos-lab up` brings its /etc/hosts up to date",
                crate::error_chain(e.as_ref())
            )
        })
        .collect())
}

/// The domains (each on its host, stopped and undefined with their snapshots and saved memory),
/// disks and seeds of the nodes that go, then their console logs and pinned host keys.
async fn remove_made(
    ctx: &Ctx,
    lab: &str,
    state: &LabState,
    going: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    let made: Vec<_> = state
        .nodes
        .iter()
        .filter(|n| going.contains(&n.name))
        .collect();
    let domains: Vec<String> = made.iter().map(|n| n.domain.clone()).collect();
    for (d, r) in ctx.for_domains(&domains, |h, d| h.remove_domain(d)).await {
        r?;
        removed.push(format!("domain {d}"));
    }
    let pool = crate::names::pool_name(lab);
    for node in going {
        let host = made
            .iter()
            .find(|n| n.name == *node)
            .map(|n| n.host.clone())
            .unwrap_or_else(|| LOCAL_HOST.to_string());
        let Some(hv) = ctx.host(&host) else {
            anyhow::bail!("host {host} of node {node} is not reached");
        };
        for volume in [
            crate::names::disk_volume_name(node),
            crate::names::seed_volume_name(node),
        ] {
            let (p, v) = (pool.clone(), volume.clone());
            let there = blocking(&hv, move |h| {
                Ok(h.pool(&p)?.is_some_and(|i| i.volumes.contains(&v)))
            })
            .await?;
            if there {
                let (p, v) = (pool.clone(), volume.clone());
                blocking(&hv, move |h| h.delete_volume(&p, &v)).await?;
                removed.push(format!("volume {volume}"));
            }
        }
    }
    let lab_dirs = ctx.dirs.lab(lab);
    let known = crate::guest::KnownHosts::load(&lab_dirs.known_hosts())?;
    for node in going {
        let log = lab_dirs.console_log(node);
        if log.exists() {
            std::fs::remove_file(&log)
                .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", log.display()))?;
            removed.push(format!("console log {}", log.display()));
        }
        known.forget(node)?;
    }
    Ok(removed)
}

/// The nodes' DHCP and DNS entries, deleted from the running networks (no restart).
async fn remove_entries(
    ctx: &Ctx,
    lab: &str,
    entries: &std::collections::BTreeMap<crate::model::NetKind, Vec<NetEntry>>,
    going: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    for (kind, list) in entries {
        let network = crate::names::network_name(lab, *kind);
        for e in list
            .iter()
            .filter(|e| e.node().is_some_and(|n| going.iter().any(|g| g == n)))
        {
            let (n, x) = (network.clone(), e.clone());
            blocking(ctx.hv(), move |h| h.update_network(&n, &x, false)).await?;
            removed.push(format!("{} from network {network}", e.describe()));
        }
    }
    Ok(removed)
}
