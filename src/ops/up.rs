//! `up`: preflight, then create what is missing (pool, networks, disks, seeds, domains), start every
//! node at once and wait until each answers over SSH [I/O: libvirt, files, SSH].

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use super::Ctx;
use super::lab_state::{self, NodeState};
use crate::driver::{Hv, blocking};
use crate::guest::{KnownHosts, LabKey, Target};
use crate::host::AccelDecision;
use crate::model::{ImageRef, Lab, NetKind};
use crate::paths::{Dirs, LabDirs};
use crate::plan::{self, Action, AddressPlan, ObjState, Observed};
use crate::progress::Progress;
use crate::render::{self, RenderCtx};

/// How `up` runs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// How long one node may take to answer over SSH.
    pub wait: Duration,
    /// Install DC/OS once the lab is up (a lab file with an installer, unless `--no-install`).
    pub install: Option<super::install::InstallOptions>,
}

/// What `up` reports, with the install when there was one.
#[derive(Debug, Serialize)]
pub struct UpOutcome {
    #[serde(flatten)]
    pub up: UpReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install: Option<super::install::InstallReport>,
}

/// The `up` command: refuses a missing installer before anything is created, takes the lab's
/// lock, brings the lab up and installs DC/OS when asked. Ctrl-C anywhere in it (the install
/// included) stops it at once with an error that says what exists (`arg` is how the user named
/// the lab, for the fix).
pub async fn up_command(
    ctx: &Ctx,
    lab: &Lab,
    arg: &str,
    accel: AccelDecision,
    opts: &UpOptions,
) -> anyhow::Result<UpOutcome> {
    // Before the lock, whose file would be the first thing made: every host reached (else the
    // one that is not is named), the nodes placed by what each has free (else the host short of
    // memory is named), and then, as `up` does not yet make labs across hosts, the refusal with
    // where each node would go. `up` checks the last again itself.
    if lab.spans_hosts() {
        super::hosts::reach(ctx, lab).await?;
        let placed = super::hosts::place(ctx, lab).await?;
        local_only(lab, Some(&placed))?;
    }
    if opts.install.is_some() {
        super::install::installer_path(lab)?;
    }
    let _lock = ctx.lock(&lab.name)?;
    let work = async {
        let up = up(ctx, lab, accel, opts).await?;
        let install = match &opts.install {
            Some(i) => Some(super::install::install(ctx, lab, i).await?),
            None => None,
        };
        anyhow::Ok(UpOutcome { up, install })
    };
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(super::status::interrupted(ctx, &lab.name, arg, "up").await),
    }
}

/// Refuses, before anything is made, a lab file that puts nodes on another host: labs across
/// hosts are planned (`dcos-lab plan` shows each node's host) but this version makes every object
/// on the local host, so it must not pretend to have placed them.
/// `placed`: where the nodes go, when the hosts were reached; without it, what the file says.
fn local_only(
    lab: &Lab,
    placed: Option<&crate::plan::placement::NodePlacement>,
) -> Result<(), crate::BadInput> {
    if !lab.spans_hosts() {
        return Ok(());
    }
    let elsewhere: Vec<String> = match placed {
        Some(p) => p
            .nodes
            .iter()
            .filter(|n| n.host != crate::model::LOCAL_HOST)
            .map(|n| format!("{} on {}", n.node, n.host))
            .collect(),
        None => lab
            .nodes
            .iter()
            .filter_map(|n| match (&n.host, lab.placement) {
                (Some(h), _) if h != crate::model::LOCAL_HOST => Some(format!("{} on {h}", n.name)),
                (None, crate::model::Placement::Auto) => {
                    Some(format!("{} (placement: auto)", n.name))
                }
                _ => None,
            })
            .collect(),
    };
    if elsewhere.is_empty() {
        return Ok(());
    }
    Err(crate::BadInput(format!(
        "{}: hosts: lab {} puts nodes on hosts other than the local one ({}), and `up` does not \
         make labs across hosts yet (`dcos-lab plan {}` shows where each node would go)\n  \
         fix: put every node on the local host (remove `host:` lines and `placement: auto`)",
        lab.source,
        lab.name,
        elsewhere.join(", "),
        lab.source
    )))
}

/// What `up` reports.
#[derive(Debug, Serialize)]
pub struct UpReport {
    pub lab: String,
    pub accel: AccelDecision,
    /// Actions taken (empty when the lab was already up).
    pub actions: Vec<String>,
    pub nodes: Vec<NodeState>,
    pub seconds: f64,
}

/// Objects that exist with a definition other than the one the lab file now renders.
fn drift(
    lab: &Lab,
    addrs: &AddressPlan,
    ctx: &RenderCtx,
    obs: &Observed,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (node, spec) in &obs.domain_specs {
        if lab.node(node).is_none() {
            out.push(format!(
                "node {node} exists but is no longer in the lab file"
            ));
            continue;
        }
        let xml = render::domain_xml(lab, addrs, node, ctx)?;
        if !xml.contains(&format!("spec=\"{spec}\"")) {
            out.push(format!(
                "node {node}: its definition changed (memory, vCPUs, networks, image or accelerator)"
            ));
        }
    }
    for (kind, spec) in &obs.network_specs {
        let xml = render::network_xml(lab, addrs, *kind)?;
        if !xml.contains(&format!("spec=\"{spec}\"")) {
            out.push(format!(
                "{kind} network: its definition changed (addresses, mode or nodes)"
            ));
        }
    }
    Ok(out)
}

/// IPv4 routes of the host (destination/prefix, device), from /proc/net/route.
fn host_routes() -> Vec<(ipnetwork::Ipv4Network, String)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            if mask == 0 {
                return None; // the default route overlaps everything by design
            }
            let net = std::net::Ipv4Addr::from(u32::from_be(dest));
            let prefix = u8::try_from(u32::from_be(mask).count_ones()).ok()?;
            Some((
                ipnetwork::Ipv4Network::new(net, prefix).ok()?,
                f[0].to_string(),
            ))
        })
        .collect()
}

/// Refusals before anything is created: memory, address collisions. Nothing changes on refusal.
async fn preflight(
    hv: &Hv,
    lab: &Lab,
    addrs: &AddressPlan,
    actions: &[Action],
    obs: &Observed,
) -> anyhow::Result<()> {
    // Memory of the nodes that are not running yet, against what the host has free.
    let needed: u64 = lab
        .nodes
        .iter()
        .filter(|n| obs.domains.get(&n.name) != Some(&ObjState::Active))
        .map(|n| n.memory.bytes())
        .sum();
    if let Some(avail) = crate::host::mem_available()
        && needed > avail.bytes()
    {
        return Err(crate::BadInput(format!(
            "not enough free memory for lab {}: its stopped nodes need {} MiB, the host has {} MiB available\n  fix: stop other labs (`dcos-lab down`), or give the nodes less memory in the lab file",
            lab.name,
            needed / (1024 * 1024),
            avail.as_mib()
        )).into());
    }
    let new_nets: Vec<NetKind> = actions
        .iter()
        .filter_map(|a| match a {
            Action::DefineNetwork { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    if new_nets.is_empty() {
        return Ok(());
    }
    let all = blocking(hv, |h| h.all_networks()).await?;
    let routes = host_routes();
    for kind in new_nets {
        let net = lab.network(kind);
        let np = addrs.network(kind).context("network plan")?;
        for other in &all {
            if other.name == np.name {
                continue;
            }
            if other.bridge.as_deref() == Some(np.bridge.as_str()) {
                return Err(crate::BadInput(format!(
                    "bridge {} of the {kind} network is already used by libvirt network {}\n  fix: rename the lab (bridge names derive from it)",
                    np.bridge,
                    other.name
                )).into());
            }
            for c in &other.ipv4 {
                if let Ok(o) = c.parse::<ipnetwork::Ipv4Network>()
                    && o.overlaps(net.cidr)
                {
                    return Err(crate::BadInput(format!(
                        "the {kind} network {} of lab {} collides with libvirt network {} ({c})\n  fix: set networks.{kind}.cidr in the lab file to a free range",
                        net.cidr,
                        lab.name,
                        other.name
                    )).into());
                }
            }
        }
        for (route, dev) in &routes {
            if route.overlaps(net.cidr) && dev != &np.bridge {
                return Err(crate::BadInput(format!(
                    "the {kind} network {} of lab {} collides with the host route {route} on {dev}\n  fix: set networks.{kind}.cidr in the lab file to a free range",
                    net.cidr,
                    lab.name
                )).into());
            }
        }
    }
    Ok(())
}

/// The last `lines` lines of a console log, for an error message.
fn console_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..]
                .iter()
                .map(|l| format!("  | {}", l.trim_end_matches('\r')))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(e) => format!("  (no console log: {e})"),
    }
}

/// Writes a node's NoCloud seed as an ISO 9660 image labelled `cidata` (genisoimage), atomically.
pub(crate) fn write_seed(
    lab_dirs: &LabDirs,
    node: &str,
    seed: &render::cloudinit::Seed,
) -> anyhow::Result<()> {
    let work = lab_dirs.path().join(format!(".seed-{node}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    for (name, text) in [
        ("user-data", &seed.user_data),
        ("meta-data", &seed.meta_data),
        ("network-config", &seed.network_config),
    ] {
        std::fs::write(work.join(name), text)
            .with_context(|| format!("cannot write the {name} of {node}"))?;
    }
    let dest = lab_dirs.seed(node);
    let tmp = dest.with_extension("img.tmp");
    let out = std::process::Command::new("genisoimage")
        .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output"])
        .arg(&tmp)
        .arg(work.join("user-data"))
        .arg(work.join("meta-data"))
        .arg(work.join("network-config"))
        .output()
        .context("cannot run genisoimage (scripts/setup-host.sh installs it)")?;
    if !out.status.success() {
        bail!(
            "genisoimage failed for the seed of {node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Makes sure the image exists: builds a missing built-in recipe (saying so); a missing imported
/// image or file is an error that says what to do.
pub(crate) async fn ensure_image(
    dirs: &Dirs,
    lab: &Lab,
    progress: &Progress,
) -> anyhow::Result<()> {
    let img = crate::image::boot_image(dirs, &lab.image);
    if img.disk.is_file() {
        return Ok(());
    }
    match &lab.image {
        ImageRef::Recipe(name) if crate::image::recipe_names().contains(name) => {
            let line = Arc::new(progress.spinner(&format!("image {name}")));
            line.step("not in the cache: building it (about a minute)");
            let d = dirs.clone();
            let n = name.clone();
            let l2 = line.clone();
            let built =
                tokio::task::spawn_blocking(move || crate::image::build(&d, &n, &|s| l2.step(s)))
                    .await?
                    .with_context(|| format!("cannot build image {name}"))?;
            line.done(&format!("built in {:.0} s", built.seconds));
            Ok(())
        }
        ImageRef::Recipe(name) => Err(crate::BadInput(format!(
            "{}: image \"{name}\" is not in the cache {}\n  fix: `dcos-lab image import FILE --name {name}`",
            lab.source,
            dirs.images().display()
        ))
        .into()),
        ImageRef::File(p) => Err(crate::BadInput(format!(
            "{}: image: the file {} does not exist\n  fix: correct `image:` in the lab file",
            lab.source,
            p.display()
        ))
        .into()),
    }
}

/// Finishes a revert that was interrupted (see `snapshot::revert`): every node goes forward to
/// the snapshot, so `up` never resumes a lab that is half reverted. A record left by a lab that
/// has lost a node or the snapshot since is stale and dropped. Returns what was done.
async fn finish_revert(ctx: &Ctx, lab: &Lab, wait: Duration) -> anyhow::Result<Option<String>> {
    let lab_dirs = ctx.dirs.lab(&lab.name);
    let Some(snap) = super::snapshot::unfinished_revert(&lab_dirs)? else {
        return Ok(None);
    };
    let whole = super::snapshot::list(ctx, &lab.name)
        .await?
        .iter()
        .any(|s| s.name == snap && s.complete && s.nodes.len() == lab.nodes.len());
    if !whole {
        tracing::warn!(
            "lab {}: dropping the record of an interrupted revert to {snap}: the snapshot is no longer on every node",
            lab.name
        );
        super::snapshot::forget_revert(&lab_dirs)?;
        return Ok(None);
    }
    tracing::info!(
        "lab {}: finishing the interrupted revert to {snap}",
        lab.name
    );
    super::snapshot::revert(ctx, &lab.name, Some(&snap), wait)
        .await
        .with_context(|| {
            format!(
                "cannot finish the interrupted revert of lab {} to {snap}",
                lab.name
            )
        })?;
    Ok(Some(format!("finish the interrupted revert to {snap}")))
}

/// Brings `lab` up, or converges it: creates what is missing, starts what is stopped.
pub async fn up(
    ctx: &Ctx,
    lab: &Lab,
    accel: AccelDecision,
    opts: &UpOptions,
) -> anyhow::Result<UpReport> {
    local_only(lab, None)?;
    let (hv, dirs) = (ctx.hv(), &ctx.dirs);
    let started = Instant::now();
    let progress = Progress::new();
    tracing::info!(
        "lab {}: accelerator {} ({})",
        lab.name,
        accel.accel,
        accel.reason
    );
    let addrs = plan::plan_addresses(lab);
    let lab_dirs = dirs.lab(&lab.name);
    let render_ctx = RenderCtx {
        accel: accel.accel,
        dirs: lab_dirs.clone(),
        image: crate::image::boot_image(dirs, &lab.image),
    };
    let name = lab.name.clone();
    let obs = blocking(hv, move |h| super::plan::observe(h, &name)).await?;
    let changed = drift(lab, &addrs, &render_ctx, &obs)?;
    if !changed.is_empty() {
        return Err(crate::BadInput(format!(
            "lab {} exists with a different definition than its lab file:\n  - {}\n  fix: `dcos-lab down {}` then `dcos-lab up` (or undo the change to the lab file)",
            lab.name,
            changed.join("\n  - "),
            lab.name
        ))
        .into());
    }
    let mut finished = Vec::new();
    let obs = match finish_revert(ctx, lab, opts.wait).await? {
        Some(done) => {
            finished.push(done);
            let name = lab.name.clone();
            blocking(hv, move |h| super::plan::observe(h, &name)).await?
        }
        None => obs,
    };
    let backing = render_ctx.image.disk.display().to_string();
    let actions = plan::plan_up(lab, &addrs, &lab_dirs, &backing, &obs);
    let creating = actions.iter().any(|a| !matches!(a, Action::WaitSsh { .. }));
    if creating {
        preflight(hv, lab, &addrs, &actions, &obs).await?;
        ensure_image(dirs, lab, &progress).await?;
    }

    // The lab's own files: disks and console logs (QEMU must reach them: 0711), the key (0600) and
    // pinned host keys in a 0700 directory.
    for d in [&dirs.state, &dirs.labs(), &lab_dirs.root] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))?;
    }
    let console_dir = lab_dirs.console_log("x");
    if let Some(d) = console_dir.parent() {
        std::fs::create_dir_all(d)?;
    }
    let key = LabKey::load_or_create(&lab_dirs.ssh_key(), &format!("dcos-lab {}", lab.name))?;
    let known = KnownHosts::load(&lab_dirs.known_hosts())?;

    let mut taken = finished;
    let mut to_start = Vec::new();
    let mut to_wait = Vec::new();
    let pool = plan::pool_name(&lab.name);
    for action in &actions {
        match action {
            Action::CreatePool { .. } => {
                let xml = render::pool_xml(lab, &lab_dirs)?;
                let p = pool.clone();
                blocking(hv, move |h| {
                    h.define_pool(&xml)?;
                    h.start_pool(&p, true)
                })
                .await?;
            }
            Action::StartPool { pool } => {
                let p = pool.clone();
                blocking(hv, move |h| h.start_pool(&p, true)).await?;
            }
            Action::DefineNetwork { kind, .. } => {
                let xml = render::network_xml(lab, &addrs, *kind)?;
                blocking(hv, move |h| h.define_network(&xml)).await?;
            }
            Action::StartNetwork { network } => {
                let n = network.clone();
                blocking(hv, move |h| h.start_network(&n)).await?;
            }
            Action::CreateDisk { node, .. } => {
                known.forget(node)?;
                let n = lab.node(node).context("node")?;
                let xml = render::disk_volume_xml(n, &render_ctx.image)?;
                let p = pool.clone();
                blocking(hv, move |h| h.create_volume(&p, &xml)).await?;
            }
            Action::WriteSeed { node, .. } => {
                let seed = render::cloudinit::seed(lab, &addrs, node, &key.public_openssh())?;
                write_seed(&lab_dirs, node, &seed)?;
                crate::fault::step(&format!("write the seed of {node}"));
                let p = pool.clone();
                blocking(hv, move |h| h.refresh_pool(&p)).await?;
            }
            Action::DefineDomain { node, .. } => {
                known.forget(node)?;
                let xml = render::domain_xml(lab, &addrs, node, &render_ctx)?;
                blocking(hv, move |h| h.define_domain(&xml)).await?;
            }
            Action::StartDomain { node, domain } => to_start.push((node.clone(), domain.clone())),
            Action::WaitSsh { node, address } => to_wait.push((node.clone(), *address)),
        }
        if !matches!(action, Action::WaitSsh { .. }) {
            tracing::debug!("{}", action.describe());
            taken.push(action.describe());
        }
    }

    // Every node starts and is waited for at once; each has its own progress line.
    let mut set = tokio::task::JoinSet::new();
    let starting: BTreeMap<String, String> = to_start.into_iter().collect();
    for (node, address) in to_wait {
        let line = Arc::new(progress.spinner(&node));
        let hv = ctx.hv_for(&node).clone();
        let guests = ctx.guests.clone();
        let target = Target {
            node: node.clone(),
            domain: plan::domain_name(&lab.name, &node),
            addr: SocketAddr::new(IpAddr::V4(address), 22),
            key: key.clone(),
            known: known.clone(),
        };
        let domain = starting.get(&node).cloned();
        let wait = opts.wait;
        let console = lab_dirs.console_log(&node);
        let check = render::cloudinit::ready_check(lab, &node);
        set.spawn(async move {
            if let Some(domain) = domain {
                line.step("starting");
                let d = domain.clone();
                if let Err(e) = blocking(&hv, move |h| h.start_domain(&d)).await {
                    line.fail("cannot start");
                    return Err(e.context(format!("cannot start node {node}")));
                }
            }
            line.step("booting: waiting for SSH");
            let t0 = Instant::now();
            let l2 = line.clone();
            match guests
                .wait_ready(&target, Some(&check), wait, &move |last| {
                    l2.step(if last.starts_with("SSH answers") {
                        "first-boot configuration"
                    } else {
                        "booting: waiting for SSH"
                    })
                })
                .await
            {
                Ok(s) => {
                    s.close().await;
                    line.done(&format!("ready ({:.0} s)", t0.elapsed().as_secs_f64()));
                    Ok(node)
                }
                Err(e) => {
                    line.fail("no SSH");
                    let tail = console_tail(&console, 20);
                    Err(anyhow::Error::new(e).context(format!(
                        "node {node} is not reachable; the last lines of its console ({}):\n{tail}",
                        console.display()
                    )))
                }
            }
        });
    }
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(anyhow::Error::new(e)),
        }
    }
    if let Some(first) = failures.into_iter().next() {
        return Err(first.context(format!(
            "lab {} is not up; the other nodes are left running for inspection, console logs are in {}",
            lab.name,
            lab_dirs.console_log("").parent().unwrap_or(Path::new("")).display()
        )));
    }
    let nodes = lab_state::read(hv, &lab.name).await?.nodes;
    Ok(UpReport {
        lab: lab.name.clone(),
        accel,
        actions: taken,
        nodes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
