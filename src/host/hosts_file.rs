//! The lab's names on the host: a block of `/etc/hosts` per lab, added by `up`, removed by `down`
//! [pure block editing; I/O in `update`].
//!
//! Every node is `<node>.<lab>` (the names `ssh-config` uses) for `ssh`, `curl` and a browser,
//! as vagrant-hostmanager gave dcos-vagrant users. The block names its lab, so two labs with a
//! node `master` never collide and `down` removes exactly its own lines:
//!
//! ```text
//! # dcos-lab lab demo: begin (managed by dcos-lab up/down)
//! 172.29.1.11 master.demo
//! # dcos-lab lab demo: end
//! ```
//!
//! The file is rewritten in place (never replaced), under an exclusive `flock`: a bind-mounted
//! /etc/hosts (containers) stays the same file, and two dcos-lab processes do not interleave. A
//! plain user writes it when the one-time setup gave the `libvirt` group write access to it
//! (scripts/setup-host.sh; docs/laptop.md): that group's members already command libvirtd,
//! which is root's power, so this gives them nothing new.

use std::io::{Read, Seek, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The file `up` and `down` keep the lab's names in.
pub const HOSTS_FILE: &str = "/etc/hosts";
/// Overrides `HOSTS_FILE` (a test's own file; a host whose resolver reads another).
pub const HOSTS_ENV: &str = "DCOS_LAB_HOSTS_FILE";

/// Where the names go: `DCOS_LAB_HOSTS_FILE`, else /etc/hosts.
pub fn hosts_file() -> PathBuf {
    std::env::var_os(HOSTS_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(HOSTS_FILE))
}

fn begin(lab: &str) -> String {
    format!("# dcos-lab lab {lab}: begin (managed by dcos-lab up/down)")
}

fn end(lab: &str) -> String {
    format!("# dcos-lab lab {lab}: end")
}

/// `text` without lab `lab`'s block (and without a block of it cut short: a `begin` line with
/// no `end` loses only itself). Every other line is kept as it was.
pub fn without_block(text: &str, lab: &str) -> String {
    let (b, e) = (begin(lab), end(lab));
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end_matches(['\n', '\r']);
        if line == b
            && let Some(k) = lines[i + 1..]
                .iter()
                .position(|l| l.trim_end_matches(['\n', '\r']) == e)
        {
            i += k + 2;
            continue;
        }
        if line != b && line != e {
            out.push_str(lines[i]);
        }
        i += 1;
    }
    out
}

/// `text` with lab `lab`'s block holding `names` (address, name), at the end, replacing the one
/// it had; no block when `names` is empty.
pub fn with_block(text: &str, lab: &str, names: &[(IpAddr, String)]) -> String {
    let mut out = without_block(text, lab);
    if names.is_empty() {
        return out;
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&begin(lab));
    out.push('\n');
    for (ip, name) in names {
        out.push_str(&format!("{ip} {name}\n"));
    }
    out.push_str(&end(lab));
    out.push('\n');
    out
}

/// Whether `text` holds a block of lab `lab`.
pub fn has_block(text: &str, lab: &str) -> bool {
    let b = begin(lab);
    text.lines().any(|l| l.trim_end_matches('\r') == b)
}

/// Why the names could not be written, with the fix.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} {}: {source}\n  fix: {fix}", path.display())]
pub struct HostsError {
    pub what: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
    pub fix: String,
}

/// Sets lab `lab`'s block of `path` to `names` (removes it when empty). Returns whether the file
/// changed. A file that holds no block and gets none is not opened for writing.
pub fn update(path: &Path, lab: &str, names: &[(IpAddr, String)]) -> Result<bool, HostsError> {
    let err = |what: &'static str| {
        let path = path.to_path_buf();
        move |source: std::io::Error| HostsError {
            fix: if source.kind() == std::io::ErrorKind::PermissionDenied {
                format!(
                    "run scripts/setup-host.sh once as root (it lets the libvirt group keep the labs' names in {0}), or as root `chgrp libvirt {0} && chmod g+w {0}`",
                    path.display()
                )
            } else {
                format!("check {}", path.display())
            },
            what,
            path,
            source,
        }
    };
    let text = match std::fs::read_to_string(path) {
        // No file: nothing to remove.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && names.is_empty() => {
            return Ok(false);
        }
        r => r.map_err(err("read"))?,
    };
    let want = with_block(&text, lab, names);
    if want == text {
        return Ok(false);
    }
    let mut f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(err("write"))?;
    lock(&f).map_err(err("lock"))?;
    // Read again under the lock: another dcos-lab may have changed it meanwhile.
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(err("read"))?;
    let want = with_block(&text, lab, names);
    if want == text {
        return Ok(false);
    }
    f.rewind().map_err(err("write"))?;
    f.write_all(want.as_bytes()).map_err(err("write"))?;
    f.set_len(want.len() as u64).map_err(err("write"))?;
    f.sync_all().map_err(err("write"))?;
    Ok(true)
}

fn lock(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor `f` owns; it is released when `f` is closed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(lab: &str, last: u8) -> Vec<(IpAddr, String)> {
        vec![
            (IpAddr::from([172, 29, last, 10]), format!("boot.{lab}")),
            (IpAddr::from([172, 29, last, 11]), format!("master.{lab}")),
        ]
    }

    #[test]
    fn two_labs_with_a_master_keep_their_own_blocks() {
        let host = "127.0.0.1 localhost\n::1 localhost\n";
        let one = with_block(host, "one", &names("one", 1));
        let both = with_block(&one, "two", &names("two", 2));
        assert!(both.starts_with(host), "{both}");
        assert!(both.contains("172.29.1.11 master.one\n"), "{both}");
        assert!(both.contains("172.29.2.11 master.two\n"), "{both}");
        // Again with the same names: unchanged; with others: replaced where it was.
        assert_eq!(with_block(&both, "two", &names("two", 2)), both);
        let moved = with_block(&both, "one", &names("one", 3));
        assert!(moved.contains("172.29.3.11 master.one\n") && !moved.contains("172.29.1."));
        // Removing one leaves the other and the host's own lines, byte for byte.
        assert_eq!(
            without_block(&both, "one"),
            with_block(host, "two", &names("two", 2))
        );
        assert_eq!(without_block(&without_block(&both, "one"), "two"), host);
        assert!(has_block(&both, "one") && !has_block(host, "one"));
    }

    #[test]
    fn a_lab_named_like_the_start_of_another_is_another_lab() {
        let t = with_block("", "lab", &names("lab", 1));
        let t = with_block(&t, "lab-2", &names("lab-2", 2));
        assert_eq!(
            without_block(&t, "lab"),
            with_block("", "lab-2", &names("lab-2", 2))
        );
    }

    #[test]
    fn a_block_cut_short_loses_its_begin_line_only() {
        let t = format!("{}\n10.0.0.1 mine\n", begin("x"));
        assert_eq!(without_block(&t, "x"), "10.0.0.1 mine\n");
        let no_newline = "127.0.0.1 localhost";
        assert_eq!(
            without_block(&with_block(no_newline, "x", &names("x", 1)), "x"),
            "127.0.0.1 localhost\n"
        );
    }

    #[test]
    fn update_rewrites_the_same_file_and_only_when_it_changes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("hosts");
        std::fs::write(&path, "127.0.0.1 localhost\n").expect("write");
        let inode = std::fs::metadata(&path).expect("stat").ino();
        assert!(update(&path, "x", &names("x", 1)).expect("add"));
        assert!(!update(&path, "x", &names("x", 1)).expect("same"));
        assert_eq!(std::fs::metadata(&path).expect("stat").ino(), inode);
        assert!(update(&path, "x", &[]).expect("remove"));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "127.0.0.1 localhost\n"
        );
        // Nothing to remove: the file is not opened for writing (a read-only file is fine).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        assert!(!update(&path, "x", &[]).expect("nothing to do"));
    }
}
