//! What libvirt has of a lab on one host, read for planning (`plan::plan_up`) [I/O: libvirt].

use crate::driver::{DriverError, Hypervisor};
use crate::model::NetKind;
use crate::plan::Observed;

/// [`observe`] once the hypervisor has finished every change under way on the lab's domains.
/// A command killed with a change in flight (a pause, a start) leaves libvirtd making it, and a
/// state read before it is made would be planned against: a node seen running and paused a
/// moment later would never be resumed, and `up` would wait for it in vain.
pub fn observe_settled(hv: &dyn Hypervisor, lab: &str) -> Result<Observed, DriverError> {
    for d in hv.owned_domains()? {
        if d.tag.lab != lab {
            continue;
        }
        match hv.settle_domain(&d.name) {
            Err(e) if e.is_not_found() => {}
            r => r?,
        }
    }
    observe(hv, lab)
}

/// Reads what libvirt already has of `lab`.
pub fn observe(hv: &dyn Hypervisor, lab: &str) -> Result<Observed, DriverError> {
    let mut obs = Observed::default();
    if let Some(pool) = hv.pool(&crate::names::pool_name(lab))? {
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
        obs.network_entries
            .insert(kind, hv.network_entries(&n.name)?);
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
