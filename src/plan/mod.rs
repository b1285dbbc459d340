//! (checked lab, what libvirt already has) → the ordered actions `up` takes [pure].

mod address;
pub mod placement;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

pub use address::{
    AddressPlan, Mac, NetEntry, NetPlan, Nic, NodeAddrs, OVERLAY_BRIDGE, bridge_name, overlay_vlan,
    plan_addresses,
};

use crate::model::{ByteSize, Lab, NetKind, Role};
use crate::names::LabDirs;

use crate::names::{ObjState, disk_volume_name, domain_name, pool_name, seed_volume_name};

/// What already exists of a lab: read from libvirt (and the pool directory) by the driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub pool: Option<ObjState>,
    pub networks: BTreeMap<NetKind, ObjState>,
    /// Node name → domain state.
    pub domains: BTreeMap<String, ObjState>,
    /// Volume names present in the lab's pool.
    pub volumes: Vec<String>,
    /// Spec hashes found in the metadata of existing domains (by node) and networks.
    pub domain_specs: BTreeMap<String, String>,
    pub network_specs: BTreeMap<NetKind, String>,
    /// The node entries (DHCP and DNS hosts) of each network that exists.
    pub network_entries: BTreeMap<NetKind, Vec<NetEntry>>,
}

/// A node by name, as the lab's hosts files name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeName {
    pub node: String,
    /// Its private address.
    pub ipv4: Ipv4Addr,
    /// Its first IPv6 address, on whichever network.
    pub ipv6: Option<std::net::Ipv6Addr>,
}

/// Every node of an address plan by name.
pub fn node_names(plan: &AddressPlan) -> Vec<NodeName> {
    plan.nodes
        .iter()
        .filter_map(|n| {
            Some(NodeName {
                node: n.node.clone(),
                ipv4: n.private_ipv4()?,
                ipv6: n.nics.iter().find_map(|nic| nic.ipv6),
            })
        })
        .collect()
}

/// Every node by name from a made lab's network entries (its private network's IPv4 DHCP
/// hosts; the IPv6 ones of the private network, then of the public one): what
/// [`node_names`] gives for the plan the lab was made from.
pub fn names_from_entries(entries: &BTreeMap<NetKind, Vec<NetEntry>>) -> Vec<NodeName> {
    let dhcp = |kind: NetKind, index: u8| {
        entries
            .get(&kind)
            .into_iter()
            .flatten()
            .filter_map(move |e| match e {
                NetEntry::Dhcp {
                    ip, name, address, ..
                } if *ip == index => Some((name.clone(), address.clone())),
                _ => None,
            })
    };
    dhcp(NetKind::Private, 0)
        .filter_map(|(node, a)| {
            let ipv4 = a.parse().ok()?;
            let ipv6 = dhcp(NetKind::Private, 1)
                .chain(dhcp(NetKind::Public, 1))
                .find(|(n, _)| *n == node)
                .and_then(|(_, a)| a.parse().ok());
            Some(NodeName { node, ipv4, ipv6 })
        })
        .collect()
}

/// The node indices a made lab holds, from its private network's IPv4 DHCP hosts: a node's MAC
/// ends in its index ([`Mac::of`]).
pub fn kept_indices(private: &[NetEntry]) -> BTreeMap<String, u8> {
    private
        .iter()
        .filter_map(|e| match e {
            NetEntry::Dhcp {
                ip: 0,
                mac: Some(mac),
                name,
                ..
            } => {
                let last = mac.rsplit(':').next()?;
                Some((name.clone(), u8::from_str_radix(last, 16).ok()?))
            }
            _ => None,
        })
        .collect()
}

impl Observed {
    pub fn is_empty(&self) -> bool {
        self.pool.is_none()
            && self.networks.is_empty()
            && self.domains.is_empty()
            && self.volumes.is_empty()
    }
}

/// One step of `up`, in the order it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Define, build and start the lab's storage pool (a directory).
    CreatePool {
        pool: String,
        path: String,
    },
    StartPool {
        pool: String,
    },
    DefineNetwork {
        network: String,
        kind: NetKind,
        bridge: String,
        /// Its VLAN on the overlay (a lab across hosts).
        #[serde(skip_serializing_if = "Option::is_none")]
        vlan: Option<u16>,
    },
    StartNetwork {
        network: String,
    },
    /// Add a node's entries (DHCP and DNS hosts) to a network that runs, without restarting it.
    AddToNetwork {
        node: String,
        network: String,
        entries: Vec<NetEntry>,
    },
    /// Create a node's qcow2 overlay on the base image.
    CreateDisk {
        node: String,
        volume: String,
        size: ByteSize,
        backing: String,
    },
    /// Write a node's NoCloud seed (hostname, SSH key, addresses, /etc/hosts).
    WriteSeed {
        node: String,
        volume: String,
    },
    DefineDomain {
        node: String,
        domain: String,
        role: Role,
    },
    StartDomain {
        node: String,
        domain: String,
    },
    /// Wait until the node answers over SSH.
    WaitSsh {
        node: String,
        address: Ipv4Addr,
    },
}

impl Action {
    /// The node the action is about; `None` for the pool and the networks.
    pub fn node(&self) -> Option<&str> {
        match self {
            Action::CreatePool { .. }
            | Action::StartPool { .. }
            | Action::DefineNetwork { .. }
            | Action::StartNetwork { .. } => None,
            Action::CreateDisk { node, .. }
            | Action::AddToNetwork { node, .. }
            | Action::WriteSeed { node, .. }
            | Action::DefineDomain { node, .. }
            | Action::StartDomain { node, .. }
            | Action::WaitSsh { node, .. } => Some(node),
        }
    }

    /// A short human line, as `plan` prints it.
    pub fn describe(&self) -> String {
        match self {
            Action::CreatePool { pool, path } => format!("create storage pool {pool} at {path}"),
            Action::StartPool { pool } => format!("start storage pool {pool}"),
            Action::DefineNetwork {
                network,
                kind,
                bridge,
                vlan,
            } => match vlan {
                None => format!("define {kind} network {network} (bridge {bridge})"),
                Some(v) if bridge == OVERLAY_BRIDGE => {
                    format!(
                        "define {kind} network {network} (VLAN {v} on the overlay bridge {bridge})"
                    )
                }
                Some(v) => format!(
                    "define {kind} network {network} (bridge {bridge}, the host addresses; joined to VLAN {v} on the overlay bridge {OVERLAY_BRIDGE})"
                ),
            },
            Action::StartNetwork { network } => format!("start network {network}"),
            Action::AddToNetwork {
                node,
                network,
                entries,
            } => format!(
                "add {node} to network {network}, which runs on: {}",
                entries
                    .iter()
                    .map(NetEntry::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Action::CreateDisk {
                node,
                volume,
                size,
                backing,
            } => format!("create disk {volume} for {node}: {size} qcow2 overlay on {backing}"),
            Action::WriteSeed { node, volume } => {
                format!("write cloud-init seed {volume} for {node}")
            }
            Action::DefineDomain { node, domain, role } => {
                format!("define domain {domain} ({role} {node})")
            }
            Action::StartDomain { domain, .. } => format!("start domain {domain}"),
            Action::WaitSsh { node, address } => format!("wait for SSH on {node} ({address})"),
        }
    }
}

/// The actions that take `observed` to the lab described by `lab`. Creation order: pool, networks
/// (a node new to a network that exists: its entries added to it), disks, seeds, domains; then
/// every node starts and is waited for. Objects that exist are not created again; stopped ones
/// are started.
pub fn plan_up(
    lab: &Lab,
    plan: &AddressPlan,
    dirs: &LabDirs,
    backing: &str,
    observed: &Observed,
) -> Vec<Action> {
    let mut out = Vec::new();
    let pool = pool_name(&lab.name);
    match observed.pool {
        None => {
            out.push(Action::CreatePool {
                pool: pool.clone(),
                path: dirs.pool().display().to_string(),
            });
        }
        Some(ObjState::Active) => {}
        Some(_) => out.push(Action::StartPool { pool: pool.clone() }),
    }
    for net in &plan.networks {
        match observed.networks.get(&net.kind) {
            None => {
                out.push(Action::DefineNetwork {
                    network: net.name.clone(),
                    kind: net.kind,
                    bridge: net.bridge.clone(),
                    vlan: net.vlan,
                });
                out.push(Action::StartNetwork {
                    network: net.name.clone(),
                });
            }
            Some(ObjState::Active) => {}
            Some(_) => out.push(Action::StartNetwork {
                network: net.name.clone(),
            }),
        }
    }
    // The entries of every node of the lab (on any host) live in the first host's networks;
    // a network on the overlay bridge has none.
    for net in plan.networks.iter().filter(|n| n.bridge != OVERLAY_BRIDGE) {
        let Some(present) = observed.network_entries.get(&net.kind) else {
            continue;
        };
        if !observed.networks.contains_key(&net.kind) {
            continue;
        }
        for n in &plan.nodes {
            let missing: Vec<NetEntry> = plan
                .entries(net.kind, &n.node)
                .into_iter()
                .filter(|e| !present.contains(e))
                .collect();
            if !missing.is_empty() {
                out.push(Action::AddToNetwork {
                    node: n.node.clone(),
                    network: net.name.clone(),
                    entries: missing,
                });
            }
        }
    }
    let has_vol = |v: &str| observed.volumes.iter().any(|x| x == v);
    for node in &lab.nodes {
        let volume = disk_volume_name(&node.name);
        if !has_vol(&volume) && !observed.domains.contains_key(&node.name) {
            out.push(Action::CreateDisk {
                node: node.name.clone(),
                volume,
                size: node.disk,
                backing: backing.to_string(),
            });
        }
    }
    for node in &lab.nodes {
        let volume = seed_volume_name(&node.name);
        if !has_vol(&volume) {
            out.push(Action::WriteSeed {
                node: node.name.clone(),
                volume,
            });
        }
    }
    for node in &lab.nodes {
        if !observed.domains.contains_key(&node.name) {
            out.push(Action::DefineDomain {
                node: node.name.clone(),
                domain: domain_name(&lab.name, &node.name),
                role: node.role,
            });
        }
    }
    for node in &lab.nodes {
        if observed.domains.get(&node.name) != Some(&ObjState::Active) {
            out.push(Action::StartDomain {
                node: node.name.clone(),
                domain: domain_name(&lab.name, &node.name),
            });
        }
    }
    for node in &lab.nodes {
        if let Some(address) = plan.node(&node.name).and_then(NodeAddrs::private_ipv4) {
            out.push(Action::WaitSsh {
                node: node.name.clone(),
                address,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Lab {
        crate::model::parse(
            crate::model::BUILTIN_LABS[0].1,
            "minimal",
            None,
            &["debian-12"],
        )
        .expect("valid")
    }

    fn dirs() -> LabDirs {
        LabDirs::local("/state/labs/minimal".into())
    }

    #[test]
    fn fresh_lab_creates_everything_in_order() {
        let lab = minimal();
        let plan = plan_addresses(&lab);
        let actions = plan_up(
            &lab,
            &plan,
            &dirs(),
            "/img/base.qcow2",
            &Observed::default(),
        );
        let kinds: Vec<&str> = actions
            .iter()
            .map(|a| match a {
                Action::CreatePool { .. } => "pool",
                Action::StartPool { .. } => "start-pool",
                Action::DefineNetwork { .. } => "net",
                Action::StartNetwork { .. } => "start-net",
                Action::AddToNetwork { .. } => "add-to-net",
                Action::CreateDisk { .. } => "disk",
                Action::WriteSeed { .. } => "seed",
                Action::DefineDomain { .. } => "domain",
                Action::StartDomain { .. } => "start",
                Action::WaitSsh { .. } => "ssh",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "pool",
                "net",
                "start-net",
                "net",
                "start-net",
                "disk",
                "disk",
                "disk",
                "seed",
                "seed",
                "seed",
                "domain",
                "domain",
                "domain",
                "start",
                "start",
                "start",
                "ssh",
                "ssh",
                "ssh"
            ]
        );
    }

    #[test]
    fn running_lab_only_waits() {
        let lab = minimal();
        let plan = plan_addresses(&lab);
        let mut obs = Observed {
            pool: Some(ObjState::Active),
            ..Observed::default()
        };
        for k in NetKind::ALL {
            obs.networks.insert(k, ObjState::Active);
        }
        for n in &lab.nodes {
            obs.domains.insert(n.name.clone(), ObjState::Active);
            obs.volumes.push(disk_volume_name(&n.name));
            obs.volumes.push(seed_volume_name(&n.name));
        }
        let actions = plan_up(&lab, &plan, &dirs(), "/img/base.qcow2", &obs);
        assert!(
            actions.iter().all(|a| matches!(a, Action::WaitSsh { .. })),
            "{actions:?}"
        );
    }

    #[test]
    fn stopped_node_is_started_not_redefined() {
        let lab = minimal();
        let plan = plan_addresses(&lab);
        let mut obs = Observed {
            pool: Some(ObjState::Active),
            ..Observed::default()
        };
        for k in NetKind::ALL {
            obs.networks.insert(k, ObjState::Active);
        }
        for n in &lab.nodes {
            let st = if n.name == "master" {
                ObjState::Inactive
            } else {
                ObjState::Active
            };
            obs.domains.insert(n.name.clone(), st);
            obs.volumes.push(disk_volume_name(&n.name));
            obs.volumes.push(seed_volume_name(&n.name));
        }
        let actions = plan_up(&lab, &plan, &dirs(), "/img/base.qcow2", &obs);
        assert_eq!(
            actions[0],
            Action::StartDomain {
                node: "master".into(),
                domain: "dcos-lab-minimal-master".into()
            }
        );
        assert_eq!(actions.len(), 4);
    }
}
