//! The operations context: what every operation works through, built once per command [I/O].
//!
//! A command builds one `Ctx` (the libvirt connection, the state and cache directories, the
//! way to the nodes) and hands it to its operation; no operation opens a connection of its own.
//! The hypervisor is held as the `Hypervisor` trait and the nodes as the `Guests` trait, so the
//! fast tests run every operation against the in-memory fake (`driver::fake`).
//!
//! The local host's connection is `hv()`. A lab across hosts gets one connection per host
//! (`ops::hosts::reach` records them; `host(name)` hands them out), and `hv_for(node)` is where an
//! operation asks for the one holding a node; operations that act on one node already ask it that
//! way (today every node is local: `up` does not yet make labs across hosts).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::driver::{self, Hv};
use crate::guest::Guests;
use crate::lock::LabLock;
use crate::paths::Dirs;

/// What an operation works through.
pub struct Ctx {
    hv: Hv,
    pub guests: Arc<dyn Guests>,
    pub dirs: Dirs,
    /// Fail at once instead of waiting when another command holds a lab's lock.
    pub no_wait: bool,
    /// The lab's other hosts, by name, once reached (`ops::hosts::reach`).
    hosts: OnceLock<BTreeMap<String, Hv>>,
}

impl Ctx {
    /// Opens libvirt at `uri` (blocking: a command does this first, before anything else);
    /// nodes are reached over SSH.
    pub fn open(uri: &str, dirs: Dirs, no_wait: bool) -> anyhow::Result<Ctx> {
        let hv: Hv = Arc::new(driver::Libvirt::open(Some(uri)).map_err(driver::explain_connect)?);
        Ok(Ctx::new(hv, Arc::new(crate::guest::Ssh), dirs, no_wait))
    }

    /// A context over a given hypervisor and guests (the fast tests' fakes).
    pub fn new(hv: Hv, guests: Arc<dyn Guests>, dirs: Dirs, no_wait: bool) -> Ctx {
        Ctx {
            hv,
            guests,
            dirs,
            no_wait,
            hosts: OnceLock::new(),
        }
    }

    /// The connection that holds the lab's networks and pool.
    pub fn hv(&self) -> &Hv {
        &self.hv
    }

    /// The connection to a host of the lab by its name (`local` is `hv()`); `None` until
    /// `ops::hosts::reach` has reached it.
    pub fn host(&self, name: &str) -> Option<&Hv> {
        if name == crate::model::LOCAL_HOST {
            return Some(&self.hv);
        }
        self.hosts.get().and_then(|h| h.get(name))
    }

    /// Records the connections to the lab's other hosts (once per command).
    pub fn set_hosts(&self, hosts: BTreeMap<String, Hv>) {
        let _ = self.hosts.set(hosts);
    }

    /// The connection that holds `node`'s domain.
    pub fn hv_for(&self, _node: &str) -> &Hv {
        &self.hv
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
