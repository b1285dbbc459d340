//! Names every layer shares: of libvirt objects, of a lab's files, and the states objects are
//! seen in [pure, leaf: imports only `model`'s network kinds].
//!
//! `driver`, `plan`, `render` and `ops` all name the same objects; keeping the names here lets
//! each of them depend on this module instead of on each other.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::NetKind;

/// Every object this tool makes starts with this prefix.
pub const PREFIX: &str = "dcos-lab";

/// libvirt domain name of a node.
pub fn domain_name(lab: &str, node: &str) -> String {
    format!("{PREFIX}-{lab}-{node}")
}

/// libvirt network name of one of the lab's networks.
pub fn network_name(lab: &str, kind: NetKind) -> String {
    format!("{PREFIX}-{lab}-{kind}")
}

/// libvirt storage pool holding the lab's disks and seeds.
pub fn pool_name(lab: &str) -> String {
    format!("{PREFIX}-{lab}")
}

/// Volume (file) name of a node's root disk overlay.
pub fn disk_volume_name(node: &str) -> String {
    format!("{node}.qcow2")
}

/// Volume (file) name of a node's NoCloud seed.
pub fn seed_volume_name(node: &str) -> String {
    format!("{node}-seed.img")
}

/// State of a libvirt object of the lab, as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjState {
    /// Defined but not running (networks, pools) or shut off (domains).
    Inactive,
    /// Running, active.
    Active,
    /// Paused domain.
    Paused,
    /// A domain shut off with its memory saved to disk (`suspend`); its next start restores it.
    Suspended,
}

impl fmt::Display for ObjState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjState::Active => "running",
            ObjState::Inactive => "stopped",
            ObjState::Paused => "paused",
            ObjState::Suspended => "suspended",
        })
    }
}

/// Files of one lab.
/// Where a lab's pool goes on its other hosts (`LabDirs::remote`).
pub const REMOTE_ROOT: &str = "/var/lib/libvirt/dcos-lab";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabDirs {
    /// What QEMU reads and writes: the pool (`disks/`: overlays and seeds) and console logs.
    pub root: PathBuf,
    /// The user's own files of the lab: its key, pinned host keys, records of unfinished
    /// commands (0700 for a plain user). Root's labs keep them in `root`.
    pub private: PathBuf,
    /// On a host other than the lab's first: everything, console logs included, is in the pool
    /// (the only directory libvirt makes there).
    pub remote: bool,
    /// Console logs are volumes of the pool, read through libvirt (the file virtlogd writes is
    /// root's): on a lab's other hosts, and for a plain user.
    pub logs_in_pool: bool,
}

/// A node's console log as a volume of the pool, on a host other than the lab's first.
pub fn console_volume_name(node: &str) -> String {
    format!("console-{node}.log")
}

impl LabDirs {
    /// A lab whose files are all in `root`, as root's labs are.
    pub fn local(root: PathBuf) -> LabDirs {
        LabDirs {
            private: root.clone(),
            root,
            remote: false,
            logs_in_pool: false,
        }
    }

    /// The lab's directory on a host other than the first (a lab across hosts): only its pool
    /// lives there, made and emptied through libvirt.
    pub fn remote(lab: &str) -> LabDirs {
        let root = PathBuf::from(REMOTE_ROOT).join(lab);
        LabDirs {
            private: root.clone(),
            root,
            remote: true,
            logs_in_pool: true,
        }
    }

    /// Target of the lab's libvirt storage pool: disk overlays and seeds.
    pub fn pool(&self) -> PathBuf {
        self.root.join("disks")
    }

    pub fn disk(&self, node: &str) -> PathBuf {
        self.pool().join(disk_volume_name(node))
    }

    pub fn seed(&self, node: &str) -> PathBuf {
        self.pool().join(seed_volume_name(node))
    }

    pub fn console_log(&self, node: &str) -> PathBuf {
        if self.logs_in_pool {
            return self.pool().join(console_volume_name(node));
        }
        self.root.join("console").join(format!("{node}.log"))
    }

    /// Private directory (0700) of the lab's key and pinned host keys. The lab's directory
    /// itself is 0711 so that QEMU (as libvirt-qemu) can reach the disks.
    pub fn ssh_dir(&self) -> PathBuf {
        self.private.join("ssh")
    }

    pub fn ssh_key(&self) -> PathBuf {
        self.ssh_dir().join("id_ed25519")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.ssh_dir().join("known_hosts")
    }

    /// Whether the user's own files are apart from what QEMU reads (a plain user's lab).
    pub fn split(&self) -> bool {
        self.private != self.root
    }

    pub fn path(&self) -> &Path {
        &self.root
    }
}
