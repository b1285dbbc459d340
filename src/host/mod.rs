//! Facts about the host: accelerator, memory, tools; and the choice of accelerator [I/O in `probe`, pure choice].

pub mod hosts_file;

use std::path::Path;

use serde::Serialize;

use crate::model::{Accel, AccelChoice, ByteSize};

/// What the host says about hardware virtualization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccelFacts {
    /// `vmx` or `svm` among the CPU flags in /proc/cpuinfo.
    pub cpu_virt_flag: Option<String>,
    /// `Ok` when /dev/kvm opens read-write, else why not.
    pub kvm_device: Result<(), String>,
}

/// The accelerator chosen and why, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccelDecision {
    pub accel: Accel,
    pub reason: String,
}

/// Picks KVM only when the CPU shows vmx/svm *and* /dev/kvm opens; else TCG. A forced choice wins.
pub fn choose_accel(choice: AccelChoice, facts: &AccelFacts) -> AccelDecision {
    match choice {
        AccelChoice::Kvm => AccelDecision {
            accel: Accel::Kvm,
            reason: "forced: kvm".into(),
        },
        AccelChoice::Tcg => AccelDecision {
            accel: Accel::Tcg,
            reason: "forced: tcg (software emulation)".into(),
        },
        AccelChoice::Auto => match (&facts.cpu_virt_flag, &facts.kvm_device) {
            (Some(flag), Ok(())) => AccelDecision {
                accel: Accel::Kvm,
                reason: format!("CPU shows {flag} and /dev/kvm opens"),
            },
            (None, _) => AccelDecision {
                accel: Accel::Tcg,
                reason: "CPU shows neither vmx nor svm (nested or no hardware virtualization): software emulation".into(),
            },
            (Some(flag), Err(e)) => AccelDecision {
                accel: Accel::Tcg,
                reason: format!("CPU shows {flag} but /dev/kvm does not open ({e}): software emulation"),
            },
        },
    }
}

/// Reads /proc/cpuinfo and tries /dev/kvm.
pub fn probe_accel() -> AccelFacts {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    AccelFacts {
        cpu_virt_flag: virt_flag(&cpuinfo),
        kvm_device: std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

/// `vmx` or `svm` when a `flags` line of cpuinfo lists it.
pub fn virt_flag(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .find(|f| *f == "vmx" || *f == "svm")
        .map(str::to_string)
}

/// `MemAvailable` from /proc/meminfo.
pub fn mem_available() -> Option<ByteSize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text, "MemAvailable:")
}

pub fn parse_meminfo(text: &str, key: &str) -> Option<ByteSize> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(ByteSize::from_bytes(kib * 1024))
}

/// A host tool dcos-lab shells out to (tools that own a file format), and where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub needed_for: &'static str,
    pub package: &'static str,
    pub found: bool,
}

const TOOLS: &[(&str, &str, &str)] = &[
    ("qemu-img", "disk images", "qemu-utils"),
    ("qemu-system-x86_64", "running guests", "qemu-system-x86"),
    ("mmdebstrap", "building images", "mmdebstrap"),
    ("mkfs.ext4", "building images", "e2fsprogs"),
    (
        "genisoimage",
        "cloud-init seeds for imported images",
        "genisoimage",
    ),
];

pub fn find_in_path(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(Into::into))
        .any(|d| is_executable(&d.join(name)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub fn probe_tools() -> Vec<Tool> {
    TOOLS
        .iter()
        .map(|(name, needed_for, package)| Tool {
            name,
            needed_for,
            package,
            found: find_in_path(name),
        })
        .collect()
}

/// The login name of user `uid`, when the host knows it.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut pw = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the size given; getpwuid_r writes only there.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            pw.as_mut_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points to a NUL-terminated string in `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr((*found).pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Whether user `uid` has a range of subordinate ids in `file` (`/etc/subuid`, `/etc/subgid`:
/// `name:start:count` or `uid:start:count`), which a user namespace of many ids needs.
pub fn has_subordinate_ids(file: &str, uid: u32) -> bool {
    let name = user_name(uid);
    std::fs::read_to_string(file).is_ok_and(|text| {
        text.lines().any(|l| {
            let mut f = l.split(':');
            let who = f.next().unwrap_or("");
            let count = f
                .nth(1)
                .and_then(|c| c.trim().parse::<u64>().ok())
                .unwrap_or(0);
            (Some(who) == name.as_deref() || who == uid.to_string()) && count >= 65536
        })
    })
}

/// Whether this process's user is in group `group` (its supplementary groups, or its own).
pub fn in_group(group: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(group) else {
        return false;
    };
    let mut buf = vec![0u8; 16384];
    let mut gr = std::mem::MaybeUninit::<libc::group>::uninit();
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the size given; getgrnam_r writes only there.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            gr.as_mut_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return false;
    }
    // SAFETY: getgrnam_r succeeded and filled the struct `found` points to.
    let gid = unsafe { (*found).gr_gid };
    // SAFETY: getegid has no preconditions.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    // SAFETY: a first call with size 0 returns the number of groups and writes nothing.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let Ok(len) = usize::try_from(n) else {
        return false;
    };
    let mut groups = vec![0 as libc::gid_t; len];
    // SAFETY: `groups` holds `n` entries.
    let got = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    usize::try_from(got).is_ok_and(|k| groups[..k.min(len)].contains(&gid))
}

/// The user dcos-lab runs as (its effective uid): labs are recorded as this user's.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process may write `path` (access(2) with W_OK).
pub fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// The effective group id: a plain user's pool directories get it.
pub fn egid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(flag: Option<&str>, kvm: Result<(), &str>) -> AccelFacts {
        AccelFacts {
            cpu_virt_flag: flag.map(str::to_string),
            kvm_device: kvm.map_err(str::to_string),
        }
    }

    #[test]
    fn auto_picks_kvm_only_with_flag_and_device() {
        let table = [
            (facts(Some("vmx"), Ok(())), Accel::Kvm),
            (facts(Some("svm"), Ok(())), Accel::Kvm),
            (facts(None, Ok(())), Accel::Tcg),
            (facts(Some("vmx"), Err("Permission denied")), Accel::Tcg),
            (facts(None, Err("No such file")), Accel::Tcg),
        ];
        for (f, want) in table {
            assert_eq!(choose_accel(AccelChoice::Auto, &f).accel, want, "{f:?}");
        }
    }

    #[test]
    fn forced_choice_wins() {
        let f = facts(None, Err("No such file"));
        assert_eq!(choose_accel(AccelChoice::Kvm, &f).accel, Accel::Kvm);
        let f = facts(Some("vmx"), Ok(()));
        assert_eq!(choose_accel(AccelChoice::Tcg, &f).accel, Accel::Tcg);
    }

    #[test]
    fn reads_flags_and_meminfo() {
        assert_eq!(virt_flag("flags\t: fpu vme svm sse\n"), Some("svm".into()));
        assert_eq!(virt_flag("flags\t: fpu hypervisor\n"), None);
        let m = "MemTotal: 100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_meminfo(m, "MemAvailable:"), Some(ByteSize::mib(2)));
    }
}
