//! `Hypervisor` over libvirt through the `virt` crate [I/O].

use serde::Deserialize;
use std::path::Path;
use virt::connect::Connect;
use virt::domain::Domain;
use virt::network::Network;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;

use super::{
    DriverError, Hypervisor, NetworkForward, NetworkSummary, Owned, PoolInfo, SnapshotInfo,
    VersionInfo,
};
use crate::names::ObjState;
use crate::tag::Metadata;

/// The system libvirt daemon: bridges and NAT need it.
pub const DEFAULT_URI: &str = "qemu:///system";

/// A connection to libvirtd. Cloning shares the connection.
pub struct Libvirt {
    conn: Connect,
    uri: String,
}

fn call<T>(
    what: impl FnOnce() -> String,
    r: Result<T, virt::error::Error>,
) -> Result<T, DriverError> {
    r.map_err(|source| {
        if connection_lost(&source) {
            DriverError::ConnectionLost {
                what: what(),
                source,
            }
        } else {
            DriverError::Call {
                what: what(),
                source,
            }
        }
    })
}

/// True when the error says the connection to libvirtd is gone rather than that the call failed.
fn connection_lost(e: &virt::error::Error) -> bool {
    use virt::enumutil::Enum;
    use virt::error::{ErrorDomain as D, ErrorNumber as N};
    matches!(e.domain(), Enum::Known(D::Rpc))
        || matches!(e.code(), Enum::Known(N::NoConnect))
        || [
            "client socket is closed",
            "Broken pipe",
            "End of file while reading",
        ]
        .iter()
        .any(|m| e.message().contains(m))
}

/// [`call`] for a call that changes the host: one step for fault injection ([`crate::fault`]).
/// Makes the call unless Ctrl-C was pressed ([`crate::interrupt`]) or a test asked it to fail
/// (`<command>:<n>:fail`).
fn changed<T>(
    what: impl Fn() -> String,
    f: impl FnOnce() -> Result<T, virt::error::Error>,
) -> Result<T, DriverError> {
    let Some(_making) = crate::interrupt::gate(&what()) else {
        return Err(DriverError::Interrupted { what: what() });
    };
    if crate::fault::fails(&what()) {
        return Err(DriverError::Injected { what: what() });
    }
    let v = call(&what, f())?;
    crate::fault::step(&what());
    Ok(v)
}

/// virNodeGetMemoryStats over all cells: (field, KiB) pairs such as `total`, `free`,
/// `buffers`, `cached` (the `virt` crate wraps only virNodeGetFreeMemory).
fn node_memory_stats(conn: &Connect) -> Result<Vec<(String, u64)>, virt::error::Error> {
    use virt::sys;
    let mut n: std::os::raw::c_int = 0;
    // SAFETY: a null params array with nparams 0 asks libvirt how many fields there are.
    let r = unsafe {
        sys::virNodeGetMemoryStats(
            conn.as_ptr(),
            sys::VIR_NODE_MEMORY_STATS_ALL_CELLS,
            std::ptr::null_mut(),
            &mut n,
            0,
        )
    };
    if r < 0 {
        return Err(virt::error::Error::last_error());
    }
    let mut params: Vec<sys::virNodeMemoryStats> = (0..n.max(0))
        .map(|_| sys::virNodeMemoryStats {
            field: [0; 80],
            value: 0,
        })
        .collect();
    // SAFETY: `params` holds `n` zeroed records that libvirt fills; it writes at most `n`.
    let r = unsafe {
        sys::virNodeGetMemoryStats(
            conn.as_ptr(),
            sys::VIR_NODE_MEMORY_STATS_ALL_CELLS,
            params.as_mut_ptr(),
            &mut n,
            0,
        )
    };
    if r < 0 {
        return Err(virt::error::Error::last_error());
    }
    Ok(params
        .iter()
        .take(usize::try_from(n).unwrap_or(0))
        .map(|p| {
            // SAFETY: libvirt writes a NUL-terminated field name into the 80-byte array.
            let name = unsafe { std::ffi::CStr::from_ptr(p.field.as_ptr()) };
            (name.to_string_lossy().into_owned(), p.value)
        })
        .collect())
}

fn version_string(v: u32) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000)
}

#[derive(Deserialize)]
pub(super) struct DomainMeta {
    /// Read by the fake (which keeps objects by name); libvirt has its own lookup.
    #[serde(default)]
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) name: String,
    #[serde(default)]
    pub(super) metadata: Option<Metadata>,
}

/// The parts of any network's XML we read; lenient, since networks made by others are read too.
#[derive(Deserialize)]
pub(super) struct NetworkMeta {
    /// Read by the fake (which keeps objects by name); libvirt has its own lookup.
    #[serde(default)]
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) name: String,
    #[serde(default)]
    pub(super) metadata: Option<Metadata>,
    #[serde(default)]
    pub(super) bridge: Option<Bridge>,
    #[serde(rename = "ip", default)]
    pub(super) ips: Vec<AnyIp>,
    #[serde(default)]
    pub(super) forward: Option<Forward>,
    #[serde(default)]
    pub(super) dns: Option<AnyDns>,
}

impl NetworkMeta {
    /// The node entries: every `<ip>`'s DHCP hosts (by the `<ip>`'s position), then the DNS hosts.
    pub(super) fn entries(&self) -> Vec<super::NetEntry> {
        let mut out = Vec::new();
        for (i, ip) in self.ips.iter().enumerate() {
            let Some(dhcp) = &ip.dhcp else { continue };
            for h in &dhcp.hosts {
                out.push(super::NetEntry::Dhcp {
                    ip: u8::try_from(i).unwrap_or(u8::MAX),
                    mac: h.mac.clone(),
                    name: h.name.clone().unwrap_or_default(),
                    address: h.ip.clone().unwrap_or_default(),
                });
            }
        }
        for h in self.dns.iter().flat_map(|d| &d.hosts) {
            out.push(super::NetEntry::Dns {
                address: h.ip.clone(),
                names: h.hostnames.iter().map(|n| n.text.clone()).collect(),
            });
        }
        out
    }
}

#[derive(Deserialize, Default)]
pub(super) struct AnyDns {
    #[serde(rename = "host", default)]
    hosts: Vec<AnyDnsHost>,
}

#[derive(Deserialize)]
struct AnyDnsHost {
    #[serde(rename = "@ip")]
    ip: String,
    #[serde(rename = "hostname", default)]
    hostnames: Vec<AnyText>,
}

#[derive(Deserialize)]
struct AnyText {
    #[serde(rename = "$text", default)]
    text: String,
}

#[derive(Deserialize, Default)]
pub(super) struct AnyDhcp {
    #[serde(rename = "host", default)]
    hosts: Vec<AnyDhcpHost>,
}

#[derive(Deserialize)]
struct AnyDhcpHost {
    #[serde(rename = "@mac", default)]
    mac: Option<String>,
    #[serde(rename = "@name", default)]
    name: Option<String>,
    #[serde(rename = "@ip", default)]
    ip: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Forward {
    /// libvirt's default for a bare `<forward/>` is NAT.
    #[serde(rename = "@mode", default)]
    mode: Option<String>,
}

pub(super) fn forward_mode(f: Option<Forward>) -> Option<String> {
    f.map(|f| f.mode.unwrap_or_else(|| "nat".into()))
}

#[derive(Deserialize)]
pub(super) struct AnyIp {
    #[serde(rename = "@family", default)]
    family: Option<String>,
    #[serde(rename = "@address", default)]
    address: Option<String>,
    #[serde(rename = "@prefix", default)]
    prefix: Option<u8>,
    #[serde(rename = "@netmask", default)]
    netmask: Option<String>,
    #[serde(default)]
    dhcp: Option<AnyDhcp>,
}

impl AnyIp {
    /// `a.b.c.d/n` for an IPv4 `<ip>`, whether written with `prefix` or `netmask`.
    pub(super) fn cidr4(&self) -> Option<String> {
        if self.family.as_deref().unwrap_or("ipv4") != "ipv4" {
            return None;
        }
        let addr = self.address.as_ref()?;
        let prefix = match (self.prefix, &self.netmask) {
            (Some(p), _) => p,
            (None, Some(m)) => {
                let m: std::net::Ipv4Addr = m.parse().ok()?;
                u8::try_from(u32::from(m).count_ones()).ok()?
            }
            (None, None) => 24,
        };
        Some(format!("{addr}/{prefix}"))
    }
}

#[derive(Deserialize)]
struct SnapshotMeta {
    #[serde(rename = "creationTime", default)]
    creation_time: Option<u64>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    memory: Option<SnapshotMemory>,
}

#[derive(Deserialize)]
struct SnapshotMemory {
    #[serde(rename = "@snapshot", default)]
    snapshot: String,
}

#[derive(Deserialize)]
pub(super) struct PoolMeta {
    /// Read by the fake (which keeps objects by name); libvirt has its own lookup.
    #[serde(default)]
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) name: String,
    pub(super) target: PoolTarget,
}

pub(super) fn parse<'a, T: Deserialize<'a>>(what: &str, xml: &'a str) -> Result<T, DriverError> {
    quick_xml::de::from_str(xml).map_err(|source| DriverError::Parse {
        what: what.to_string(),
        source,
    })
}

impl Libvirt {
    /// Opens `uri` (default `qemu:///system`). libvirt's own error printing is turned off:
    /// errors come back through `DriverError` and are printed once, by `main`.
    pub fn open(uri: Option<&str>) -> Result<Libvirt, DriverError> {
        virt::error::clear_error_callback();
        let uri = uri.unwrap_or(DEFAULT_URI).to_string();
        let conn = Connect::open(Some(&uri)).map_err(|source| DriverError::Connect {
            uri: uri.clone(),
            source,
        })?;
        Ok(Libvirt { conn, uri })
    }

    fn domain(&self, name: &str) -> Result<Domain, DriverError> {
        call(
            || format!("find domain {name}"),
            self.conn.lookup_domain_by_name(name),
        )
    }

    fn network(&self, name: &str) -> Result<Network, DriverError> {
        call(
            || format!("find network {name}"),
            self.conn.lookup_network_by_name(name),
        )
    }

    fn storage_pool(&self, name: &str) -> Result<StoragePool, DriverError> {
        call(
            || format!("find storage pool {name}"),
            self.conn.lookup_storage_pool_by_name(name),
        )
    }

    /// `domain`'s snapshot named `snapshot`; `NoSnapshot` when it has none of that name.
    fn find_snapshot(
        &self,
        domain: &str,
        snapshot: &str,
    ) -> Result<virt::domain_snapshot::DomainSnapshot, DriverError> {
        let dom = self.domain(domain)?;
        let snaps = call(
            || format!("list snapshots of {domain}"),
            dom.list_all_snapshots(0),
        )?;
        snaps
            .into_iter()
            .find(|s| s.name().ok().as_deref() == Some(snapshot))
            .ok_or_else(|| DriverError::NoSnapshot {
                domain: domain.to_string(),
                snapshot: snapshot.to_string(),
            })
    }
}

/// Our metadata element, in our namespace (not merely an element with the same local name).
pub(super) use crate::tag::is_ours;

/// A `<bridge name=...>` as read back (any network's, so lenient).
#[derive(Deserialize)]
pub(super) struct Bridge {
    #[serde(rename = "@name")]
    pub(super) name: String,
}

/// A pool's `<target><path>`.
#[derive(Deserialize)]
pub(super) struct PoolTarget {
    pub(super) path: String,
}

/// `Ok(())` for success or "not found": removal is idempotent.
/// A domain's state as dcos-lab names it: shut off with a managed save image is `Suspended`.
fn obj_state(dom: &virt::domain::Domain) -> Result<ObjState, virt::error::Error> {
    use virt::domain::DomainState as S;
    Ok(match dom.state()?.0 {
        virt::enumutil::Enum::Known(S::Running | S::Blocked) => ObjState::Active,
        virt::enumutil::Enum::Known(S::Paused | S::PMSuspended) => ObjState::Paused,
        _ if dom.has_managed_save(0)? => ObjState::Suspended,
        _ => ObjState::Inactive,
    })
}

fn ignore_missing(r: Result<(), DriverError>) -> Result<(), DriverError> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

impl Hypervisor for Libvirt {
    fn version(&self) -> Result<VersionInfo, DriverError> {
        let lib = call(
            || "read the libvirt version".into(),
            self.conn.lib_version(),
        )?;
        let hyp = call(
            || "read the hypervisor version".into(),
            self.conn.hyp_version(),
        )?;
        let kind = call(|| "read the driver type".into(), self.conn.driver_type())?;
        Ok(VersionInfo {
            uri: self.uri.clone(),
            libvirt: version_string(lib),
            hypervisor: format!("{kind} {}", version_string(hyp)),
        })
    }

    fn free_memory(&self) -> Result<u64, DriverError> {
        let stats = node_memory_stats(&self.conn).map_err(|source| DriverError::Call {
            what: "read the host's memory".into(),
            source,
        })?;
        let kib = |f: &str| stats.iter().find(|(k, _)| k == f).map_or(0, |(_, v)| *v);
        Ok((kib("free") + kib("buffers") + kib("cached")) * 1024)
    }

    fn define_network(&self, xml: &str) -> Result<String, DriverError> {
        let net = changed(
            || "define a network".into(),
            || self.conn.define_network_xml(xml),
        )?;
        call(|| "read a network's name".into(), net.name())
    }

    fn start_network(&self, name: &str) -> Result<(), DriverError> {
        let net = self.network(name)?;
        if call(|| format!("query network {name}"), net.is_active())? {
            return Ok(());
        }
        changed(
            || format!("start network {name}"),
            || net.create().map(|_| ()),
        )
    }

    fn remove_network(&self, name: &str) -> Result<(), DriverError> {
        ignore_missing((|| {
            let net = self.network(name)?;
            if call(|| format!("query network {name}"), net.is_active())? {
                changed(|| format!("stop network {name}"), || net.destroy())?;
            }
            changed(|| format!("undefine network {name}"), || net.undefine())
        })())
    }

    fn owned_networks(&self) -> Result<Vec<Owned>, DriverError> {
        let nets = call(|| "list networks".into(), self.conn.list_all_networks(0))?;
        let mut out = Vec::new();
        for net in nets {
            let Ok(name) = net.name() else { continue };
            let xml = match net.xml_desc(0) {
                Ok(x) => x,
                // Removed while we were listing.
                Err(_) => continue,
            };
            let Ok(meta) = parse::<NetworkMeta>(&format!("network {name}"), &xml) else {
                tracing::debug!("skipping network {name}: its XML is not readable here");
                continue;
            };
            if let Some(tag) = meta.metadata.and_then(|m| m.lab).filter(is_ours) {
                let active = match net.is_active() {
                    Ok(a) => a,
                    // Removed while we were listing.
                    Err(_) => continue,
                };
                out.push(Owned {
                    name,
                    state: if active {
                        ObjState::Active
                    } else {
                        ObjState::Inactive
                    },
                    tag,
                });
            }
        }
        Ok(out)
    }

    fn network_forward(&self, name: &str) -> Result<NetworkForward, DriverError> {
        let net = self.network(name)?;
        let read = |flags: u32, what: &str| -> Result<Option<String>, DriverError> {
            let xml = call(
                || format!("read the {what} definition of network {name}"),
                net.xml_desc(flags),
            )?;
            Ok(forward_mode(
                parse::<NetworkMeta>(&format!("network {name}"), &xml)?.forward,
            ))
        };
        let active = call(
            || format!("ask whether network {name} runs"),
            net.is_active(),
        )?;
        Ok(NetworkForward {
            live: if active { read(0, "live")? } else { None },
            active,
            // VIR_NETWORK_XML_INACTIVE: what the network will be at its next start.
            defined: read(virt::sys::VIR_NETWORK_XML_INACTIVE, "persistent")?,
        })
    }

    fn network_entries(&self, name: &str) -> Result<Vec<super::NetEntry>, DriverError> {
        let net = self.network(name)?;
        let xml = call(
            || format!("read the definition of network {name}"),
            net.xml_desc(0),
        )?;
        Ok(parse::<NetworkMeta>(&format!("network {name}"), &xml)?.entries())
    }

    fn update_network(
        &self,
        name: &str,
        entry: &super::NetEntry,
        add: bool,
    ) -> Result<(), DriverError> {
        use virt::sys;
        let net = self.network(name)?;
        let active = call(
            || format!("ask whether network {name} runs"),
            net.is_active(),
        )?;
        let flags = sys::VIR_NETWORK_UPDATE_AFFECT_CONFIG
            | if active {
                sys::VIR_NETWORK_UPDATE_AFFECT_LIVE
            } else {
                0
            };
        let (section, parent) = match entry {
            super::NetEntry::Dhcp { ip, .. } => {
                (sys::VIR_NETWORK_SECTION_IP_DHCP_HOST, i32::from(*ip))
            }
            super::NetEntry::Dns { .. } => (sys::VIR_NETWORK_SECTION_DNS_HOST, -1),
        };
        let command = if add {
            sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST
        } else {
            sys::VIR_NETWORK_UPDATE_COMMAND_DELETE
        };
        let xml = if add { entry.xml() } else { entry.delete_xml() };
        changed(
            || {
                format!(
                    "{} {} {} network {name}",
                    if add { "add" } else { "delete" },
                    entry.describe(),
                    if add { "to" } else { "from" }
                )
            },
            || net.update(command, section, parent, &xml, flags),
        )
    }

    fn all_networks(&self) -> Result<Vec<NetworkSummary>, DriverError> {
        let nets = call(|| "list networks".into(), self.conn.list_all_networks(0))?;
        let mut out = Vec::new();
        for net in nets {
            let Ok(name) = net.name() else { continue };
            let Ok(xml) = net.xml_desc(0) else { continue };
            let Ok(meta) = parse::<NetworkMeta>(&format!("network {name}"), &xml) else {
                tracing::debug!("skipping network {name}: its XML is not readable here");
                continue;
            };
            out.push(NetworkSummary {
                name,
                bridge: meta.bridge.map(|b| b.name),
                ipv4: meta.ips.iter().filter_map(AnyIp::cidr4).collect(),
                active: net.is_active().unwrap_or(false),
            });
        }
        Ok(out)
    }

    fn define_domain(&self, xml: &str) -> Result<String, DriverError> {
        let dom = changed(
            || "define a domain".into(),
            || self.conn.define_domain_xml(xml),
        )?;
        call(|| "read a domain's name".into(), dom.name())
    }

    fn start_domain(&self, name: &str) -> Result<(), DriverError> {
        let dom = self.domain(name)?;
        if call(|| format!("query domain {name}"), dom.is_active())? {
            // Running, or paused (by an interrupted snapshot or revert): make it run.
            return self.resume_domain(name);
        }
        changed(
            || format!("start domain {name}"),
            || dom.create().map(|_| ()),
        )
    }

    fn stop_domain(&self, name: &str) -> Result<(), DriverError> {
        let dom = self.domain(name)?;
        if call(|| format!("query domain {name}"), dom.is_active())? {
            changed(|| format!("stop domain {name}"), || dom.destroy())?;
        }
        Ok(())
    }

    fn shutdown_domain(&self, name: &str) -> Result<(), DriverError> {
        let dom = self.domain(name)?;
        if !call(|| format!("query domain {name}"), dom.is_active())? {
            return Ok(());
        }
        changed(
            || format!("shut down domain {name}"),
            // The guest agent when it answers (our images run one on the domain's channel),
            // else the ACPI power button (an imported image without the agent).
            || {
                dom.shutdown_flags(
                    virt::sys::VIR_DOMAIN_SHUTDOWN_GUEST_AGENT
                        | virt::sys::VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN,
                )
                .map(|_| ())
            },
        )
    }

    fn domain_state(&self, name: &str) -> Result<ObjState, DriverError> {
        let dom = self.domain(name)?;
        call(|| format!("query domain {name}"), obj_state(&dom))
    }

    fn suspend_domain(&self, name: &str) -> Result<(), DriverError> {
        use virt::domain::DomainState as S;
        let dom = self.domain(name)?;
        match call(|| format!("query domain {name}"), dom.state())?.0 {
            virt::enumutil::Enum::Known(S::Paused) => Ok(()),
            _ => changed(|| format!("pause domain {name}"), || dom.suspend()),
        }
    }

    fn save_domain(&self, name: &str) -> Result<(), DriverError> {
        let dom = self.domain(name)?;
        if !call(|| format!("query domain {name}"), dom.is_active())?
            && call(
                || format!("query domain {name}'s saved memory"),
                dom.has_managed_save(0),
            )?
        {
            return Ok(());
        }
        changed(
            || format!("save domain {name}'s memory"),
            || dom.managed_save(virt::sys::VIR_DOMAIN_SAVE_RUNNING),
        )
    }

    fn discard_saved(&self, name: &str) -> Result<(), DriverError> {
        let dom = self.domain(name)?;
        if !call(
            || format!("query domain {name}'s saved memory"),
            dom.has_managed_save(0),
        )? {
            return Ok(());
        }
        changed(
            || format!("drop domain {name}'s saved memory"),
            || dom.managed_save_remove(0),
        )
    }

    fn settle_domain(&self, name: &str) -> Result<(), DriverError> {
        let dom = self.domain(name)?;
        // Reading the balloon's memory statistics takes a query job on the domain before it
        // asks whether the domain runs, and libvirtd queues that job behind the change under
        // way there (a pause, a resume, a start, a revert): when it returns, that change is
        // made. So it is asked of a domain that looks stopped too (a start still under way
        // shows it stopped), which answers "not running" once nothing is under way. A snapshot
        // being taken lets queries through; every change after it waits for it in libvirtd.
        match call(
            || format!("wait for libvirt to finish with domain {name}"),
            dom.memory_stats(0),
        ) {
            Ok(_) => Ok(()),
            Err(DriverError::Call { source, .. })
                if matches!(
                    source.code(),
                    virt::enumutil::Enum::Known(virt::error::ErrorNumber::OperationInvalid)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn resume_domain(&self, name: &str) -> Result<(), DriverError> {
        use virt::domain::DomainState as S;
        let dom = self.domain(name)?;
        match call(|| format!("query domain {name}"), dom.state())?.0 {
            virt::enumutil::Enum::Known(S::Paused) => {
                match changed(|| format!("resume domain {name}"), || dom.resume()) {
                    // A domain libvirt is still starting shows as paused until it runs.
                    Err(e)
                        if matches!(
                            dom.state(),
                            Ok((virt::enumutil::Enum::Known(S::Running), _))
                        ) =>
                    {
                        tracing::debug!("{name} runs already: {e}");
                        Ok(())
                    }
                    r => r,
                }
            }
            _ => Ok(()),
        }
    }

    fn create_snapshot(
        &self,
        domain: &str,
        snapshot: &str,
        description: &str,
    ) -> Result<(), DriverError> {
        let dom = self.domain(domain)?;
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let xml = format!(
            "<domainsnapshot><name>{}</name><description>{}</description><memory snapshot='internal'/><disks><disk name='vda' snapshot='internal'/><disk name='vdb' snapshot='no'/></disks></domainsnapshot>",
            esc(snapshot),
            esc(description)
        );
        changed(
            || format!("snapshot domain {domain} as {snapshot}"),
            || dom.create_snapshot_xml(&xml, 0).map(|_| ()),
        )
    }

    fn revert_snapshot(
        &self,
        domain: &str,
        snapshot: &str,
        paused: bool,
    ) -> Result<(), DriverError> {
        let snap = self.find_snapshot(domain, snapshot)?;
        let flags = if paused {
            virt::sys::VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED
        } else {
            virt::sys::VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING
        };
        changed(
            || format!("revert domain {domain} to {snapshot}"),
            || snap.revert(flags),
        )
    }

    fn delete_snapshot(&self, domain: &str, snapshot: &str) -> Result<(), DriverError> {
        let dom = match self.domain(domain) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let snaps = call(
            || format!("list snapshots of {domain}"),
            dom.list_all_snapshots(0),
        )?;
        for s in snaps {
            if s.name().ok().as_deref() == Some(snapshot) {
                changed(
                    || format!("delete snapshot {snapshot} of {domain}"),
                    || s.delete(0),
                )?;
            }
        }
        Ok(())
    }

    fn snapshots(&self, domain: &str) -> Result<Vec<SnapshotInfo>, DriverError> {
        let dom = self.domain(domain)?;
        let snaps = call(
            || format!("list snapshots of {domain}"),
            dom.list_all_snapshots(0),
        )?;
        let mut out = Vec::new();
        for s in snaps {
            let Ok(name) = s.name() else { continue };
            let Ok(xml) = s.xml_desc(0) else { continue };
            let meta: SnapshotMeta = parse(&format!("snapshot {name} of {domain}"), &xml)?;
            out.push(SnapshotInfo {
                name,
                created_unix: meta.creation_time.unwrap_or(0),
                state: meta.state.unwrap_or_default(),
                has_memory: meta.memory.is_some_and(|m| m.snapshot == "internal"),
            });
        }
        out.sort_by_key(|s| s.created_unix);
        Ok(out)
    }

    fn snapshot_xml(&self, domain: &str, snapshot: &str) -> Result<String, DriverError> {
        let snap = self.find_snapshot(domain, snapshot)?;
        call(
            || format!("read snapshot {snapshot} of {domain}"),
            snap.xml_desc(0),
        )
    }

    fn redefine_snapshot(&self, domain: &str, xml: &str) -> Result<(), DriverError> {
        let dom = self.domain(domain)?;
        changed(
            || format!("redefine a snapshot of domain {domain}"),
            || {
                dom.create_snapshot_xml(xml, virt::sys::VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)
                    .map(|_| ())
            },
        )
    }

    fn domain_xml(&self, domain: &str) -> Result<String, DriverError> {
        let dom = self.domain(domain)?;
        call(|| format!("read domain {domain}"), dom.xml_desc(0))
    }

    fn machine_type(&self, alias: &str) -> Result<Option<String>, DriverError> {
        let caps = call(
            || "read the host's capabilities".into(),
            self.conn.capabilities(),
        )?;
        // `<machine canonical='pc-q35-7.2' ...>q35</machine>`: the first guest that has it.
        let needle = format!(">{alias}</machine>");
        Ok(caps.lines().find(|l| l.contains(&needle)).and_then(|l| {
            let start = l.find("canonical='")? + "canonical='".len();
            let end = l[start..].find('\'')? + start;
            Some(l[start..end].to_string())
        }))
    }

    fn emulator(&self) -> Result<Option<String>, DriverError> {
        let caps = call(
            || "read the host's capabilities".into(),
            self.conn.capabilities(),
        )?;
        // `<arch name='x86_64'>` … `<emulator>/usr/bin/qemu-system-x86_64</emulator>`.
        let arch = caps
            .find("<arch name='x86_64'>")
            .or_else(|| caps.find("<arch name=\"x86_64\">"));
        Ok(arch.and_then(|at| {
            let rest = &caps[at..];
            let start = rest.find("<emulator>")? + "<emulator>".len();
            let end = rest[start..].find("</emulator>")? + start;
            Some(rest[start..end].trim().to_string())
        }))
    }

    fn remove_domain(&self, name: &str) -> Result<(), DriverError> {
        use virt::sys;
        ignore_missing((|| {
            let dom = self.domain(name)?;
            if call(|| format!("query domain {name}"), dom.is_active())? {
                changed(|| format!("stop domain {name}"), || dom.destroy())?;
            }
            // Our domains boot without UEFI and take no checkpoints: snapshot metadata and a
            // managed save image are all that can hang on to a domain.
            let flags =
                sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE;
            changed(
                || format!("undefine domain {name}"),
                || dom.undefine_flags(flags),
            )
        })())
    }

    fn owned_domains(&self) -> Result<Vec<Owned>, DriverError> {
        let doms = call(|| "list domains".into(), self.conn.list_all_domains(0))?;
        let mut out = Vec::new();
        for dom in doms {
            let Ok(name) = dom.name() else { continue };
            let Ok(xml) = dom.xml_desc(0) else { continue };
            let Ok(meta) = parse::<DomainMeta>(&format!("domain {name}"), &xml) else {
                tracing::debug!("skipping domain {name}: its metadata is not ours");
                continue;
            };
            let Some(tag) = meta.metadata.and_then(|m| m.lab).filter(is_ours) else {
                continue;
            };
            let Ok(state) = obj_state(&dom) else {
                // Removed while we were listing.
                continue;
            };
            out.push(Owned { name, state, tag });
        }
        Ok(out)
    }

    fn define_pool(&self, xml: &str) -> Result<String, DriverError> {
        let pool = changed(
            || "define a storage pool".into(),
            || self.conn.define_storage_pool_xml(xml, 0),
        )?;
        call(|| "read a pool's name".into(), pool.name())
    }

    fn start_pool(&self, name: &str, build: bool) -> Result<(), DriverError> {
        let pool = self.storage_pool(name)?;
        if build {
            // Making the pool's directory (again) is not a step of its own: it changes nothing
            // once the directory exists, and the start that follows is the step.
            call(|| format!("build storage pool {name}"), pool.build(0))?;
        }
        if !call(|| format!("query storage pool {name}"), pool.is_active())? {
            changed(|| format!("start storage pool {name}"), || pool.create(0))?;
        }
        Ok(())
    }

    fn pool(&self, name: &str) -> Result<Option<PoolInfo>, DriverError> {
        let pool = match self.storage_pool(name) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let xml = call(|| format!("read storage pool {name}"), pool.xml_desc(0))?;
        let meta: PoolMeta = parse(&format!("storage pool {name}"), &xml)?;
        let active = call(|| format!("query storage pool {name}"), pool.is_active())?;
        let volumes = if active {
            let _ = pool.refresh(0);
            call(|| format!("list volumes of {name}"), pool.list_volumes())?
        } else {
            Vec::new()
        };
        Ok(Some(PoolInfo {
            name: name.to_string(),
            path: meta.target.path,
            state: if active {
                ObjState::Active
            } else {
                ObjState::Inactive
            },
            volumes,
        }))
    }

    fn remove_pool(&self, name: &str) -> Result<(), DriverError> {
        ignore_missing((|| {
            let pool = self.storage_pool(name)?;
            if !call(|| format!("query storage pool {name}"), pool.is_active())?
                && pool.create(0).is_err()
            {
                // Volumes can only be listed and deleted on an active pool. One that cannot start
                // (its directory is gone) holds no volumes libvirt could delete: undefine it.
                return changed(
                    || format!("undefine storage pool {name}"),
                    || pool.undefine(),
                );
            }
            let _ = pool.refresh(0);
            let vols = call(
                || format!("list volumes of {name}"),
                pool.list_all_volumes(0),
            )?;
            for vol in vols {
                let vname = vol.name().unwrap_or_default();
                changed(
                    || format!("delete volume {vname} of {name}"),
                    || vol.delete(0),
                )?;
            }
            // Not a step of its own: a removal started over starts the pool again to list its
            // volumes, so this stop would repeat forever; the deletes around it are the steps.
            call(|| format!("stop storage pool {name}"), pool.destroy())?;
            changed(
                || format!("delete the directory of storage pool {name}"),
                || pool.delete(0),
            )?;
            changed(
                || format!("undefine storage pool {name}"),
                || pool.undefine(),
            )
        })())
    }

    fn create_volume(&self, pool: &str, xml: &str) -> Result<String, DriverError> {
        let p = self.storage_pool(pool)?;
        let vol = changed(
            || format!("create a volume in {pool}"),
            || StorageVol::create_xml(&p, xml, 0),
        )?;
        call(|| "read a volume's path".into(), vol.path())
    }

    fn delete_volume(&self, pool: &str, volume: &str) -> Result<(), DriverError> {
        let p = self.storage_pool(pool)?;
        // A volume made by hand beside the pool's (or before a refresh) is seen after one.
        let _ = p.refresh(0);
        let Ok(vol) = p.lookup_storage_vol_by_name(volume) else {
            return Ok(());
        };
        changed(
            || format!("delete volume {volume} of {pool}"),
            || vol.delete(0),
        )
    }

    fn upload_volume(&self, pool: &str, xml: &str, from: &Path) -> Result<String, DriverError> {
        use std::io::Read;
        let what = || format!("upload {} into {pool}", from.display());
        let mut file = std::fs::File::open(from).map_err(|e| DriverError::Io {
            what: what(),
            source: e,
        })?;
        let len = file
            .metadata()
            .map_err(|e| DriverError::Io {
                what: what(),
                source: e,
            })?
            .len();
        let p = self.storage_pool(pool)?;
        let vol = changed(what, || StorageVol::create_xml(&p, xml, 0))?;
        let sent = (|| -> Result<(), DriverError> {
            let stream = call(what, Stream::new(&self.conn, 0))?;
            call(what, vol.upload(&stream, 0, len, 0))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).map_err(|e| DriverError::Io {
                    what: what(),
                    source: e,
                })?;
                if n == 0 {
                    break;
                }
                let mut off = 0;
                while off < n {
                    let m = call(what, stream.send(&buf[off..n]))?;
                    match usize::try_from(m) {
                        Ok(m) if m > 0 => off += m,
                        _ => {
                            return Err(DriverError::Refused {
                                what: what(),
                                why: "the stream took no bytes".into(),
                            });
                        }
                    }
                }
            }
            call(what, stream.finish())
        })();
        if let Err(e) = sent {
            // Nothing half-written is left for a later `up` to mistake for a whole volume.
            let _ = vol.delete(0);
            return Err(e);
        }
        call(|| "read a volume's path".into(), vol.path())
    }

    fn download_volume(&self, pool: &str, volume: &str, to: &Path) -> Result<(), DriverError> {
        use std::io::{Seek, Write};
        let what = || format!("download {volume} from {pool}");
        let p = self.storage_pool(pool)?;
        let vol = call(what, p.lookup_storage_vol_by_name(volume))?;
        let mut file = std::fs::File::create(to).map_err(|e| DriverError::Io {
            what: what(),
            source: e,
        })?;
        let stream = call(what, Stream::new(&self.conn, 0))?;
        call(what, vol.download(&stream, 0, 0, 0))?;
        let io = |e| DriverError::Io {
            what: what(),
            source: e,
        };
        // Runs of zeros become holes, as the volume's own were (a disk overlay is mostly
        // unallocated): skipped over, the file's length set at the end.
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = call(what, stream.recv(&mut buf))?;
            let n = usize::try_from(n).unwrap_or(0);
            if n == 0 {
                break;
            }
            for block in buf[..n].chunks(64 * 1024) {
                if block.iter().all(|b| *b == 0) {
                    file.seek(std::io::SeekFrom::Current(block.len() as i64))
                        .map_err(io)?;
                } else {
                    file.write_all(block).map_err(io)?;
                }
            }
            len += n as u64;
        }
        file.set_len(len).map_err(io)?;
        call(what, stream.finish())
    }

    fn owned_pools(&self) -> Result<Vec<(String, String)>, DriverError> {
        let pools = call(
            || "list storage pools".into(),
            self.conn.list_all_storage_pools(0),
        )?;
        let mut out = Vec::new();
        for p in pools {
            let Ok(name) = p.name() else { continue };
            if !name.starts_with(&format!("{}-", crate::names::PREFIX)) {
                continue;
            }
            let Ok(xml) = p.xml_desc(0) else { continue };
            if let Ok(meta) = parse::<PoolMeta>(&format!("storage pool {name}"), &xml) {
                out.push((name, meta.target.path));
            }
        }
        Ok(out)
    }

    fn refresh_pool(&self, name: &str) -> Result<(), DriverError> {
        let p = self.storage_pool(name)?;
        call(|| format!("refresh storage pool {name}"), p.refresh(0))
    }

    fn read_volume(&self, pool: &str, volume: &str) -> Result<Vec<u8>, DriverError> {
        let what = || format!("read {volume} of {pool}");
        let p = self.storage_pool(pool)?;
        let vol = call(what, p.lookup_storage_vol_by_name(volume))?;
        self.read_range(&vol, 0, 0, &what)
    }

    fn disk_snapshots(
        &self,
        domain: &str,
        disk: &std::path::Path,
    ) -> Result<std::collections::BTreeMap<String, u64>, DriverError> {
        // libvirt does not report what a qcow2 holds: its snapshot table is read here, from
        // the file when this process may read it, else through libvirt (a plain user's disk,
        // which QEMU's user owns while it runs; a disk on another host). Only reads.
        let what = || {
            format!(
                "read the snapshots in {} (disk of {domain})",
                disk.display()
            )
        };
        let bad = |why: &str| DriverError::Tool {
            what: what(),
            message: why.to_string(),
        };
        let read: Box<dyn Fn(u64, u64) -> Result<Vec<u8>, DriverError>> =
            match std::fs::File::open(disk) {
                Ok(f) => Box::new(move |off, len| {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
                    let n = f.read_at(&mut buf, off).map_err(|e| DriverError::Io {
                        what: what(),
                        source: e,
                    })?;
                    buf.truncate(n);
                    Ok(buf)
                }),
                // Not ours to read, or not on this machine (a node on another host): the
                // volume at that path, through libvirt.
                Err(e) => match self
                    .conn
                    .lookup_storage_vol_by_path(&disk.display().to_string())
                {
                    Ok(vol) => Box::new(move |off, len| self.read_range(&vol, off, len, &what)),
                    Err(v) => {
                        return Err(bad(&format!(
                            "Could not open the disk: {e}; libvirt knows no volume there: {v}"
                        )));
                    }
                },
            };
        let head = read(0, 72)?;
        let (count, at) = crate::image::qcow2::snapshot_table(&head)
            .ok_or_else(|| bad("it is not a qcow2 image"))?;
        if count == 0 {
            return Ok(Default::default());
        }
        // An entry is 40 bytes, its extra data, id and name: 1 KiB each is far more than QEMU
        // writes; the table is read whole, bounded.
        let len = (u64::from(count) * 1024).min(16 << 20);
        let table = read(at, len)?;
        crate::image::qcow2::snapshot_states(&table, count)
            .map(|v| v.into_iter().collect())
            .ok_or_else(|| bad("its snapshot table is not readable"))
    }
}

impl Libvirt {
    /// `len` bytes of a volume from `offset` (to its end when `len` is 0), through libvirt.
    fn read_range(
        &self,
        vol: &StorageVol,
        offset: u64,
        len: u64,
        what: &dyn Fn() -> String,
    ) -> Result<Vec<u8>, DriverError> {
        let stream = call(what, Stream::new(&self.conn, 0))?;
        call(what, vol.download(&stream, offset, len, 0))?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = call(what, stream.recv(&mut buf))?;
            let n = usize::try_from(n).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        call(what, stream.finish())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{self, Accel, NetKind};
    use crate::paths::Dirs;
    use crate::render::{self, RenderCtx};

    /// libvirt's own in-memory test driver: a fresh, private host per connection.
    fn test_driver() -> Libvirt {
        Libvirt::open(Some("test:///default")).expect("test driver")
    }

    fn minimal() -> model::Lab {
        model::parse(model::BUILTIN_LABS[0].1, "minimal", None, &["debian-12"]).expect("valid")
    }

    #[test]
    fn owned_objects_are_found_by_metadata_and_removal_is_idempotent() {
        let hv = test_driver();
        let lab = minimal();
        let addrs = crate::plan::plan_addresses(&lab);
        let dirs = Dirs {
            state: "/nonexistent/state".into(),
            cache: "/nonexistent/cache".into(),
            shared: None,
        };
        let ctx = RenderCtx {
            accel: Accel::Tcg,
            dirs: dirs.lab(&lab.name),
            image: crate::image::boot_image(&dirs, &lab.image),
        };
        let net = hv
            .define_network(&render::network_xml(&lab, &addrs, NetKind::Private).expect("xml"))
            .expect("define network");
        let dom = hv
            .define_domain(&render::domain_xml(&lab, &addrs, "master", &ctx).expect("xml"))
            .expect("define domain");

        let nets = hv.owned_networks().expect("list");
        assert_eq!(
            nets.len(),
            1,
            "the test driver's own `default` network is not ours"
        );
        assert_eq!(nets[0].tag.lab, "minimal");
        assert_eq!(nets[0].tag.network.as_deref(), Some("private"));
        assert_eq!(nets[0].state, ObjState::Inactive);
        hv.start_network(&net).expect("start");
        assert_eq!(
            hv.owned_networks().expect("list")[0].state,
            ObjState::Active
        );

        let doms = hv.owned_domains().expect("list");
        assert_eq!(
            doms.len(),
            1,
            "the test driver's own `test` domain is not ours"
        );
        assert_eq!(doms[0].tag.node.as_deref(), Some("master"));
        assert_eq!(doms[0].tag.role.as_deref(), Some("master"));

        // Nothing under way: settling answers at once, stopped ("not running" is no error) or
        // running.
        hv.settle_domain(&dom).expect("settle a stopped domain");
        hv.start_domain(&dom).expect("start");
        hv.settle_domain(&dom).expect("settle a running domain");
        assert_eq!(hv.owned_domains().expect("list")[0].state, ObjState::Active);

        hv.remove_domain(&dom).expect("remove");
        hv.remove_domain(&dom).expect("removing twice is fine");
        hv.remove_network(&net).expect("remove");
        hv.remove_network(&net).expect("removing twice is fine");
        assert!(hv.owned_domains().expect("list").is_empty());
        assert!(hv.owned_networks().expect("list").is_empty());
        // Objects that are not ours are untouched.
        assert!(
            hv.all_networks()
                .expect("list")
                .iter()
                .any(|n| n.name == "default")
        );
    }

    #[test]
    fn a_foreign_element_named_lab_is_not_ours() {
        let hv = test_driver();
        let xml = "<network><name>other</name><metadata><x:lab xmlns:x='urn:other' name='minimal' version='1'/></metadata><bridge name='virbr9'/></network>";
        hv.define_network(xml).expect("define");
        // Only this network is asked about: test:///default is one state per process, and the
        // tests beside this one define and remove networks of ours in it at the same time.
        assert!(
            hv.all_networks()
                .expect("list")
                .iter()
                .any(|n| n.name == "other")
        );
        assert!(
            !hv.owned_networks()
                .expect("list")
                .iter()
                .any(|n| n.name == "other"),
            "a foreign element named lab made it ours"
        );
    }

    #[test]
    fn missing_objects_report_not_found() {
        let hv = test_driver();
        let err = hv.start_domain("nope").expect_err("missing");
        assert!(err.is_not_found(), "{err:?}");
        assert!(hv.pool("nope").expect("lookup").is_none());
    }
}
