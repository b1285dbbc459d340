//! `plan`: what `up` would do, computed without changing anything [reads libvirt when reachable].

use serde::Serialize;

use crate::driver::{DriverError, Hypervisor};
use crate::host::AccelDecision;
use crate::model::{Lab, NetKind};
use crate::paths::Dirs;
use crate::plan::{self, Action, AddressPlan, ObjState, Observed};

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
    pub actions: Vec<Action>,
}

/// Reads what libvirt already has of `lab`.
pub fn observe(hv: &dyn Hypervisor, lab: &str) -> Result<Observed, DriverError> {
    let mut obs = Observed::default();
    if let Some(pool) = hv.pool(&plan::pool_name(lab))? {
        obs.pool = Some(pool.state);
        obs.volumes = pool.volumes;
    }
    for n in hv.owned_networks()? {
        if n.tag.lab != lab {
            continue;
        }
        let kind = match n.tag.network.as_deref() {
            Some("private") => NetKind::Private,
            Some("public") => NetKind::Public,
            _ => continue,
        };
        obs.networks.insert(kind, n.state);
        if let Some(spec) = n.tag.spec {
            obs.network_specs.insert(kind, spec);
        }
    }
    for d in hv.owned_domains()? {
        if d.tag.lab != lab {
            continue;
        }
        if let Some(node) = d.tag.node {
            obs.domains.insert(node.clone(), d.state);
            if let Some(spec) = d.tag.spec {
                obs.domain_specs.insert(node, spec);
            }
        }
    }
    Ok(obs)
}

/// The `plan` command: against what libvirt has at `uri`, or (`offline`, or libvirt not
/// reachable, which is said) as if nothing of the lab existed.
pub fn plan_command(
    lab: &Lab,
    accel: AccelDecision,
    dirs: &Dirs,
    uri: &str,
    offline: bool,
) -> Result<PlanReport, DriverError> {
    let conn = if offline {
        None
    } else {
        match crate::driver::Libvirt::open(Some(uri)) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(
                    "{}; planning as if the lab did not exist",
                    crate::error_chain(&e)
                );
                None
            }
        }
    };
    plan(
        lab,
        accel,
        dirs,
        conn.as_ref().map(|c| c as &dyn Hypervisor),
    )
}

/// Builds the report; `hv` is `None` when libvirt is not reachable.
pub fn plan(
    lab: &Lab,
    accel: AccelDecision,
    dirs: &Dirs,
    hv: Option<&dyn Hypervisor>,
) -> Result<PlanReport, DriverError> {
    let addresses = plan::plan_addresses(lab);
    let observed = match hv {
        Some(hv) => Some(observe(hv, &lab.name)?),
        None => None,
    };
    let backing = crate::image::backing_path(dirs, &lab.image);
    let actions = plan::plan_up(
        lab,
        &addresses,
        &dirs.lab(&lab.name),
        &backing.display().to_string(),
        observed.as_ref().unwrap_or(&Observed::default()),
    );
    Ok(PlanReport {
        lab: lab.name.clone(),
        source: lab.source.clone(),
        image: lab.image.to_string(),
        accel,
        observed: observed.is_some(),
        addresses,
        actions,
    })
}

/// The human form of a plan.
pub fn describe(r: &PlanReport) -> String {
    let mut out = format!(
        "lab {} ({}), image {}, accelerator {} ({})\n",
        r.lab, r.source, r.image, r.accel.accel, r.accel.reason
    );
    if !r.observed {
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
        out.push_str(&format!("node {:<10} {}\n", n.node, nics.join(", ")));
    }
    if r.actions
        .iter()
        .all(|a| matches!(a, Action::WaitSsh { .. }))
    {
        out.push_str("everything exists and runs: up would only check that every node answers\n");
    }
    for (i, a) in r.actions.iter().enumerate() {
        out.push_str(&format!("{:>3}. {}\n", i + 1, a.describe()));
    }
    out
}

/// True when a state counts as present for `status`-like views.
pub fn is_up(s: ObjState) -> bool {
    s == ObjState::Active
}
