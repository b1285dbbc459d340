//! What image builds and imports share: a lock on a cache entry, and running a tool that owns
//! a format (qemu-img, mmdebstrap) with its output kept for the error [I/O].

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{ImageError, io_err};

/// An exclusive lock on a file, released on drop (flock).
pub(crate) struct FileLock {
    _file: fs::File,
}

impl FileLock {
    pub(crate) fn acquire(path: &Path) -> Result<FileLock, ImageError> {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err("cannot open lock", path))?;
        // SAFETY: flock on a file descriptor we own; blocks until the lock is ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(ImageError::Io {
                what: "cannot lock".into(),
                path: path.to_path_buf(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(FileLock { _file: file })
    }
}

pub(crate) fn run(what: &str, cmd: &mut Command) -> Result<(), ImageError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    tracing::debug!("running {cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ImageError::Spawn { tool, source })?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    Err(ImageError::Tool {
        what: what.to_string(),
        status: out.status.to_string(),
        tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}
