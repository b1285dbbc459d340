//! Serde shapes of the libvirt XML documents this tool writes and reads back [pure].
//!
//! Only the elements dcos-lab uses are modelled. Reading libvirt's own `dumpxml` output with
//! these types ignores everything else.

use serde::{Deserialize, Serialize};

use crate::tag::Metadata;
const DNSMASQ_NS: &str = "http://libvirt.org/schemas/network/dnsmasq/1.0";

/// Serialises `value` as an indented XML document with root element `root`.
pub fn to_xml<T: Serialize>(root: &str, value: &T) -> Result<String, quick_xml::SeError> {
    let mut out = String::new();
    let mut ser = quick_xml::se::Serializer::with_root(&mut out, Some(root))?;
    ser.indent(' ', 2);
    value.serialize(ser)?;
    out.push('\n');
    Ok(out)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Text {
    #[serde(rename = "$text")]
    pub value: String,
}

impl Text {
    pub fn new(s: impl Into<String>) -> Self {
        Text { value: s.into() }
    }
}

// ---------- network ----------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkXml {
    #[serde(
        rename = "@xmlns:dnsmasq",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub xmlns_dnsmasq: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub forward: Option<Forward>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bridge: Option<Bridge>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub virtualport: Option<VirtualPort>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vlan: Option<Vlan>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub domain: Option<DnsDomain>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns: Option<Dns>,
    #[serde(rename = "ip", default)]
    pub ips: Vec<NetIp>,
    #[serde(
        rename = "dnsmasq:options",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub dnsmasq_options: Option<DnsmasqOptions>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Forward {
    #[serde(rename = "@mode")]
    pub mode: String,
}

/// `<virtualport type='openvswitch'/>`: guests' ports go onto an Open vSwitch bridge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VirtualPort {
    #[serde(rename = "@type")]
    pub kind: String,
}

/// `<vlan><tag id='N'/></vlan>`: the ports' VLAN on that bridge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vlan {
    pub tag: VlanTag,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VlanTag {
    #[serde(rename = "@id")]
    pub id: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bridge {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "@stp", skip_serializing_if = "Option::is_none", default)]
    pub stp: Option<String>,
    #[serde(rename = "@delay", skip_serializing_if = "Option::is_none", default)]
    pub delay: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsDomain {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(
        rename = "@localOnly",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub local_only: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(rename = "host", default)]
    pub hosts: Vec<DnsHost>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsHost {
    #[serde(rename = "@ip")]
    pub ip: String,
    #[serde(rename = "hostname", default)]
    pub hostnames: Vec<Text>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetIp {
    #[serde(rename = "@family", skip_serializing_if = "Option::is_none", default)]
    pub family: Option<String>,
    #[serde(rename = "@address")]
    pub address: String,
    #[serde(rename = "@prefix")]
    pub prefix: u8,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dhcp: Option<Dhcp>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dhcp {
    #[serde(rename = "host", default)]
    pub hosts: Vec<DhcpHost>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DhcpHost {
    #[serde(rename = "@mac", skip_serializing_if = "Option::is_none", default)]
    pub mac: Option<String>,
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "@ip")]
    pub ip: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsmasqOptions {
    #[serde(rename = "dnsmasq:option", default)]
    pub options: Vec<DnsmasqOption>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsmasqOption {
    #[serde(rename = "@value")]
    pub value: String,
}

impl DnsmasqOptions {
    pub fn new(values: &[&str]) -> (Option<String>, Option<DnsmasqOptions>) {
        (
            Some(DNSMASQ_NS.to_string()),
            Some(DnsmasqOptions {
                options: values
                    .iter()
                    .map(|v| DnsmasqOption {
                        value: (*v).to_string(),
                    })
                    .collect(),
            }),
        )
    }
}

// ---------- storage ----------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolXml {
    #[serde(rename = "@type")]
    pub kind: String,
    pub name: String,
    pub target: PoolTarget,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolTarget {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub permissions: Option<Permissions>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Permissions {
    pub mode: String,
    /// The directory's owner and group (a plain user's pool); libvirtd's own when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeXml {
    #[serde(rename = "@type")]
    pub kind: String,
    pub name: String,
    pub capacity: Capacity,
    pub target: VolTarget,
    #[serde(
        rename = "backingStore",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub backing_store: Option<BackingStore>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    #[serde(rename = "@unit")]
    pub unit: String,
    #[serde(rename = "$text")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolTarget {
    pub format: Format,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub permissions: Option<Permissions>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Format {
    #[serde(rename = "@type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackingStore {
    pub path: String,
    pub format: Format,
}

// ---------- domain ----------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DomainXml {
    #[serde(rename = "@type")]
    pub kind: String,
    pub name: String,
    /// The VM generation ID (`<genid/>`: libvirt picks it and renews it at every snapshot
    /// revert; guest kernels with a vmgenid driver reseed their RNG when it changes).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub genid: Option<Empty>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metadata: Option<Metadata>,
    pub memory: Memory,
    pub vcpu: u32,
    pub os: Os,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub features: Option<Features>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpu: Option<Cpu>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub clock: Option<Clock>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub on_poweroff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub on_reboot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub on_crash: Option<String>,
    pub devices: Devices,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(rename = "@unit")]
    pub unit: String,
    #[serde(rename = "$text")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Os {
    #[serde(rename = "type")]
    pub os_type: OsType,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kernel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub initrd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cmdline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub boot: Option<Boot>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OsType {
    #[serde(rename = "@arch")]
    pub arch: String,
    #[serde(rename = "@machine")]
    pub machine: String,
    #[serde(rename = "$text")]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Boot {
    #[serde(rename = "@dev")]
    pub dev: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Features {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub acpi: Option<Empty>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tcg: Option<Tcg>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tcg {
    #[serde(rename = "tb-cache")]
    pub tb_cache: Memory,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    #[serde(rename = "@mode")]
    pub mode: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    #[serde(rename = "@offset")]
    pub offset: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Devices {
    #[serde(rename = "disk", default)]
    pub disks: Vec<Disk>,
    #[serde(rename = "interface", default)]
    pub interfaces: Vec<Interface>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub serial: Option<Serial>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub console: Option<Console>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub channel: Option<Channel>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rng: Option<Rng>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    #[serde(rename = "@type")]
    pub kind: String,
    #[serde(rename = "@device")]
    pub device: String,
    pub driver: DiskDriver,
    pub source: DiskSource,
    /// The disk's backing chain, named in full: libvirt and QEMU then follow no name from the
    /// image's header (an empty element ends the chain).
    #[serde(
        rename = "backingStore",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub backing_store: Option<DiskBacking>,
    pub target: DiskTarget,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub readonly: Option<Empty>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub serial: Option<String>,
}

/// `<backingStore type='file'><format type='…'/><source file='…'/><backingStore/></backingStore>`:
/// one backing file, which itself has none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskBacking {
    #[serde(rename = "@type")]
    pub kind: String,
    pub format: Format,
    pub source: DiskSource,
    #[serde(rename = "backingStore")]
    pub end: Empty,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskDriver {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "@type")]
    pub format: String,
    #[serde(rename = "@discard", skip_serializing_if = "Option::is_none", default)]
    pub discard: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskSource {
    #[serde(rename = "@file")]
    pub file: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskTarget {
    #[serde(rename = "@dev")]
    pub dev: String,
    #[serde(rename = "@bus")]
    pub bus: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    #[serde(rename = "@type")]
    pub kind: String,
    pub mac: MacAddr,
    pub source: IfaceSource,
    pub model: Model,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub driver: Option<IfaceDriver>,
}

/// `<driver><host csum='off' .../></driver>`: offloads the host side does not take.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IfaceDriver {
    pub host: HostOffloads,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostOffloads {
    #[serde(rename = "@csum")]
    pub csum: String,
    #[serde(rename = "@gso")]
    pub gso: String,
    #[serde(rename = "@tso4")]
    pub tso4: String,
    #[serde(rename = "@tso6")]
    pub tso6: String,
    #[serde(rename = "@ecn")]
    pub ecn: String,
    #[serde(rename = "@ufo")]
    pub ufo: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MacAddr {
    #[serde(rename = "@address")]
    pub address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IfaceSource {
    #[serde(rename = "@network")]
    pub network: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    #[serde(rename = "@type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Serial {
    #[serde(rename = "@type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub log: Option<Log>,
    pub target: PortTarget,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Log {
    #[serde(rename = "@file")]
    pub file: String,
    #[serde(rename = "@append")]
    pub append: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortTarget {
    #[serde(rename = "@type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    #[serde(rename = "@port")]
    pub port: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Console {
    #[serde(rename = "@type")]
    pub kind: String,
    pub target: PortTarget,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    #[serde(rename = "@type")]
    pub kind: String,
    pub target: ChannelTarget,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelTarget {
    #[serde(rename = "@type")]
    pub kind: String,
    #[serde(rename = "@name")]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rng {
    #[serde(rename = "@model")]
    pub model: String,
    pub backend: RngBackend,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RngBackend {
    #[serde(rename = "@model")]
    pub model: String,
    #[serde(rename = "$text")]
    pub value: String,
}
