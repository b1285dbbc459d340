//! The operations context: what every operation works through, built once per command [I/O].
//!
//! A command builds one `Ctx` (the libvirt connection, the state and cache directories, the
//! way to the nodes) and hands it to its operation; no operation opens a connection of its own.
//! The hypervisor is held as the `Hypervisor` trait and the nodes as the `Guests` trait, so the
//! fast tests run every operation against the in-memory fake (`driver::fake`).
//!
//! The local host's connection is `hv()`. A lab across hosts gets one connection per host
//! (`ops::lab::hosts::reach` records them; `host(name)` hands them out). Which host holds a domain is
//! learnt from libvirt (`lab_state::read` asks every host) or from the placement (`up`), and
//! `hv_for(domain)` / `for_domains` are how an operation acts on nodes wherever they are.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::driver::{self, DriverError, Hv, Hypervisor};
use crate::guest::Guests;
use crate::lock::LabLock;
use crate::model::LOCAL_HOST;
use crate::overlay::Overlay;
use crate::paths::Dirs;

/// How connections to libvirt are opened, by URI: the one place operations get them from
/// (`Ctx::open`, a lab's other hosts, `plan`).
pub type Connect = Arc<dyn Fn(&str) -> Result<Hv, DriverError> + Send + Sync>;

/// Connections to real libvirt daemons.
pub fn libvirt() -> Connect {
    Arc::new(|uri: &str| Ok(Arc::new(driver::Libvirt::open(Some(uri))?) as Hv))
}

/// What an operation works through.
pub struct Ctx {
    hv: Hv,
    /// How the lab's other hosts are reached (`ops::lab::hosts::reach`).
    pub connect: Connect,
    pub guests: Arc<dyn Guests>,
    pub dirs: Dirs,
    /// Fail at once instead of waiting when another command holds a lab's lock.
    pub no_wait: bool,
    /// The lab's other hosts, by name, once reached (`ops::lab::hosts::reach`).
    hosts: Mutex<BTreeMap<String, Hv>>,
    /// The host of each domain not on the local host, by domain name.
    placed: Mutex<BTreeMap<String, String>>,
    /// This host's side of the overlay (labs across hosts).
    pub overlay: Arc<dyn Overlay>,
    /// The user this command runs for (uid): it sees, changes and removes only its own labs.
    pub owner: u32,
    /// The hosts file `up` and `down` keep the labs' names in (`host::hosts_file`); `None`:
    /// names are not kept (the fast tests' worlds, unless a test gives one).
    pub hosts_file: Option<std::path::PathBuf>,
}

impl Ctx {
    /// Opens libvirt at `uri` (blocking: a command does this first, before anything else);
    /// nodes are reached over SSH.
    pub fn open(uri: &str, dirs: Dirs, no_wait: bool) -> anyhow::Result<Ctx> {
        let connect = libvirt();
        let hv = connect(uri).map_err(driver::explain_connect)?;
        let mut ctx = Ctx::new(hv, Arc::new(crate::guest::Ssh), dirs, no_wait);
        ctx.connect = connect;
        ctx.overlay = Arc::new(crate::overlay::Ovs::from_env());
        ctx.hosts_file = Some(crate::host::hosts_file::hosts_file());
        Ok(ctx)
    }

    /// A context over a given hypervisor and guests (the fast tests' fakes).
    pub fn new(hv: Hv, guests: Arc<dyn Guests>, dirs: Dirs, no_wait: bool) -> Ctx {
        Ctx {
            hv,
            // The fast tests' worlds hand their other hosts over with `add_hosts`.
            connect: Arc::new(|uri: &str| {
                Err(DriverError::Refused {
                    what: format!("connect to {uri}"),
                    why: "this context reaches no other host".into(),
                })
            }),
            guests,
            dirs,
            no_wait,
            hosts: Mutex::new(BTreeMap::new()),
            placed: Mutex::new(BTreeMap::new()),
            overlay: Arc::new(crate::overlay::NoOverlay),
            owner: crate::host::euid(),
            hosts_file: None,
        }
    }

    /// The connection that holds the lab's networks and pool.
    pub fn hv(&self) -> &Hv {
        &self.hv
    }

    /// The connection to a host of the lab by its name (`local` is `hv()`); `None` until
    /// `ops::lab::hosts::reach` has reached it.
    pub fn host(&self, name: &str) -> Option<Hv> {
        if name == crate::model::LOCAL_HOST {
            return Some(self.hv.clone());
        }
        self.hosts.lock().ok().and_then(|h| h.get(name).cloned())
    }

    /// Records connections to the lab's other hosts.
    pub fn add_hosts(&self, hosts: BTreeMap<String, Hv>) {
        if let Ok(mut h) = self.hosts.lock() {
            h.extend(hosts);
        }
    }

    /// Every host reached, the local one first.
    pub fn all_hosts(&self) -> Vec<(String, Hv)> {
        let mut out = vec![(LOCAL_HOST.to_string(), self.hv.clone())];
        if let Ok(h) = self.hosts.lock() {
            out.extend(h.iter().map(|(n, hv)| (n.clone(), hv.clone())));
        }
        out
    }

    /// Records that `domain` lives on `host`.
    pub fn place_domain(&self, domain: &str, host: &str) {
        if let Ok(mut p) = self.placed.lock() {
            if host == LOCAL_HOST {
                p.remove(domain);
            } else {
                p.insert(domain.to_string(), host.to_string());
            }
        }
    }

    /// The name of the host holding `domain` (`local` unless recorded otherwise).
    pub fn host_of(&self, domain: &str) -> String {
        self.placed
            .lock()
            .ok()
            .and_then(|p| p.get(domain).cloned())
            .unwrap_or_else(|| LOCAL_HOST.to_string())
    }

    /// The connection that holds `domain`.
    pub fn hv_for(&self, domain: &str) -> Hv {
        self.host(&self.host_of(domain))
            .unwrap_or_else(|| self.hv.clone())
    }

    /// Runs `f` on every domain at once, each through its own host's connection; a failure on a
    /// host other than the local one names that host. Results come in the order the calls end.
    pub async fn for_domains<F, T>(
        &self,
        domains: &[String],
        f: F,
    ) -> Vec<(String, anyhow::Result<T>)>
    where
        F: Fn(&dyn Hypervisor, &str) -> Result<T, DriverError> + Send + Sync + Clone + 'static,
        T: Send + 'static,
    {
        let calls = domains.iter().map(|d| (d.clone(), self.hv_for(d)));
        driver::for_all_on(calls, f)
            .await
            .into_iter()
            .map(|(d, r)| {
                let host = self.host_of(&d);
                let r = if host == LOCAL_HOST {
                    r
                } else {
                    r.map_err(|e| e.context(format!("on host {host}")))
                };
                (d, r)
            })
            .collect()
    }

    /// Pauses every domain of `domains` at once, each on its host: all or none. When one cannot
    /// be paused, every one is run again and that failure is returned, with `why(domain)` as
    /// its context.
    pub async fn pause_all_or_none(
        &self,
        domains: &[String],
        why: impl Fn(&str) -> String,
    ) -> anyhow::Result<()> {
        for (d, r) in self.for_domains(domains, |h, d| h.suspend_domain(d)).await {
            if let Err(e) = r {
                let _ = self.for_domains(domains, |h, d| h.resume_domain(d)).await;
                return Err(e.context(why(&d)));
            }
        }
        Ok(())
    }

    /// Takes `lab`'s lock for a command that changes it (waits unless `no_wait`).
    pub fn lock(&self, lab: &str) -> anyhow::Result<LabLock> {
        Ok(LabLock::acquire(
            &self.dirs.state,
            lab,
            !self.no_wait,
            &|m| tracing::warn!("{m}"),
        )?)
    }
}
