//! Planned objects → libvirt XML documents (network, pool, volume, domain) [pure].

pub mod cloudinit;
pub mod genconf;
pub mod xml;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::model::{Accel, Lab, NetKind, NetMode, Node};
use crate::names::LabDirs;
use crate::names::PREFIX;
use crate::plan::AddressPlan;
use crate::tag::{LabTag, METADATA_NS, Metadata, NicTag};
use xml::*;

pub use xml::to_xml;

/// Our version, written into every object's metadata.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
/// QEMU's TCG translation cache defaults to 1 GiB and dominates a guest's RSS. Measured on the 3-node
/// lab: 256 MiB → ~605-620 MiB RSS per 1 GiB guest, 128 MiB → ~455-470 MiB, cold `up` the same
/// within noise (47.9 s vs 49.4 s).
pub const TCG_TB_CACHE_MIB: u64 = 128;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot write {what} XML")]
    Xml {
        what: String,
        #[source]
        source: quick_xml::SeError,
    },
    #[error("node \"{node}\" is not in the lab")]
    NoSuchNode { node: String },
    #[error("cannot write {what} as YAML: {message}")]
    Yaml { what: String, message: String },
    /// Something validation guarantees did not hold: a bug in dcos-lab, not bad input.
    #[error("internal error: {0}")]
    Invariant(&'static str),
}

/// Kernel command line for our own images: the root filesystem is the whole of `vda` (no partition
/// table) and the serial port is the console. The first-boot path is added by [`kernel_cmdline`].
pub const DIRECT_BOOT_CMDLINE: &str = "root=/dev/vda rw console=ttyS0 quiet";

/// The kernel command line for a first-boot path: `fast` turns cloud-init off and our own
/// first-boot units on; `cloud-init` pins cloud-init to the NoCloud seed.
pub fn kernel_cmdline(firstboot: crate::model::FirstBoot) -> String {
    match firstboot {
        crate::model::FirstBoot::Fast => {
            format!("{DIRECT_BOOT_CMDLINE} cloud-init=disabled dcos-lab.firstboot=fast")
        }
        crate::model::FirstBoot::CloudInit => format!("{DIRECT_BOOT_CMDLINE} ds=nocloud"),
    }
}

/// The disk a node boots from and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootImage {
    /// Base image the node's overlay is backed by.
    pub disk: PathBuf,
    /// `qcow2` or `raw`.
    pub format: String,
    /// Direct kernel boot when set (our own images); else the image's own bootloader.
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
}

/// Everything outside the lab file that rendering needs.
#[derive(Debug, Clone)]
pub struct RenderCtx {
    pub accel: Accel,
    pub dirs: LabDirs,
    pub image: BootImage,
}

fn xml_of<T: serde::Serialize>(root: &str, what: &str, v: &T) -> Result<String, RenderError> {
    to_xml(root, v).map_err(|source| RenderError::Xml {
        what: what.to_string(),
        source,
    })
}

/// 16 hex digits of SHA-256 over `s`.
pub(crate) fn short_hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn tag(lab: &Lab) -> LabTag {
    LabTag {
        xmlns: METADATA_NS.to_string(),
        lab: lab.name.clone(),
        version: TOOL_VERSION.to_string(),
        owner: Some(lab.owner),
        ..LabTag::default()
    }
}

/// Hash of a document with its metadata left out, stored in the metadata so a later `up` can tell
/// whether the lab file still describes the object that exists.
fn with_spec_hash<T, F>(root: &str, what: &str, mut doc: T, meta: F) -> Result<String, RenderError>
where
    T: serde::Serialize,
    F: Fn(&mut T) -> &mut Option<Metadata>,
{
    let saved = meta(&mut doc).take();
    let bare = xml_of(root, what, &doc)?;
    let mut saved = saved;
    if let Some(LabTag { spec, .. }) = saved.as_mut().and_then(|m| m.lab.as_mut()) {
        *spec = Some(short_hash(&bare));
    }
    *meta(&mut doc) = saved;
    xml_of(root, what, &doc)
}

/// libvirt network XML for one of the lab's networks. Private: isolated. Public: the lab file's
/// mode (NAT by default) with IPv6. DHCP host entries pin every node's addresses; dnsmasq answers
/// only for the lab's own names and never forwards queries off the host.
///
/// The spec hash in its metadata leaves the nodes' entries out: a node added or removed changes
/// the entries of the running network (`AddressPlan::entries`), not what the network is.
pub fn network_xml(lab: &Lab, plan: &AddressPlan, kind: NetKind) -> Result<String, RenderError> {
    let np = plan.network(kind).ok_or(RenderError::Invariant(
        "the address plan has both networks of the lab",
    ))?;
    let mut doc = network_doc(lab, plan, kind, false)?;
    let saved = doc.metadata.take();
    let spec = short_hash(&xml_of("network", &np.name, &doc)?);
    doc = network_doc(lab, plan, kind, true)?;
    doc.metadata = saved;
    if let Some(LabTag { spec: s, .. }) = doc.metadata.as_mut().and_then(|m| m.lab.as_mut()) {
        *s = Some(spec);
    }
    xml_of("network", &np.name, &doc)
}

/// The spec hash a network made by an earlier dcos-lab carries: over the whole definition, the
/// nodes' entries included. Such a network is the lab file's while it names the same nodes.
pub fn legacy_network_spec(
    lab: &Lab,
    plan: &AddressPlan,
    kind: NetKind,
) -> Result<String, RenderError> {
    let np = plan.network(kind).ok_or(RenderError::Invariant(
        "the address plan has both networks of the lab",
    ))?;
    let mut doc = network_doc(lab, plan, kind, true)?;
    doc.metadata = None;
    Ok(short_hash(&xml_of("network", &np.name, &doc)?))
}

/// The network document, with every node's entries or none.
fn network_doc(
    lab: &Lab,
    plan: &AddressPlan,
    kind: NetKind,
    with_entries: bool,
) -> Result<NetworkXml, RenderError> {
    use crate::plan::NetEntry;
    let net = lab.network(kind);
    let np = plan.network(kind).ok_or(RenderError::Invariant(
        "the address plan has both networks of the lab",
    ))?;
    let entries: Vec<NetEntry> = if with_entries {
        plan.nodes
            .iter()
            .flat_map(|n| plan.entries(kind, &n.node))
            .collect()
    } else {
        Vec::new()
    };
    let dhcp_hosts = |index: u8| -> Vec<DhcpHost> {
        entries
            .iter()
            .filter_map(|e| match e {
                NetEntry::Dhcp {
                    ip,
                    mac,
                    name,
                    address,
                } if *ip == index => Some(DhcpHost {
                    mac: mac.clone(),
                    name: name.clone(),
                    ip: address.clone(),
                }),
                _ => None,
            })
            .collect()
    };
    let mut ips = vec![NetIp {
        family: None,
        address: np.gateway4.to_string(),
        prefix: np.prefix4,
        dhcp: Some(Dhcp {
            hosts: dhcp_hosts(0),
        }),
    }];
    if let (Some(gw6), Some(p6)) = (np.gateway6, np.prefix6) {
        ips.push(NetIp {
            family: Some("ipv6".into()),
            address: gw6.to_string(),
            prefix: p6,
            dhcp: Some(Dhcp {
                hosts: dhcp_hosts(1),
            }),
        });
    }
    let dns_hosts = entries
        .iter()
        .filter_map(|e| match e {
            NetEntry::Dns { address, names } => Some(DnsHost {
                ip: address.clone(),
                hostnames: names.iter().cloned().map(Text::new).collect(),
            }),
            NetEntry::Dhcp { .. } => None,
        })
        .collect();
    let (xmlns_dnsmasq, dnsmasq_options) = DnsmasqOptions::new(&["no-resolv"]);
    Ok(NetworkXml {
        xmlns_dnsmasq,
        name: np.name.clone(),
        metadata: Some(Metadata {
            lab: Some(LabTag {
                network: Some(kind.to_string()),
                hosts: lab
                    .hosts
                    .iter()
                    .filter_map(|h| {
                        h.uri.as_ref().map(|uri| crate::tag::HostTag {
                            name: h.name.clone(),
                            uri: uri.clone(),
                        })
                    })
                    .collect(),
                ..tag(lab)
            }),
        }),
        forward: match net.mode {
            NetMode::Isolated => None,
            NetMode::Nat => Some(Forward { mode: "nat".into() }),
            NetMode::Route => Some(Forward {
                mode: "route".into(),
            }),
        },
        virtualport: None,
        vlan: None,
        bridge: Some(Bridge {
            name: np.bridge.clone(),
            // No loops on a lab bridge: STP would hold every new port (a started or reverted
            // node) in the listening state for seconds.
            stp: Some("off".into()),
            delay: Some("0".into()),
        }),
        domain: Some(DnsDomain {
            name: format!("{}.{PREFIX}", lab.name),
            local_only: Some("yes".into()),
        }),
        dns: Some(Dns { hosts: dns_hosts }),
        ips,
        dnsmasq_options,
    })
}

/// A lab network on a host other than the lab's first, for a lab across hosts: no addresses, no
/// DHCP or DNS of its own (those live on the first host), only the network's VLAN on the overlay
/// bridge every host runs, so its guests share one L2 segment with the first host's.
pub fn overlay_network_xml(
    lab: &Lab,
    plan: &AddressPlan,
    kind: NetKind,
) -> Result<String, RenderError> {
    let np = plan.network(kind).ok_or(RenderError::Invariant(
        "the address plan has both networks of the lab",
    ))?;
    let vlan = np.vlan.ok_or(RenderError::Invariant(
        "a lab across hosts has a VLAN for each network",
    ))?;
    let doc = NetworkXml {
        xmlns_dnsmasq: None,
        name: np.name.clone(),
        metadata: Some(Metadata {
            lab: Some(LabTag {
                network: Some(kind.to_string()),
                ..tag(lab)
            }),
        }),
        forward: Some(Forward {
            mode: "bridge".into(),
        }),
        bridge: Some(Bridge {
            name: crate::plan::OVERLAY_BRIDGE.into(),
            stp: None,
            delay: None,
        }),
        virtualport: Some(VirtualPort {
            kind: "openvswitch".into(),
        }),
        vlan: Some(Vlan {
            tag: VlanTag { id: vlan },
        }),
        domain: None,
        dns: None,
        ips: Vec::new(),
        dnsmasq_options: None,
    };
    with_spec_hash("network", &np.name, doc, |d| &mut d.metadata)
}

/// libvirt storage pool XML: a directory holding the lab's overlays and seeds. `owner` (uid,
/// gid): a plain user's lab, whose seeds and restored disks the user writes into it.
pub fn pool_xml(
    lab: &Lab,
    dirs: &LabDirs,
    owner: Option<(u32, u32)>,
) -> Result<String, RenderError> {
    dir_pool_xml(&crate::names::pool_name(&lab.name), &dirs.pool(), owner)
}

/// libvirt storage pool XML of a directory (0711: QEMU, as libvirt-qemu, reaches the files
/// in it by name) owned by `owner` (uid, gid), or by libvirtd.
pub fn dir_pool_xml(
    name: &str,
    path: &std::path::Path,
    owner: Option<(u32, u32)>,
) -> Result<String, RenderError> {
    let doc = PoolXml {
        kind: "dir".into(),
        name: name.to_string(),
        target: PoolTarget {
            path: path.display().to_string(),
            permissions: Some(Permissions {
                mode: "0711".into(),
                owner: owner.map(|o| o.0),
                group: owner.map(|o| o.1),
            }),
        },
    };
    xml_of("pool", "pool", &doc)
}

/// Storage volume XML of a node's root disk: a qcow2 overlay on the base image, sized as the node asks.
pub fn disk_volume_xml(node: &Node, image: &BootImage) -> Result<String, RenderError> {
    let doc = VolumeXml {
        kind: "file".into(),
        name: crate::names::disk_volume_name(&node.name),
        capacity: Capacity {
            unit: "bytes".into(),
            value: node.disk.bytes(),
        },
        target: VolTarget {
            format: Format {
                kind: "qcow2".into(),
            },
            permissions: Some(Permissions {
                mode: "0600".into(),
                owner: None,
                group: None,
            }),
        },
        backing_store: Some(BackingStore {
            path: image.disk.display().to_string(),
            format: Format {
                kind: image.format.clone(),
            },
        }),
    };
    xml_of("volume", "volume", &doc)
}

/// libvirt domain XML of one node.
pub fn domain_xml(
    lab: &Lab,
    plan: &AddressPlan,
    node: &str,
    ctx: &RenderCtx,
) -> Result<String, RenderError> {
    let n = lab
        .node(node)
        .ok_or_else(|| RenderError::NoSuchNode { node: node.into() })?;
    let addrs = plan.node(node).ok_or(RenderError::Invariant(
        "the address plan has every node of the lab",
    ))?;
    let doc = DomainXml {
        kind: ctx.accel.domain_type().into(),
        name: addrs.domain.clone(),
        genid: Some(Empty {}),
        title: Some(format!("{} {} of lab {}", n.role, n.name, lab.name)),
        metadata: Some(node_metadata(lab, n, addrs, ctx)),
        memory: Memory {
            unit: "KiB".into(),
            value: n.memory.as_kib(),
        },
        vcpu: n.vcpus,
        os: os(n, ctx),
        features: Some(Features {
            acpi: Some(Empty {}),
            tcg: (ctx.accel == Accel::Tcg).then(|| Tcg {
                tb_cache: Memory {
                    unit: "MiB".into(),
                    value: TCG_TB_CACHE_MIB,
                },
            }),
        }),
        // KVM passes the host CPU through; TCG keeps QEMU's default model (host-passthrough needs KVM).
        cpu: (ctx.accel == Accel::Kvm).then(|| Cpu {
            mode: "host-passthrough".into(),
        }),
        clock: Some(Clock {
            offset: "utc".into(),
        }),
        on_poweroff: Some("destroy".into()),
        on_reboot: Some("restart".into()),
        on_crash: Some("destroy".into()),
        devices: Devices {
            disks: disks(node, ctx),
            interfaces: addrs
                .nics
                .iter()
                .map(|nic| interface(lab, nic, ctx))
                .collect(),
            serial: Some(Serial {
                kind: "pty".into(),
                log: Some(Log {
                    file: ctx.dirs.console_log(node).display().to_string(),
                    append: "off".into(),
                }),
                target: PortTarget {
                    kind: None,
                    port: 0,
                },
            }),
            console: Some(Console {
                kind: "pty".into(),
                target: PortTarget {
                    kind: Some("serial".into()),
                    port: 0,
                },
            }),
            channel: Some(Channel {
                kind: "unix".into(),
                target: ChannelTarget {
                    kind: "virtio".into(),
                    name: "org.qemu.guest_agent.0".into(),
                },
            }),
            rng: Some(Rng {
                model: "virtio".into(),
                backend: RngBackend {
                    model: "random".into(),
                    value: "/dev/urandom".into(),
                },
            }),
        },
    };
    with_spec_hash("domain", &addrs.domain, doc, |d| &mut d.metadata)
}

/// A node's metadata tag: the lab's, with the node, its role, accelerator and NICs.
fn node_metadata(
    lab: &Lab,
    n: &crate::model::Node,
    addrs: &crate::plan::NodeAddrs,
    ctx: &RenderCtx,
) -> Metadata {
    Metadata {
        lab: Some(LabTag {
            node: Some(n.name.clone()),
            role: Some(n.role.to_string()),
            accel: Some(ctx.accel.to_string()),
            nics: addrs
                .nics
                .iter()
                .map(|nic| NicTag {
                    network: nic.net.to_string(),
                    mac: nic.mac.to_string(),
                    ipv4: nic.ipv4.to_string(),
                    ipv6: nic.ipv6.map(|a| a.to_string()),
                })
                .collect(),
            ..tag(lab)
        }),
    }
}

/// How the node boots: our images' kernel directly (the first-boot path on its command line),
/// an imported image through its own bootloader.
fn os(n: &crate::model::Node, ctx: &RenderCtx) -> Os {
    let direct = ctx.image.kernel.is_some();
    Os {
        os_type: OsType {
            arch: "x86_64".into(),
            machine: "q35".into(),
            value: "hvm".into(),
        },
        kernel: ctx.image.kernel.as_ref().map(|p| p.display().to_string()),
        initrd: ctx.image.initrd.as_ref().map(|p| p.display().to_string()),
        // The node's first-boot path is chosen on the kernel command line.
        cmdline: ctx
            .image
            .cmdline
            .as_ref()
            .map(|_| kernel_cmdline(n.firstboot)),
        boot: (!direct).then(|| Boot { dev: "hd".into() }),
    }
}

/// The node's disks: its overlay of the base image (`vda`) and its NoCloud seed (`vdb`).
fn disks(node: &str, ctx: &RenderCtx) -> Vec<Disk> {
    let file_disk = |path: PathBuf,
                     format: &str,
                     backing: Option<DiskBacking>,
                     dev: &str,
                     readonly: bool,
                     serial: &str| Disk {
        kind: "file".into(),
        device: "disk".into(),
        driver: DiskDriver {
            name: "qemu".into(),
            format: format.into(),
            discard: (!readonly).then(|| "unmap".into()),
        },
        source: DiskSource {
            file: path.display().to_string(),
        },
        backing_store: backing,
        target: DiskTarget {
            dev: dev.into(),
            bus: "virtio".into(),
        },
        readonly: readonly.then_some(Empty {}),
        serial: Some(serial.into()),
    };
    vec![
        // The overlay's one backing file is the base image, which has none (checked when it
        // comes from outside): nothing is taken from an image's header.
        file_disk(
            ctx.dirs.disk(node),
            "qcow2",
            Some(DiskBacking {
                kind: "file".into(),
                format: Format {
                    kind: ctx.image.format.clone(),
                },
                source: DiskSource {
                    file: ctx.image.disk.display().to_string(),
                },
                end: Empty {},
            }),
            "vda",
            false,
            "root",
        ),
        file_disk(ctx.dirs.seed(node), "raw", None, "vdb", true, "cidata"),
    ]
}

/// A NIC on one of the lab's networks.
fn interface(lab: &Lab, nic: &crate::plan::Nic, ctx: &RenderCtx) -> Interface {
    Interface {
        kind: "network".into(),
        mac: MacAddr {
            address: nic.mac.to_string(),
        },
        source: IfaceSource {
            network: crate::names::network_name(&lab.name, nic.net),
        },
        model: Model {
            kind: "virtio".into(),
        },
        // On a lab's other hosts the NIC is a port of the overlay's Open vSwitch. Its userspace
        // datapath (kernels without the openvswitch module, DPDK) sends a frame on as the guest
        // left it, and a checksum left to the host arrives wrong at the other end: the guest
        // computes its own.
        driver: ctx.dirs.remote.then(|| {
            let off = || "off".to_string();
            IfaceDriver {
                host: HostOffloads {
                    csum: off(),
                    gso: off(),
                    tso4: off(),
                    tso6: off(),
                    ecn: off(),
                    ufo: off(),
                },
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::model::NetKind;

    fn builtin(name: &str) -> crate::model::Lab {
        let text = crate::model::BUILTIN_LABS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .expect("builtin");
        crate::model::parse(text, &format!("labs/{name}.yaml"), None, &["debian-12"])
            .expect("valid")
    }

    /// Networks made by an earlier dcos-lab carry a hash over their nodes' entries too (these
    /// are the hashes it wrote for the built-in labs): they are still known as the lab's.
    #[test]
    fn a_network_an_earlier_dcos_lab_made_is_known_by_its_hash() {
        for (lab, kind, spec) in [
            ("minimal", NetKind::Private, "3a0ed69be322ec21"),
            ("ha", NetKind::Public, "8c2ce319e7123a26"),
        ] {
            let l = builtin(lab);
            let plan = crate::plan::plan_addresses(&l);
            assert_eq!(
                super::legacy_network_spec(&l, &plan, kind).expect("renders"),
                spec,
                "{lab} {kind}"
            );
            assert!(
                !super::network_xml(&l, &plan, kind)
                    .expect("renders")
                    .contains(spec)
            );
        }
    }

    /// A node added or removed does not change what a network is: its hash leaves the nodes'
    /// entries out (they change on the running network).
    #[test]
    fn a_networks_hash_leaves_the_nodes_out() {
        let l = builtin("minimal");
        let mut fewer = l.clone();
        fewer.nodes.retain(|n| n.name != "public");
        let spec = |l: &crate::model::Lab| {
            let xml = super::network_xml(l, &crate::plan::plan_addresses(l), NetKind::Private)
                .expect("renders");
            let at = xml.find("spec=\"").expect("spec") + 6;
            xml[at..at + 16].to_string()
        };
        assert_eq!(spec(&l), spec(&fewer));
        let mut other = l.clone();
        other.networks.private.mode = crate::model::NetMode::Nat;
        assert_ne!(spec(&l), spec(&other));
    }
}
