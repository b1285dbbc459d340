//! A developer's laptop: a plain user (made by `adduser`: home 0700, in the `libvirt` and `kvm`
//! groups, no sudo) runs a whole lab on `qemu:///system`, beside a lab of root's, and reaches its
//! nodes by name from the host. The system socket is opened to the group as a laptop's polkit
//! rule does (no polkit runs here), and restored after.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{PlainUser, SocketForGroup};
use dcos_lab::driver::Hypervisor;

/// The user's lab: the suite's `minimal`-like layout, on subnet 80.
const LAB: &str = "dltest-lap";

/// dcos-lab as `user`, from a copy of the binary in a directory the user may run it from.
struct AsUser<'a> {
    user: &'a PlainUser,
    bin: PathBuf,
    lab_file: PathBuf,
    made: std::time::Instant,
}

impl AsUser<'_> {
    fn try_run(&self, args: &[&str]) -> Output {
        let t = std::time::Instant::now();
        let mut c = self.user.command(&self.bin);
        c.args(args);
        let out = c.output().expect("runs");
        eprintln!(
            "[{} +{:.1}s] dcos-lab {} ({:.1} s, {})",
            self.user.name,
            self.made.elapsed().as_secs_f64(),
            args.join(" "),
            t.elapsed().as_secs_f64(),
            out.status
        );
        out
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.try_run(args);
        assert!(
            out.status.success(),
            "as {}: dcos-lab {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.user.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        serde_json::from_slice(&out.stdout).expect("json")
    }

    fn file(&self) -> &str {
        self.lab_file.to_str().expect("path")
    }

    fn sh(&self, node: &str, command: &str) -> String {
        let out = self.run(&["ssh", self.file(), node, "--", command]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Whatever the test did: the user's labs go (`down --all` as the user), then anything of the
/// user's lab libvirt or the hosts file still has (removed by metadata, as root).
impl Drop for AsUser<'_> {
    fn drop(&mut self) {
        let _ = self
            .user
            .command(&self.bin)
            .args(["down", "--all"])
            .output();
        if let Ok(hv) = dcos_lab::driver::Libvirt::open(Some("qemu:///system")) {
            for d in hv.owned_domains().unwrap_or_default() {
                if d.tag.lab == LAB {
                    let _ = hv.remove_domain(&d.name);
                }
            }
            for n in hv.owned_networks().unwrap_or_default() {
                if n.tag.lab == LAB {
                    let _ = hv.remove_network(&n.name);
                }
            }
            let _ = hv.remove_pool(&format!("dcos-lab-{LAB}"));
        }
        let hosts = Path::new(dcos_lab::host::hosts_file::HOSTS_FILE);
        let _ = dcos_lab::host::hosts_file::update(hosts, LAB, &[]);
    }
}

fn getent(name: &str) -> Option<String> {
    let out = Command::new("getent")
        .args(["hosts", name])
        .output()
        .expect("getent");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The image, built by the user (mmdebstrap's unshare mode on the user's subordinate ids) into
/// the cache in its home: the image is the user's, its files inside are root's (setuid bits and
/// groups kept), and nothing of the build is left in the temp directory.
fn build_image(u: &AsUser) {
    let built = u.json(&["image", "build", "debian-12", "--json"]);
    let dir = Path::new(built["dir"].as_str().expect("dir")).to_path_buf();
    assert!(dir.starts_with(u.user.home()), "{}", dir.display());
    for f in ["disk.qcow2", "vmlinuz", "initrd.img", "manifest.json"] {
        let md = std::fs::metadata(dir.join(f)).expect(f);
        assert_eq!(md.uid(), u.user.uid(), "{f} is the user's");
    }
    let raw = u.bin.with_file_name("disk.raw");
    let st = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(dir.join("disk.qcow2"))
        .arg(&raw)
        .status()
        .expect("qemu-img");
    assert!(st.success());
    let stat = |path: &str| {
        let out = Command::new("debugfs")
            .args(["-R", &format!("stat {path}")])
            .arg(&raw)
            .output()
            .expect("debugfs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shadow = stat("/etc/shadow");
    assert!(
        shadow.contains("User:     0   Group:    42"),
        "/etc/shadow: {shadow}"
    );
    let sudo = stat("/usr/bin/sudo");
    assert!(
        sudo.contains("Mode:  04755") && sudo.contains("User:     0"),
        "/usr/bin/sudo: {sudo}"
    );
    std::fs::remove_file(&raw).expect("rm raw");
    let scratch: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .expect("tmp")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dcos-lab-image-") && n.ends_with(&format!("-{}", u.user.uid())))
        .collect();
    assert!(scratch.is_empty(), "the build left {scratch:?}");
}

/// Where QEMU reads the user's lab: libvirt's live definitions, not our files.
fn check_storage(hv: &dcos_lab::driver::Libvirt, user: &PlainUser) {
    let shared = dcos_lab::paths::shared_root(user.uid());
    let pool = hv
        .pool(&format!("dcos-lab-{LAB}"))
        .expect("pool")
        .expect("the lab's pool");
    assert!(Path::new(&pool.path).starts_with(&shared), "{}", pool.path);
    let md = std::fs::metadata(&pool.path).expect("pool dir");
    assert_eq!(md.uid(), user.uid(), "the pool's directory is the user's");
    for node in ["boot", "master", "public"] {
        let xml = hv
            .domain_xml(&format!("dcos-lab-{LAB}-{node}"))
            .expect("domain");
        assert!(
            !xml.contains(&user.home().display().to_string()),
            "{node} reads nothing in the user's home: {xml}"
        );
        assert!(
            xml.contains(&format!("{}/images/", shared.display())),
            "{xml}"
        );
        assert!(xml.contains(&format!("owner=\"{}\"", user.uid())), "{xml}");
    }
    // The user's own files of the lab: 0700, the key 0600, in the home.
    let private = user.home().join(".local/state/dcos-lab/labs").join(LAB);
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&private), 0o700);
    assert_eq!(mode(&private.join("ssh/id_ed25519")), 0o600);
    assert_eq!(mode(&user.home()), 0o700, "the home is as adduser made it");
}

/// The acceptance of issue 30, as a user would run it: the image built as the user, `up` of a
/// `minimal`-like lab, `verify`, `ssh`, by name from the host (OpenSSH and curl), `snapshot`,
/// `revert`, `snapshot export`, `down`, `up --from`, `down --all` — no sudo — and nothing of
/// the lab left on the host; root's lab beside it untouched.
#[test]
#[ignore = "system tier: libvirtd, root, real guests, the Debian mirror (scripts/test.sh runs it)"]
fn a_plain_user_runs_a_whole_lab_without_root() {
    let _vm = common::vm_lock();
    let _socket = SocketForGroup::open();
    let hv = common::system_libvirt();
    let user = PlainUser::new("lap", &["libvirt", "kvm"]);
    assert_eq!(
        std::fs::metadata(user.home()).expect("home").mode() & 0o777,
        0o700,
        "Debian's adduser makes 0700 homes"
    );
    let bin_dir = tempfile::Builder::new()
        .prefix("dltest-bin-")
        .tempdir()
        .expect("dir");
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let bin = bin_dir.path().join("dcos-lab");
    std::fs::copy(assert_cmd::cargo::cargo_bin("dcos-lab"), &bin).expect("copy");
    let lab_file = user.home().join("lab.yaml");
    user.write(
        &lab_file,
        &format!(
            "name: {LAB}\naccel: tcg\nnetworks:\n  private:\n    cidr: 172.29.80.0/24\n  public:\n    mode: isolated\n    cidr: 172.28.80.0/24\n    ipv6: \"fd00:dc05:50::/64\"\nnodes:\n{}",
            common::GOLD_NODES
        ),
    );
    let u = AsUser {
        user: &user,
        bin,
        lab_file,
        made: std::time::Instant::now(),
    };

    // Root's lab, beside the user's: the suite's shared lab (from the run's golden when an
    // earlier test made it).
    let root_lab = common::gold_lab();
    root_lab.up_fresh();

    let doctor = u.json(&["doctor", "--json"]);
    assert_eq!(doctor["problems"], serde_json::json!([]), "{doctor:#}");

    build_image(&u);

    let up = u.json(&["up", u.file(), "--no-install", "--json"]);
    assert!(up.get("warnings").is_none(), "{up:#}");
    check_storage(&hv, &user);
    let v = u.json(&["verify", u.file(), "--json"]);
    let failed = common::failed_checks(&v);
    assert!(failed.is_empty(), "verify as the user: {failed:#?}");
    assert_eq!(u.sh("master", "hostname").trim(), "master");

    // By name, from the host and inside the lab.
    let master = getent(&format!("master.{LAB}")).expect("master by name from the host");
    assert!(master.starts_with("172.29.80.11"), "{master}");
    assert!(
        u.sh("public", &format!("getent hosts boot.{LAB}"))
            .starts_with("172.29.80.10"),
        "inside the lab too"
    );
    let config = u.run(&["ssh-config", u.file()]);
    let config_file = user.home().join("ssh-config");
    user.write(&config_file, &String::from_utf8_lossy(&config.stdout));
    let out = user
        .command(Path::new("/usr/bin/ssh"))
        .args(["-F"])
        .arg(&config_file)
        .args([&format!("master.{LAB}"), "hostname"])
        .output()
        .expect("ssh");
    assert!(
        out.status.success(),
        "OpenSSH by name: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "master");
    u.sh(
        "master",
        "echo dltest-by-name > /tmp/dltest-page; cd /tmp; setsid nohup python3 -m http.server 8765 </dev/null >/dev/null 2>&1 & sleep 2",
    );
    let out = user
        .command(Path::new("/usr/bin/curl"))
        .args(["-sS", "-m", "10"])
        .arg(format!("http://master.{LAB}:8765/dltest-page"))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "dltest-by-name",
        "curl by name: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Snapshots: taken, listed with their memory (read through libvirt: the disks are QEMU's),
    // reverted, exported, restored.
    u.run(&["snapshot", u.file(), "s1"]);
    let snaps = u.json(&["snapshots", u.file(), "--json"]);
    assert!(
        snaps[0]["vm_state_bytes"].as_u64().unwrap_or(0) > 0,
        "{snaps:#}"
    );
    u.run(&["revert", u.file(), "s1"]);
    let golden = user.home().join("lab.golden");
    u.run(&[
        "snapshot",
        "export",
        u.file(),
        "s1",
        golden.to_str().expect("path"),
    ]);
    u.run(&["down", u.file()]);
    assert!(
        getent(&format!("master.{LAB}")).is_none(),
        "names go with the lab"
    );
    let restored = u.json(&[
        "up",
        u.file(),
        "--from",
        golden.to_str().expect("path"),
        "--json",
    ]);
    assert!(restored.get("warnings").is_none(), "{restored:#}");
    check_storage(&hv, &user);
    assert_eq!(u.sh("boot", "hostname").trim(), "boot");
    assert!(getent(&format!("boot.{LAB}")).is_some());

    // `down --all` of the user: the user's lab, not root's.
    u.run(&["down", "--all"]);
    let status = root_lab.json(&["status", &root_lab.file_arg(), "--json"]);
    for n in status["nodes"].as_array().expect("nodes") {
        assert_eq!(n["state"], "active", "{status:#}");
    }
    assert!(getent(&format!("master.{LAB}")).is_none());
    assert!(
        getent(&format!("boot.{}", root_lab.name)).is_some(),
        "root's names stay"
    );
    for d in hv.owned_domains().expect("domains") {
        assert_ne!(d.tag.lab, LAB, "domain {} left", d.name);
    }
    for n in hv.owned_networks().expect("networks") {
        assert_ne!(n.tag.lab, LAB, "network {} left", n.name);
    }
    assert!(hv.pool(&format!("dcos-lab-{LAB}")).expect("pool").is_none());
    let shared = dcos_lab::paths::shared_root(user.uid());
    assert!(!shared.join("labs").join(LAB).exists());
    assert!(
        !user
            .home()
            .join(".local/state/dcos-lab/labs")
            .join(LAB)
            .exists()
    );
    let hosts = std::fs::read_to_string("/etc/hosts").expect("hosts");
    assert!(!hosts.contains(LAB), "{hosts}");

    // The user's image copy goes with `image rm`.
    u.run(&["image", "rm", "debian-12"]);
    let left: Vec<_> = std::fs::read_dir(shared.join("images"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
