//! Where dcos-lab keeps files on the host: images (cache) and per-lab state [pure, plus env lookup].

use std::path::PathBuf;

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
            remote: false,
        }
    }

    pub fn labs(&self) -> PathBuf {
        self.state.join("labs")
    }
}

pub use crate::names::LabDirs;
