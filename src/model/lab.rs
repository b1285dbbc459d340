//! The checked lab: every value concrete, every rule already enforced [pure].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::Serialize;

use super::size::ByteSize;

/// A lab that passed validation. Built only by [`super::validate`].
#[derive(Debug, Clone, Serialize)]
pub struct Lab {
    pub name: String,
    /// Where the lab was read from: a path, or `builtin:<name>`.
    pub source: String,
    pub image: ImageRef,
    pub accel: AccelChoice,
    /// How our own images apply the seed at first boot (imported images always use cloud-init).
    pub firstboot: FirstBoot,
    pub networks: Networks,
    /// In file order, with `count` already expanded (a1, a2, ...).
    pub nodes: Vec<Node>,
    pub hardening: Hardening,
    pub dcos: Dcos,
    /// The libvirt hosts the lab may use: `local` first (the connection dcos-lab is given), then
    /// the lab file's `hosts:` in file order.
    pub hosts: Vec<Host>,
    pub placement: Placement,
    /// The user (uid) the lab's libvirt objects are recorded under: whoever runs dcos-lab
    /// (`ops::load_lab` sets it; 0 when a lab file is only read). Labs belong to their user.
    pub owner: u32,
}

/// The name of the host dcos-lab runs against (`--uri`), implied in every lab.
pub const LOCAL_HOST: &str = "local";

/// One libvirt host of a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    pub name: String,
    /// Its libvirt URI; `None` for `local`, which is whatever connection dcos-lab was given.
    pub uri: Option<String>,
}

/// Where nodes without a `host:` go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// On the local host.
    Manual,
    /// Spread over the hosts by free memory (see `plan::placement`).
    Auto,
}

impl Lab {
    /// The lab file names hosts besides the local one: its objects are planned per host.
    pub fn spans_hosts(&self) -> bool {
        self.hosts.len() > 1
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn network(&self, kind: NetKind) -> &Network {
        match kind {
            NetKind::Private => &self.networks.private,
            NetKind::Public => &self.networks.public,
        }
    }

    /// Total guest memory of the lab.
    pub fn memory(&self) -> ByteSize {
        ByteSize::from_bytes(self.nodes.iter().map(|n| n.memory.bytes()).sum())
    }

    /// The lab with the node indices (which fix MACs and addresses) that a lab already made has
    /// (`kept`, by node name, read from its networks): a node made keeps its index, so an agent
    /// added anywhere in the file never moves the nodes after it; every other node takes the
    /// lowest index nobody holds, in file order. An index held by a node the file no longer
    /// lists stays taken (its addresses are still on the networks). Errs, saying why, when
    /// `kept` holds one index twice or an index leaves a network without room.
    pub fn keep_indices(&self, kept: &BTreeMap<String, u8>) -> Result<Lab, String> {
        let mut taken = std::collections::BTreeSet::new();
        for (node, i) in kept {
            if !taken.insert(*i) {
                return Err(format!(
                    "node {node} holds index {i}, which another node holds"
                ));
            }
        }
        let mut out = self.clone();
        for n in out.nodes.iter_mut() {
            if let Some(i) = kept.get(&n.name) {
                n.index = *i;
                continue;
            }
            let free = (0..=u8::MAX)
                .find(|i| !taken.contains(i))
                .ok_or_else(|| format!("no index is free for node {}", n.name))?;
            taken.insert(free);
            n.index = free;
        }
        for n in &out.nodes {
            for kind in &n.networks {
                let cidr = out.network(*kind).cidr;
                let hosts = 1u64 << (32 - u32::from(cidr.prefix()));
                // + the broadcast address, as validation counts.
                if u64::from(super::FIRST_NODE_OFFSET) + u64::from(n.index) + 2 > hosts {
                    return Err(format!(
                        "node {} would take address #{} of the {kind} network {cidr}, which has {hosts}",
                        n.name,
                        super::FIRST_NODE_OFFSET + u32::from(n.index)
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Which guest image the lab boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum ImageRef {
    /// A built-in recipe in `images/`, built and cached by `dcos-lab image build`.
    Recipe(String),
    /// A user's own disk image, booted through its own bootloader.
    File(PathBuf),
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Recipe(r) => f.write_str(r),
            ImageRef::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// How a guest of our own image applies its NoCloud seed at first boot. Both give the same
/// result; `fast` skips cloud-init's four Python stages, which cost ~20 s per guest under TCG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirstBoot {
    Fast,
    CloudInit,
}

/// The accelerator the user asked for. `Auto` is resolved on the host by `host::accel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    Auto,
    Kvm,
    Tcg,
}

/// The accelerator actually used for a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// libvirt's `<domain type=...>`.
    pub fn domain_type(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "qemu",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Networks {
    pub private: Network,
    pub public: Network,
}

/// The lab's two networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetKind {
    Private,
    Public,
}

impl NetKind {
    pub const ALL: [NetKind; 2] = [NetKind::Private, NetKind::Public];

    pub fn as_str(self) -> &'static str {
        match self {
            NetKind::Private => "private",
            NetKind::Public => "public",
        }
    }

    /// Index used in MAC addresses and bridge names.
    pub fn index(self) -> u8 {
        match self {
            NetKind::Private => 0,
            NetKind::Public => 1,
        }
    }
}

impl fmt::Display for NetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// No `<forward>`: guests reach each other and the host, nothing else.
    Isolated,
    Nat,
    Route,
}

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub kind: NetKind,
    pub cidr: Ipv4Network,
    pub ipv6: Option<Ipv6Network>,
    pub mode: NetMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Boot,
    Master,
    AgentPrivate,
    AgentPublic,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Boot => "boot",
            Role::Master => "master",
            Role::AgentPrivate => "agent-private",
            Role::AgentPublic => "agent-public",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "boot" => Some(Role::Boot),
            "master" => Some(Role::Master),
            "agent-private" => Some(Role::AgentPrivate),
            "agent-public" => Some(Role::AgentPublic),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    /// Position in the lab (0-based, file order after expansion); fixes addresses and MACs.
    pub index: u8,
    pub role: Role,
    pub memory: ByteSize,
    pub vcpus: u32,
    pub disk: ByteSize,
    /// Always contains `Private`, first.
    pub networks: Vec<NetKind>,
    pub hardening: Hardening,
    pub firstboot: FirstBoot,
    /// The host the lab file puts this node on; `None` leaves it to the lab's placement.
    pub host: Option<String>,
}

impl Node {
    pub fn on(&self, kind: NetKind) -> bool {
        self.networks.contains(&kind)
    }
}

/// The hardening profile of the cloud install path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hardening {
    /// Size of the swap file; `None` makes none.
    pub swap: Option<ByteSize>,
    /// Size of the /tmp tmpfs; `None` leaves the guest's default.
    pub tmp_size: Option<ByteSize>,
    /// Write the /tmp size into fstab so it survives a reboot.
    pub persistent: bool,
    pub telemetry: bool,
    pub ipv6: bool,
}

impl Default for Hardening {
    fn default() -> Self {
        Hardening {
            swap: Some(ByteSize::gib(2)),
            tmp_size: Some(ByteSize::gib(1)),
            persistent: false,
            telemetry: false,
            ipv6: true,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Dcos {
    /// The lab file has a `dcos:` section: its nodes are made ready for the DC/OS installer
    /// (Docker running on every node), whether or not it names an installer yet.
    pub enabled: bool,
    /// `dcos_generate_config.sh` on the host; resolved against the lab file's folder.
    pub installer: Option<PathBuf>,
    pub bootstrap_port: u16,
    pub cluster_name: String,
    /// Extra keys for genconf/config.yaml; they win over generated ones.
    pub config: BTreeMap<String, serde_json::Value>,
}

/// Default sizes of a node when the lab file leaves them out.
pub const DEFAULT_MEMORY: ByteSize = ByteSize::gib(1);
pub const DEFAULT_DISK: ByteSize = ByteSize::gib(10);
pub const DEFAULT_VCPUS: u32 = 1;
pub const DEFAULT_BOOTSTRAP_PORT: u16 = 4040;
/// The recipe `up` uses when the lab file names none.
pub const DEFAULT_IMAGE: &str = "debian-12";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    fn lab(extra: &str) -> super::Lab {
        let text = format!(
            "name: idx\nimage: debian-12\nnodes:\n  - {{name: boot, role: boot}}\n  - {{name: master, role: master}}\n  - {{name: agent, role: agent-private, count: 2}}\n  - {{name: public, role: agent-public, networks: [private, public]}}\n{extra}"
        );
        crate::model::parse(&text, "idx.yaml", None, &["debian-12"]).expect("valid lab")
    }

    fn indices(l: &super::Lab) -> Vec<(String, u8)> {
        l.nodes.iter().map(|n| (n.name.clone(), n.index)).collect()
    }

    #[test]
    fn a_new_lab_keeps_the_file_order() {
        let l = lab("");
        let kept = l.keep_indices(&BTreeMap::new()).expect("fits");
        assert_eq!(indices(&kept), indices(&l));
        assert_eq!(kept.node("public").map(|n| n.index), Some(4));
    }

    #[test]
    fn an_agent_added_mid_file_moves_no_node_that_was_made() {
        // Made with agent count 1: boot 0, master 1, agent1 2, public 3. Count raised to 2.
        let l = lab("");
        let made: BTreeMap<String, u8> = [("boot", 0), ("master", 1), ("agent1", 2), ("public", 3)]
            .into_iter()
            .map(|(n, i)| (n.to_string(), i))
            .collect();
        let kept = l.keep_indices(&made).expect("fits");
        assert_eq!(kept.node("public").map(|n| n.index), Some(3));
        assert_eq!(kept.node("agent2").map(|n| n.index), Some(4));
    }

    #[test]
    fn an_index_of_a_node_gone_from_the_file_stays_taken() {
        let l = lab("");
        // agent1 was removed from a lab of boot, master, agent1, agent2, public, and a new
        // agent1 is listed again: it must not take the index a removed node's entries hold.
        let made: BTreeMap<String, u8> = [
            ("boot", 0),
            ("master", 1),
            ("gone", 2),
            ("agent2", 3),
            ("public", 4),
        ]
        .into_iter()
        .map(|(n, i)| (n.to_string(), i))
        .collect();
        let kept = l.keep_indices(&made).expect("fits");
        assert_eq!(kept.node("agent1").map(|n| n.index), Some(5));
    }

    #[test]
    fn twice_held_or_no_room_is_said() {
        let l = lab("");
        let twice: BTreeMap<String, u8> = [("boot", 0), ("master", 0)]
            .into_iter()
            .map(|(n, i)| (n.to_string(), i))
            .collect();
        assert!(l.keep_indices(&twice).unwrap_err().contains("another node"));
        let small = lab("networks:\n  private: {cidr: 10.77.0.0/28}\n");
        let far: BTreeMap<String, u8> = [("boot", 5)]
            .into_iter()
            .map(|(n, i)| (n.to_string(), i))
            .collect();
        let e = small.keep_indices(&far).unwrap_err();
        assert!(e.contains("boot") && e.contains("10.77.0.0/28"), "{e}");
    }
}
