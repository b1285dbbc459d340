//! `doctor`: is this host ready for labs, and if not, what to do [reads the host and libvirt].

use serde::Serialize;

use crate::driver::{Hypervisor, Libvirt, VersionInfo};
use crate::host::{self, AccelDecision, Tool};
use crate::model::{AccelChoice, ByteSize};
use crate::paths::Dirs;

#[derive(Debug, Serialize)]
pub struct DoctorReport {
    pub libvirt: Result<VersionInfo, String>,
    pub accel: AccelDecision,
    pub mem_available: Option<ByteSize>,
    pub tools: Vec<Tool>,
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

pub fn doctor(uri: Option<&str>, dirs: &Dirs) -> DoctorReport {
    let mut problems = Vec::new();
    let libvirt = match Libvirt::open(uri).and_then(|c| c.version()) {
        Ok(v) => Ok(v),
        Err(e) => {
            let chain = crate::error_chain(&e);
            problems.push(if crate::driver::refused_access(&chain) {
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
    let accel = host::choose_accel(AccelChoice::Auto, &host::probe_accel());
    let mem_available = host::mem_available();
    let tools = host::probe_tools();
    for t in tools.iter().filter(|t| !t.found) {
        problems.push(format!(
            "{} is missing (needed for {}); fix: apt-get install {}",
            t.name, t.needed_for, t.package
        ));
    }
    DoctorReport {
        libvirt,
        accel,
        mem_available,
        tools,
        state_dir: dirs.state.display().to_string(),
        cache_dir: dirs.cache.display().to_string(),
        problems,
    }
}

pub fn describe(r: &DoctorReport) -> String {
    let mut out = String::new();
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
