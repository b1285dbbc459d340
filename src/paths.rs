//! Where dcos-lab keeps files on the host: images (cache) and per-lab state [pure, plus env lookup].

use std::path::{Path, PathBuf};

/// Overrides the state directory (labs' disks, keys, console logs).
pub const STATE_ENV: &str = "DCOS_LAB_STATE_DIR";
/// Overrides the image cache directory.
pub const CACHE_ENV: &str = "DCOS_LAB_CACHE_DIR";

/// The two roots. QEMU runs as `libvirt-qemu` under `qemu:///system` and must be able to reach
/// the disks, so as root the defaults are system directories rather than `/root/...`
/// (which is mode 0700); other users get the XDG directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub state: PathBuf,
    pub cache: PathBuf,
}

impl Dirs {
    /// Reads the environment: the override variables, then XDG, then the system defaults for root.
    pub fn discover() -> Dirs {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let home = var("HOME").unwrap_or_else(|| PathBuf::from("/"));
        let state = var(STATE_ENV).unwrap_or_else(|| {
            if root {
                PathBuf::from("/var/lib/dcos-lab")
            } else {
                var("XDG_STATE_HOME")
                    .unwrap_or_else(|| home.join(".local/state"))
                    .join("dcos-lab")
            }
        });
        let cache = var(CACHE_ENV).unwrap_or_else(|| {
            if root {
                PathBuf::from("/var/cache/dcos-lab")
            } else {
                var("XDG_CACHE_HOME")
                    .unwrap_or_else(|| home.join(".cache"))
                    .join("dcos-lab")
            }
        });
        Dirs { state, cache }
    }

    pub fn images(&self) -> PathBuf {
        self.cache.join("images")
    }

    pub fn lab(&self, lab: &str) -> LabDirs {
        LabDirs {
            root: self.state.join("labs").join(lab),
        }
    }

    pub fn labs(&self) -> PathBuf {
        self.state.join("labs")
    }
}

/// Files of one lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabDirs {
    pub root: PathBuf,
}

impl LabDirs {
    /// Target of the lab's libvirt storage pool: disk overlays and seeds.
    pub fn pool(&self) -> PathBuf {
        self.root.join("disks")
    }

    pub fn disk(&self, node: &str) -> PathBuf {
        self.pool().join(crate::plan::disk_volume_name(node))
    }

    pub fn seed(&self, node: &str) -> PathBuf {
        self.pool().join(crate::plan::seed_volume_name(node))
    }

    pub fn console_log(&self, node: &str) -> PathBuf {
        self.root.join("console").join(format!("{node}.log"))
    }

    /// Private directory (0700) of the lab's key and pinned host keys. The lab's directory
    /// itself is 0711 so that QEMU (as libvirt-qemu) can reach the disks.
    pub fn ssh_dir(&self) -> PathBuf {
        self.root.join("ssh")
    }

    pub fn ssh_key(&self) -> PathBuf {
        self.ssh_dir().join("id_ed25519")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.ssh_dir().join("known_hosts")
    }

    pub fn path(&self) -> &Path {
        &self.root
    }
}
