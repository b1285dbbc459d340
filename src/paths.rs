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
    /// A plain user's directory for what QEMU reads (labs' disks, seeds and console logs, the
    /// base images in use): made by libvirtd, owned by the user (`shared_pool_xml`). `None` for
    /// root, whose state and cache directories QEMU reaches.
    pub shared: Option<Shared>,
}

/// A plain user's shared directory and who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    pub dir: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

impl Dirs {
    /// Reads the environment: the override variables, then XDG, then the system defaults for root.
    pub fn discover() -> Dirs {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let root = crate::host::euid() == 0;
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
        let shared = (!root).then(|| {
            let uid = crate::host::euid();
            Shared {
                dir: shared_root(uid),
                uid,
                gid: crate::host::egid(),
            }
        });
        Dirs {
            state,
            cache,
            shared,
        }
    }

    /// The image cache: where images are built and imported.
    pub fn images(&self) -> PathBuf {
        self.cache.join("images")
    }

    /// Where QEMU reads the base images from: the cache for root; for a plain user, copies in
    /// the shared directory (`image::publish`).
    pub fn qemu_images(&self) -> PathBuf {
        match &self.shared {
            Some(s) => s.dir.join("images"),
            None => self.images(),
        }
    }

    /// The directory under which labs' QEMU-read files go (and goldens are unpacked, so that
    /// their disks move into a lab's pool by rename).
    pub fn qemu_root(&self) -> PathBuf {
        match &self.shared {
            Some(s) => s.dir.clone(),
            None => self.state.clone(),
        }
    }

    /// Owner (uid, gid) of the directories libvirtd makes for a plain user; `None` for root.
    pub fn pool_owner(&self) -> Option<(u32, u32)> {
        self.shared.as_ref().map(|s| (s.uid, s.gid))
    }

    pub fn lab(&self, lab: &str) -> LabDirs {
        let private = self.state.join("labs").join(lab);
        match &self.shared {
            None => LabDirs::local(private),
            Some(s) => LabDirs {
                root: s.dir.join("labs").join(lab),
                private,
                remote: false,
                logs_in_pool: true,
            },
        }
    }

    /// The lab's directories as `host` sees them: [`Dirs::lab`] on the lab's first host, the
    /// pool of [`LabDirs::remote`] on its others.
    pub fn lab_on(&self, lab: &str, host: &str) -> LabDirs {
        if host == crate::model::LOCAL_HOST {
            self.lab(lab)
        } else {
            LabDirs::remote(lab)
        }
    }

    pub fn labs(&self) -> PathBuf {
        self.state.join("labs")
    }
}

use crate::names::LabDirs;

/// A plain user's shared directory: `/var/lib/libvirt/dcos-lab/user-<uid>`.
pub fn shared_root(uid: u32) -> PathBuf {
    PathBuf::from(crate::names::REMOTE_ROOT).join(format!("user-{uid}"))
}

/// Name of the libvirt pool whose directory is a plain user's shared directory. Not a lab's
/// pool name (`dcos-lab-<lab>`): lab names have no dot.
pub fn shared_pool_name(uid: u32) -> String {
    format!("{}.user-{uid}", crate::names::PREFIX)
}
