//! One command at a time per lab: an exclusive `flock` on `<state>/locks/<lab>.lock` [I/O].
//!
//! The lock lives outside the lab's directory (which `down` removes) and is released by the
//! kernel when the process ends, however it ends: a killed command never leaves a stale lock.

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lab {lab} is busy: another dcos-lab command ({holder}) holds {}\n  fix: wait for it, or run without --no-wait to wait", path.display())]
    Busy {
        lab: String,
        holder: String,
        path: PathBuf,
    },
    #[error("cannot lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct LabLock {
    _file: fs::File,
}

fn flock(file: &fs::File, nonblocking: bool) -> std::io::Result<()> {
    let op = libc::LOCK_EX | if nonblocking { libc::LOCK_NB } else { 0 };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl LabLock {
    /// Takes the lock of `lab` under `state`. When another command holds it: waits (saying so on
    /// stderr through `on_wait`) or, with `wait == false`, fails at once.
    pub fn acquire(
        state: &Path,
        lab: &str,
        wait: bool,
        on_wait: &dyn Fn(&str),
    ) -> Result<LabLock, LockError> {
        let dir = state.join("locks");
        let path = dir.join(format!("{lab}.lock"));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(io)?;
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        if let Err(e) = flock(&file, true) {
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(e));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim().to_string();
            let holder = if holder.is_empty() {
                "unknown process".to_string()
            } else {
                holder
            };
            if !wait {
                return Err(LockError::Busy {
                    lab: lab.to_string(),
                    holder,
                    path,
                });
            }
            on_wait(&format!(
                "waiting for another dcos-lab command on lab {lab} ({holder}) to finish"
            ));
            flock(&file, false).map_err(io)?;
        }
        // Who holds it, for the next one's message.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "pid {}", std::process::id());
        let _ = file.flush();
        Ok(LabLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_fails_without_wait_and_gets_it_after_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = LabLock::acquire(dir.path(), "x", false, &|_| {}).expect("first");
        let err = LabLock::acquire(dir.path(), "x", false, &|_| {}).expect_err("busy");
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        // Other labs are not blocked.
        let _b = LabLock::acquire(dir.path(), "y", false, &|_| {}).expect("other lab");
        drop(a);
        LabLock::acquire(dir.path(), "x", false, &|_| {}).expect("released");
    }
}
