//! `plan`: what `up` would do, computed without changing anything [reads libvirt when reachable].

use serde::Serialize;

use std::collections::BTreeMap;

use crate::driver::{Hv, Hypervisor};
use crate::host::AccelDecision;
use crate::model::{LOCAL_HOST, Lab};
use crate::paths::Dirs;
use crate::plan::placement::{self, NodePlacement};
use crate::plan::{self, Action, AddressPlan, Observed};

/// The plan of one lab, as `plan` prints it.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub lab: String,
    pub source: String,
    pub image: String,
    pub accel: AccelDecision,
    /// Whether the actions were computed against what libvirt has (`false`: libvirt was not
    /// reachable and the lab is assumed absent).
    pub observed: bool,
    pub addresses: AddressPlan,
    /// Which host each node runs on; only for a lab whose file names other hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<NodePlacement>,
    /// What `up` would do: only what is missing or stopped.
    pub actions: Vec<PlannedAction>,
    /// Nodes that exist and run: `up` only checks them (SSH, the lab's names in /etc/hosts).
    pub running: Vec<String>,
}

/// One action, with the host it is taken on when the lab names several.
#[derive(Debug, Serialize)]
pub struct PlannedAction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(flatten)]
    pub action: Action,
}

/// The `plan` command: against what libvirt has at `uri` (and, for a lab across hosts, at each
/// of its hosts), or (`offline`, or a host not reachable, which is said) as if nothing of the lab
/// existed there. A lab whose hosts cannot hold its nodes is bad input, as for `up`.
pub fn plan_command(
    lab: &Lab,
    accel: AccelDecision,
    dirs: &Dirs,
    uri: &str,
    offline: bool,
    connect: &crate::ops::context::Connect,
) -> anyhow::Result<PlanReport> {
    let mut conns: BTreeMap<String, Hv> = BTreeMap::new();
    if !offline {
        for h in &lab.hosts {
            let at = h.uri.as_deref().unwrap_or(uri);
            match connect(at) {
                Ok(c) => {
                    conns.insert(h.name.clone(), c);
                }
                Err(e) => tracing::warn!(
                    "host {}: {}; planning as if the lab did not exist there",
                    h.name,
                    crate::error_chain(&e)
                ),
            }
        }
    }
    let hvs: BTreeMap<String, &dyn Hypervisor> = conns
        .iter()
        .map(|(k, c)| (k.clone(), c.as_ref() as &dyn Hypervisor))
        .collect();
    plan(lab, accel, dirs, &hvs)
}

/// Builds the report from the hosts that answered (`hvs`, by host name; none when offline).
/// A lab on one host plans as it always has; a lab across hosts is placed first (each host's free
/// memory read when every host answered), then planned host by host.
pub fn plan(
    lab: &Lab,
    accel: AccelDecision,
    dirs: &Dirs,
    hvs: &BTreeMap<String, &dyn Hypervisor>,
) -> anyhow::Result<PlanReport> {
    // The nodes made keep their addresses, wherever the lab file now lists them.
    let lab = &match hvs.get(LOCAL_HOST) {
        Some(hv) => {
            let net = crate::names::network_name(&lab.name, crate::model::NetKind::Private);
            let entries = match hv.network_entries(&net) {
                Err(e) if e.is_not_found() => Vec::new(),
                r => r?,
            };
            crate::ops::lab::indices::with_entries(lab, &entries)?
        }
        None => lab.clone(),
    };
    let addresses = plan::plan_addresses(lab);
    let image = crate::image::qemu_image(dirs, &lab.image);
    let lab_dirs = dirs.lab(&lab.name);
    let all_answered = lab.hosts.iter().all(|h| hvs.contains_key(&h.name));
    let placed = if lab.spans_hosts() {
        let mut free = BTreeMap::new();
        for (name, hv) in hvs {
            free.insert(name.clone(), hv.free_memory()?);
        }
        let placed = placement::place(lab, all_answered.then_some(&free))
            .map_err(|problems| crate::ops::lab::hosts::unfit(lab, &problems))?;
        Some(placed)
    } else {
        None
    };
    // Every host with nodes gets the pool, the networks (`hosts::share`), and its nodes' disks,
    // seeds and domains; the first host gets its networks even without nodes.
    let mut actions = Vec::new();
    let mut running = Vec::new();
    for host in lab.hosts.iter().map(|h| h.name.as_str()) {
        let first = host == LOCAL_HOST;
        if let Some(placed) = &placed
            && !first
            && !placed.used_hosts(lab).contains(&host)
        {
            continue;
        }
        let share = crate::ops::lab::hosts::share(
            lab,
            &addresses,
            placed.as_ref(),
            host,
            &lab_dirs,
            &image,
        );
        let only_networks = share.sub.nodes.is_empty();
        let observed = match hvs.get(host) {
            Some(hv) => crate::ops::lab::observe::observe(*hv, &lab.name)?,
            None => Observed::default(),
        };
        let backing = share.image.disk.display().to_string();
        // A node that runs is only checked by `up`: it is named, not planned.
        let runs = |node: &str| observed.domains.get(node) == Some(&crate::names::ObjState::Active);
        running.extend(
            share
                .sub
                .nodes
                .iter()
                .filter(|n| runs(&n.name))
                .map(|n| n.name.clone()),
        );
        actions.extend(
            plan::plan_up(&share.sub, &share.addrs, &share.dirs, &backing, &observed)
                .into_iter()
                .filter(|a| !matches!(a, Action::WaitSsh { node, .. } if runs(node)))
                .filter(|a| {
                    !only_networks
                        || matches!(
                            a,
                            Action::DefineNetwork { .. }
                                | Action::StartNetwork { .. }
                                | Action::AddToNetwork { .. }
                        )
                })
                .map(|action| PlannedAction {
                    host: placed.is_some().then(|| host.to_string()),
                    action,
                }),
        );
    }
    Ok(PlanReport {
        lab: lab.name.clone(),
        source: lab.source.clone(),
        image: lab.image.to_string(),
        accel,
        observed: all_answered,
        addresses,
        placement: placed,
        actions,
        running,
    })
}

/// The human form of a plan.
pub fn describe(r: &PlanReport) -> String {
    let mut out = format!(
        "lab {} ({}), image {}, accelerator {} ({})\n",
        r.lab, r.source, r.image, r.accel.accel, r.accel.reason
    );
    if !r.observed && r.placement.is_some() {
        out.push_str("libvirt not consulted on every host (--offline, or a host not reachable, named above): planned as if nothing of the lab exists there\n");
    } else if !r.observed {
        out.push_str("libvirt not consulted (--offline, or not reachable): planned as if nothing of the lab exists\n");
    }
    for n in &r.addresses.networks {
        let v6 = match (n.gateway6, n.prefix6) {
            (Some(g), Some(p)) => format!(", {g}/{p}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "network {:<8} {} bridge {} host {}/{}{}\n",
            n.kind, n.name, n.bridge, n.gateway4, n.prefix4, v6
        ));
    }
    for n in &r.addresses.nodes {
        let nics: Vec<String> = n
            .nics
            .iter()
            .map(|nic| {
                let v6 = nic.ipv6.map(|a| format!(" {a}")).unwrap_or_default();
                format!("{}={}{} ({})", nic.net, nic.ipv4, v6, nic.mac)
            })
            .collect();
        let on = match &r.placement {
            Some(p) => p
                .nodes
                .iter()
                .find(|p| p.node == n.node)
                .map(|p| format!(" on {} ({})", p.host, placed_by(p.by)))
                .unwrap_or_default(),
            None => String::new(),
        };
        out.push_str(&format!("node {:<10} {}{on}\n", n.node, nics.join(", ")));
    }
    if let Some(p) = &r.placement
        && !p.memory_known
        && p.nodes.iter().any(|n| n.by == placement::PlacedBy::Auto)
    {
        out.push_str("placement: auto without every host's free memory (--offline, or a host did not answer): spread as if every host had the same free\n");
    }
    if r.actions.is_empty() {
        out.push_str("everything exists and runs: up would only check that every node answers\n");
    } else if !r.running.is_empty() {
        out.push_str(&format!(
            "running, only checked by up: {}\n",
            r.running.join(", ")
        ));
    }
    for (i, a) in r.actions.iter().enumerate() {
        match &a.host {
            Some(h) => out.push_str(&format!("{:>3}. [{h}] {}\n", i + 1, a.action.describe())),
            None => out.push_str(&format!("{:>3}. {}\n", i + 1, a.action.describe())),
        }
    }
    out
}

fn placed_by(by: placement::PlacedBy) -> &'static str {
    match by {
        placement::PlacedBy::File => "host: in the lab file",
        placement::PlacedBy::Default => "the local host by default",
        placement::PlacedBy::Auto => "placement: auto",
    }
}
