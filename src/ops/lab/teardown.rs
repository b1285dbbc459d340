//! `down`: remove every domain, network, pool, volume and file a lab owns, found by asking libvirt
//! (metadata) and the state directory; works without the lab file or local state [I/O].

use anyhow::Context;
use serde::Serialize;

use crate::driver::{Hv, blocking, for_all};
use crate::model::LOCAL_HOST;
use crate::ops::Ctx;
use crate::plan;

#[derive(Debug, Serialize)]
pub struct DownReport {
    pub lab: String,
    /// What was removed, in order.
    pub removed: Vec<String>,
    pub seconds: f64,
}

/// Removes lab `lab`, on every host it spans. Touches only domains and networks whose metadata
/// names this lab in our namespace, and a pool only when its directory is this lab's. The local
/// host's networks, which name the lab's other hosts, go last: a `down` stopped before them is
/// taken over by the next one.
pub async fn down(ctx: &Ctx, lab: &str) -> anyhow::Result<DownReport> {
    let (hv, dirs) = (ctx.hv(), &ctx.dirs);
    let t0 = std::time::Instant::now();
    let mut removed = Vec::new();
    let state = crate::ops::lab::state::read(ctx, lab).await?;
    let spans = state.networks.iter().any(|n| !n.hosts.is_empty())
        || state.nodes.iter().any(|n| n.host != LOCAL_HOST);
    let on = |host: &str| {
        if spans {
            format!(" on {host}")
        } else {
            String::new()
        }
    };
    // Domains first (they hold the networks and disks), all at once, each on its host.
    let domains: Vec<String> = state.nodes.iter().map(|n| n.domain.clone()).collect();
    for (d, r) in ctx.for_domains(&domains, |h, d| h.remove_domain(d)).await {
        r?;
        removed.push(format!("domain {d}{}", on(&ctx.host_of(&d))));
    }
    // The other hosts' networks and pools.
    for (host, hv) in ctx.all_hosts().into_iter().skip(1) {
        let names: Vec<String> = state
            .networks
            .iter()
            .filter(|n| n.host == host)
            .map(|n| n.name.clone())
            .collect();
        let mut done = Vec::new();
        for (n, r) in for_all(&hv, &names, |h, n| h.remove_network(n)).await {
            r.with_context(|| format!("on host {host}"))?;
            done.push(format!("network {n} on {host}"));
        }
        done.sort();
        removed.extend(done);
        let remote = crate::names::LabDirs::remote(lab);
        if let Some(p) = remove_pool(&hv, lab, &remote)
            .await
            .with_context(|| format!("on host {host}"))?
        {
            removed.push(format!("{p} on {host}"));
        }
    }
    // The ports joining the local bridges to the overlay, before the networks that record the
    // lab's hosts: a `down` that cannot reach Open vSwitch stops here, and the next one finds
    // the lab across hosts again and retries.
    if spans {
        let id = crate::model::LabId::of(lab);
        for kind in crate::model::NetKind::ALL {
            let bridge = plan::bridge_name(id, kind);
            let overlay = ctx.overlay.clone();
            let b = bridge.clone();
            if tokio::task::spawn_blocking(move || overlay.unlink(&b)).await?? {
                removed.push(format!(
                    "overlay port {}",
                    crate::overlay::port_name(&bridge)
                ));
            }
        }
    }
    // Then the local networks and pool, all at once: nothing of one needs the other.
    let lab_dirs = dirs.lab(lab);
    let names: Vec<String> = state
        .networks
        .iter()
        .filter(|n| n.host == LOCAL_HOST)
        .map(|n| n.name.clone())
        .collect();
    let networks = async {
        let mut done = Vec::new();
        for (n, r) in for_all(hv, &names, |h, n| h.remove_network(n)).await {
            r?;
            done.push(format!("network {n}{}", on(LOCAL_HOST)));
        }
        done.sort();
        anyhow::Ok(done)
    };
    let pool = remove_pool(hv, lab, &lab_dirs);
    let (networks, pool) = tokio::join!(networks, pool);
    removed.extend(networks?);
    removed.extend(pool?);
    removed.extend(crate::ops::lab::host_names::remove(ctx, lab)?);
    let files = crate::ops::lab::storage::remove_lab_files(&lab_dirs)?;
    if !files.is_empty() {
        crate::fault::step("remove the lab's directory");
    }
    removed.extend(files);
    Ok(DownReport {
        lab: lab.to_string(),
        removed,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Removes the lab's storage pool with its volumes, if its directory is the lab's.
async fn remove_pool(
    hv: &Hv,
    lab: &str,
    lab_dirs: &crate::names::LabDirs,
) -> anyhow::Result<Option<String>> {
    let pool = crate::names::pool_name(lab);
    let p = pool.clone();
    let Some(info) = blocking(hv, move |h| h.pool(&p)).await? else {
        return Ok(None);
    };
    if std::path::Path::new(&info.path) != lab_dirs.pool() {
        tracing::warn!(
            "storage pool {pool} is not this lab's (its directory is {}, not {}): left alone",
            info.path,
            lab_dirs.pool().display()
        );
        return Ok(None);
    }
    let p = pool.clone();
    blocking(hv, move |h| h.remove_pool(&p)).await?;
    Ok(Some(format!(
        "storage pool {pool} ({} volumes)",
        info.volumes.len()
    )))
}

/// Every lab of this user that libvirt or the state directory knows of.
pub async fn known_labs(ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let (hv, dirs) = (ctx.hv(), &ctx.dirs);
    let mut labs: Vec<String> = crate::ops::lab::state::read_all(ctx)
        .await?
        .into_keys()
        .collect();
    if let Ok(entries) = std::fs::read_dir(dirs.labs()) {
        for e in entries.flatten() {
            if let Some(n) = e.file_name().to_str()
                && crate::model::is_dns_safe(n)
                && !labs.iter().any(|l| l == n)
            {
                labs.push(n.to_string());
            }
        }
    }
    // Pools named like ours whose directory is in our state directory.
    let pools = blocking(hv, |h| h.owned_pools()).await?;
    for (name, path) in pools {
        if let Some(lab) = name.strip_prefix(&format!("{}-", crate::names::PREFIX))
            && std::path::Path::new(&path) == dirs.lab(lab).pool()
            && !labs.iter().any(|l| l == lab)
        {
            labs.push(lab.to_string());
        }
    }
    // A lab another user's objects make up is that user's, whatever directory names it here.
    let owner = ctx.owner;
    let (doms, nets) = blocking(hv, |h| Ok((h.owned_domains()?, h.owned_networks()?))).await?;
    let foreign: Vec<String> = doms
        .iter()
        .map(|d| &d.tag)
        .chain(nets.iter().map(|n| &n.tag))
        .filter(|t| t.owner() != owner)
        .map(|t| t.lab.clone())
        .collect();
    labs.retain(|l| !foreign.contains(l));
    labs.sort();
    Ok(labs)
}
