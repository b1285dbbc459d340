//! The address plan: names, bridges, MACs and IPv4/IPv6 addresses of every node, derived from the lab [pure].

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::model::{FIRST_NODE_OFFSET, Lab, LabId, NetKind, Node};

use crate::names::{domain_name, network_name};

/// Linux bridge name: `dl-<lab id>-pv` / `-pb`, 12 bytes, inside the kernel's 15-byte limit.
pub fn bridge_name(id: LabId, kind: NetKind) -> String {
    let suffix = match kind {
        NetKind::Private => "pv",
        NetKind::Public => "pb",
    };
    format!("dl-{}-{suffix}", id.hex())
}

/// The OVS bridge every host of a lab across hosts runs, with tunnels to the others
/// (docs/multihost.md): the lab's networks are VLANs on it.
pub const OVERLAY_BRIDGE: &str = "dcoslab0";

/// A lab network's VLAN on the overlay: 2–4093, the two networks of a lab side by side, from the
/// lab id (two labs on one overlay clash 1 time in 2046; `up` checks the hosts for it).
pub fn overlay_vlan(id: LabId, kind: NetKind) -> u16 {
    let [a, b, c] = id.bytes();
    let n = (u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c)) % 2046;
    u16::try_from(2 + n * 2 + u32::from(kind.index())).unwrap_or(2)
}

/// A locally administered, unicast MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// `02:<lab id, 3 bytes>:<network>:<node index>`: unique per lab, network and node.
    pub fn of(id: LabId, kind: NetKind, node_index: u8) -> Mac {
        let b = id.bytes();
        Mac([0x02, b[0], b[1], b[2], kind.index(), node_index])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// One network as planned.
#[derive(Debug, Clone, Serialize)]
pub struct NetPlan {
    pub kind: NetKind,
    pub name: String,
    pub bridge: String,
    /// The host's address on the bridge (first host of the CIDR).
    pub gateway4: Ipv4Addr,
    pub prefix4: u8,
    pub gateway6: Option<Ipv6Addr>,
    pub prefix6: Option<u8>,
    /// The network's VLAN on the overlay, for a lab across hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

/// One NIC of a node.
#[derive(Debug, Clone, Serialize)]
pub struct Nic {
    pub net: NetKind,
    pub mac: Mac,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
}

/// A node's addresses on each of its networks, private first.
#[derive(Debug, Clone, Serialize)]
pub struct NodeAddrs {
    pub node: String,
    pub domain: String,
    pub nics: Vec<Nic>,
}

impl NodeAddrs {
    pub fn nic(&self, kind: NetKind) -> Option<&Nic> {
        self.nics.iter().find(|n| n.net == kind)
    }

    /// The address tools and tests use to reach the node: its private IPv4.
    pub fn private_ipv4(&self) -> Option<Ipv4Addr> {
        self.nic(NetKind::Private).map(|n| n.ipv4)
    }
}

/// One of a node's entries on a lab network, which libvirt's network update adds and deletes one
/// at a time while the network runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum NetEntry {
    /// A DHCP host of the network's `ip`-th `<ip>` element (0: the IPv4 one, 1: the IPv6 one):
    /// an address pinned to a MAC (IPv4) or to a name (IPv6).
    Dhcp {
        ip: u8,
        mac: Option<String>,
        name: String,
        address: String,
    },
    /// A DNS host: an address and the names it answers for.
    Dns { address: String, names: Vec<String> },
}

impl NetEntry {
    /// The element libvirt's network update takes.
    pub fn xml(&self) -> String {
        let esc = |s: &str| quick_xml::escape::escape(s).to_string();
        match self {
            NetEntry::Dhcp {
                mac, name, address, ..
            } => {
                let mac = mac
                    .as_ref()
                    .map(|m| format!(" mac='{}'", esc(m)))
                    .unwrap_or_default();
                format!("<host{mac} name='{}' ip='{}'/>", esc(name), esc(address))
            }
            NetEntry::Dns { address, names } => {
                let names: String = names
                    .iter()
                    .map(|n| format!("<hostname>{}</hostname>", esc(n)))
                    .collect();
                format!("<host ip='{}'>{names}</host>", esc(address))
            }
        }
    }

    /// The element that deletes it: a DNS host by its address alone (libvirt matches a DNS
    /// host by its address or by any of its names, and a node's IPv4 and IPv6 hosts share names).
    pub fn delete_xml(&self) -> String {
        match self {
            NetEntry::Dns { address, .. } => format!(
                "<host ip='{}'/>",
                quick_xml::escape::escape(address.as_str())
            ),
            NetEntry::Dhcp { .. } => self.xml(),
        }
    }

    /// The node it is for: a DHCP host's name, a DNS host's short name (the one without a dot).
    pub fn node(&self) -> Option<&str> {
        match self {
            NetEntry::Dhcp { name, .. } => Some(name),
            NetEntry::Dns { names, .. } => {
                names.iter().find(|n| !n.contains('.')).map(|n| n.as_str())
            }
        }
    }

    /// `DHCP host agent2 (10.0.0.14)`, for logs and plans.
    pub fn describe(&self) -> String {
        match self {
            NetEntry::Dhcp { name, address, .. } => format!("DHCP host {name} ({address})"),
            NetEntry::Dns { address, names } => {
                format!("DNS host {} ({address})", names.join(" "))
            }
        }
    }
}

/// Names and addresses of everything in a lab.
#[derive(Debug, Clone, Serialize)]
pub struct AddressPlan {
    pub lab: String,
    pub lab_id: String,
    pub networks: Vec<NetPlan>,
    pub nodes: Vec<NodeAddrs>,
}

impl AddressPlan {
    pub fn node(&self, name: &str) -> Option<&NodeAddrs> {
        self.nodes.iter().find(|n| n.node == name)
    }

    pub fn network(&self, kind: NetKind) -> Option<&NetPlan> {
        self.networks.iter().find(|n| n.kind == kind)
    }

    /// A node's entries on one of the lab's networks (none when it is not on it): its IPv4 DHCP
    /// host (by MAC) under the network's first `<ip>`, its IPv6 one (by name) under the second,
    /// and a DNS host for each address (`<node>.<lab>.dcos-lab` and `<node>`). The network's
    /// definition is made of these; `up` and `down --node` add and delete them while it runs.
    pub fn entries(&self, kind: NetKind, node: &str) -> Vec<NetEntry> {
        let Some(n) = self.node(node) else {
            return Vec::new();
        };
        let Some(nic) = n.nic(kind) else {
            return Vec::new();
        };
        let names = vec![
            format!("{}.{}.{}", n.node, self.lab, crate::names::PREFIX),
            n.node.clone(),
        ];
        let mut out = vec![NetEntry::Dhcp {
            ip: 0,
            mac: Some(nic.mac.to_string()),
            name: n.node.clone(),
            address: nic.ipv4.to_string(),
        }];
        if let Some(ip6) = nic.ipv6 {
            out.push(NetEntry::Dhcp {
                ip: 1,
                mac: None,
                name: n.node.clone(),
                address: ip6.to_string(),
            });
        }
        out.push(NetEntry::Dns {
            address: nic.ipv4.to_string(),
            names: names.clone(),
        });
        if let Some(ip6) = nic.ipv6 {
            out.push(NetEntry::Dns {
                address: ip6.to_string(),
                names,
            });
        }
        out
    }
}

fn host4(base: Ipv4Addr, offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(offset))
}

fn host6(base: Ipv6Addr, offset: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(base).wrapping_add(u128::from(offset)))
}

/// Node `i` gets host offset `FIRST_NODE_OFFSET + i` on every network it is on, IPv4 and IPv6 alike,
/// so its address ends the same way everywhere (validation already checked that it fits).
fn nic(lab: &Lab, id: LabId, node: &Node, kind: NetKind) -> Nic {
    let net = lab.network(kind);
    let offset = FIRST_NODE_OFFSET + u32::from(node.index);
    Nic {
        net: kind,
        mac: Mac::of(id, kind, node.index),
        ipv4: host4(net.cidr.network(), offset),
        ipv6: net.ipv6.map(|p| host6(p.network(), offset)),
    }
}

/// The plan for `lab`: a pure function of the checked lab.
pub fn plan_addresses(lab: &Lab) -> AddressPlan {
    let id = LabId::of(&lab.name);
    let networks = NetKind::ALL
        .iter()
        .map(|&kind| {
            let net = lab.network(kind);
            NetPlan {
                kind,
                name: network_name(&lab.name, kind),
                bridge: bridge_name(id, kind),
                gateway4: host4(net.cidr.network(), 1),
                prefix4: net.cidr.prefix(),
                gateway6: net.ipv6.map(|p| host6(p.network(), 1)),
                prefix6: net.ipv6.map(|p| p.prefix()),
                vlan: lab.spans_hosts().then(|| overlay_vlan(id, kind)),
            }
        })
        .collect();
    let nodes = lab
        .nodes
        .iter()
        .map(|node| NodeAddrs {
            node: node.name.clone(),
            domain: domain_name(&lab.name, &node.name),
            nics: node
                .networks
                .iter()
                .map(|&k| nic(lab, id, node, k))
                .collect(),
        })
        .collect();
    AddressPlan {
        lab: lab.name.clone(),
        lab_id: id.hex(),
        networks,
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(name: &str) -> Lab {
        let text = crate::model::BUILTIN_LABS[2]
            .1
            .replace("name: ha", &format!("name: {name}"));
        crate::model::parse(&text, "t.yaml", None, &["debian-12"]).expect("valid lab")
    }

    #[test]
    fn addresses_are_inside_their_cidr_and_unique() {
        let l = lab("ha");
        let plan = plan_addresses(&l);
        let mut seen = std::collections::HashSet::new();
        for n in &plan.nodes {
            for nic in &n.nics {
                let net = l.network(nic.net);
                assert!(net.cidr.contains(nic.ipv4), "{} in {}", nic.ipv4, net.cidr);
                assert_ne!(nic.ipv4, net.cidr.network());
                assert_ne!(nic.ipv4, net.cidr.broadcast());
                if let (Some(a), Some(p)) = (nic.ipv6, net.ipv6) {
                    assert!(p.contains(a));
                }
                assert!(seen.insert(nic.ipv4.to_string()));
                assert!(seen.insert(nic.mac.to_string()));
            }
        }
    }

    #[test]
    fn macs_are_locally_administered_unicast() {
        let plan = plan_addresses(&lab("ha"));
        for nic in plan.nodes.iter().flat_map(|n| &n.nics) {
            assert_eq!(nic.mac.0[0] & 0b11, 0b10, "{}", nic.mac);
        }
    }

    #[test]
    fn overlay_vlans_are_valid_and_a_labs_two_differ() {
        for i in 0..2000 {
            let id = LabId::of(&format!("lab{i}"));
            let (p, q) = (
                overlay_vlan(id, NetKind::Private),
                overlay_vlan(id, NetKind::Public),
            );
            assert!(
                (2..=4093).contains(&p) && (2..=4093).contains(&q),
                "{p} {q}"
            );
            assert_eq!(q, p + 1);
        }
    }

    #[test]
    fn bridge_names_fit_the_kernel_limit() {
        let plan = plan_addresses(&lab("a-very-long-lab-name-of-32-chars"));
        for n in &plan.networks {
            assert!(n.bridge.len() <= 15, "{}", n.bridge);
        }
    }
}
