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
        "{} differs from the rendered output (run with {BLESS_ENV}=1 to accept the new output):\n--- {}\n+++ rendered\n{}",
        path.display(),
        path.display(),
        line_diff(&expected, actual)
    );
}

/// The lines that differ, `-` for the expected and `+` for the actual, with one line of
/// context around each change (a longest-common-subsequence diff; golden files are small).
pub fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let near = |k: usize| {
        ops[k.saturating_sub(1)..(k + 2).min(ops.len())]
            .iter()
            .any(|(c, _)| *c != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (c, line)) in ops.iter().enumerate() {
        if near(k) {
            if skipped {
                out.push_str("@@\n");
                skipped = false;
            }
            out.push_str(&format!("{c}{line}\n"));
        } else {
            skipped = true;
        }
    }
    out
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

/// The environment that makes the binary stop itself after a step (src/fault.rs), for a test
/// built as scripts/test.sh builds them: with the `test-hooks` feature, which a build without
/// it lacks (the test fails saying so: it would otherwise wait for a kill that never comes).
pub fn fault_env(spec: &str) -> (&'static str, String) {
    if !dcos_lab::fault::built_in() {
        panic!(
            "this test drives the fault-injection hooks: build it with `--features test-hooks` (scripts/test.sh does)"
        );
    }
    (dcos_lab::fault::ENV, spec.to_string())
}

/// The system libvirt. The system tier is opt-in (`#[ignore]`; scripts/test.sh runs it after
/// the fast tier) and the test command installs and starts libvirtd, so a missing daemon fails
/// the test: there is no skip.
pub fn system_libvirt() -> Libvirt {
    match Libvirt::open(Some("qemu:///system")) {
        Ok(c) => c,
        Err(e) => panic!(
            "qemu:///system is not reachable ({}); run scripts/setup-host.sh (scripts/test.sh does)",
            dcos_lab::error_chain(&e)
        ),
    }
}

/// The PID in libvirtd's pid file, when that process is a libvirtd.
fn libvirtd_pid() -> Option<i32> {
    let pid: i32 = std::fs::read_to_string("/run/libvirtd.pid")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "libvirtd").then_some(pid)
}

/// Restarts libvirtd by hand (nothing supervises it here): stops the daemon by the PID its pid
/// file names (the one setup-host.sh or an earlier restart started), waits until that process
/// is gone, starts a new one (`libvirtd -d`, or what DCOS_LAB_TEST_LIBVIRTD_START says) and
/// waits until it answers.
pub fn restart_libvirtd() {
    restart_libvirtd_with(None)
}

/// `restart_libvirtd`, the new daemon reading `config` (`--config`; passed to a matrix tree's
/// daemon as DCOS_LAB_TEST_LIBVIRTD_ARGS) instead of the default configuration.
pub fn restart_libvirtd_with(config: Option<&Path>) {
    let args: Vec<String> = config
        .map(|c| vec!["--config".to_string(), c.display().to_string()])
        .unwrap_or_default();
    let pid = libvirtd_pid()
        .expect("libvirtd runs with /run/libvirtd.pid (scripts/setup-host.sh starts it)");
    // SAFETY: kill() has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill {pid}");
    // Gone: no such process, or a zombie (PID 1 on some hosts reaps late).
    let gone = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')),
    };
    let t = std::time::Instant::now();
    while !gone() && t.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone(), "libvirtd {pid} did not stop");
    // scripts/matrix.sh runs another stack's libvirtd in place of the host's, and says how to
    // start it again.
    let st = match std::env::var("DCOS_LAB_TEST_LIBVIRTD_START") {
        Ok(start) => std::process::Command::new("sh")
            .args(["-c", &start])
            .env("DCOS_LAB_TEST_LIBVIRTD_ARGS", args.join(" "))
            .status()
            .expect("sh"),
        Err(_) => std::process::Command::new("libvirtd")
            .arg("-d")
            .args(&args)
            .status()
            .expect("libvirtd"),
    };
    assert!(st.success());
    let t = std::time::Instant::now();
    while Libvirt::open(Some("qemu:///system")).is_err()
        && t.elapsed() < std::time::Duration::from_secs(30)
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let new = libvirtd_pid().expect("the new libvirtd wrote its pid file");
    assert_ne!(new, pid, "a new libvirtd runs");
}

/// The host's clock, `node`'s clock (over SSH), the host's clock again, in Unix seconds.
pub fn guest_time(lab: &TestLab, node: &str) -> (f64, f64, f64) {
    let now = || dcos_lab::unix_time().as_secs_f64();
    let before = now();
    let guest: f64 = lab.sh(node, "date -u +%s.%N").trim().parse().expect("date");
    (before, guest, now())
}

/// A Python virtualenv made for one test, with packages from PyPI; removed on drop. The system
/// tier's real clients (Ansible, a JUnit parser) live here, pinned, never the host's own.
pub struct Venv {
    pub dir: tempfile::TempDir,
}

impl Venv {
    pub fn new(packages: &[&str]) -> Venv {
        let dir = tempfile::Builder::new()
            .prefix("dltest-venv-")
            .tempdir()
            .expect("venv dir");
        let run = |c: &mut std::process::Command| {
            let out = c.output().expect("runs");
            assert!(
                out.status.success(),
                "{c:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(dir.path()));
        run(std::process::Command::new(dir.path().join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages));
        Venv { dir }
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.path().join("bin").join(name)
    }

    /// Makes the virtualenv on a thread of its own (it waits on PyPI, not on the guests), for
    /// `VenvLater::get` when the test needs it. Dropped unfetched (a test failing before), it
    /// waits for the thread, so the directory still goes with the test.
    pub fn spawn(packages: &[&str]) -> VenvLater {
        let packages: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
        VenvLater(Some(std::thread::spawn(move || {
            let p: Vec<&str> = packages.iter().map(String::as_str).collect();
            Venv::new(&p)
        })))
    }
}

/// A virtualenv being made (`Venv::spawn`).
pub struct VenvLater(Option<std::thread::JoinHandle<Venv>>);

impl VenvLater {
    pub fn get(mut self) -> Venv {
        match self.0.take().map(std::thread::JoinHandle::join) {
            Some(Ok(v)) => v,
            Some(Err(e)) => std::panic::resume_unwind(e),
            None => unreachable!("taken once"),
        }
    }
}

impl Drop for VenvLater {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// Whether another process holds the (flock) lock on `path`: a non-blocking try fails.
pub fn is_locked(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        // SAFETY: as above; releases the lock just taken.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        return false;
    }
    true
}

/// Serialises the tests that boot guests: one lab at a time on small hosts.
pub static VM_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn vm_lock() -> std::sync::MutexGuard<'static, ()> {
    VM_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The VM lock, then a connection to the system libvirt, in that order: a test holding the lock
/// may restart libvirtd, which breaks every connection opened before it (CI saw a test that
/// connected first fail with "Broken pipe" once it got the lock).
pub fn vm_lock_and_libvirt() -> (std::sync::MutexGuard<'static, ()>, Libvirt) {
    let lock = vm_lock();
    (lock, system_libvirt())
}

/// Where a run keeps its golden labs: scripts/test.sh makes the directory for the system tier
/// and removes it when the run ends. Unset (a test run by hand), each test boots its own.
pub const GOLDENS_ENV: &str = "DCOS_LAB_TEST_GOLDENS";

/// The suite's shared lab, for tests that need a freshly booted lab but do not test booting:
/// the `minimal` layout (the public agent's /tmp what a stock tmpfs /tmp gives a 1 GiB node,
/// half its RAM; the master's the hardened 1 GiB) with the fixture installer named, so that
/// every test using it has the same lab file and so the same golden.
pub const GOLD_NODES: &str = "  - name: boot\n    role: boot\n    memory: 512M\n  - name: master\n    role: master\n    memory: 1G\n  - name: public\n    role: agent-public\n    memory: 1G\n    hardening:\n      tmp_size: 512M\n";

/// The shared lab (not up yet): `dltest-gold` on 172.29.69.0/24, installer
/// `dcos_generate_config.sh` beside the lab file, bootstrap on port 8080.
pub fn gold_lab() -> TestLab {
    let lab = TestLab::new("gold", 69, GOLD_NODES);
    let mut text = std::fs::read_to_string(&lab.file).expect("lab file");
    text.push_str("dcos:\n  installer: dcos_generate_config.sh\n  bootstrap_port: 8080\n");
    std::fs::write(&lab.file, text).expect("lab file");
    lab
}

/// A lab made for one test: its own state directory and lab file, the shared image cache.
/// Dropping it runs `dcos-lab down` and removes anything of the lab libvirt still has.
pub struct TestLab {
    pub name: String,
    pub state: tempfile::TempDir,
    pub file: PathBuf,
    /// When the test made the lab: `step` prints the time since, so a failed (or slow) test's
    /// output says how far it got and what took how long.
    pub made: std::time::Instant,
}

impl TestLab {
    /// `nodes_yaml` is the `nodes:` list; the public network is isolated (nothing forwards off
    /// the host) and both networks get explicit ranges from `subnet` (10.<subnet>.0/24 pairs).
    pub fn new(suffix: &str, subnet: u8, nodes_yaml: &str) -> TestLab {
        let name = format!("{TEST_PREFIX}-{suffix}");
        let state = tempfile::Builder::new()
            .prefix("dltest-state-")
            .tempdir()
            .expect("state dir");
        // QEMU (libvirt-qemu) must traverse into the state directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod");
        let file = state.path().join(format!("{name}.yaml"));
        let text = format!(
            "name: {name}\naccel: tcg\nnetworks:\n  private:\n    cidr: 172.29.{subnet}.0/24\n  public:\n    mode: isolated\n    cidr: 172.28.{subnet}.0/24\n    ipv6: \"fd00:dc05:{subnet:x}::/64\"\nnodes:\n{nodes_yaml}"
        );
        std::fs::write(&file, text).expect("lab file");
        TestLab {
            name,
            state,
            file,
            made: std::time::Instant::now(),
        }
    }

    /// Notes a step of the test on stderr with the seconds since the lab was made (shown
    /// for a failed test, or with `--nocapture`).
    pub fn step(&self, what: &str) {
        eprintln!(
            "[{} +{:.1}s] {what}",
            self.name,
            self.made.elapsed().as_secs_f64()
        );
    }

    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("dcos-lab").expect("binary");
        c.env("DCOS_LAB_STATE_DIR", self.state.path())
            .env("DCOS_LAB_WAIT", "600")
            .env_remove("DCOS_LAB_CACHE_DIR");
        c
    }

    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("dcos-lab"));
        c.env("DCOS_LAB_STATE_DIR", self.state.path())
            .env("DCOS_LAB_WAIT", "600")
            .env_remove("DCOS_LAB_CACHE_DIR");
        c
    }

    pub fn file_arg(&self) -> String {
        self.file.display().to_string()
    }

    /// Runs a dcos-lab subcommand on this lab; panics with its output unless it exits 0.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let t = std::time::Instant::now();
        let out = self.cmd().args(args).output().expect("runs");
        let shown: Vec<String> = args.iter().map(|a| a.chars().take(60).collect()).collect();
        self.step(&format!(
            "dcos-lab {} ({:.1} s)",
            shown.join(" "),
            t.elapsed().as_secs_f64()
        ));
        assert!(
            out.status.success(),
            "dcos-lab {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "dcos-lab {args:?}: not JSON ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Brings the lab up as freshly booted, without its install, at snapshot `fresh`: from the
    /// run's golden of this lab file when an earlier test made one (`up --from`), else cold
    /// (`up --no-install`, `snapshot`) and, in a run with a golden directory, exported as that
    /// golden for the next test. Either way the lab runs, just booted, with one snapshot.
    pub fn up_fresh(&self) {
        use sha2::Digest;
        let f = self.file_arg();
        let text = std::fs::read(&self.file).expect("lab file");
        let key = format!("{:x}", sha2::Sha256::digest(&text));
        let golden = std::env::var_os(GOLDENS_ENV)
            .map(|d| PathBuf::from(d).join(format!("{}-{}.golden", self.name, &key[..16])));
        if let Some(g) = golden.as_ref().filter(|g| g.exists()) {
            self.step("from the run's golden");
            self.run(&["up", &f, "--from", g.to_str().expect("path")]);
            return;
        }
        self.run(&["up", &f, "--no-install"]);
        self.run(&["snapshot", &f, "fresh"]);
        if let Some(g) = golden {
            let part = g.with_extension("part");
            let _ = std::fs::remove_file(&part);
            self.run(&[
                "snapshot",
                "export",
                &f,
                "fresh",
                part.to_str().expect("path"),
            ]);
            std::fs::rename(&part, &g).expect("golden in place");
            self.step("made the run's golden");
        }
    }

    /// `verify --json` passes every check; `context` says when, in the failure.
    pub fn assert_verify_passes(&self, context: &str) -> serde_json::Value {
        let v = self.json(&["verify", &self.file_arg(), "--json"]);
        let failed = failed_checks(&v);
        assert!(failed.is_empty(), "verify failed {context}: {failed:#?}");
        v
    }

    /// Runs `command` on `node` over SSH through dcos-lab and returns its stdout.
    pub fn sh(&self, node: &str, command: &str) -> String {
        let out = self.run(&["ssh", &self.file_arg(), node, "--", command]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs each of `commands` on `node` in one SSH login and returns each one's stdout: one
    /// login costs a guest under emulation most of a second, the commands themselves little.
    /// Each runs in its own `{ }` group, after the one before it, whatever that one's status.
    pub fn sh_parts(&self, node: &str, commands: &[&str]) -> Vec<String> {
        const SEP: &str = "@@dltest-part@@";
        let joined = commands
            .iter()
            .map(|c| format!("{{ {c}\n}}"))
            .collect::<Vec<_>>()
            .join(&format!("; echo; echo {SEP}; "));
        let out = self.sh(node, &joined);
        let parts: Vec<String> = out
            .split(&format!("\n{SEP}\n"))
            .map(str::to_string)
            .collect();
        assert_eq!(
            parts.len(),
            commands.len(),
            "{node}: {commands:?} gave {out:?}"
        );
        parts
    }

    /// `sh_parts` on several nodes at once (each node is its own guest, so they do not wait on
    /// each other), in the order given.
    pub fn sh_each(&self, work: &[(&str, &[&str])]) -> Vec<Vec<String>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = work
                .iter()
                .map(|(node, commands)| s.spawn(move || self.sh_parts(node, commands)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    }

    /// What libvirt still has of this lab: domains, networks, pool.
    pub fn leftovers(&self) -> Vec<String> {
        let hv = Libvirt::open(Some("qemu:///system")).expect("libvirt");
        let mut left = Vec::new();
        for d in hv.owned_domains().expect("domains") {
            if d.tag.lab == self.name {
                left.push(format!("domain {}", d.name));
            }
        }
        for n in hv.owned_networks().expect("networks") {
            if n.tag.lab == self.name {
                left.push(format!("network {}", n.name));
            }
        }
        if hv
            .pool(&format!("dcos-lab-{}", self.name))
            .expect("pool")
            .is_some()
        {
            left.push("storage pool".into());
        }
        let lab_dir = self.state.path().join("labs").join(&self.name);
        if lab_dir.exists() {
            left.push(format!("directory {}", lab_dir.display()));
        }
        left
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let _ = self.cmd().args(["down", &self.name]).output();
        // Whatever `down` missed (it is under test too): remove by metadata.
        if let Ok(hv) = Libvirt::open(Some("qemu:///system")) {
            for d in hv.owned_domains().unwrap_or_default() {
                if d.tag.lab == self.name {
                    let _ = hv.remove_domain(&d.name);
                }
            }
            for n in hv.owned_networks().unwrap_or_default() {
                if n.tag.lab == self.name {
                    let _ = hv.remove_network(&n.name);
                }
            }
            let _ = hv.remove_pool(&format!("dcos-lab-{}", self.name));
        }
    }
}

/// A user made for one test by `adduser` (home 0700, a subordinate id range), in `groups`;
/// removed with its home and its subordinate ids when dropped, whatever the test did, with the
/// shared directory libvirtd made for it (`/var/lib/libvirt/dcos-lab/user-<uid>`, its pool).
pub struct PlainUser {
    pub name: String,
}

impl PlainUser {
    pub fn new(tag: &str, groups: &[&str]) -> PlainUser {
        let name = format!("{TEST_PREFIX}-{tag}-{}", std::process::id() % 100_000);
        let st = std::process::Command::new("adduser")
            .args(["--disabled-password", "--gecos", "", "--quiet", &name])
            .status()
            .expect("adduser runs (the system tier runs as root)");
        assert!(st.success(), "adduser {name}");
        let user = PlainUser { name };
        for g in groups {
            let st = std::process::Command::new("adduser")
                .args(["--quiet", &user.name, g])
                .status()
                .expect("adduser");
            assert!(st.success(), "adduser {} {g}", user.name);
        }
        user
    }

    pub fn home(&self) -> PathBuf {
        Path::new("/home").join(&self.name)
    }

    pub fn uid(&self) -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(self.home()).expect("home").uid()
    }

    /// `program` run as this user, with a login's environment (HOME, no root's variables).
    pub fn command(&self, program: &Path) -> std::process::Command {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", &self.name, "--"])
            .arg("env")
            .arg("-i")
            .arg(format!("HOME={}", self.home().display()))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(program);
        c
    }

    /// Writes `text` to `path` (in the user's home) as the user's file.
    pub fn write(&self, path: &Path, text: &str) {
        std::fs::write(path, text).expect("write");
        let uid = self.uid();
        std::os::unix::fs::chown(path, Some(uid), Some(uid)).expect("chown");
    }
}

impl Drop for PlainUser {
    fn drop(&mut self) {
        let uid = std::fs::metadata(self.home())
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .ok();
        let _ = std::process::Command::new("pkill")
            .args(["-9", "-u", &self.name])
            .status();
        if let Some(uid) = uid {
            if let Ok(hv) = Libvirt::open(Some("qemu:///system")) {
                let _ = hv.remove_pool(&dcos_lab::paths::shared_pool_name(uid));
            }
            let _ = std::fs::remove_dir_all(dcos_lab::paths::shared_root(uid));
        }
        let _ = std::process::Command::new("deluser")
            .args(["--quiet", "--remove-home", &self.name])
            .status();
    }
}

/// The system socket opened to the `libvirt` group, as a laptop's polkit rule does, where no
/// polkit runs: libvirtd restarted (by the PID in its pid file) with a configuration that
/// gives the group the read-write socket without authentication; restarted as before on drop.
pub struct SocketForGroup {
    conf: PathBuf,
}

impl SocketForGroup {
    pub fn open() -> SocketForGroup {
        let conf = std::env::temp_dir().join(format!(
            "{TEST_PREFIX}-libvirtd-{}.conf",
            std::process::id()
        ));
        std::fs::write(
            &conf,
            "unix_sock_group = \"libvirt\"\nunix_sock_rw_perms = \"0770\"\nunix_sock_ro_perms = \"0777\"\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\n",
        )
        .expect("libvirtd.conf");
        restart_libvirtd_with(Some(&conf));
        SocketForGroup { conf }
    }
}

impl Drop for SocketForGroup {
    fn drop(&mut self) {
        restart_libvirtd_with(None);
        let _ = std::fs::remove_file(&self.conf);
    }
}

/// The checks of a `verify --json` report that did not pass.
pub fn failed_checks(v: &serde_json::Value) -> Vec<&serde_json::Value> {
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["passed"] != true)
        .collect()
}
