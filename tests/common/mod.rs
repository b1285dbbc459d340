//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Set to rewrite golden files and expected errors from the current output, on purpose.
pub const BLESS_ENV: &str = "DCOS_LAB_BLESS";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compares `actual` with the file at `path`, or rewrites the file when DCOS_LAB_BLESS is set.
pub fn assert_golden(path: &Path, actual: &str) {
    if std::env::var_os(BLESS_ENV).is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create golden dir");
        }
        std::fs::write(path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read golden file {}: {e}; run with {BLESS_ENV}=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the rendered output (run with {BLESS_ENV}=1 to accept the new output):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

use dcos_lab::driver::{Hypervisor, Libvirt};

/// Every libvirt object a test makes starts with this, so a leftover is plainly a test's.
pub const TEST_PREFIX: &str = "dltest";

/// Removes the libvirt objects it was told about when dropped, even when the test panicked.
pub struct Cleanup<'a> {
    pub hv: &'a dyn Hypervisor,
    pub domains: Vec<String>,
    pub networks: Vec<String>,
    pub pools: Vec<String>,
}

impl<'a> Cleanup<'a> {
    pub fn new(hv: &'a dyn Hypervisor) -> Self {
        Cleanup {
            hv,
            domains: Vec::new(),
            networks: Vec::new(),
            pools: Vec::new(),
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for d in &self.domains {
            if let Err(e) = self.hv.remove_domain(d) {
                eprintln!("cleanup: domain {d}: {e}");
            }
        }
        for n in &self.networks {
            if let Err(e) = self.hv.remove_network(n) {
                eprintln!("cleanup: network {n}: {e}");
            }
        }
        for p in &self.pools {
            if let Err(e) = self.hv.remove_pool(p) {
                eprintln!("cleanup: pool {p}: {e}");
            }
        }
    }
}

/// The system libvirt. The test command (scripts/test.sh) installs and starts it, so a missing
/// daemon is a failure, not a skip; DCOS_LAB_SKIP_SYSTEM=1 skips on purpose (with a message).
pub fn system_libvirt() -> Option<Libvirt> {
    if std::env::var_os("DCOS_LAB_SKIP_SYSTEM").is_some() {
        eprintln!("skipped: DCOS_LAB_SKIP_SYSTEM is set");
        return None;
    }
    match Libvirt::open(Some("qemu:///system")) {
        Ok(c) => Some(c),
        Err(e) => panic!(
            "qemu:///system is not reachable ({}); run scripts/setup-host.sh or set DCOS_LAB_SKIP_SYSTEM=1",
            dcos_lab::error_chain(&e)
        ),
    }
}
