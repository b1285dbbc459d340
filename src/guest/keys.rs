//! The per-lab ed25519 key (0600) and the pinned host keys of a lab's guests [I/O].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use russh::keys::{Algorithm, PrivateKey, PublicKey};

use super::GuestError;

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> GuestError {
    let what = what.to_string();
    let path = path.to_path_buf();
    move |source| GuestError::Io { what, path, source }
}

/// Writes `bytes` to `path` atomically, mode 0600 from the first byte: under a temporary name,
/// synced, then renamed into place.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), GuestError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io("write", path))
}

/// A lab's SSH key pair, generated in-process on first use and kept 0600 in the lab's directory.
#[derive(Clone)]
pub struct LabKey {
    pub private: Arc<PrivateKey>,
    pub path: PathBuf,
}

impl std::fmt::Debug for LabKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("LabKey").field("path", &self.path).finish()
    }
}

impl LabKey {
    /// Loads the key at `path`, or makes a new ed25519 key there (mode 0600, directory 0700).
    pub fn load_or_create(path: &Path, comment: &str) -> Result<LabKey, GuestError> {
        if path.exists() {
            return LabKey::load(path);
        }
        LabKey::create(path, comment)
    }

    /// Loads the lab's key; a missing key is an error that says how a lab gets one.
    pub fn load(path: &Path) -> Result<LabKey, GuestError> {
        if !path.exists() {
            return Err(GuestError::NoKey {
                path: path.to_path_buf(),
            });
        }
        let text = fs::read_to_string(path).map_err(io("read", path))?;
        let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|e| GuestError::BadKey {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // Whatever happened to the file's mode since, it goes back to 0600.
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io("chmod", path))?;
        Ok(LabKey {
            private: Arc::new(key),
            path: path.to_path_buf(),
        })
    }

    fn create(path: &Path, comment: &str) -> Result<LabKey, GuestError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io("create", dir))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(io("chmod", dir))?;
        }
        let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .map_err(|e| GuestError::KeyGen(e.to_string()))?;
        key.set_comment(comment);
        let pem = key
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .map_err(|e| GuestError::KeyGen(e.to_string()))?;
        write_private(path, pem.as_bytes())?;
        crate::fault::step("write the lab key");
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|e| GuestError::KeyGen(e.to_string()))?;
        let pub_path = path.with_extension("pub");
        fs::write(&pub_path, format!("{public}\n")).map_err(io("write", &pub_path))?;
        Ok(LabKey {
            private: Arc::new(key),
            path: path.to_path_buf(),
        })
    }

    /// `ssh-ed25519 AAAA... comment`.
    pub fn public_openssh(&self) -> String {
        self.private.public_key().to_openssh().unwrap_or_default()
    }
}

/// Host keys of a lab's guests, pinned on first contact: `<node> <key>` per line, 0600.
#[derive(Clone)]
pub struct KnownHosts {
    path: PathBuf,
    keys: Arc<Mutex<BTreeMap<String, String>>>,
}

impl KnownHosts {
    pub fn load(path: &Path) -> Result<KnownHosts, GuestError> {
        let mut keys = BTreeMap::new();
        match fs::read_to_string(path) {
            Ok(text) => {
                for line in text.lines() {
                    if let Some((node, key)) = line.split_once(' ') {
                        keys.insert(node.to_string(), key.trim().to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("read", path)(e)),
        }
        Ok(KnownHosts {
            path: path.to_path_buf(),
            keys: Arc::new(Mutex::new(keys)),
        })
    }

    fn save(&self, keys: &BTreeMap<String, String>) -> Result<(), GuestError> {
        let text: String = keys.iter().map(|(n, k)| format!("{n} {k}\n")).collect();
        write_private(&self.path, text.as_bytes())
    }

    /// Checks `key` for `node`: pins it when the node has none yet. `Ok(false)` on a mismatch.
    pub fn check_or_pin(&self, node: &str, key: &PublicKey) -> Result<bool, GuestError> {
        let text = key.to_openssh().unwrap_or_default();
        // The key type and base64, without a comment.
        let text: String = text
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        match keys.get(node) {
            Some(pinned) => Ok(*pinned == text),
            None => {
                keys.insert(node.to_string(), text);
                self.save(&keys)?;
                Ok(true)
            }
        }
    }

    /// Forgets `node`'s key: its guest is being made anew.
    pub fn forget(&self, node: &str) -> Result<(), GuestError> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.remove(node).is_some() {
            self.save(&keys)?;
        }
        Ok(())
    }

    /// The pinned key of `node`, as `type base64`.
    pub fn get(&self, node: &str) -> Option<String> {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_made_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lab/id_ed25519");
        let a = LabKey::load_or_create(&path, "dcos-lab test").expect("create");
        let mode = fs::metadata(&path).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(path.parent().expect("dir"))
            .expect("dir")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        let b = LabKey::load_or_create(&path, "dcos-lab test").expect("load");
        assert_eq!(a.public_openssh(), b.public_openssh());
        assert!(a.public_openssh().starts_with("ssh-ed25519 "));
        assert!(!format!("{a:?}").contains("PRIVATE"));
    }

    #[test]
    fn host_keys_are_pinned_then_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k1 = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("key");
        let k2 = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("key");
        let kh = KnownHosts::load(&dir.path().join("known_hosts")).expect("load");
        assert!(kh.check_or_pin("boot", k1.public_key()).expect("pin"));
        assert!(kh.check_or_pin("boot", k1.public_key()).expect("check"));
        assert!(!kh.check_or_pin("boot", k2.public_key()).expect("check"));
        // Survives a reload.
        let kh = KnownHosts::load(&dir.path().join("known_hosts")).expect("load");
        assert!(!kh.check_or_pin("boot", k2.public_key()).expect("check"));
        kh.forget("boot").expect("forget");
        assert!(kh.check_or_pin("boot", k2.public_key()).expect("pin"));
    }
}
