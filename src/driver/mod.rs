//! The narrow interface dcos-lab needs from libvirt, and its implementation over the `virt` crate [I/O].

#[cfg(test)]
pub mod fake;
mod libvirt;
mod run;

use std::path::Path;

use serde::Serialize;

pub use libvirt::{DEFAULT_URI, Libvirt};
pub use run::{Hv, blocking, explain_connect, for_all, for_all_on, join_all, refused_access};

use crate::names::ObjState;
use crate::tag::LabTag;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot connect to libvirt at {uri}")]
    Connect {
        uri: String,
        #[source]
        source: virt::error::Error,
    },
    #[error("libvirt failed to {what}")]
    Call {
        what: String,
        #[source]
        source: virt::error::Error,
    },
    #[error(
        "lost the connection to libvirt while trying to {what} (was libvirtd restarted or stopped?)\n  fix: make sure libvirtd runs (scripts/setup-host.sh starts it), then run the command again: it takes over where this one stopped"
    )]
    ConnectionLost {
        what: String,
        #[source]
        source: virt::error::Error,
    },
    /// Ctrl-C was pressed before the change was made ([`crate::interrupt`]).
    #[error("did not {what}: interrupted by Ctrl-C")]
    Interrupted { what: String },
    /// A failure the reliability tests asked for (`DCOS_LAB_TEST_FAULT=<command>:<n>:fail`).
    #[error("fault injection: libvirt was not asked to {what}")]
    Injected { what: String },
    /// The object named does not exist (from a hypervisor without libvirt's error codes).
    #[error("cannot {what}: no such {kind} {name}")]
    Missing {
        what: String,
        kind: &'static str,
        name: String,
    },
    /// The call is not allowed in the object's state (from a hypervisor without libvirt's error
    /// codes), e.g. starting a running domain.
    #[error("cannot {what}: {why}")]
    Refused { what: String, why: String },
    /// A local file the driver streams to or from a volume could not be read or written.
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A tool that owns a format the driver reads (`qemu-img` for qcow2) failed.
    #[error("cannot {what}: {message}")]
    Tool { what: String, message: String },
    #[error("domain {domain} has no snapshot {snapshot}")]
    NoSnapshot { domain: String, snapshot: String },
    #[error("libvirt returned XML for {what} that dcos-lab cannot read")]
    Parse {
        what: String,
        #[source]
        source: quick_xml::DeError,
    },
}

impl DriverError {
    /// True when the object named in the call does not exist.
    pub fn is_not_found(&self) -> bool {
        use virt::error::ErrorNumber as N;
        match self {
            DriverError::Call { source, .. } => matches!(
                source.code(),
                virt::enumutil::Enum::Known(
                    N::NoDomain | N::NoNetwork | N::NoStoragePool | N::NoStorageVolume
                )
            ),
            DriverError::Missing { .. } => true,
            _ => false,
        }
    }
}

/// Version facts `doctor` reports.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub uri: String,
    pub libvirt: String,
    pub hypervisor: String,
}

/// A libvirt domain or network carrying our metadata.
#[derive(Debug, Clone, Serialize)]
pub struct Owned {
    pub name: String,
    pub state: ObjState,
    pub tag: LabTag,
}

/// A storage pool, seen by name; pools carry no metadata, so ownership is checked by their path.
#[derive(Debug, Clone, Serialize)]
pub struct PoolInfo {
    pub name: String,
    pub path: String,
    pub state: ObjState,
    pub volumes: Vec<String>,
}

/// What dcos-lab asks of libvirt. Every call blocks: async callers use `spawn_blocking`.
pub trait Hypervisor: Send + Sync {
    fn version(&self) -> Result<VersionInfo, DriverError>;
    /// Memory the host can give guests, in bytes: free plus buffers and page cache, as the
    /// kernel's MemAvailable counts it (libvirt's plain free memory leaves the cache out).
    fn free_memory(&self) -> Result<u64, DriverError>;

    fn define_network(&self, xml: &str) -> Result<String, DriverError>;
    fn start_network(&self, name: &str) -> Result<(), DriverError>;
    /// Stops (if running) and undefines; a missing network is not an error.
    fn remove_network(&self, name: &str) -> Result<(), DriverError>;
    /// Our networks: those whose metadata carries a lab tag.
    fn owned_networks(&self) -> Result<Vec<Owned>, DriverError>;
    /// The `<forward>` mode of a network as it runs now and as it is defined (for its next start).
    fn network_forward(&self, name: &str) -> Result<NetworkForward, DriverError>;
    /// Every network's name and bridge, ours or not (for collision checks).
    fn all_networks(&self) -> Result<Vec<NetworkSummary>, DriverError>;
    /// A network's node entries (DHCP and DNS hosts), as the running network has them (its
    /// definition when it does not run).
    fn network_entries(&self, name: &str) -> Result<Vec<NetEntry>, DriverError>;
    /// Adds (`add`) or deletes one entry of a network, in the running network and in its
    /// definition alike, without restarting it (libvirt's network update).
    fn update_network(&self, name: &str, entry: &NetEntry, add: bool) -> Result<(), DriverError>;

    fn define_domain(&self, xml: &str) -> Result<String, DriverError>;
    fn start_domain(&self, name: &str) -> Result<(), DriverError>;
    /// Powers a domain off at once (like pulling the plug); stopped already is fine.
    fn stop_domain(&self, name: &str) -> Result<(), DriverError>;
    /// Asks the guest to power itself off (through its guest agent, else the ACPI power
    /// button) and returns at once; not running is fine. Whether it did is read with
    /// `domain_state`.
    fn shutdown_domain(&self, name: &str) -> Result<(), DriverError>;
    /// A domain's state now.
    fn domain_state(&self, name: &str) -> Result<ObjState, DriverError>;
    /// Pauses a running domain (its vCPUs stop); paused already is fine.
    fn suspend_domain(&self, name: &str) -> Result<(), DriverError>;
    /// Resumes a paused domain; running already is fine.
    fn resume_domain(&self, name: &str) -> Result<(), DriverError>;
    /// Saves a paused domain's memory to disk (libvirt's managed save) and stops it: its QEMU
    /// process ends and the host gets its memory back. The next `start_domain` restores it,
    /// running. Suspended already is fine.
    fn save_domain(&self, name: &str) -> Result<(), DriverError>;
    /// Drops a suspended domain's saved memory: it is then plainly stopped. None is fine.
    fn discard_saved(&self, name: &str) -> Result<(), DriverError>;
    /// Returns once the hypervisor has finished any change already under way on a domain,
    /// running or not (one a process asked for and died before it was made: libvirtd makes it
    /// all the same), so that its state read next is the state it stays in. Changes nothing.
    fn settle_domain(&self, name: &str) -> Result<(), DriverError>;
    /// An internal snapshot of disk and memory (qcow2), named `snapshot`; the seed disk is left out.
    fn create_snapshot(
        &self,
        domain: &str,
        snapshot: &str,
        description: &str,
    ) -> Result<(), DriverError>;
    /// Reverts to `snapshot`, leaving the domain paused (`paused`) or running.
    fn revert_snapshot(
        &self,
        domain: &str,
        snapshot: &str,
        paused: bool,
    ) -> Result<(), DriverError>;
    /// Deletes `snapshot` of `domain`; a missing one is fine.
    fn delete_snapshot(&self, domain: &str, snapshot: &str) -> Result<(), DriverError>;
    fn snapshots(&self, domain: &str) -> Result<Vec<SnapshotInfo>, DriverError>;
    /// libvirt's XML of a domain's snapshot (with the domain definition it was taken under).
    fn snapshot_xml(&self, domain: &str, snapshot: &str) -> Result<String, DriverError>;
    /// Gives a domain the metadata of a snapshot its disk already holds (a golden restored).
    fn redefine_snapshot(&self, domain: &str, xml: &str) -> Result<(), DriverError>;
    /// A domain's live XML (what libvirt filled in: the machine type, the CPU).
    fn domain_xml(&self, domain: &str) -> Result<String, DriverError>;
    /// The versioned machine type an alias (`q35`) stands for with this host's QEMU.
    fn machine_type(&self, alias: &str) -> Result<Option<String>, DriverError>;
    /// The emulator binary libvirt gives an x86_64 guest on this host.
    fn emulator(&self) -> Result<Option<String>, DriverError>;
    /// Powers off (if running) and undefines, with its snapshot metadata and managed save; missing is fine.
    fn remove_domain(&self, name: &str) -> Result<(), DriverError>;
    fn owned_domains(&self) -> Result<Vec<Owned>, DriverError>;

    fn define_pool(&self, xml: &str) -> Result<String, DriverError>;
    /// Builds the directory and starts the pool.
    fn start_pool(&self, name: &str, build: bool) -> Result<(), DriverError>;
    fn pool(&self, name: &str) -> Result<Option<PoolInfo>, DriverError>;
    /// Deletes every volume, then the pool and its directory; missing is fine.
    fn remove_pool(&self, name: &str) -> Result<(), DriverError>;
    fn create_volume(&self, pool: &str, xml: &str) -> Result<String, DriverError>;
    /// Deletes volume `volume` of `pool`; one that is not there is no error.
    fn delete_volume(&self, pool: &str, volume: &str) -> Result<(), DriverError>;
    /// Creates a volume in `pool` from `xml` and fills it with the bytes of the local file
    /// `from`, streamed over the connection (so a remote host needs nothing but libvirtd); returns
    /// the volume's path on its host. A failed upload deletes the volume it made.
    fn upload_volume(&self, pool: &str, xml: &str, from: &Path) -> Result<String, DriverError>;
    /// Streams a volume's bytes into the local file `to`.
    fn download_volume(&self, pool: &str, volume: &str, to: &Path) -> Result<(), DriverError>;
    /// A volume's bytes (a console log in a pool: root's file, read through libvirtd).
    fn read_volume(&self, pool: &str, volume: &str) -> Result<Vec<u8>, DriverError>;
    /// Name and target directory of every storage pool named with our prefix.
    fn owned_pools(&self) -> Result<Vec<(String, String)>, DriverError>;
    /// Rescans the pool's directory (after files were written into it directly).
    fn refresh_pool(&self, name: &str) -> Result<(), DriverError>;
    /// Bytes of saved memory of every internal snapshot that `domain`'s disk file `disk` holds,
    /// by snapshot name: what the disk has, not libvirt's metadata (which can outlive it).
    fn disk_snapshots(
        &self,
        domain: &str,
        disk: &std::path::Path,
    ) -> Result<std::collections::BTreeMap<String, u64>, DriverError>;
}

/// A domain snapshot as libvirt lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub name: String,
    pub created_unix: u64,
    /// The domain state captured (`running`, `paused`, `shutoff`).
    pub state: String,
    pub has_memory: bool,
}

/// A network's `<forward>` as libvirt has it: `None` where there is none (isolated).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NetworkForward {
    pub active: bool,
    /// In the running network's (live) definition.
    pub live: Option<String>,
    /// In the persistent definition.
    pub defined: Option<String>,
}

pub use crate::plan::NetEntry;

/// Name and bridge of any libvirt network.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkSummary {
    pub name: String,
    pub bridge: Option<String>,
    pub ipv4: Vec<String>,
    pub active: bool,
}
