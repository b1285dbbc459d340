//! `up`: preflight, then create what is missing (pool, networks, disks, seeds, domains), start every
//! node at once and wait until each answers over SSH [I/O: libvirt, files, SSH].

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::driver::{Hv, blocking};
use crate::guest::{KnownHosts, LabKey, Target};
use crate::host::AccelDecision;
use crate::model::{Lab, NetKind};
use crate::names::LabDirs;
use crate::names::ObjState;
use crate::ops::Ctx;
use crate::ops::lab::making::{UpReport, ensure_image, write_seed};
use crate::ops::lab::nodes;
use crate::ops::lab::state as lab_state;
use crate::plan::{self, Action, AddressPlan, Observed};
use crate::progress::{Line, Progress};
use crate::render::{self, RenderCtx};

/// How `up` runs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// How long one node may take to answer over SSH.
    pub wait: Duration,
    /// Install DC/OS once the lab is up (a lab file with an installer, unless `--no-install`).
    pub install: Option<crate::ops::lab::dcos::InstallOptions>,
    /// Only these nodes (`--node`); every node when empty. The lab's pool and networks are made
    /// whole either way (the networks name every node), so a later `up` adds the rest.
    pub nodes: Vec<String>,
}

/// What `up` reports, with the install when there was one.
#[derive(Debug, Serialize)]
pub struct UpOutcome {
    #[serde(flatten)]
    pub up: UpReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install: Option<crate::ops::lab::dcos::InstallReport>,
}

/// How `up` fails, for a caller or a test to tell apart. All but `NotReachable` are bad
/// input, found before anything is made.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(
        "{file}: hosts: lab {lab} spans hosts, and its first host is the --uri connection {uri}, another machine\n  fix: run dcos-lab on that machine (the lab's first host: its networks join the overlay there, docs/multihost.md)"
    )]
    NotFirstHost {
        file: String,
        lab: String,
        uri: String,
    },
    #[error(
        "not enough free memory for lab {lab}: its stopped nodes need {needed_mib} MiB, the host has {available_mib} MiB available\n  fix: stop other labs (`dcos-lab down`), or give the nodes less memory in the lab file"
    )]
    NoMemory {
        lab: String,
        needed_mib: u64,
        available_mib: u64,
    },
    #[error(
        "bridge {bridge} of the {kind} network is already used by libvirt network {network}\n  fix: rename the lab (bridge names derive from it)"
    )]
    BridgeTaken {
        bridge: String,
        kind: NetKind,
        network: String,
    },
    /// `with`: a libvirt network and its range, or a host route and its device.
    #[error(
        "the {kind} network {cidr} of lab {lab} collides with {with}\n  fix: set networks.{kind}.cidr in the lab file to a free range"
    )]
    Collides {
        lab: String,
        kind: NetKind,
        cidr: ipnetwork::Ipv4Network,
        with: String,
    },
    /// The lab exists with another definition than its lab file renders.
    #[error(
        "lab {lab} exists with a different definition than its lab file:\n  - {}\n  fix: `dcos-lab down {lab}` then `dcos-lab up` (or undo the change to the lab file)",
        differences.join("\n  - ")
    )]
    Drifted {
        lab: String,
        differences: Vec<String>,
    },
    /// Nodes that exist (a domain, or entries on the lab's networks) that the lab file no longer
    /// lists; each with its role where it is known.
    #[error(
        "{file}: lab {lab} has nodes the lab file no longer lists: {}\n  fix: {}",
        nodes.iter().map(|(n, r)| format!("{n} ({r})")).collect::<Vec<_>>().join(", "),
        removed_fix(lab, nodes)
    )]
    Removed {
        file: String,
        lab: String,
        /// (node, role)
        nodes: Vec<(String, String)>,
    },
    /// A node did not answer over SSH in time; `console` is the tail of its console log.
    #[error("node {node} is not reachable; {console}")]
    NotReachable {
        node: String,
        console: String,
        #[source]
        source: crate::guest::GuestError,
    },
}

/// The role said of a node that has entries on the lab's networks and no domain.
const NOT_MADE: &str = "not made";

/// The fix for nodes gone from the lab file: an agent goes alone (`down --node`); a master or
/// the boot node only with the whole lab.
fn removed_fix(lab: &str, nodes: &[(String, String)]) -> String {
    let agents: Vec<&str> = nodes
        .iter()
        .filter(|(_, r)| r.starts_with("agent") || r == NOT_MADE)
        .map(|(n, _)| n.as_str())
        .collect();
    if agents.len() == nodes.len() {
        format!(
            "`dcos-lab down {lab} {}` removes {} from the lab, or list {} in the lab file again",
            agents
                .iter()
                .map(|n| format!("--node {n}"))
                .collect::<Vec<_>>()
                .join(" "),
            if agents.len() == 1 { "it" } else { "them" },
            if agents.len() == 1 { "it" } else { "them" },
        )
    } else {
        format!(
            "list them in the lab file again: the boot node and the masters are fixed for the lab's life (DC/OS's masters are fixed at install); `dcos-lab down {lab}` removes the whole lab"
        )
    }
}

impl UpError {
    /// Whether the user's input is at fault (nothing was made).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, UpError::NotReachable { .. })
    }
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
    // one that is not is named). `up` places the nodes itself (a host short of memory is named
    // before anything is made on any host).
    if lab.spans_hosts() {
        // The lab's first host is where dcos-lab runs: its bridges join the overlay here, and
        // the guests are reached through them.
        let uri = blocking(ctx.hv(), |h| h.version()).await?.uri;
        if !is_local_uri(&uri) {
            return Err(UpError::NotFirstHost {
                file: lab.source.clone(),
                lab: lab.name.clone(),
                uri,
            }
            .into());
        }
        crate::ops::lab::hosts::reach(ctx, lab).await?;
    }
    if opts.install.is_some() {
        crate::ops::lab::dcos::installer_path(lab)?;
    }
    check_part(ctx, lab, opts).await?;
    let _lock = ctx.lock(&lab.name)?;
    let work = async {
        let up = up(ctx, lab, accel, opts).await?;
        let install = match &opts.install {
            Some(i) => Some(crate::ops::lab::dcos::install(ctx, lab, i).await?),
            None => None,
        };
        anyhow::Ok(UpOutcome { up, install })
    };
    crate::ops::lab::ctrl_c::until_ctrl_c(work, || {
        crate::ops::lab::ctrl_c::interrupted(ctx, &lab.name, arg, "up")
    })
    .await
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
    // Memory of the nodes this `up` starts, against what the host has free.
    let starting: Vec<&str> = actions
        .iter()
        .filter(|a| matches!(a, Action::StartDomain { .. }))
        .filter_map(Action::node)
        .collect();
    let needed: u64 = lab
        .nodes
        .iter()
        .filter(|n| starting.contains(&n.name.as_str()))
        .filter(|n| obs.domains.get(&n.name) != Some(&ObjState::Active))
        .map(|n| n.memory.bytes())
        .sum();
    if let Some(avail) = crate::host::mem_available()
        && needed > avail.bytes()
    {
        return Err(UpError::NoMemory {
            lab: lab.name.clone(),
            needed_mib: needed / (1024 * 1024),
            available_mib: avail.as_mib(),
        }
        .into());
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
                return Err(UpError::BridgeTaken {
                    bridge: np.bridge.clone(),
                    kind,
                    network: other.name.clone(),
                }
                .into());
            }
            for c in &other.ipv4 {
                if let Ok(o) = c.parse::<ipnetwork::Ipv4Network>()
                    && o.overlaps(net.cidr)
                {
                    return Err(UpError::Collides {
                        lab: lab.name.clone(),
                        kind,
                        cidr: net.cidr,
                        with: format!("libvirt network {} ({c})", other.name),
                    }
                    .into());
                }
            }
        }
        for (route, dev) in &routes {
            if route.overlaps(net.cidr) && dev != &np.bridge {
                return Err(UpError::Collides {
                    lab: lab.name.clone(),
                    kind,
                    cidr: net.cidr,
                    with: format!("the host route {route} on {dev}"),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// The last `lines` lines of a console log, for an error message.
fn console_tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..]
        .iter()
        .map(|l| format!("  | {}", l.trim_end_matches('\r')))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Finishes a revert that was interrupted (see `snapshot::revert`): every node goes forward to
/// the snapshot, so `up` never resumes a lab that is half reverted. A record left by a lab that
/// has lost a node or the snapshot since is stale and dropped. Returns what was done.
async fn finish_revert(ctx: &Ctx, lab: &Lab, wait: Duration) -> anyhow::Result<Option<String>> {
    let lab_dirs = ctx.dirs.lab(&lab.name);
    let Some(snap) = crate::ops::lab::snapshots::unfinished_revert(&lab_dirs)? else {
        return Ok(None);
    };
    let whole = crate::ops::lab::snapshots::list(ctx, &lab.name)
        .await?
        .iter()
        .any(|s| s.name == snap && s.complete && s.nodes.len() == lab.nodes.len());
    if !whole {
        tracing::warn!(
            "lab {}: dropping the record of an interrupted revert to {snap}: the snapshot is no longer on every node",
            lab.name
        );
        crate::ops::lab::snapshots::forget_revert(&lab_dirs)?;
        return Ok(None);
    }
    tracing::info!(
        "lab {}: finishing the interrupted revert to {snap}",
        lab.name
    );
    crate::ops::lab::snapshots::revert(ctx, &lab.name, Some(&snap), wait)
        .await
        .with_context(|| {
            format!(
                "cannot finish the interrupted revert of lab {} to {snap}",
                lab.name
            )
        })?;
    Ok(Some(format!("finish the interrupted revert to {snap}")))
}

/// What an earlier command left half done is finished first: an interrupted revert, a suspended
/// lab; each host's view is read again after. Returns what was done.
async fn take_over(
    ctx: &Ctx,
    lab: &Lab,
    work: &mut [HostWork],
    wait: Duration,
) -> anyhow::Result<Vec<String>> {
    let reverted = finish_revert(ctx, lab, wait).await?;
    // What each host was seen to hold says whether a node is suspended; a revert just finished
    // dropped any saved memory.
    let suspended = reverted.is_none()
        && work
            .iter()
            .any(|w| w.obs.domains.values().any(|s| *s == ObjState::Suspended));
    let resumed = if suspended {
        Some(resume_suspended(ctx, lab, wait).await?)
    } else {
        None
    };
    let done: Vec<String> = [reverted, resumed].into_iter().flatten().collect();
    if !done.is_empty() {
        for w in work.iter_mut() {
            let name = lab.name.clone();
            w.obs = blocking(&w.hv, move |h| crate::ops::lab::observe::observe(h, &name)).await?;
        }
    }
    Ok(done)
}

/// A suspended lab (or one whose `suspend` or `resume` was cut short) is resumed as `resume`
/// does, clocks corrected, before anything else: a plain start would leave its nodes paused.
async fn resume_suspended(ctx: &Ctx, lab: &Lab, wait: Duration) -> anyhow::Result<String> {
    let r = crate::ops::lab::suspension::resume(ctx, &lab.name, wait).await?;
    Ok(format!("resume {}", r.resumed.join(", ")))
}

/// `up --node`: every node named is the lab file's, and on a lab that installs DC/OS the nodes
/// the install needs first (the boot node and every master) are among them or exist already.
/// Bad input, before anything is made.
async fn check_part(ctx: &Ctx, lab: &Lab, opts: &UpOptions) -> anyhow::Result<()> {
    if opts.nodes.is_empty() {
        return Ok(());
    }
    let known: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
    if let Some(n) = opts.nodes.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(crate::BadInput(format!(
            "{}: lab {} has no node \"{n}\"; its nodes: {}",
            lab.source,
            lab.name,
            known.join(", ")
        ))
        .into());
    }
    if opts.install.is_none() {
        return Ok(());
    }
    let state = lab_state::read(ctx, &lab.name).await?;
    let missing: Vec<&str> = lab
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.role,
                crate::model::Role::Boot | crate::model::Role::Master
            )
        })
        .filter(|n| !opts.nodes.contains(&n.name) && state.node(&n.name).is_none())
        .map(|n| n.name.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(crate::BadInput(format!(
        "{}: DC/OS installs the boot node and every master first, and {} would not be there\n  fix: add {}, or `--no-install`",
        lab.source,
        missing.join(", "),
        missing
            .iter()
            .map(|n| format!("--node {n}"))
            .collect::<Vec<_>>()
            .join(" ")
    ))
    .into())
}

/// Whether a libvirt URI names a daemon on this machine (no host part: `qemu:///system`,
/// `qemu+unix:///system?socket=...`).
fn is_local_uri(uri: &str) -> bool {
    uri.split_once("://")
        .is_none_or(|(_, rest)| rest.starts_with('/'))
}

/// What `up` does on one host of the lab: that host's nodes, networks and pool.
struct HostWork {
    host: String,
    hv: Hv,
    /// The lab's first host (the local one): every network, with the host addresses.
    first: bool,
    /// The lab with only this host's nodes.
    sub: Lab,
    /// The address plan as this host renders it (other hosts: only the networks their nodes
    /// use, on the overlay bridge).
    addrs: AddressPlan,
    dirs: LabDirs,
    /// Owner (uid, gid) of the lab's pool directory: a plain user's, on the local host.
    pool_owner: Option<(u32, u32)>,
    render: RenderCtx,
    obs: Observed,
}

impl HostWork {
    fn on(&self) -> String {
        if self.first {
            String::new()
        } else {
            format!(" on {}", self.host)
        }
    }
}

/// Each host's share of `lab`: on one host, the whole lab on the local connection; across
/// hosts, every host reached and observed, the nodes that exist staying where they are and the
/// rest placed by free memory (a host short of it is bad input, before anything is made).
async fn host_work(
    ctx: &Ctx,
    lab: &Lab,
    addrs: &AddressPlan,
    local: &RenderCtx,
) -> anyhow::Result<Vec<HostWork>> {
    if !lab.spans_hosts() {
        let name = lab.name.clone();
        let hv = ctx.hv().clone();
        let obs = blocking(&hv, move |h| {
            crate::ops::lab::observe::observe_settled(h, &name)
        })
        .await?;
        return Ok(vec![HostWork {
            host: crate::model::LOCAL_HOST.to_string(),
            hv,
            first: true,
            sub: lab.clone(),
            addrs: addrs.clone(),
            dirs: local.dirs.clone(),
            pool_owner: ctx.dirs.pool_owner(),
            render: local.clone(),
            obs,
        }]);
    }
    crate::ops::lab::hosts::reach(ctx, lab).await?;
    let mut observed = BTreeMap::new();
    for h in &lab.hosts {
        let hv = ctx
            .host(&h.name)
            .ok_or_else(|| anyhow::anyhow!("internal: host {} was not reached", h.name))?;
        let name = lab.name.clone();
        let o = blocking(&hv, move |x| {
            crate::ops::lab::observe::observe_settled(x, &name)
        })
        .await
        .with_context(|| format!("cannot read lab {} on host {}", lab.name, h.name))?;
        observed.insert(h.name.clone(), (hv, o));
    }
    // A node that exists stays on its host; one the lab file pins elsewhere is a changed lab.
    let mut pinned = lab.clone();
    let mut moved = Vec::new();
    let mut free = BTreeMap::new();
    for (host, (hv, o)) in &observed {
        let mut f = blocking(hv, |h| h.free_memory()).await?;
        for (node, state) in &o.domains {
            let Some(n) = pinned.nodes.iter_mut().find(|n| n.name == *node) else {
                continue;
            };
            let wanted = match (&n.host, lab.placement) {
                (Some(h), _) => Some(h.clone()),
                (None, crate::model::Placement::Manual) => {
                    Some(crate::model::LOCAL_HOST.to_string())
                }
                (None, crate::model::Placement::Auto) => None,
            };
            if let Some(w) = wanted
                && w != *host
            {
                moved.push(format!(
                    "node {node} is on host {host}, the lab file puts it on {w}"
                ));
            }
            n.host = Some(host.clone());
            if *state == ObjState::Active {
                f += n.memory.bytes();
            }
        }
        free.insert(host.clone(), f);
    }
    if !moved.is_empty() {
        return Err(drifted(lab, &moved));
    }
    let placed = crate::plan::placement::place(&pinned, Some(&free))
        .map_err(|problems| crate::ops::lab::hosts::unfit(lab, &problems))?;
    let used = placed.used_hosts(lab);
    let mut out = Vec::new();
    for h in &lab.hosts {
        let first = h.name == crate::model::LOCAL_HOST;
        let Some((hv, obs)) = observed.remove(&h.name) else {
            continue;
        };
        if !first && !used.contains(&h.name.as_str()) && obs.is_empty() {
            continue;
        }
        let share = crate::ops::lab::hosts::share(
            lab,
            addrs,
            Some(&placed),
            &h.name,
            &local.dirs,
            &local.image,
        );
        let render = RenderCtx {
            accel: local.accel,
            dirs: share.dirs.clone(),
            image: share.image,
        };
        let (sub, a, dirs) = (share.sub, share.addrs, share.dirs);
        for n in &sub.nodes {
            ctx.place_domain(&crate::names::domain_name(&lab.name, &n.name), &h.name);
        }
        out.push(HostWork {
            host: h.name.clone(),
            hv,
            first,
            sub,
            addrs: a,
            dirs,
            pool_owner: if first { ctx.dirs.pool_owner() } else { None },
            render,
            obs,
        });
    }
    Ok(out)
}

/// A master or the boot node made new on a `dcos:` lab that has nodes already is bad input when
/// DC/OS may be on it: DC/OS's masters are fixed at install (`master_list` with static
/// discovery; ZooKeeper's ensemble is those masters), and the boot node serves the bootstrap the
/// cluster was installed from. A node that does not run cannot say, so it counts as installed.
async fn refuse_new_masters(
    ctx: &Ctx,
    lab: &Lab,
    work: &[HostWork],
    planned: &[Vec<Action>],
) -> anyhow::Result<()> {
    use crate::model::Role;
    let new: Vec<&str> = planned
        .iter()
        .flatten()
        .filter_map(|a| match a {
            Action::DefineDomain {
                node,
                role: Role::Master | Role::Boot,
                ..
            } => Some(node.as_str()),
            _ => None,
        })
        .collect();
    let made = work.iter().any(|w| !w.obs.domains.is_empty());
    if !lab.dcos.enabled || new.is_empty() || !made {
        return Ok(());
    }
    let state = lab_state::read(ctx, &lab.name).await?;
    let asked = crate::ops::lab::dcos::probe(ctx, &ctx.dirs.lab(&lab.name), &state.nodes).await;
    let on: Vec<String> = asked
        .iter()
        .filter(|(_, s)| !matches!(s, crate::ops::lab::dcos::NodeInstall::None))
        .map(|(n, s)| match s {
            crate::ops::lab::dcos::NodeInstall::Unknown { reason } => {
                format!("{n}: cannot tell, {reason}")
            }
            s => format!("{n}: {}", s.describe()),
        })
        .collect();
    if on.is_empty() {
        return Ok(());
    }
    Err(crate::BadInput(format!(
        "{}: lab {} cannot take the new {} {}: DC/OS is or may be installed on it ({}), and DC/OS fixes its masters at install (static master_list, the ZooKeeper ensemble) and its bootstrap at the boot node\n  fix: add agents only; for another set of masters, `dcos-lab down {}` and `up` afresh",
        lab.source,
        lab.name,
        if new.len() == 1 { "node" } else { "nodes" },
        new.join(", "),
        on.join("; "),
        lab.name
    ))
    .into())
}

/// Nodes that exist (a domain on any host, entries on the first host's networks) and that the
/// lab file no longer lists are bad input: an agent goes with `down --node`, the rest with the lab.
async fn refuse_removed(ctx: &Ctx, lab: &Lab, work: &[HostWork]) -> anyhow::Result<()> {
    let mut gone = std::collections::BTreeSet::new();
    for w in work {
        gone.extend(w.obs.domains.keys().cloned());
        for entries in w.obs.network_entries.values() {
            gone.extend(entries.iter().filter_map(|e| e.node()).map(str::to_string));
        }
    }
    gone.retain(|n| lab.node(n).is_none());
    if gone.is_empty() {
        return Ok(());
    }
    let state = lab_state::read(ctx, &lab.name).await?;
    let nodes = gone
        .into_iter()
        .map(|n| {
            let role = state
                .node(&n)
                .map(|s| s.role.clone())
                .unwrap_or_else(|| NOT_MADE.to_string());
            (n, role)
        })
        .collect();
    Err(UpError::Removed {
        file: lab.source.clone(),
        lab: lab.name.clone(),
        nodes,
    }
    .into())
}

/// The bad input of a lab that exists with another definition than its lab file renders:
/// each difference, and the fix.
fn drifted(lab: &Lab, differences: &[String]) -> anyhow::Error {
    UpError::Drifted {
        lab: lab.name.clone(),
        differences: differences.to_vec(),
    }
    .into()
}

/// Objects on `w`'s host that exist with a definition other than the one the lab file renders.
fn host_drift(lab: &Lab, full: &AddressPlan, w: &HostWork) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (kind, present) in &w.obs.network_entries {
        for e in present {
            let Some(node) = e.node() else { continue };
            if lab.node(node).is_some() && !full.entries(*kind, node).contains(e) {
                out.push(format!(
                    "node {node}: its {} on the {kind} network is not the lab file's",
                    e.describe()
                ));
            }
        }
    }
    for (node, spec) in &w.obs.domain_specs {
        if lab.node(node).is_none() {
            continue; // `removed` names it, with its own fix
        }
        let xml = render::domain_xml(lab, full, node, &w.render)?;
        if !xml.contains(&format!("spec=\"{spec}\"")) {
            out.push(format!(
                "node {node}{}: its definition changed (memory, vCPUs, networks, image or accelerator)",
                w.on()
            ));
        }
    }
    for (kind, spec) in &w.obs.network_specs {
        let xml = if w.first {
            render::network_xml(lab, full, *kind)?
        } else {
            render::overlay_network_xml(lab, &w.addrs, *kind)?
        };
        // A network an earlier dcos-lab made carries a hash over its nodes' entries too.
        let legacy = w.first && render::legacy_network_spec(lab, full, *kind)? == *spec;
        if !xml.contains(&format!("spec=\"{spec}\"")) && !legacy {
            out.push(format!(
                "{kind} network{}: its definition changed (addresses, mode, nodes or hosts)",
                w.on()
            ));
        }
    }
    Ok(out)
}

/// The base image's files, each with where it goes on a remote host.
fn image_files(
    local: &render::BootImage,
    remote: &render::BootImage,
) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    let mut out = vec![(local.disk.clone(), remote.disk.clone())];
    if let (Some(a), Some(b)) = (&local.kernel, &remote.kernel) {
        out.push((a.clone(), b.clone()));
    }
    if let (Some(a), Some(b)) = (&local.initrd, &remote.initrd) {
        out.push((a.clone(), b.clone()));
    }
    out
}

/// The volume XML of a file sent to a remote pool as is (the base image, a seed).
fn upload_xml(name: &str, bytes: u64) -> String {
    format!(
        "<volume type='file'><name>{name}</name><capacity unit='bytes'>{bytes}</capacity><target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>"
    )
}

/// Sends local file `from` into `pool` on `hv` as volume `name`.
async fn upload(hv: &Hv, pool: &str, name: &str, from: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::metadata(from)
        .with_context(|| format!("cannot read {}", from.display()))?
        .len();
    let (p, xml, f) = (
        pool.to_string(),
        upload_xml(name, bytes),
        from.to_path_buf(),
    );
    blocking(hv, move |h| h.upload_volume(&p, &xml, &f).map(|_| ())).await
}

/// What making a lab's objects on its hosts and starting its nodes works with.
struct Making<'a> {
    ctx: &'a Ctx,
    lab: &'a Lab,
    addrs: &'a AddressPlan,
    lab_dirs: &'a LabDirs,
    /// Where QEMU reads the base image on the local host.
    image: &'a render::BootImage,
    key: &'a LabKey,
    known: &'a KnownHosts,
}

impl Making<'_> {
    /// Takes `actions` on `w`'s host. Domains are defined, not started: returns what was done.
    async fn create_on(&self, w: &HostWork, actions: &[Action]) -> anyhow::Result<Vec<String>> {
        let (lab, full, local_dirs, local_image, key, known, overlay) = (
            self.lab,
            self.addrs,
            self.lab_dirs,
            self.image,
            self.key,
            self.known,
            &self.ctx.overlay,
        );
        let hv = &w.hv;
        let pool = crate::names::pool_name(&lab.name);
        let mut taken = Vec::new();
        // A host other than the first gets the base image in its pool before the first disk
        // backed by it (and again, whole, if no disk exists yet: an upload cut short leaves a part).
        let needs_image = !w.first
            && actions
                .iter()
                .any(|a| matches!(a, Action::CreateDisk { .. }));
        let mut uploaded = false;
        for action in actions {
            match action {
                Action::CreatePool { .. } => {
                    let xml = render::pool_xml(lab, &w.dirs, w.pool_owner)?;
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
                    let xml = if w.first {
                        render::network_xml(lab, full, *kind)?
                    } else {
                        render::overlay_network_xml(lab, &w.addrs, *kind)?
                    };
                    blocking(hv, move |h| h.define_network(&xml)).await?;
                }
                Action::StartNetwork { network } => {
                    let n = network.clone();
                    blocking(hv, move |h| h.start_network(&n)).await?;
                }
                Action::AddToNetwork {
                    network, entries, ..
                } => {
                    for e in entries {
                        let (n, e) = (network.clone(), e.clone());
                        blocking(hv, move |h| h.update_network(&n, &e, true)).await?;
                    }
                }
                Action::CreateDisk { node, .. } => {
                    if needs_image && !uploaded {
                        uploaded = true;
                        for (from, to) in image_files(local_image, &w.render.image) {
                            let name = to
                                .file_name()
                                .and_then(|n| n.to_str())
                                .unwrap_or_default()
                                .to_string();
                            upload(hv, &pool, &name, &from).await?;
                            taken.push(format!(
                                "upload {} as volume {name}{}",
                                from.display(),
                                w.on()
                            ));
                        }
                    }
                    known.forget(node)?;
                    let n = lab.node(node).context("node")?;
                    let xml = render::disk_volume_xml(n, &w.render.image)?;
                    let p = pool.clone();
                    blocking(hv, move |h| h.create_volume(&p, &xml)).await?;
                }
                Action::WriteSeed { node, .. } => {
                    let seed = render::cloudinit::seed(lab, full, node, &key.public_openssh())?;
                    if w.first {
                        write_seed(&w.dirs, node, &seed)?;
                        crate::fault::step(&format!("write the seed of {node}"));
                        let p = pool.clone();
                        blocking(hv, move |h| h.refresh_pool(&p)).await?;
                    } else {
                        // Made here, sent there.
                        let staging =
                            LabDirs::local(local_dirs.private.join(format!(".upload-{}", w.host)));
                        std::fs::create_dir_all(staging.pool())?;
                        write_seed(&staging, node, &seed)?;
                        let file = staging.seed(node);
                        upload(hv, &pool, &crate::names::seed_volume_name(node), &file).await?;
                        let _ = std::fs::remove_dir_all(staging.path());
                    }
                }
                Action::DefineDomain { node, .. } => {
                    known.forget(node)?;
                    let xml = render::domain_xml(lab, full, node, &w.render)?;
                    blocking(hv, move |h| h.define_domain(&xml)).await?;
                }
                Action::StartDomain { .. } | Action::WaitSsh { .. } => continue,
            }
            tracing::debug!("{}{}", action.describe(), w.on());
            taken.push(format!("{}{}", action.describe(), w.on()));
        }
        // The first host's networks joined to their VLANs on the overlay (every time: idempotent).
        if w.first && lab.spans_hosts() {
            for net in &full.networks {
                let (o, bridge, vlan) = (overlay.clone(), net.bridge.clone(), net.vlan);
                let Some(vlan) = vlan else { continue };
                tokio::task::spawn_blocking(move || o.link(plan::OVERLAY_BRIDGE, &bridge, vlan))
                    .await?
                    .with_context(|| {
                        format!("cannot join the {} network to the overlay", net.kind)
                    })?;
            }
        }
        Ok(taken)
    }

    /// Every host's `planned` actions: the first host first (its networks name the others, so
    /// `down` finds everything), then every other host at once. Returns what was done.
    async fn create_everywhere(
        &self,
        work: &[HostWork],
        planned: &[Vec<Action>],
    ) -> anyhow::Result<Vec<String>> {
        let (first, rest) = work.split_at(1);
        let mut taken = self.create_on(&first[0], &planned[0]).await?;
        let others = rest
            .iter()
            .zip(planned.iter().skip(1))
            .map(|(w, actions)| self.create_on(w, actions));
        for (w, r) in rest
            .iter()
            .zip(crate::driver::join_all(others.collect()).await)
        {
            taken.extend(r.with_context(|| format!("on host {}", w.host))?);
        }
        Ok(taken)
    }

    /// Every node of `planned` started (where it is to be) and waited for at once, each with its
    /// own progress line; a node that does not answer within `wait` is named with the last lines
    /// of its console. Returns the starts done.
    async fn start_and_wait(
        &self,
        planned: &[Vec<Action>],
        progress: &Progress,
        wait: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let (ctx, lab, lab_dirs, key, known) =
            (self.ctx, self.lab, self.lab_dirs, self.key, self.known);
        let mut started = Vec::new();
        let mut to_start = Vec::new();
        let mut to_wait = Vec::new();
        // A node made before this `up` has the names of the nodes there were at its first boot:
        // it gets the lab's names now (an agent added or removed since).
        let made_now: Vec<&str> = planned
            .iter()
            .flatten()
            .filter(|a| matches!(a, Action::DefineDomain { .. }))
            .filter_map(Action::node)
            .collect();
        let names = render::cloudinit::etc_hosts(lab, self.addrs);
        for action in planned.iter().flatten() {
            match action {
                Action::StartDomain { node, domain } => {
                    to_start.push((node.clone(), domain.clone()))
                }
                Action::WaitSsh { node, address } => to_wait.push((node.clone(), *address)),
                _ => {}
            }
            if let Action::StartDomain { .. } = action {
                started.push(action.describe());
            }
        }

        // Every node starts and is waited for at once; each has its own progress line.
        let starting: BTreeMap<String, String> = to_start.into_iter().collect();
        let booting = to_wait.into_iter().map(|(node, address)| {
            let domain = crate::names::domain_name(&lab.name, &node);
            let host = ctx.host_of(&domain);
            Booting {
                line: Arc::new(progress.spinner(&node)),
                hv: ctx.hv_for(&domain),
                start: starting.get(&node).cloned(),
                // A node on another host has its console log there, in the lab's pool.
                console_dirs: ctx.dirs.lab_on(&lab.name, &host),
                host,
                lab: lab.name.clone(),
                check: render::cloudinit::ready_check(lab, &node),
                names: (!made_now.contains(&node.as_str())).then(|| names.clone()),
                guests: ctx.guests.clone(),
                target: Target {
                    node: node.clone(),
                    domain,
                    addr: SocketAddr::new(IpAddr::V4(address), 22),
                    key: key.clone(),
                    known: known.clone(),
                },
                node,
            }
        });
        let results = nodes::all_at_once(booting, |b| b.start_and_wait(wait)).await?;
        let failures: Vec<anyhow::Error> = results.into_iter().filter_map(Result::err).collect();
        if let Some(first) = failures.into_iter().next() {
            return Err(first.context(format!(
                "lab {} is not up; the other nodes are left running for inspection, console logs are in {}",
                lab.name,
                lab_dirs.console_log("").parent().unwrap_or(Path::new("")).display()
            )));
        }
        Ok(started)
    }
}

/// One node `up` starts (when `start` names its domain) and waits for.
struct Booting {
    node: String,
    start: Option<String>,
    hv: Hv,
    host: String,
    target: Target,
    /// Where its console log is, on its host.
    console_dirs: LabDirs,
    lab: String,
    /// The shell test that says first-boot configuration is done.
    check: String,
    /// The lab's names, for a node made before: its `/etc/hosts` is brought up to date.
    names: Option<String>,
    guests: Arc<dyn crate::guest::Guests>,
    line: Arc<Line>,
}

impl Booting {
    /// Starts the node if asked, then waits until it answers within `wait`.
    async fn start_and_wait(self, wait: Duration) -> anyhow::Result<()> {
        if let Some(domain) = self.start.clone() {
            self.line.step("starting");
            if let Err(e) = blocking(&self.hv, move |h| h.start_domain(&domain)).await {
                self.line.fail("cannot start");
                return Err(e.context(format!("cannot start node {}", self.node)));
            }
        }
        self.line.step("booting: waiting for SSH");
        let t0 = Instant::now();
        let l2 = self.line.clone();
        let ready = self
            .guests
            .wait_ready(&self.target, Some(&self.check), wait, &move |last| {
                l2.step(if last.starts_with("SSH answers") {
                    "first-boot configuration"
                } else {
                    "booting: waiting for SSH"
                })
            })
            .await;
        match ready {
            Ok(s) => {
                if let Some(names) = &self.names {
                    let synced =
                        crate::ops::lab::host_names::sync_in_guest(s.as_ref(), names).await;
                    if let Err(e) = synced {
                        s.close().await;
                        self.line.fail("cannot update /etc/hosts");
                        return Err(e.context(format!("node {}", self.node)));
                    }
                }
                s.close().await;
                let secs = t0.elapsed().as_secs_f64();
                self.line.done(&format!("ready ({secs:.0} s)"));
                Ok(())
            }
            Err(e) => {
                self.line.fail("no SSH");
                Err(self.unreachable(e).await.into())
            }
        }
    }

    /// The node did not answer: named with the last lines of its console.
    async fn unreachable(self, source: crate::guest::GuestError) -> UpError {
        let path = self.console_dirs.console_log(&self.node);
        let on = if self.host == crate::model::LOCAL_HOST {
            String::new()
        } else {
            format!(" on host {}", self.host)
        };
        let read = crate::ops::lab::storage::read_console(
            &self.hv,
            &self.lab,
            &self.console_dirs,
            &self.node,
        )
        .await;
        let tail = match read {
            Ok(text) => console_tail(&text, 20),
            Err(e) => format!("  (no console log: {e:#})"),
        };
        UpError::NotReachable {
            node: self.node,
            console: format!(
                "the last lines of its console ({}{on}):\n{tail}",
                path.display()
            ),
            source,
        }
    }
}

/// Brings `lab` up, or converges it: creates what is missing, starts what is stopped.
pub async fn up(
    ctx: &Ctx,
    lab: &Lab,
    accel: AccelDecision,
    opts: &UpOptions,
) -> anyhow::Result<UpReport> {
    let dirs = &ctx.dirs;
    let started = Instant::now();
    let progress = Progress::new();
    tracing::info!(
        "lab {}: accelerator {} ({})",
        lab.name,
        accel.accel,
        accel.reason
    );
    crate::ops::lab::state::refuse_foreign(ctx, &lab.name).await?;
    // The nodes made keep their addresses, wherever the lab file now lists them.
    let lab = &crate::ops::lab::indices::as_made(ctx, lab).await?;
    let addrs = plan::plan_addresses(lab);
    let lab_dirs = dirs.lab(&lab.name);
    let render_ctx = RenderCtx {
        accel: accel.accel,
        dirs: lab_dirs.clone(),
        image: crate::image::qemu_image(dirs, &lab.image),
    };
    let mut work = host_work(ctx, lab, &addrs, &render_ctx).await?;
    refuse_removed(ctx, lab, &work).await?;
    let mut changed = Vec::new();
    for w in &work {
        changed.extend(host_drift(lab, &addrs, w)?);
    }
    if !changed.is_empty() {
        return Err(drifted(lab, &changed));
    }
    let finished = take_over(ctx, lab, &mut work, opts.wait).await?;
    // A remote pool with no disk in it yet may hold an upload cut short: it is made again.
    for w in work.iter_mut().filter(|w| !w.first) {
        let has_disk = w.sub.nodes.iter().any(|n| {
            w.obs
                .volumes
                .contains(&crate::names::disk_volume_name(&n.name))
        });
        if w.obs.pool.is_some() && !has_disk && w.obs.domains.is_empty() {
            let p = crate::names::pool_name(&lab.name);
            blocking(&w.hv, move |h| h.remove_pool(&p)).await?;
            w.obs.pool = None;
            w.obs.volumes.clear();
        }
    }
    let mut planned = Vec::new();
    for w in &work {
        let backing = w.render.image.disk.display().to_string();
        let mut actions = plan::plan_up(&w.sub, &w.addrs, &w.dirs, &backing, &w.obs);
        if !opts.nodes.is_empty() {
            actions.retain(|a| a.node().is_none_or(|n| opts.nodes.iter().any(|c| c == n)));
        }
        if w.sub.nodes.is_empty() {
            actions.retain(|a| {
                matches!(
                    a,
                    Action::DefineNetwork { .. }
                        | Action::StartNetwork { .. }
                        | Action::AddToNetwork { .. }
                )
            });
        }
        planned.push(actions);
    }
    let creating = planned
        .iter()
        .flatten()
        .any(|a| !matches!(a, Action::WaitSsh { .. }));
    if creating {
        preflight(ctx.hv(), &work[0].sub, &addrs, &planned[0], &work[0].obs).await?;
        refuse_new_masters(ctx, lab, &work, &planned).await?;
        ensure_image(dirs, lab, &progress).await?;
    }

    // The lab's own files: disks and console logs where QEMU reaches them, the key (0600) and
    // pinned host keys in a 0700 directory (`storage`); a plain user's base image beside them.
    crate::ops::lab::storage::prepare_lab(ctx, &lab_dirs).await?;
    if creating {
        let (d, i) = (dirs.clone(), lab.image.clone());
        tokio::task::spawn_blocking(move || crate::image::publish(&d, &i))
            .await?
            .with_context(|| format!("cannot put image {} where QEMU reads it", lab.image))?;
    }
    let key = LabKey::load_or_create(&lab_dirs.ssh_key(), &format!("dcos-lab {}", lab.name))?;
    let known = KnownHosts::load(&lab_dirs.known_hosts())?;

    let making = Making {
        ctx,
        lab,
        addrs: &addrs,
        lab_dirs: &lab_dirs,
        image: &render_ctx.image,
        key: &key,
        known: &known,
    };
    let mut taken = finished;
    taken.extend(making.create_everywhere(&work, &planned).await?);
    // The nodes by name from the host, once they exist (a later `down` removes them).
    let names_warning = crate::ops::lab::host_names::add(ctx, lab, &addrs);
    taken.extend(
        making
            .start_and_wait(&planned, &progress, opts.wait)
            .await?,
    );
    let nodes = lab_state::read(ctx, &lab.name).await?.nodes;
    Ok(UpReport {
        lab: lab.name.clone(),
        accel,
        actions: taken,
        nodes,
        seconds: started.elapsed().as_secs_f64(),
        warnings: names_warning.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_daemon_on_this_machine_can_be_a_labs_first_host() {
        for uri in [
            "qemu:///system",
            "qemu+unix:///system?socket=/tmp/x/libvirt-sock",
            "fake:///",
        ] {
            assert!(super::is_local_uri(uri), "{uri}");
        }
        for uri in [
            "qemu+ssh://root@runner1/system",
            "qemu+tcp://10.0.0.1/system",
        ] {
            assert!(!super::is_local_uri(uri), "{uri}");
        }
    }
}
