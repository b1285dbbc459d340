//! `doctor`: is this host ready for labs, and if not, what to do [reads the host and libvirt].
//!
//! It reads versions and tools, and tries what labs depend on and versions do not tell: a probe
//! domain shaped like a lab node (qcow2 root, raw read-only seed, the same devices) is started,
//! paused, snapshotted with its memory and reverted, then removed. A doctor killed during the
//! probe leaves that domain (`dcos-lab_doctor-probe`, tagged as lab `doctor_probe`: the
//! underscore keeps both out of the names labs can have, so the probe never touches a lab's
//! domain); the next `doctor` or `down --all` removes it.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::driver::{Hypervisor, VersionInfo};
use crate::host::{self, AccelDecision, Tool};
use crate::model::{Accel, AccelChoice, ByteSize};
use crate::paths::Dirs;

/// What a lab needs of this host's libvirt and QEMU, as tried here.
#[derive(Debug, Serialize)]
pub struct Feature {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

const PROBE_LAB: &str = "doctor_probe";
const PROBE_DOMAIN: &str = "dcos-lab_doctor-probe";

/// Who runs dcos-lab, and what a plain user needs (root needs none of it).
#[derive(Debug, Clone, Serialize)]
pub struct UserFacts {
    pub name: String,
    pub uid: u32,
    /// In the `libvirt` group (the group a laptop's polkit rule, or the socket's group, lets in).
    pub in_libvirt_group: bool,
    /// A range of subordinate uids and gids (/etc/subuid, /etc/subgid): image builds need it.
    pub subordinate_ids: bool,
    /// The hosts file where `up` keeps the nodes' names, when this user may write it.
    pub hosts_file: String,
    pub hosts_file_writable: bool,
}

impl UserFacts {
    /// This process's user.
    pub fn here() -> UserFacts {
        let uid = host::euid();
        let hosts = host::hosts_file::hosts_file();
        UserFacts {
            name: host::user_name(uid).unwrap_or_else(|| uid.to_string()),
            uid,
            in_libvirt_group: host::in_group("libvirt"),
            subordinate_ids: host::has_subordinate_ids("/etc/subuid", uid)
                && host::has_subordinate_ids("/etc/subgid", uid),
            hosts_file: hosts.display().to_string(),
            hosts_file_writable: host::writable(&hosts),
        }
    }

    /// What this user lacks, each with its fix, given whether libvirt `refused` it.
    pub fn problems(&self, refused: bool) -> Vec<String> {
        if self.uid == 0 {
            return Vec::new();
        }
        let user = &self.name;
        let mut out = Vec::new();
        if !self.in_libvirt_group {
            out.push(format!(
                "{user} is not in the libvirt group, which qemu:///system lets in; fix: as root, once: `adduser {user} libvirt`, then log in again"
            ));
        } else if refused {
            out.push(format!(
                "libvirt refused {user} although {user} is in the libvirt group: the system socket's access check (polkit) said no; fix: a running polkit with libvirt's rule for the group (Debian's libvirt-daemon-system ships it), or where no polkit runs, in /etc/libvirt/libvirtd.conf: unix_sock_group = \"libvirt\", unix_sock_rw_perms = \"0770\", auth_unix_rw = \"none\", then restart libvirtd"
            ));
        }
        if !self.hosts_file_writable {
            out.push(format!(
                "{user} may not write {0}, where `up` keeps the nodes' names (<node>.<lab>) and `down` removes them; fix: as root, once: scripts/setup-host.sh, or `chgrp libvirt {0} && chmod g+w {0}` (the libvirt group already commands libvirtd: this gives it nothing new)",
                self.hosts_file
            ));
        }
        if !self.subordinate_ids {
            out.push(format!(
                "{user} has no range of subordinate ids in /etc/subuid and /etc/subgid, which building an image as {user} needs; fix: as root, once: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}` (Debian's adduser gives new users one)"
            ));
        }
        out
    }
}

#[derive(Debug, Serialize)]
pub struct DoctorReport {
    pub user: UserFacts,
    pub libvirt: Result<VersionInfo, String>,
    pub accel: AccelDecision,
    pub mem_available: Option<ByteSize>,
    pub tools: Vec<Tool>,
    /// Features tried on this host (empty when libvirt is not reachable).
    pub features: Vec<Feature>,
    pub state_dir: String,
    pub cache_dir: String,
    /// Things to fix, each with its fix. Empty when ready.
    pub problems: Vec<String>,
}

impl DoctorReport {
    pub fn ready(&self) -> bool {
        self.problems.is_empty()
    }
}

pub fn doctor(uri: &str, dirs: &Dirs, connect: &crate::ops::context::Connect) -> DoctorReport {
    let mut problems = Vec::new();
    let user = UserFacts::here();
    let conn = connect(uri);
    let version = match &conn {
        Ok(c) => c.version().map_err(|e| crate::error_chain(&e)),
        Err(e) => Err(crate::error_chain(e)),
    };
    let refused = version
        .as_ref()
        .is_err_and(|chain| crate::driver::refused_access(chain));
    let user_problems = user.problems(refused);
    let libvirt = match version {
        Ok(v) => Ok(v),
        // What the user lacks says it better, with the fix.
        Err(chain) if refused && !user_problems.is_empty() && user.uid != 0 => Err(chain),
        Err(chain) => {
            problems.push(if refused {
                format!(
                    "libvirt refused this user ({chain}); fix: run dcos-lab as root, or add the user to the `libvirt` group and log in again"
                )
            } else {
                format!(
                    "libvirt is not reachable ({chain}); fix: run scripts/setup-host.sh (installs libvirt and starts libvirtd)"
                )
            });
            Err(chain)
        }
    };
    problems.extend(user_problems);
    let accel = host::choose_accel(AccelChoice::Auto, &host::probe_accel());
    let mem_available = host::mem_available();
    let tools = host::probe_tools();
    for t in tools.iter().filter(|t| !t.found) {
        problems.push(format!(
            "{} is missing (needed for {}); fix: apt-get install {}",
            t.name, t.needed_for, t.package
        ));
    }
    let mut features = Vec::new();
    if let (Ok(hv), Ok(_)) = (&conn, &libvirt) {
        features.push(match hv.machine_type("q35") {
            Ok(Some(m)) => Feature {
                name: "machine type",
                ok: true,
                detail: format!("q35 is {m}"),
            },
            Ok(None) => Feature {
                name: "machine type",
                ok: false,
                detail: "QEMU offers no q35 machine; fix: install Debian's qemu-system-x86 (scripts/setup-host.sh)".into(),
            },
            Err(e) => Feature {
                name: "machine type",
                ok: false,
                detail: format!("cannot read the host's capabilities: {}", crate::error_chain(&e)),
            },
        });
        let tried = if tools.iter().any(|t| t.name == "qemu-img" && !t.found) {
            Err("not tried: qemu-img is missing".to_string())
        } else {
            probe_memory_snapshot(hv.as_ref(), dirs, accel.accel)
        };
        features.push(match tried {
            Ok(secs) => Feature {
                name: "snapshots with memory",
                ok: true,
                detail: format!(
                    "a probe domain shaped like a lab node was snapshotted with its memory and reverted ({secs:.1} s)"
                ),
            },
            Err(e) => Feature {
                name: "snapshots with memory",
                ok: false,
                detail: format!(
                    "{e}; `snapshot`, `revert` and golden labs need them; fix: see docs/portability.md for this libvirt/QEMU"
                ),
            },
        });
    }
    for f in features.iter().filter(|f| !f.ok) {
        problems.push(format!("{}: {}", f.name, f.detail));
    }
    DoctorReport {
        user,
        libvirt,
        accel,
        mem_available,
        tools,
        features,
        state_dir: dirs.state.display().to_string(),
        cache_dir: dirs.cache.display().to_string(),
        problems,
    }
}

pub fn describe(r: &DoctorReport) -> String {
    let mut out = String::new();
    let u = &r.user;
    if u.uid == 0 {
        out.push_str("user         root\n");
    } else {
        out.push_str(&format!(
            "user         {} (uid {}): libvirt group {}, subordinate ids {}, may write {} {}\n",
            u.name,
            u.uid,
            if u.in_libvirt_group { "yes" } else { "NO" },
            if u.subordinate_ids { "yes" } else { "NO" },
            u.hosts_file,
            if u.hosts_file_writable { "yes" } else { "NO" }
        ));
    }
    match &r.libvirt {
        Ok(v) => out.push_str(&format!(
            "libvirt      ok: {} (libvirt {}, {})\n",
            v.uri, v.libvirt, v.hypervisor
        )),
        Err(e) => out.push_str(&format!("libvirt      NOT REACHABLE: {e}\n")),
    }
    out.push_str(&format!(
        "accelerator  {}: {}\n",
        r.accel.accel, r.accel.reason
    ));
    match r.mem_available {
        Some(m) => out.push_str(&format!("memory       {} MiB available\n", m.as_mib())),
        None => out.push_str("memory       unknown (no /proc/meminfo)\n"),
    }
    for t in &r.tools {
        let state = if t.found { "ok" } else { "MISSING" };
        out.push_str(&format!(
            "tool         {:<20} {state} ({})\n",
            t.name, t.needed_for
        ));
    }
    for f in &r.features {
        let state = if f.ok { "ok" } else { "NO" };
        out.push_str(&format!(
            "feature      {:<22} {state}: {}\n",
            f.name, f.detail
        ));
    }
    out.push_str(&format!(
        "state dir    {}\ncache dir    {}\n",
        r.state_dir, r.cache_dir
    ));
    if r.ready() {
        out.push_str("ready\n");
    } else {
        for p in &r.problems {
            out.push_str(&format!("problem: {p}\n"));
        }
    }
    out
}

/// Removes the probe domain and its files when dropped: also when a step fails.
struct Probe<'a> {
    hv: &'a dyn Hypervisor,
    dir: std::path::PathBuf,
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.hv.remove_domain(PROBE_DOMAIN) {
            tracing::warn!("cannot remove the probe domain {PROBE_DOMAIN}: {e}");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// The probe domain: a lab node's devices (qcow2 root `vda`, read-only raw seed `vdb`, genid,
/// guest-agent channel, virtio RNG, the TCG translation cache under TCG) and no OS: SeaBIOS
/// finds nothing to boot and waits, which is all a snapshot needs.
fn probe_xml(dir: &Path, accel: Accel) -> String {
    let tcg = match accel {
        Accel::Tcg => "<tcg><tb-cache unit='MiB'>32</tb-cache></tcg>",
        Accel::Kvm => "",
    };
    format!(
        "<domain type='{}'><name>{PROBE_DOMAIN}</name><genid/>\
<metadata><dcoslab:lab xmlns:dcoslab='{}' name='{PROBE_LAB}' version='{}'/></metadata>\
<memory unit='MiB'>64</memory><vcpu>1</vcpu>\
<os><type arch='x86_64' machine='q35'>hvm</type></os><features><acpi/>{tcg}</features>\
<devices>\
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vda' bus='virtio'/></disk>\
<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/><target dev='vdb' bus='virtio'/><readonly/></disk>\
<console type='pty'><target type='serial' port='0'/></console>\
<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\
</devices></domain>",
        accel.domain_type(),
        crate::tag::METADATA_NS,
        crate::render::TOOL_VERSION,
        dir.join("root.qcow2").display(),
        dir.join("seed.img").display(),
    )
}

/// Starts, pauses, snapshots with memory and reverts a probe domain; the seconds it took.
fn probe_memory_snapshot(hv: &dyn Hypervisor, dirs: &Dirs, accel: Accel) -> Result<f64, String> {
    use std::os::unix::fs::PermissionsExt;
    let t = Instant::now();
    // Where a lab's disks go: a plain user's shared directory (made now if it is not yet).
    if let Some(shared) = &dirs.shared {
        crate::ops::lab::storage::ensure_shared_dir(hv, shared)
            .map_err(|e| format!("the probe has no directory QEMU reaches: {e:#}"))?;
    }
    let dir = dirs.qemu_root().join(PROBE_LAB);
    // What a killed doctor left goes first.
    let probe = Probe {
        hv,
        dir: dir.clone(),
    };
    drop(probe);
    let probe = Probe {
        hv,
        dir: dir.clone(),
    };
    let step = |what: &str, e: &dyn std::fmt::Display| format!("the probe could not {what}: {e}");
    // QEMU (another user) must reach the files: every directory on the way is traversable.
    for d in [&dirs.qemu_root(), &dir] {
        std::fs::create_dir_all(d).map_err(|e| step(&format!("create {}", d.display()), &e))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| step(&format!("open up {}", d.display()), &e))?;
    }
    let root = dir.join("root.qcow2");
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&root)
        .arg("16M")
        .output()
        .map_err(|e| step("run qemu-img", &e))?;
    if !out.status.success() {
        return Err(step(
            "create its disk",
            &String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    std::fs::write(dir.join("seed.img"), vec![0u8; 1 << 20])
        .map_err(|e| step("write its seed", &e))?;
    let err = |e: crate::driver::DriverError| crate::error_chain(&e);
    hv.define_domain(&probe_xml(&dir, accel)).map_err(err)?;
    hv.start_domain(PROBE_DOMAIN).map_err(err)?;
    hv.suspend_domain(PROBE_DOMAIN).map_err(err)?;
    hv.create_snapshot(PROBE_DOMAIN, "probe", "dcos-lab doctor's probe")
        .map_err(err)?;
    hv.revert_snapshot(PROBE_DOMAIN, "probe", true)
        .map_err(err)?;
    drop(probe);
    Ok(t.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {

    fn user(in_group: bool, ids: bool) -> UserFacts {
        UserFacts {
            name: "alice".into(),
            uid: 1000,
            in_libvirt_group: in_group,
            subordinate_ids: ids,
            hosts_file: "/etc/hosts".into(),
            hosts_file_writable: true,
        }
    }

    #[test]
    fn a_plain_user_is_told_what_it_lacks_with_the_fix() {
        assert!(user(true, true).problems(false).is_empty());
        let p = user(false, true).problems(true);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("`adduser alice libvirt`"), "{p:?}");
        let p = user(true, true).problems(true);
        assert!(
            p[0].contains("polkit") && p[0].contains("unix_sock_group"),
            "{p:?}"
        );
        let p = user(true, false).problems(false);
        assert!(p[0].contains("usermod --add-subuids"), "{p:?}");
        let p = UserFacts {
            hosts_file_writable: false,
            ..user(true, true)
        }
        .problems(false);
        assert!(p[0].contains("chmod g+w /etc/hosts"), "{p:?}");
        let root = UserFacts {
            uid: 0,
            ..user(false, false)
        };
        assert!(root.problems(true).is_empty(), "root needs none of it");
    }

    use super::*;
    use crate::driver::fake::FakeHypervisor;

    fn dirs() -> (tempfile::TempDir, Dirs) {
        let t = tempfile::tempdir().expect("dir");
        let dirs = Dirs {
            state: t.path().join("state"),
            cache: t.path().join("cache"),
            shared: None,
        };
        (t, dirs)
    }

    #[test]
    fn the_probe_snapshots_and_reverts_a_lab_shaped_domain_and_leaves_nothing() {
        let hv = FakeHypervisor::new();
        let (_t, dirs) = dirs();
        probe_memory_snapshot(hv.as_ref(), &dirs, Accel::Tcg).expect("probe");
        let changes = hv.changes();
        for what in ["start", "pause", "snapshot", "revert", "undefine"] {
            assert!(
                changes.iter().any(|c| c.contains(what)),
                "{what}: {changes:?}"
            );
        }
        assert!(hv.objects().is_empty(), "{:?}", hv.objects());
        assert!(!dirs.state.join(PROBE_LAB).exists());
    }

    #[test]
    fn a_refused_snapshot_is_named_and_the_probe_is_removed_all_the_same() {
        let hv = FakeHypervisor::new();
        let (_t, dirs) = dirs();
        hv.fail("snapshot domain", 1);
        let e = probe_memory_snapshot(hv.as_ref(), &dirs, Accel::Tcg).expect_err("refused");
        assert!(e.contains("snapshot"), "{e}");
        assert!(hv.objects().is_empty(), "{:?}", hv.objects());
        assert!(!dirs.state.join(PROBE_LAB).exists());
    }

    #[test]
    fn the_probe_cannot_be_a_lab_domain() {
        assert!(!crate::model::is_dns_safe(PROBE_LAB));
        assert!(PROBE_DOMAIN.starts_with("dcos-lab_"));
    }
}
