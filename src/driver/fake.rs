//! An in-memory `Hypervisor` (and the `Guests` that go with it) for the fast tests [test support].
//!
//! It keeps domains, networks, pools, volumes and snapshots with their states, and refuses what
//! libvirt refuses on the calls dcos-lab makes: starting a domain whose network is not running
//! or whose disk is missing, pausing or snapshotting a domain that is not running, a snapshot
//! name taken twice, reverting to a missing snapshot, a volume in a pool that is not running, a
//! network on a bridge another network has, a definition without a name. Pools are directories
//! on the real filesystem (seeds are real files), as libvirt's `dir` pools are.
//!
//! Faults: `fail(what, n)` makes the next `n` calls whose description contains `what` fail;
//! `die_after(n)` lets `n` more changes through and then holds every call, reads included,
//! without an answer, as a process killed after its n-th step would leave the host; `revive()`
//! ends that. `changes()` is
//! the log of every change made, in order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;

use super::libvirt::{DomainMeta, NetworkMeta, PoolMeta, forward_mode, is_ours, parse};
use super::{
    DriverError, Hypervisor, NetEntry, NetworkForward, NetworkSummary, Owned, PoolInfo,
    SnapshotInfo, VersionInfo,
};
use crate::guest::{BoxFuture, GuestError, Guests, Output, Shell, Target};
use crate::names::ObjState;
use crate::tag::LabTag;

#[derive(Debug, Clone)]
struct Snap {
    name: String,
    created: u64,
    state: String,
    /// Saved memory bytes as the disk holds them (0: lost, or taken without memory).
    memory: u64,
    /// The domain's definition when the snapshot was taken (or as redefined): a revert puts it
    /// back, metadata included, as libvirt does.
    domain_xml: String,
}

#[derive(Debug, Clone)]
struct Dom {
    xml: String,
    tag: Option<LabTag>,
    state: ObjState,
    networks: Vec<String>,
    disks: Vec<PathBuf>,
    snapshots: Vec<Snap>,
    /// A pause asked for by a process that died: reads still show the domain running until
    /// `settle_domain` (as libvirtd finishes the pause after answering a state query).
    pause_under_way: bool,
}

#[derive(Debug, Clone)]
struct Net {
    tag: Option<LabTag>,
    active: bool,
    bridge: Option<String>,
    ipv4: Vec<String>,
    /// The `<forward>` mode as defined (the fake applies a definition at the next start).
    forward: Option<String>,
    live_forward: Option<String>,
    /// Its DHCP and DNS hosts (the fake keeps one set for the running network and its
    /// definition: dcos-lab changes both at once).
    entries: Vec<NetEntry>,
}

#[derive(Debug, Clone)]
struct Pool {
    /// The directory as defined (what libvirt reports).
    path: PathBuf,
    /// Where its files really are: `path`, or `path` under the fake's root (`set_root`).
    fs: PathBuf,
    active: bool,
}

#[derive(Default)]
struct State {
    domains: BTreeMap<String, Dom>,
    networks: BTreeMap<String, Net>,
    pools: BTreeMap<String, Pool>,
    log: Vec<String>,
    fails: Vec<(String, u32)>,
    changes_left: Option<u32>,
    dead: bool,
    clock: u64,
    /// How many times the host was revived.
    epoch: u64,
    /// What `free_memory` answers (`set_free_memory`); 16 GiB unless set.
    free: Option<u64>,
    /// Domains whose guests ignore the ACPI power button (`ignore_power_button`).
    deaf: Vec<String>,
}

/// The state, locked for one call, with the epoch the call began in: a call that began before
/// a `revive()` belongs to the process that died and must not change anything after it.
struct Held<'a> {
    guard: MutexGuard<'a, State>,
    epoch: u64,
}

impl std::ops::Deref for Held<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.guard
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.guard
    }
}

/// The in-memory hypervisor.
pub struct FakeHypervisor {
    state: Mutex<State>,
    /// Becomes true when the host dies (`die_after`).
    dead: tokio::sync::watch::Sender<bool>,
    /// False from `die_after` until `revive`: a call to the dead host waits for it.
    revived: Mutex<bool>,
    revived_cv: std::sync::Condvar,
    /// `State::epoch`, readable without the lock (a call reads it before it waits for the lock).
    epoch: std::sync::atomic::AtomicU64,
    /// A directory standing for this host's `/` (pools at absolute paths of another host).
    root: Mutex<Option<PathBuf>>,
}

impl Default for FakeHypervisor {
    fn default() -> Self {
        FakeHypervisor {
            state: Mutex::new(State::default()),
            dead: tokio::sync::watch::channel(false).0,
            revived: Mutex::new(true),
            revived_cv: std::sync::Condvar::new(),
            epoch: std::sync::atomic::AtomicU64::new(0),
            root: Mutex::new(None),
        }
    }
}

#[derive(Deserialize, Default)]
struct DomDevices {
    #[serde(rename = "disk", default)]
    disks: Vec<DomDisk>,
    #[serde(rename = "interface", default)]
    interfaces: Vec<DomIface>,
}

#[derive(Deserialize)]
struct DomDisk {
    source: DomDiskSource,
}

#[derive(Deserialize)]
struct DomDiskSource {
    #[serde(rename = "@file")]
    file: String,
}

#[derive(Deserialize)]
struct DomIface {
    source: DomIfaceSource,
}

#[derive(Deserialize)]
struct DomIfaceSource {
    #[serde(rename = "@network")]
    network: String,
}

#[derive(Deserialize)]
struct DomDefinition {
    #[serde(default)]
    devices: DomDevices,
}

#[derive(Deserialize)]
struct VolumeDefinition {
    name: String,
    #[serde(default)]
    capacity: Option<VolumeCapacity>,
    #[serde(rename = "backingStore", default)]
    backing_store: Option<VolumeBacking>,
}

#[derive(Deserialize)]
struct VolumeCapacity {
    #[serde(rename = "$text")]
    bytes: u64,
}

#[derive(Deserialize)]
struct VolumeBacking {
    path: String,
    format: VolumeFormat,
}

#[derive(Deserialize)]
struct VolumeFormat {
    #[serde(rename = "@type")]
    kind: String,
}

fn refused(what: &str, why: impl Into<String>) -> DriverError {
    DriverError::Refused {
        what: what.to_string(),
        why: why.into(),
    }
}

fn missing(what: &str, kind: &'static str, name: &str) -> DriverError {
    DriverError::Missing {
        what: what.to_string(),
        kind,
        name: name.to_string(),
    }
}

impl FakeHypervisor {
    pub fn new() -> Arc<FakeHypervisor> {
        Arc::new(FakeHypervisor::default())
    }

    /// A host whose files are under `dir` (standing for its `/`): another host's pools, kept
    /// out of this machine's real directories.
    pub fn rooted(dir: &Path) -> Arc<FakeHypervisor> {
        let hv = FakeHypervisor::default();
        *hv.root.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir.to_path_buf());
        Arc::new(hv)
    }

    fn on_disk(&self, path: &Path) -> PathBuf {
        match &*self.root.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(r) => r.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_path_buf(),
        }
    }

    fn lock(&self) -> Held<'_> {
        let epoch = self.epoch.load(std::sync::atomic::Ordering::SeqCst);
        Held {
            guard: self.state.lock().unwrap_or_else(|p| p.into_inner()),
            epoch,
        }
    }

    /// Makes the next `times` calls whose description contains `what` fail.
    /// Sets what `free_memory` answers, in bytes.
    pub fn set_free_memory(&self, bytes: u64) {
        self.lock().free = Some(bytes);
    }

    /// `domain`'s guest ignores the power button (a hung guest): `shutdown_domain` leaves it
    /// running.
    pub fn ignore_power_button(&self, domain: &str) {
        self.lock().deaf.push(domain.to_string());
    }

    pub fn fail(&self, what: &str, times: u32) {
        self.lock().fails.push((what.to_string(), times));
    }

    /// Lets `n` more changes through; then the host is dead: the call that would have been
    /// change n+1, and every call after it, never returns to its caller until `revive()` (and
    /// then fails), as a killed process never sees the answer to a call. So an operation stops
    /// exactly there, running none of its error paths; `watch_dead` tells the test.
    pub fn die_after(&self, n: u32) {
        *self.revived.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.lock().changes_left = Some(n);
    }

    /// Holds a call to the dead host until `revive()`.
    fn hang(&self) {
        let mut r = self.revived.lock().unwrap_or_else(|p| p.into_inner());
        while !*r {
            r = self.revived_cv.wait(r).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Ends `die_after` and every pending `fail`: the next command runs on a healthy host.
    pub fn revive(&self) {
        *self.revived.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.revived_cv.notify_all();
        let mut s = self.lock();
        if s.dead {
            s.guard.epoch += 1;
            self.epoch
                .store(s.guard.epoch, std::sync::atomic::Ordering::SeqCst);
        }
        s.changes_left = None;
        s.dead = false;
        s.fails.clear();
        self.dead.send_replace(false);
    }

    /// Turns true when the host dies: a test stops the operation there, as a kill would.
    pub fn watch_dead(&self) -> tokio::sync::watch::Receiver<bool> {
        self.dead.subscribe()
    }

    /// Every change made so far, in order (`start domain X`, `undefine network Y`, ...).
    pub fn changes(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// The state of a domain (`None`: not defined).
    pub fn domain_state(&self, name: &str) -> Option<ObjState> {
        self.lock().domains.get(name).map(|d| d.state)
    }

    /// The snapshots of a domain, by name.
    pub fn snapshot_names(&self, domain: &str) -> Vec<String> {
        self.lock()
            .domains
            .get(domain)
            .map(|d| d.snapshots.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default()
    }

    /// Names of every domain, network and pool there is.
    pub fn objects(&self) -> Vec<String> {
        let s = self.lock();
        let mut out: Vec<String> = s.domains.keys().map(|d| format!("domain {d}")).collect();
        out.extend(s.networks.keys().map(|n| format!("network {n}")));
        out.extend(s.pools.keys().map(|p| format!("pool {p}")));
        out
    }

    /// The disk loses a snapshot's saved memory (as a qcow2 rewritten outside libvirt would).
    pub fn lose_memory(&self, domain: &str, snapshot: &str) {
        if let Some(d) = self.lock().domains.get_mut(domain) {
            for s in d.snapshots.iter_mut().filter(|s| s.name == snapshot) {
                s.memory = 0;
            }
        }
    }

    /// A pause of a running domain asked for by a process that died before libvirtd made it:
    /// state reads go on saying "running" until someone settles the domain.
    pub fn pause_under_way(&self, domain: &str) {
        if let Some(d) = self.lock().domains.get_mut(domain) {
            d.pause_under_way = d.state == ObjState::Active;
        }
    }

    /// Sets a network's defined `<forward>` (an out-of-band `virsh net-edit`).
    pub fn set_forward(&self, network: &str, mode: Option<&str>) {
        if let Some(n) = self.lock().networks.get_mut(network) {
            n.forward = mode.map(str::to_string);
        }
    }

    /// Checks a call against death and the fault list; a change is logged and counted.
    fn enter(&self, s: &mut Held<'_>, what: &str, change: bool) -> Result<(), DriverError> {
        if s.epoch != s.guard.epoch {
            return Err(DriverError::Injected {
                what: format!("{what} (asked of the fake host before it died)"),
            });
        }
        if s.dead {
            self.hang();
            return Err(DriverError::Injected {
                what: format!("{what} (the fake host is dead)"),
            });
        }
        if let Some(i) = s
            .fails
            .iter()
            .position(|(w, n)| *n > 0 && what.contains(w.as_str()))
        {
            s.fails[i].1 -= 1;
            return Err(DriverError::Injected {
                what: what.to_string(),
            });
        }
        if change {
            if let Some(left) = s.changes_left {
                if left == 0 {
                    s.dead = true;
                    self.dead.send_replace(true);
                    self.hang();
                    return Err(DriverError::Injected {
                        what: format!("{what} (the fake host is dead)"),
                    });
                }
                s.changes_left = Some(left - 1);
            }
            s.log.push(what.to_string());
        }
        Ok(())
    }

    fn read(&self, what: &str) -> Result<Held<'_>, DriverError> {
        let mut s = self.lock();
        self.enter(&mut s, what, false)?;
        Ok(s)
    }

    fn pool_volumes(path: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        v.sort();
        v
    }
}

fn io_refused(what: &str, e: std::io::Error) -> DriverError {
    refused(what, e.to_string())
}

impl Hypervisor for FakeHypervisor {
    fn free_memory(&self) -> Result<u64, DriverError> {
        let s = self.read("read the host's memory")?;
        Ok(s.free.unwrap_or(16 << 30))
    }

    fn version(&self) -> Result<VersionInfo, DriverError> {
        let _s = self.read("read the version")?;
        Ok(VersionInfo {
            uri: "fake:///".into(),
            libvirt: "fake".into(),
            hypervisor: "fake".into(),
        })
    }

    fn define_network(&self, xml: &str) -> Result<String, DriverError> {
        let what = "define a network";
        let meta: NetworkMeta = parse("a network", xml)?;
        let entries = meta.entries();
        let mut s = self.lock();
        if meta.name.is_empty() {
            return Err(refused(what, "the definition has no name"));
        }
        // libvirt refuses a second network on a bridge it manages; networks on a bridge that
        // exists outside it (`<forward mode='bridge'/>`: the overlay) share it freely.
        let forward = forward_mode(meta.forward);
        let on_existing = forward.as_deref() == Some("bridge");
        let bridge = meta.bridge.map(|b| b.name).filter(|_| !on_existing);
        if let Some((other, _)) = s
            .networks
            .iter()
            .find(|(n, o)| **n != meta.name && bridge.is_some() && o.bridge == bridge)
        {
            return Err(refused(
                what,
                format!("bridge {bridge:?} is in use by network {other}"),
            ));
        }
        self.enter(&mut s, &format!("define network {}", meta.name), true)?;
        let active = s.networks.get(&meta.name).is_some_and(|n| n.active);
        let live_forward = s
            .networks
            .get(&meta.name)
            .and_then(|n| n.live_forward.clone());
        s.networks.insert(
            meta.name.clone(),
            Net {
                tag: meta.metadata.and_then(|m| m.lab).filter(is_ours),
                active,
                bridge,
                ipv4: meta.ips.iter().filter_map(|i| i.cidr4()).collect(),
                forward,
                live_forward,
                entries,
            },
        );
        Ok(meta.name)
    }

    fn network_entries(&self, name: &str) -> Result<Vec<NetEntry>, DriverError> {
        let what = format!("read network {name}");
        let s = self.read(&what)?;
        Ok(s.networks
            .get(name)
            .ok_or_else(|| missing(&what, "network", name))?
            .entries
            .clone())
    }

    fn update_network(&self, name: &str, entry: &NetEntry, add: bool) -> Result<(), DriverError> {
        let what = format!(
            "{} {} {} network {name}",
            if add { "add" } else { "delete" },
            entry.describe(),
            if add { "to" } else { "from" }
        );
        let mut s = self.lock();
        let Some(n) = s.networks.get(name) else {
            return Err(missing(&what, "network", name));
        };
        // libvirt refuses an entry that clashes with one there (same MAC, name or address
        // under one <ip>, same address in DNS), and the deletion of one that is not there.
        let clash = |e: &NetEntry| match (e, entry) {
            (
                NetEntry::Dhcp {
                    ip: a,
                    mac: ma,
                    name: na,
                    address: aa,
                },
                NetEntry::Dhcp {
                    ip: b,
                    mac: mb,
                    name: nb,
                    address: ab,
                },
            ) => a == b && ((ma.is_some() && ma == mb) || na == nb || aa == ab),
            (NetEntry::Dns { address: a, .. }, NetEntry::Dns { address: b, .. }) => a == b,
            _ => false,
        };
        if add && n.entries.iter().any(clash) {
            return Err(refused(&what, "there is an existing entry that matches"));
        }
        if !add && !n.entries.contains(entry) {
            return Err(refused(&what, "couldn't locate a matching entry"));
        }
        self.enter(&mut s, &what, true)?;
        if let Some(n) = s.networks.get_mut(name) {
            if add {
                n.entries.push(entry.clone());
            } else {
                n.entries.retain(|e| e != entry);
            }
        }
        Ok(())
    }

    fn start_network(&self, name: &str) -> Result<(), DriverError> {
        let what = format!("start network {name}");
        let mut s = self.lock();
        match s.networks.get(name) {
            None => return Err(missing(&what, "network", name)),
            Some(n) if n.active => return self.enter(&mut s, &what, false),
            Some(_) => {}
        }
        self.enter(&mut s, &what, true)?;
        if let Some(n) = s.networks.get_mut(name) {
            n.active = true;
            n.live_forward = n.forward.clone();
        }
        Ok(())
    }

    fn remove_network(&self, name: &str) -> Result<(), DriverError> {
        let mut s = self.lock();
        self.enter(&mut s, &format!("look up network {name}"), false)?;
        let Some(n) = s.networks.get(name).cloned() else {
            return Ok(());
        };
        if n.active {
            if let Some(d) = s.domains.iter().find(|(_, d)| {
                matches!(d.state, ObjState::Active | ObjState::Paused)
                    && d.networks.iter().any(|x| x == name)
            }) {
                // libvirt lets a network stop under a running domain, which then loses its link;
                // dcos-lab must never do that.
                return Err(refused(
                    &format!("stop network {name}"),
                    format!("domain {} still runs on it", d.0),
                ));
            }
            self.enter(&mut s, &format!("stop network {name}"), true)?;
            if let Some(n) = s.networks.get_mut(name) {
                n.active = false;
            }
        }
        self.enter(&mut s, &format!("undefine network {name}"), true)?;
        s.networks.remove(name);
        Ok(())
    }

    fn owned_networks(&self) -> Result<Vec<Owned>, DriverError> {
        let s = self.read("list networks")?;
        Ok(s.networks
            .iter()
            .filter_map(|(name, n)| {
                Some(Owned {
                    name: name.clone(),
                    state: if n.active {
                        ObjState::Active
                    } else {
                        ObjState::Inactive
                    },
                    tag: n.tag.clone()?,
                })
            })
            .collect())
    }

    fn network_forward(&self, name: &str) -> Result<NetworkForward, DriverError> {
        let what = format!("read network {name}");
        let s = self.read(&what)?;
        let n = s
            .networks
            .get(name)
            .ok_or_else(|| missing(&what, "network", name))?;
        Ok(NetworkForward {
            active: n.active,
            live: if n.active {
                n.live_forward.clone()
            } else {
                None
            },
            defined: n.forward.clone(),
        })
    }

    fn all_networks(&self) -> Result<Vec<NetworkSummary>, DriverError> {
        let s = self.read("list networks")?;
        Ok(s.networks
            .iter()
            .map(|(name, n)| NetworkSummary {
                name: name.clone(),
                bridge: n.bridge.clone(),
                ipv4: n.ipv4.clone(),
                active: n.active,
            })
            .collect())
    }

    fn define_domain(&self, xml: &str) -> Result<String, DriverError> {
        let what = "define a domain";
        let meta: DomainMeta = parse("a domain", xml)?;
        let def: DomDefinition = parse("a domain", xml)?;
        let mut s = self.lock();
        if meta.name.is_empty() {
            return Err(refused(what, "the definition has no name"));
        }
        self.enter(&mut s, &format!("define domain {}", meta.name), true)?;
        let (state, snapshots) = s
            .domains
            .get(&meta.name)
            .map(|d| (d.state, d.snapshots.clone()))
            .unwrap_or((ObjState::Inactive, Vec::new()));
        s.domains.insert(
            meta.name.clone(),
            Dom {
                xml: xml.to_string(),
                tag: meta.metadata.and_then(|m| m.lab).filter(is_ours),
                state,
                networks: def
                    .devices
                    .interfaces
                    .into_iter()
                    .map(|i| i.source.network)
                    .collect(),
                disks: def
                    .devices
                    .disks
                    .into_iter()
                    .map(|d| PathBuf::from(d.source.file))
                    .collect(),
                snapshots,
                pause_under_way: false,
            },
        );
        Ok(meta.name)
    }

    fn start_domain(&self, name: &str) -> Result<(), DriverError> {
        let what = format!("start domain {name}");
        let mut s = self.lock();
        let d = s
            .domains
            .get(name)
            .cloned()
            .ok_or_else(|| missing(&what, "domain", name))?;
        match d.state {
            ObjState::Active => return self.enter(&mut s, &what, false),
            ObjState::Paused => {
                self.enter(&mut s, &format!("resume domain {name}"), true)?;
                if let Some(d) = s.domains.get_mut(name) {
                    d.state = ObjState::Active;
                }
                return Ok(());
            }
            ObjState::Inactive | ObjState::Suspended => {}
        }
        for net in &d.networks {
            match s.networks.get(net) {
                Some(n) if n.active => {}
                Some(_) => return Err(refused(&what, format!("network '{net}' is not active"))),
                None => return Err(missing(&what, "network", net)),
            }
        }
        for disk in &d.disks {
            if !self.on_disk(disk).is_file() {
                return Err(refused(
                    &what,
                    format!("cannot access storage file '{}'", disk.display()),
                ));
            }
        }
        self.enter(&mut s, &what, true)?;
        if let Some(d) = s.domains.get_mut(name) {
            // Saved memory is restored running, as it was saved (libvirt's managed save).
            d.state = ObjState::Active;
        }
        Ok(())
    }

    fn stop_domain(&self, name: &str) -> Result<(), DriverError> {
        let what = format!("stop domain {name}");
        let mut s = self.lock();
        match s.domains.get(name).map(|d| d.state) {
            None => Err(missing(&what, "domain", name)),
            Some(ObjState::Inactive | ObjState::Suspended) => self.enter(&mut s, &what, false),
            Some(_) => {
                self.enter(&mut s, &what, true)?;
                if let Some(d) = s.domains.get_mut(name) {
                    d.state = ObjState::Inactive;
                }
                Ok(())
            }
        }
    }

    fn shutdown_domain(&self, name: &str) -> Result<(), DriverError> {
        let what = format!("shut down domain {name}");
        let mut s = self.lock();
        match s.domains.get(name).map(|d| d.state) {
            None => Err(missing(&what, "domain", name)),
            Some(ObjState::Active) => {
                self.enter(&mut s, &what, true)?;
                let deaf = s.deaf.iter().any(|d| d == name);
                if let Some(d) = s.domains.get_mut(name)
                    && !deaf
                {
                    d.state = ObjState::Inactive;
                }
                Ok(())
            }
            // A paused guest's vCPUs do not run: it hears nothing until it runs again.
            Some(_) => self.enter(&mut s, &what, false),
        }
    }

    fn domain_state(&self, name: &str) -> Result<ObjState, DriverError> {
        let what = format!("query domain {name}");
        let s = self.read(&what)?;
        s.domains
            .get(name)
            .map(|d| d.state)
            .ok_or_else(|| missing(&what, "domain", name))
    }

    fn suspend_domain(&self, name: &str) -> Result<(), DriverError> {
        let what = format!("pause domain {name}");
        let mut s = self.lock();
        match s.domains.get(name).map(|d| d.state) {
            None => Err(missing(&what, "domain", name)),
            Some(ObjState::Paused) => self.enter(&mut s, &what, false),
            Some(ObjState::Inactive | ObjState::Suspended) => {
                Err(refused(&what, "domain is not running"))
            }
            Some(ObjState::Active) => {
                self.enter(&mut s, &what, true)?;
                if let Some(d) = s.domains.get_mut(name) {
                    d.state = ObjState::Paused;
                }
                Ok(())
            }
        }
    }

    fn settle_domain(&self, name: &str) -> Result<(), DriverError> {
        let what = format!("settle domain {name}");
        let mut s = self.lock();
        self.enter(&mut s, &what, false)?;
        let Some(d) = s.domains.get_mut(name) else {
            return Err(missing(&what, "domain", name));
        };
        if std::mem::take(&mut d.pause_under_way) && d.state == ObjState::Active {
            d.state = ObjState::Paused;
        }
        Ok(())
    }

    fn resume_domain(&self, name: &str) -> Result<(), DriverError> {
        let what = format!("resume domain {name}");
        let mut s = self.lock();
        match s.domains.get(name).map(|d| d.state) {
            None => Err(missing(&what, "domain", name)),
            Some(ObjState::Paused) => {
                self.enter(&mut s, &what, true)?;
                if let Some(d) = s.domains.get_mut(name) {
                    d.state = ObjState::Active;
                }
                Ok(())
            }
            Some(_) => self.enter(&mut s, &what, false),
        }
    }

    fn save_domain(&self, name: &str) -> Result<(), DriverError> {
        let what = format!("save domain {name}'s memory");
        let mut s = self.lock();
        match s.domains.get(name).map(|d| d.state) {
            None => Err(missing(&what, "domain", name)),
            Some(ObjState::Suspended) => self.enter(&mut s, &what, false),
            Some(ObjState::Inactive) => Err(refused(&what, "domain is not running")),
            Some(ObjState::Active | ObjState::Paused) => {
                self.enter(&mut s, &what, true)?;
                if let Some(d) = s.domains.get_mut(name) {
                    d.state = ObjState::Suspended;
                }
                Ok(())
            }
        }
    }

    fn discard_saved(&self, name: &str) -> Result<(), DriverError> {
        let what = format!("drop domain {name}'s saved memory");
        let mut s = self.lock();
        match s.domains.get(name).map(|d| d.state) {
            None => Err(missing(&what, "domain", name)),
            Some(ObjState::Suspended) => {
                self.enter(&mut s, &what, true)?;
                if let Some(d) = s.domains.get_mut(name) {
                    d.state = ObjState::Inactive;
                }
                Ok(())
            }
            Some(_) => self.enter(&mut s, &what, false),
        }
    }

    fn create_snapshot(
        &self,
        domain: &str,
        snapshot: &str,
        _description: &str,
    ) -> Result<(), DriverError> {
        let what = format!("snapshot domain {domain} as {snapshot}");
        let mut s = self.lock();
        let d = s
            .domains
            .get(domain)
            .cloned()
            .ok_or_else(|| missing(&what, "domain", domain))?;
        if matches!(d.state, ObjState::Inactive | ObjState::Suspended) {
            return Err(refused(&what, "a memory snapshot needs a running domain"));
        }
        if d.snapshots.iter().any(|x| x.name == snapshot) {
            return Err(refused(
                &what,
                format!("domain snapshot {snapshot} already exists"),
            ));
        }
        self.enter(&mut s, &what, true)?;
        s.clock += 1;
        let created = s.clock;
        if let Some(d) = s.domains.get_mut(domain) {
            d.snapshots.push(Snap {
                name: snapshot.to_string(),
                created,
                state: if d.state == ObjState::Paused {
                    "paused".into()
                } else {
                    "running".into()
                },
                memory: 1 << 20,
                domain_xml: d.xml.clone(),
            });
        }
        Ok(())
    }

    fn revert_snapshot(
        &self,
        domain: &str,
        snapshot: &str,
        paused: bool,
    ) -> Result<(), DriverError> {
        let what = format!("revert domain {domain} to {snapshot}");
        let mut s = self.lock();
        self.enter(&mut s, &format!("list snapshots of {domain}"), false)?;
        let d = s
            .domains
            .get(domain)
            .ok_or_else(|| missing(&what, "domain", domain))?;
        if !d.snapshots.iter().any(|x| x.name == snapshot) {
            return Err(DriverError::NoSnapshot {
                domain: domain.to_string(),
                snapshot: snapshot.to_string(),
            });
        }
        if d.state == ObjState::Suspended {
            return Err(refused(&what, "domain has a managed save image"));
        }
        self.enter(&mut s, &what, true)?;
        if let Some(d) = s.domains.get_mut(domain) {
            d.state = if paused {
                ObjState::Paused
            } else {
                ObjState::Active
            };
            // The definition comes back with the snapshot (libvirt: the snapshot's <domain>).
            if let Some(snap) = d.snapshots.iter().find(|x| x.name == snapshot)
                && !snap.domain_xml.is_empty()
            {
                let meta: DomainMeta = parse("a snapshot's domain", &snap.domain_xml)?;
                d.xml = snap.domain_xml.clone();
                d.tag = meta.metadata.and_then(|m| m.lab).filter(is_ours);
            }
        }
        Ok(())
    }

    fn delete_snapshot(&self, domain: &str, snapshot: &str) -> Result<(), DriverError> {
        let what = format!("delete snapshot {snapshot} of {domain}");
        let mut s = self.lock();
        let has = s
            .domains
            .get(domain)
            .is_some_and(|d| d.snapshots.iter().any(|x| x.name == snapshot));
        if !has {
            return self.enter(&mut s, &format!("list snapshots of {domain}"), false);
        }
        self.enter(&mut s, &what, true)?;
        if let Some(d) = s.domains.get_mut(domain) {
            d.snapshots.retain(|x| x.name != snapshot);
        }
        Ok(())
    }

    fn snapshots(&self, domain: &str) -> Result<Vec<SnapshotInfo>, DriverError> {
        let what = format!("list snapshots of {domain}");
        let s = self.read(&what)?;
        let d = s
            .domains
            .get(domain)
            .ok_or_else(|| missing(&what, "domain", domain))?;
        Ok(d.snapshots
            .iter()
            .map(|x| SnapshotInfo {
                name: x.name.clone(),
                created_unix: x.created,
                state: x.state.clone(),
                has_memory: true,
            })
            .collect())
    }

    fn snapshot_xml(&self, domain: &str, snapshot: &str) -> Result<String, DriverError> {
        let what = format!("read snapshot {snapshot} of {domain}");
        let s = self.read(&what)?;
        let d = s
            .domains
            .get(domain)
            .ok_or_else(|| missing(&what, "domain", domain))?;
        let snap = d
            .snapshots
            .iter()
            .find(|x| x.name == snapshot)
            .ok_or_else(|| DriverError::NoSnapshot {
                domain: domain.to_string(),
                snapshot: snapshot.to_string(),
            })?;
        Ok(format!(
            "<domainsnapshot><name>{}</name><state>{}</state><creationTime>{}</creationTime><memory snapshot='internal'/>{}</domainsnapshot>",
            snap.name, snap.state, snap.created, snap.domain_xml
        ))
    }

    fn redefine_snapshot(&self, domain: &str, xml: &str) -> Result<(), DriverError> {
        #[derive(Deserialize)]
        struct Redefined {
            name: String,
            #[serde(default)]
            state: String,
            #[serde(rename = "creationTime", default)]
            creation_time: u64,
        }
        let what = format!("redefine a snapshot of domain {domain}");
        let r: Redefined = parse("a snapshot", xml)?;
        let mut s = self.lock();
        if !s.domains.contains_key(domain) {
            return Err(missing(&what, "domain", domain));
        }
        self.enter(&mut s, &what, true)?;
        if let Some(d) = s.domains.get_mut(domain) {
            d.snapshots.retain(|x| x.name != r.name);
            d.snapshots.push(Snap {
                name: r.name,
                created: r.creation_time,
                state: r.state,
                memory: 1 << 20,
                domain_xml: inner_domain(xml).unwrap_or_default().to_string(),
            });
        }
        Ok(())
    }

    fn machine_type(&self, alias: &str) -> Result<Option<String>, DriverError> {
        let _s = self.read("read the host's capabilities")?;
        Ok(Some(format!("fake-{alias}")))
    }

    fn emulator(&self) -> Result<Option<String>, DriverError> {
        let _s = self.read("read the host's capabilities")?;
        Ok(Some("/usr/bin/qemu-system-x86_64".into()))
    }

    fn domain_xml(&self, domain: &str) -> Result<String, DriverError> {
        let what = format!("read domain {domain}");
        let s = self.read(&what)?;
        s.domains
            .get(domain)
            .map(|d| d.xml.clone())
            .ok_or_else(|| missing(&what, "domain", domain))
    }

    fn remove_domain(&self, name: &str) -> Result<(), DriverError> {
        let mut s = self.lock();
        self.enter(&mut s, &format!("look up domain {name}"), false)?;
        let Some(state) = s.domains.get(name).map(|d| d.state) else {
            return Ok(());
        };
        if matches!(state, ObjState::Active | ObjState::Paused) {
            self.enter(&mut s, &format!("stop domain {name}"), true)?;
            if let Some(d) = s.domains.get_mut(name) {
                d.state = ObjState::Inactive;
            }
        }
        self.enter(&mut s, &format!("undefine domain {name}"), true)?;
        s.domains.remove(name);
        Ok(())
    }

    fn owned_domains(&self) -> Result<Vec<Owned>, DriverError> {
        let s = self.read("list domains")?;
        Ok(s.domains
            .iter()
            .filter_map(|(name, d)| {
                Some(Owned {
                    name: name.clone(),
                    state: d.state,
                    tag: d.tag.clone()?,
                })
            })
            .collect())
    }

    fn define_pool(&self, xml: &str) -> Result<String, DriverError> {
        let meta: PoolMeta = parse("a storage pool", xml)?;
        let mut s = self.lock();
        if meta.name.is_empty() {
            return Err(refused(
                "define a storage pool",
                "the definition has no name",
            ));
        }
        self.enter(&mut s, &format!("define storage pool {}", meta.name), true)?;
        let active = s.pools.get(&meta.name).is_some_and(|p| p.active);
        s.pools.insert(
            meta.name.clone(),
            Pool {
                fs: self.on_disk(Path::new(&meta.target.path)),
                path: PathBuf::from(meta.target.path),
                active,
            },
        );
        Ok(meta.name)
    }

    fn start_pool(&self, name: &str, build: bool) -> Result<(), DriverError> {
        let what = format!("start storage pool {name}");
        let mut s = self.lock();
        let p = s
            .pools
            .get(name)
            .cloned()
            .ok_or_else(|| missing(&what, "storage pool", name))?;
        if build {
            std::fs::create_dir_all(&p.fs)
                .map_err(|e| io_refused(&format!("build storage pool {name}"), e))?;
        }
        if p.active {
            return self.enter(&mut s, &what, false);
        }
        if !p.fs.is_dir() {
            return Err(refused(
                &what,
                format!("cannot open directory '{}'", p.path.display()),
            ));
        }
        self.enter(&mut s, &what, true)?;
        if let Some(p) = s.pools.get_mut(name) {
            p.active = true;
        }
        Ok(())
    }

    fn pool(&self, name: &str) -> Result<Option<PoolInfo>, DriverError> {
        let s = self.read(&format!("read storage pool {name}"))?;
        Ok(s.pools.get(name).map(|p| PoolInfo {
            name: name.to_string(),
            path: p.path.display().to_string(),
            state: if p.active {
                ObjState::Active
            } else {
                ObjState::Inactive
            },
            volumes: if p.active {
                Self::pool_volumes(&p.fs)
            } else {
                Vec::new()
            },
        }))
    }

    fn remove_pool(&self, name: &str) -> Result<(), DriverError> {
        let mut s = self.lock();
        self.enter(&mut s, &format!("look up storage pool {name}"), false)?;
        let Some(p) = s.pools.get(name).cloned() else {
            return Ok(());
        };
        if p.fs.is_dir() {
            for v in Self::pool_volumes(&p.fs) {
                let what = format!("delete volume {v} of {name}");
                self.enter(&mut s, &what, true)?;
                std::fs::remove_file(p.fs.join(&v)).map_err(|e| io_refused(&what, e))?;
            }
            let what = format!("delete the directory of storage pool {name}");
            self.enter(&mut s, &what, true)?;
            std::fs::remove_dir_all(&p.fs).map_err(|e| io_refused(&what, e))?;
        }
        self.enter(&mut s, &format!("undefine storage pool {name}"), true)?;
        s.pools.remove(name);
        Ok(())
    }

    fn create_volume(&self, pool: &str, xml: &str) -> Result<String, DriverError> {
        let what = format!("create a volume in {pool}");
        let vol: VolumeDefinition = parse("a volume", xml)?;
        let mut s = self.lock();
        let p = s
            .pools
            .get(pool)
            .cloned()
            .ok_or_else(|| missing(&what, "storage pool", pool))?;
        if !p.active {
            return Err(refused(
                &what,
                format!("storage pool '{pool}' is not active"),
            ));
        }
        let path = p.fs.join(&vol.name);
        if path.exists() {
            return Err(refused(
                &what,
                format!("storage volume '{}' exists already", vol.name),
            ));
        }
        self.enter(
            &mut s,
            &format!("create volume {} in {pool}", vol.name),
            true,
        )?;
        // A qcow2 header as libvirt's volume creation writes it: the capacity, the backing file.
        let header = crate::image::qcow2::bare_header(
            vol.capacity.map_or(0, |c| c.bytes),
            vol.backing_store
                .as_ref()
                .map(|b| (b.path.as_str(), b.format.kind.as_str())),
        );
        std::fs::write(&path, header).map_err(|e| io_refused(&what, e))?;
        Ok(path.display().to_string())
    }

    fn upload_volume(&self, pool: &str, xml: &str, from: &Path) -> Result<String, DriverError> {
        let what = format!("upload {} into {pool}", from.display());
        let data = std::fs::read(from).map_err(|e| io_refused(&what, e))?;
        let path = self.create_volume(pool, xml)?;
        std::fs::write(&path, data).map_err(|e| io_refused(&what, e))?;
        Ok(path)
    }

    fn download_volume(&self, pool: &str, volume: &str, to: &Path) -> Result<(), DriverError> {
        let what = format!("download {volume} from {pool}");
        let path = {
            let s = self.read(&what)?;
            s.pools
                .get(pool)
                .map(|p| p.fs.join(volume))
                .ok_or_else(|| missing(&what, "storage pool", pool))?
        };
        std::fs::copy(&path, to).map_err(|e| io_refused(&what, e))?;
        Ok(())
    }

    fn delete_volume(&self, pool: &str, volume: &str) -> Result<(), DriverError> {
        let what = format!("delete volume {volume} of {pool}");
        let mut s = self.lock();
        let path = s
            .pools
            .get(pool)
            .map(|p| p.fs.join(volume))
            .ok_or_else(|| missing(&what, "storage pool", pool))?;
        if !path.exists() {
            return Ok(());
        }
        self.enter(&mut s, &what, true)?;
        std::fs::remove_file(&path).map_err(|e| io_refused(&what, e))
    }

    fn read_volume(&self, pool: &str, volume: &str) -> Result<Vec<u8>, DriverError> {
        let what = format!("read {volume} of {pool}");
        let path = {
            let s = self.read(&what)?;
            s.pools
                .get(pool)
                .map(|p| p.fs.join(volume))
                .ok_or_else(|| missing(&what, "storage pool", pool))?
        };
        std::fs::read(&path).map_err(|e| io_refused(&what, e))
    }

    fn owned_pools(&self) -> Result<Vec<(String, String)>, DriverError> {
        let s = self.read("list storage pools")?;
        Ok(s.pools
            .iter()
            .filter(|(n, _)| n.starts_with(&format!("{}-", crate::names::PREFIX)))
            .map(|(n, p)| (n.clone(), p.path.display().to_string()))
            .collect())
    }

    fn refresh_pool(&self, name: &str) -> Result<(), DriverError> {
        let what = format!("refresh storage pool {name}");
        let s = self.read(&what)?;
        match s.pools.get(name) {
            Some(p) if p.active => Ok(()),
            Some(_) => Err(refused(
                &what,
                format!("storage pool '{name}' is not active"),
            )),
            None => Err(missing(&what, "storage pool", name)),
        }
    }

    fn disk_snapshots(
        &self,
        domain: &str,
        disk: &Path,
    ) -> Result<BTreeMap<String, u64>, DriverError> {
        let what = format!("read the snapshots in {}", disk.display());
        let s = self.read(&what)?;
        let d = s
            .domains
            .get(domain)
            .ok_or_else(|| missing(&what, "domain", domain))?;
        if !d.disks.iter().any(|p| p == disk) || !self.on_disk(disk).is_file() {
            return Err(DriverError::Tool {
                what,
                message: "Could not open the disk: No such file or directory".into(),
            });
        }
        Ok(d.snapshots
            .iter()
            .map(|x| (x.name.clone(), x.memory))
            .collect())
    }
}

/// One command a fake node ran: (node, command, what it was sent on its input).
pub type Ran = (String, String, Vec<u8>);

/// How a fake node answers a command: given (node, command, input), its output.
pub type Responder = Arc<dyn Fn(&str, &str, &[u8]) -> Output + Send + Sync>;

/// The fake nodes' default answer: success, printing back what they were sent (empty for a
/// command given no input).
pub fn echo(_node: &str, _command: &str, input: &[u8]) -> Output {
    Output {
        status: Some(0),
        stdout: input.to_vec(),
        stderr: Vec::new(),
    }
}

/// Guests of the fake hypervisor: a node answers once its domain runs (and it is not made
/// unreachable); its shell runs every command successfully, and a command that is answered
/// prints back what it was sent (as `read t; echo $t` does).
pub struct FakeGuests {
    hv: Arc<FakeHypervisor>,
    /// The fake hosts of a lab across hosts, besides `hv`.
    others: Mutex<Vec<Arc<FakeHypervisor>>>,
    unreachable: Mutex<Vec<String>>,
    /// Every command run on a node, as (node, command, what it was sent on its input).
    pub ran: Arc<Mutex<Vec<Ran>>>,
    responder: Arc<Mutex<Responder>>,
}

impl FakeGuests {
    pub fn new(hv: Arc<FakeHypervisor>) -> Arc<FakeGuests> {
        Arc::new(FakeGuests {
            hv,
            others: Mutex::new(Vec::new()),
            unreachable: Mutex::new(Vec::new()),
            ran: Arc::new(Mutex::new(Vec::new())),
            responder: Arc::new(Mutex::new(Arc::new(echo))),
        })
    }

    /// The nodes answer commands with `r` from now on (default [`echo`]).
    pub fn answer(&self, r: impl Fn(&str, &str, &[u8]) -> Output + Send + Sync + 'static) {
        *self.responder.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(r);
    }

    /// The commands run on `node` so far, in order.
    pub fn commands_on(&self, node: &str) -> Vec<String> {
        self.ran
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(n, _, _)| n == node)
            .map(|(_, c, _)| c.clone())
            .collect()
    }

    /// What was given on standard input to the commands run on `node` that contain `part`, in
    /// order.
    pub fn inputs_on(&self, node: &str, part: &str) -> Vec<String> {
        self.ran
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(n, c, _)| n == node && c.contains(part))
            .map(|(_, _, i)| String::from_utf8_lossy(i).into_owned())
            .collect()
    }

    /// Whether `t`'s domain runs (on any fake host) and its node answers.
    fn answers(&self, t: &Target) -> bool {
        let up = self.hv.domain_state(&t.domain) == Some(ObjState::Active)
            || self
                .others
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|h| h.domain_state(&t.domain) == Some(ObjState::Active));
        up && !self
            .unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&t.node)
    }

    fn shell(&self, t: &Target) -> Box<dyn Shell> {
        Box::new(FakeShell {
            node: t.node.clone(),
            ran: self.ran.clone(),
            responder: self
                .responder
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        })
    }

    /// Guests on another fake host answer too (a lab across hosts).
    pub fn also_on(&self, hv: Arc<FakeHypervisor>) {
        self.others
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hv);
    }

    /// `node` never answers (a guest that does not boot).
    pub fn make_unreachable(&self, node: &str) {
        self.unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(node.to_string());
    }
}

struct FakeShell {
    node: String,
    ran: Arc<Mutex<Vec<Ran>>>,
    responder: Responder,
}

impl FakeShell {
    fn run(&self, command: &str, input: Vec<u8>) -> Output {
        self.ran.lock().unwrap_or_else(|p| p.into_inner()).push((
            self.node.clone(),
            command.to_string(),
            input.clone(),
        ));
        (self.responder)(&self.node, command, &input)
    }
}

impl Shell for FakeShell {
    fn exec_input<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<crate::guest::Input<'a>>,
    ) -> BoxFuture<'a, Result<Output, GuestError>> {
        Box::pin(async move {
            let mut input = Vec::new();
            if let Some(mut r) = stdin {
                use tokio::io::AsyncReadExt;
                r.read_to_end(&mut input)
                    .await
                    .map_err(|source| GuestError::Io {
                        what: format!("read the input of `{command}` for"),
                        path: self.node.clone().into(),
                        source,
                    })?;
            }
            Ok(self.run(command, input))
        })
    }

    fn exec_answering<'a>(
        &'a self,
        command: &'a str,
        answer: Box<dyn FnOnce() -> Vec<u8> + Send + 'a>,
    ) -> BoxFuture<'a, Result<Output, GuestError>> {
        Box::pin(async move { Ok(self.run(command, answer())) })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

impl Guests for FakeGuests {
    fn wait_ready<'a>(
        &'a self,
        t: &'a Target,
        _check: Option<&'a str>,
        timeout: Duration,
        on_try: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Box<dyn Shell>, GuestError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                if self.answers(t) {
                    return Ok(self.shell(t));
                }
                let last = format!("TCP {}: no answer", t.addr);
                if tokio::time::Instant::now() >= deadline {
                    return Err(GuestError::Timeout {
                        node: t.node.clone(),
                        seconds: timeout.as_secs(),
                        last,
                    });
                }
                on_try(&last);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }

    fn connect<'a>(
        &'a self,
        t: &'a Target,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Box<dyn Shell>, GuestError>> {
        Box::pin(async move {
            if self.answers(t) {
                Ok(self.shell(t))
            } else {
                Err(GuestError::Timeout {
                    node: t.node.clone(),
                    seconds: timeout.as_secs(),
                    last: format!("TCP {}: no answer", t.addr),
                })
            }
        })
    }
}

/// The `<domain>` element a snapshot's XML holds.
fn inner_domain(xml: &str) -> Option<&str> {
    let start = xml.find("<domain ").or_else(|| xml.find("<domain>"))?;
    let end = xml.rfind("</domain>")? + "</domain>".len();
    (end > start).then(|| &xml[start..end])
}
