//! System tests on the real qemu:///system with real guests (TCG here): the shared lab's
//! read-only checks and real clients, convergence after a kill, two labs side by side,
//! snapshots and golden labs, an unreachable guest. One lab at a time (`common::vm_lock`).

mod common;

use std::time::{Duration, Instant};

use common::TestLab;

const TWO_NODES: &str = "  - name: boot\n    role: boot\n    memory: 512M\n  - name: master\n    role: master\n    memory: 768M\n";

/// The suite's shared lab (from the run's golden; booting is tested by the tests that boot their
/// own labs, and the golden's first boot is a cold `up`) serves every read-only check of a
/// freshly made lab: `status` against the plan, `verify` and its JUnit file, SSH and hostnames,
/// names between nodes, IPv6 to the host, the private network contained, host keys, passwords,
/// `exec`, key modes, OpenSSH through `ssh-config`; then what changes it in turn: a second `up`
/// changes nothing, a changed lab file is refused; a node that lost its hardening fails `verify` on exactly those checks while the
/// hardened nodes beside it pass all of theirs; Ansible reaches every node through `inventory`,
/// a JUnit parser reads `verify --junit` as those checks; `down` without the lab file leaves
/// nothing. (What an unhardened profile renders is in tests/golden.rs; the bootstrap download,
/// failing into a stock /tmp and fitting a hardened one, is in tests/install.rs.)
#[test]
#[ignore = "system tier: libvirtd, root, real guests (scripts/test.sh runs it)"]
fn the_shared_lab_reads_right_to_every_client_and_verify_names_what_an_unhardened_node_lacks() {
    let _vm = common::vm_lock();
    let lab = common::gold_lab();
    let f = lab.file_arg();
    // The clients' virtualenv (Ansible, junitparser from PyPI) is made while the lab comes up.
    let venv = common::Venv::spawn(&["ansible-core==2.17.14", "junitparser==5.0.3"]);
    lab.up_fresh();

    // status --json lists exactly the lab file's nodes, with the planned addresses.
    let status = lab.json(&["status", &f, "--json"]);
    let plan = lab.json(&["plan", &f, "--json", "--offline"]);
    let mut seen: Vec<(String, Vec<String>)> = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            assert_eq!(n["state"], "active", "{n}");
            let ips = n["nics"]
                .as_array()
                .expect("nics")
                .iter()
                .map(|x| x["ipv4"].as_str().expect("ip").to_string())
                .collect();
            (n["name"].as_str().expect("name").to_string(), ips)
        })
        .collect();
    let mut planned: Vec<(String, Vec<String>)> = plan["addresses"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            let ips = n["nics"]
                .as_array()
                .expect("nics")
                .iter()
                .map(|x| x["ipv4"].as_str().expect("ip").to_string())
                .collect();
            (n["node"].as_str().expect("node").to_string(), ips)
        })
        .collect();
    seen.sort();
    planned.sort();
    assert_eq!(seen, planned);

    // verify passes on a freshly up-ed lab, and writes JUnit XML.
    let junit = lab.state.path().join("verify.xml");
    let v = lab.json(&[
        "verify",
        &f,
        "--json",
        "--junit",
        junit.to_str().expect("path"),
    ]);
    let failed = common::failed_checks(&v);
    assert!(failed.is_empty(), "verify failed: {failed:#?}");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(
        xml.contains("failures=\"0\"") && xml.contains("name=\"swap\""),
        "{xml}"
    );

    // What each node shows, one login per node, the three at once: its hostname; every node
    // reached by name; its SSH host key and machine-id; on the boot node, the accounts with a
    // password; on the master (private network only), its default routes and whether a packet
    // gets beyond the lab; on the public agent, the host by IPv6 over the public network.
    let names = ["boot", "master", "public"];
    let pings = names
        .iter()
        .map(|o| format!("ping -c1 -W3 {o} >/dev/null && echo {o}"))
        .collect::<Vec<_>>()
        .join("; ");
    let gw6 = plan["addresses"]["networks"][1]["gateway6"]
        .as_str()
        .expect("public IPv6 gateway");
    let ping6 = format!("ping -6 -c1 -W3 {gw6} >/dev/null && echo reached");
    let every = [
        "hostname",
        pings.as_str(),
        "cat /etc/ssh/ssh_host_ed25519_key.pub",
        "cat /etc/machine-id",
    ];
    let boot_cmds: Vec<&str> = every
        .into_iter()
        .chain(["awk -F: '$2 !~ /^[*!]/ {print $1}' /etc/shadow"])
        .collect();
    let master_cmds: Vec<&str> = every
        .into_iter()
        .chain([
            "ip -4 route show default; ip -6 route show default",
            "ping -c1 -W2 192.0.2.1 >/dev/null 2>&1 && echo escaped || echo contained",
        ])
        .collect();
    let public_cmds: Vec<&str> = every.into_iter().chain([ping6.as_str()]).collect();
    let facts = lab.sh_each(&[
        ("boot", &boot_cmds),
        ("master", &master_cmds),
        ("public", &public_cmds),
    ]);
    for (n, f) in names.iter().zip(&facts) {
        // Every node answers over SSH with its own hostname; nodes reach each other by name.
        assert_eq!(f[0].trim(), *n);
        assert_eq!(
            f[1].split_whitespace().collect::<Vec<_>>(),
            names,
            "{n} reaches every node by name"
        );
        // Image properties (issue: base images): host keys and machine-ids differ between
        // guests of one image.
        assert!(f[2].starts_with("ssh-ed25519 "), "{n}: {}", f[2]);
    }
    let (boot, master, public) = (&facts[0], &facts[1], &facts[2]);
    assert_ne!(
        boot[2], master[2],
        "SSH host keys must differ between guests of one image"
    );
    assert_ne!(master[2], public[2]);
    assert_ne!(boot[3], master[3], "machine-ids");
    assert_ne!(master[3], public[3], "machine-ids");
    // No account has a password.
    assert_eq!(boot[4].trim(), "", "accounts with a password");
    // The public agent reaches the host over the public network by IPv6.
    assert_eq!(public[4].trim(), "reached");

    // The private network does not forward off the host: no <forward> in libvirt's definition,
    // and a private-only node has no route beyond the lab.
    let hv = common::system_libvirt();
    use dcos_lab::driver::Hypervisor;
    let private = hv.all_networks().expect("networks");
    assert!(
        private
            .iter()
            .any(|n| n.name == format!("dcos-lab-{}-private", lab.name))
    );
    assert_eq!(master[4].trim(), "", "master must have no default route");
    assert_eq!(master[5].trim(), "contained");

    // exec on a role, with JSON, reports each node's exit status; a failing node fails the whole.
    let out = lab
        .cmd()
        .args(["exec", &f, "--role", "master", "--json", "--", "exit 3"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0]["node"], "master");
    assert_eq!(v[0]["status"], 3);

    // The lab key and pinned host keys are private.
    use std::os::unix::fs::PermissionsExt;
    let ssh_dir = lab.state.path().join("labs").join(&lab.name).join("ssh");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&ssh_dir), 0o700);
    assert_eq!(mode(&ssh_dir.join("id_ed25519")), 0o600);
    assert_eq!(mode(&ssh_dir.join("known_hosts")), 0o600);

    // OpenSSH (installed by the test command) with the config `ssh-config` prints: every node,
    // its host key checked against the pinned one (StrictHostKeyChecking yes).
    let cfg = lab.run(&["ssh-config", &f]);
    let cfg_path = lab.state.path().join("ssh_config");
    std::fs::write(&cfg_path, &cfg.stdout).expect("write");
    assert!(
        String::from_utf8_lossy(&cfg.stdout).contains("StrictHostKeyChecking yes"),
        "{}",
        String::from_utf8_lossy(&cfg.stdout)
    );
    for node in ["boot", "master", "public"] {
        let out = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&cfg_path)
            .args([
                "-o",
                "BatchMode=yes",
                &format!("{node}.{}", lab.name),
                "hostname",
            ])
            .output()
            .expect("ssh (openssh-client: scripts/setup-host.sh installs it)");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            node,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let inv = String::from_utf8(lab.run(&["inventory", &f]).stdout).expect("utf8");
    assert!(
        inv.contains("    master:\n      hosts:\n        master:\n"),
        "{inv}"
    );

    // A second up changes nothing (its speed against a cold `up` is in the snapshot test, which
    // boots its lab).
    let again = lab.json(&["up", &f, "--no-install", "--json"]);
    assert_eq!(
        again["actions"].as_array().map(Vec::len),
        Some(0),
        "{again}"
    );

    // A changed lab file that cannot be converged is refused, naming what differs.
    let changed = std::fs::read_to_string(&lab.file)
        .expect("read")
        .replace("memory: 512M", "memory: 640M");
    let changed_file = lab.state.path().join("changed.yaml");
    std::fs::write(&changed_file, changed).expect("write");
    let out = lab
        .cmd()
        .args(["up", changed_file.to_str().expect("path"), "--no-install"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node boot: its definition changed") && err.contains("dcos-lab down"),
        "{err}"
    );

    // The master as a host nobody hardened: no swap, /tmp on the root file system, IPv6 off.
    lab.sh(
        "master",
        "swapoff -a && umount -l /tmp && sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
    );

    let out = lab
        .cmd()
        .args(["verify", &f, "--json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "verify must fail");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut failed: Vec<String> = common::failed_checks(&v)
        .into_iter()
        .map(|c| {
            format!(
                "{}/{}",
                c["node"].as_str().unwrap_or(""),
                c["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    failed.sort();
    assert_eq!(failed, ["master/ipv6", "master/swap", "master/tmp"]);

    // The clients users bring: Ansible (ansible-core from PyPI) with the inventory `inventory`
    // prints reaches every host; a JUnit parser (junitparser from PyPI) reads `verify --junit`
    // as one test case per check, each failed check a <failure> with what was expected and got.
    let venv = venv.get();
    let inv = lab.state.path().join("inventory.yml");
    std::fs::write(&inv, lab.run(&["inventory", &f]).stdout).expect("inventory");
    let ansible = |args: &[&str]| {
        let out = std::process::Command::new(venv.bin("ansible"))
            .arg("-i")
            .arg(&inv)
            .args(["all", "-o"])
            .args(args)
            .env("ANSIBLE_HOME", venv.dir.path().join("ansible-home"))
            .env("ANSIBLE_LOCAL_TEMP", venv.dir.path().join("ansible-tmp"))
            .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
            .output()
            .expect("ansible");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ansible {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let ping = ansible(&["-m", "ping"]);
    for node in ["boot", "master", "public"] {
        assert!(
            ping.lines()
                .any(|l| l.starts_with(&format!("{node} | SUCCESS")) && l.contains("pong")),
            "{ping}"
        );
    }
    let cmd = ansible(&["-m", "command", "-a", "hostname"]);
    for node in ["boot", "master", "public"] {
        assert!(
            cmd.lines()
                .any(|l| l.starts_with(&format!("{node} | CHANGED | rc=0"))
                    && l.trim_end().ends_with(node)),
            "{cmd}"
        );
    }
    let junit = lab.state.path().join("verify.xml");
    let out = lab
        .cmd()
        .args(["verify", &f, "--junit", junit.to_str().expect("path")])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let read = std::process::Command::new(venv.bin("python"))
        .arg("-c")
        .arg(
            "import json, sys\nfrom junitparser import JUnitXml, Failure\nxml = JUnitXml.fromfile(sys.argv[1])\nout = []\nfor suite in xml:\n    for case in suite:\n        f = [r for r in case.result if isinstance(r, Failure)]\n        out.append({'class': case.classname, 'name': case.name, 'failure': f[0].message if f else None})\nprint(json.dumps(out))",
        )
        .arg(&junit)
        .output()
        .expect("python");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let cases: serde_json::Value = serde_json::from_slice(&read.stdout).expect("json");
    let cases = cases.as_array().expect("cases");
    assert_eq!(
        cases.len(),
        v["checks"].as_array().map(Vec::len).unwrap_or(0)
    );
    let mut junit_failed: Vec<String> = cases
        .iter()
        .filter(|c| !c["failure"].is_null())
        .map(|c| {
            let m = c["failure"].as_str().unwrap_or("");
            assert!(m.starts_with("expected ") && m.contains("; got "), "{c}");
            format!(
                "{}/{}",
                c["class"]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('.')
                    .next()
                    .unwrap_or(""),
                c["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    junit_failed.sort();
    assert_eq!(junit_failed, failed);

    // down leaves nothing, and works without the lab file or the lab's local state.
    std::fs::remove_file(&lab.file).expect("rm lab file");
    std::fs::remove_dir_all(lab.state.path().join("labs").join(&lab.name).join("ssh"))
        .expect("rm state");
    lab.run(&["down", &lab.name]);
    assert_eq!(lab.leftovers(), Vec::<String>::new());
}

/// `kill -9` of `up` midway, then `up` again: a complete lab; meanwhile another lab comes up
/// beside it and is left alone when this one goes down; `down` leaves nothing.
#[test]
#[ignore = "system tier: libvirtd, root, real guests (scripts/test.sh runs it)"]
fn killed_up_converges_and_another_lab_runs_beside_it() {
    let (_vm, hv) = common::vm_lock_and_libvirt();
    let lab = TestLab::new("kill", 62, TWO_NODES);
    let f = lab.file_arg();
    use dcos_lab::driver::Hypervisor;
    let mut child = lab
        .std_cmd()
        .args(["up", &f])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill it once some of the lab exists but before it is complete.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let doms = hv
            .owned_domains()
            .expect("list")
            .into_iter()
            .filter(|d| d.tag.lab == lab.name)
            .count();
        if doms >= 1 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(
        !lab.leftovers().is_empty(),
        "the kill left a partial lab to converge"
    );

    // Two `up`s of the lab at once converge it into one lab (the second waits for the first),
    // and a third with --no-wait is refused at once while they work. Beside them, at the same
    // time, another lab comes up (its own lock, names, bridges, ranges): the suite's shared lab,
    // from the run's golden (`up --from`, no boot to share the cores with); taking this one down
    // leaves that one alone.
    let other = common::gold_lab();
    let of = other.file_arg();
    let other_up = std::thread::spawn(move || {
        other.up_fresh();
        other
    });
    let spawn = || {
        lab.std_cmd()
            .args(["up", &f, "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (b, c) = (spawn(), spawn());
    // Until one of them holds the lab's lock (the lock file is locked), not a guessed delay.
    let lock_file = lab
        .state
        .path()
        .join("locks")
        .join(format!("{}.lock", lab.name));
    let t = Instant::now();
    while !common::is_locked(&lock_file) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no up took the lock {}",
            lock_file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let busy = lab
        .cmd()
        .args(["up", &f, "--no-wait"])
        .output()
        .expect("runs");
    assert_eq!(busy.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("is busy"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    for child in [b, c] {
        let out = child.wait_with_output().expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let st = lab.json(&["status", &f, "--json"]);
    assert_eq!(st["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(st["networks"].as_array().map(Vec::len), Some(2));
    for n in ["boot", "master"] {
        assert_eq!(lab.sh(n, "hostname").trim(), n);
    }
    let other = other_up.join().expect("the other lab comes up");
    assert_eq!(other.sh("master", "hostname").trim(), "master");
    lab.run(&["down", &f]);
    assert_eq!(lab.leftovers(), Vec::<String>::new());
    let st = other.json(&["status", &of, "--json"]);
    assert_eq!(st["nodes"].as_array().map(Vec::len), Some(3));
    assert!(
        st["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .all(|n| n["state"] == "active"),
        "{st}"
    );
    assert_eq!(
        other
            .sh("boot", "ping -c1 -W3 master >/dev/null && echo ok")
            .trim(),
        "ok"
    );
    other.run(&["down", &of]);
    assert_eq!(other.leftovers(), Vec::<String>::new());
}

/// Whole-lab snapshots: processes and files come back with a revert, later files go, clocks are
/// corrected, two snapshots revert in either order, they survive a libvirtd restart, and `down`
/// leaves nothing.
#[test]
#[ignore = "system tier: libvirtd, root, real guests (scripts/test.sh runs it)"]
fn snapshot_and_revert_put_the_lab_back_running() {
    let _vm = common::vm_lock();
    // The master takes cloud-init's first-boot path, the boot node dcos-lab's fast one: both
    // give the same files and pass `verify` (below, right after a revert), and the snapshots
    // hold a lab of both kinds.
    let nodes = "  - name: boot\n    role: boot\n    memory: 512M\n  - name: master\n    role: master\n    memory: 1G\n    firstboot: cloud-init\n";
    let lab = TestLab::new("snap", 66, nodes);
    let f = lab.file_arg();
    let t0 = Instant::now();
    // Part of the lab first: the master stays undefined until the next `up` adds it, beside
    // the boot node, which runs on untouched.
    let part = lab.json(&["up", &f, "--node", "boot", "--json"]);
    assert_eq!(
        part["nodes"].as_array().map(Vec::len),
        Some(1),
        "only the boot node: {part}"
    );
    let boot_qemu = qemu_pid_of(&lab, "boot");
    assert!(boot_qemu.is_some());
    let up = lab.json(&["up", &f, "--json"]);
    let cold = t0.elapsed();
    assert_eq!(up["lab"], lab.name.as_str());
    assert_eq!(up["accel"]["accel"], "tcg");
    let added: Vec<&str> = up["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        !added.is_empty() && added.iter().all(|a| a.contains("master")),
        "only the master is added: {added:#?}"
    );
    assert_eq!(
        qemu_pid_of(&lab, "boot"),
        boot_qemu,
        "the boot node restarted"
    );
    // A second up changes nothing and is at least 10x faster than the cold one.
    let t1 = Instant::now();
    let again = lab.json(&["up", &f, "--json"]);
    let warm = t1.elapsed();
    assert_eq!(
        again["actions"].as_array().map(Vec::len),
        Some(0),
        "{again}"
    );
    assert!(
        warm * 10 <= cold,
        "warm up {warm:?} is not 10x faster than cold {cold:?}"
    );

    // A halted node (the one cloud-init configured: its guest powers itself off when asked)
    // is started again by up, and answers.
    let halt = lab.json(&["halt", &f, "--node", "master", "--json"]);
    assert_eq!(
        halt["nodes"],
        serde_json::json!([{"node": "master", "outcome": "shut down"}]),
        "{halt}"
    );
    let st = lab.json(&["status", &f, "--json"]);
    let master = st["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == "master")
        .cloned()
        .expect("master");
    assert_eq!(master["state"], "inactive");
    let again = lab.json(&["up", &f, "--json"]);
    assert_eq!(
        again["actions"],
        serde_json::json!([format!("start domain dcos-lab-{}-master", lab.name)])
    );
    // Its hardening held across the restart (the hardening script ran only at first boot):
    // /tmp at its hardened size, swap on, clock in sync; verify passes.
    lab.assert_verify_passes("after a restart");
    // Each node's first boot as its kernel command line and cloud-init say, and the files
    // both paths write (one login per node, both nodes at once).
    let files = "cat /etc/hosts /etc/resolv.conf /root/.ssh/authorized_keys /etc/systemd/system/tmp.mount.d/90-dcos-lab.conf";
    let facts = lab.sh_each(&[
        (
            "boot",
            &[
                "cat /proc/cmdline",
                "cloud-init status 2>/dev/null | cut -d' ' -f2",
                files,
            ],
        ),
        (
            "master",
            &[
                "hostname",
                "findmnt -bno SIZE /tmp",
                "cat /proc/cmdline",
                "cloud-init status --wait 2>/dev/null | tail -1 | cut -d' ' -f2",
                files,
            ],
        ),
    ]);
    let (boot, master) = (&facts[0], &facts[1]);
    assert_eq!(master[0].trim(), "master");
    assert_eq!(
        master[1].trim(),
        (1u64 << 30).to_string(),
        "/tmp after the restart"
    );
    assert!(boot[0].contains("dcos-lab.firstboot=fast"), "{}", boot[0]);
    assert!(master[2].contains("ds=nocloud"), "{}", master[2]);
    assert_eq!(boot[1].trim(), "disabled");
    assert_eq!(master[3].trim(), "done");
    assert_eq!(boot[2], master[4]);

    lab.sh(
        "master",
        "echo one > /root/marker; setsid nohup sleep 100000 >/dev/null 2>&1 </dev/null &",
    );
    let pid = lab
        .sh("master", "pgrep -f '[s]leep 100000'")
        .trim()
        .to_string();
    assert!(!pid.is_empty());
    let s1 = lab.json(&["snapshot", &f, "first", "--json"]);
    assert_eq!(s1["snapshot"], "first");
    // The same name twice is refused, changing nothing.
    let out = lab
        .cmd()
        .args(["snapshot", &f, "first"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));

    lab.sh(
        "master",
        "echo two > /root/marker; echo later > /root/later",
    );
    lab.json(&["snapshot", &f, "second", "--json"]);
    lab.sh(
        "master",
        "rm -f /root/marker; pkill -f '[s]leep 100000'; echo after > /root/after",
    );

    // Snapshots outlive a libvirtd restart (where nothing supervises it, as here).
    if !std::path::Path::new("/run/systemd/system").exists() {
        common::restart_libvirtd();
    }
    let list = lab.json(&["snapshots", &f, "--json"]);
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert!(
        list[0]["complete"] == true && list[0]["vm_state_bytes"].as_u64().unwrap_or(0) > 0,
        "{list}"
    );
    let st = lab.json(&["status", &f, "--json"]);
    assert_eq!(st["snapshots"], serde_json::json!(["first", "second"]));

    // Revert to the first: marker "one", the process running with its pid, later files gone.
    let r = lab.json(&["revert", &f, "first", "--json"]);
    for (node, offset) in r["clock_offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| (o[0].clone(), o[1].as_f64().expect("f64")))
    {
        assert!(
            offset.abs() < 2.0,
            "{node} clock off by {offset} s after revert"
        );
    }
    let back = at_first(&lab);
    assert_eq!(back[0].trim(), "one");
    assert_eq!(back[1].trim(), pid);
    assert_eq!(back[2].trim(), "0", "later files");
    // The guest's clock agrees with the host's, measured here independently.
    // The guest's clock read between two readings of the host's (the SSH round trip in
    // between takes its time under emulation): within 2 s of that interval.
    let (before, guest, after) = common::guest_time(&lab, "master");
    assert!(
        guest > before - 2.0 && guest < after + 2.0,
        "guest {guest} vs host {before}..{after}"
    );
    // The kernel reports every following clock synchronised again (chrony resampled the boot
    // node after the revert), the boot node serves its own: verify's time-sync, read right away.
    let v = lab.assert_verify_passes("right after a revert");
    let time: Vec<_> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["name"] == "time-sync")
        .collect();
    assert_eq!(time.len(), 2, "{v}");
    assert!(time.iter().all(|c| c["passed"] == true), "{time:#?}");

    // Two reverts of one snapshot do not hand the guests the same random state: what the
    // master's /dev/urandom and the kernel's UUIDs give right after each revert differs.
    let random = || {
        lab.sh(
            "master",
            "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; echo; cat /proc/sys/kernel/random/uuid",
        )
    };
    lab.json(&["revert", &f, "first", "--json"]);
    let after_first = random();
    lab.json(&["revert", &f, "first", "--json"]);
    let after_second = random();
    assert_eq!(after_first.lines().count(), 2, "{after_first}");
    for (a, b) in after_first.lines().zip(after_second.lines()) {
        assert_ne!(
            a, b,
            "the same random bytes after two reverts of one snapshot"
        );
    }

    // Then to the second, then back to the first: either order works.
    lab.json(&["revert", &f, "second", "--json"]);
    assert_eq!(
        lab.sh("master", "cat /root/marker /root/later").trim(),
        "two\nlater"
    );
    lab.json(&["revert", &f, "first", "--json"]);
    assert_eq!(lab.sh("master", "cat /root/marker").trim(), "one");

    lab.run(&["snapshot", "rm", &f, "second"]);
    let list = lab.json(&["snapshots", &f, "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    suspended_lab_comes_back_as_it_was(&lab, &pid);
    agents_join_and_leave_the_running_lab(&lab);
    golden_lab_comes_back_running(&lab, &pid);
}

/// The PID of the QEMU process of `node` of `lab`.
fn qemu_pid_of(lab: &TestLab, node: &str) -> Option<String> {
    let guest = format!("guest=dcos-lab-{}-{node},", lab.name);
    std::fs::read_dir("/proc").expect("/proc").find_map(|e| {
        let e = e.ok()?;
        let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        (cmd.contains("qemu") && cmd.contains(&guest)).then(|| pid.to_string())
    })
}

/// The PID of the dnsmasq serving each of `lab`'s networks.
fn dnsmasq_of(lab: &TestLab) -> Vec<String> {
    ["private", "public"]
        .iter()
        .map(|k| {
            std::fs::read_to_string(format!(
                "/run/libvirt/network/dcos-lab-{}-{k}.pid",
                lab.name
            ))
            .unwrap_or_default()
            .trim()
            .to_string()
        })
        .collect()
}

/// Each node's private address, from `status`.
fn private_addresses(lab: &TestLab) -> Vec<(String, String)> {
    let st = lab.json(&["status", &lab.file_arg(), "--json"]);
    st["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            let ip = n["nics"]
                .as_array()
                .and_then(|nics| nics.iter().find(|x| x["network"] == "private"))
                .and_then(|x| x["ipv4"].as_str())
                .unwrap_or_default()
                .to_string();
            (n["name"].as_str().unwrap_or_default().to_string(), ip)
        })
        .collect()
}

/// The snapshot test's lab (boot and master running) scaled out and in: an agent group added
/// before the master in the file, then its count raised, each `up` adding the new agent while
/// every node there runs on in the same QEMU process, the networks' dnsmasq is the same, the
/// addresses stay and every node (and the host) resolves the new name; the agent removed alone
/// with `down --node`, a master refused; a file without an agent that exists names the fix.
fn agents_join_and_leave_the_running_lab(lab: &TestLab) {
    let f = lab.file_arg();
    let original = std::fs::read_to_string(&lab.file).expect("lab file");
    let with_agents = |count: u32| {
        let text = original.replace(
            "  - name: master\n",
            &format!(
                "  - name: agent\n    role: agent-private\n    memory: 512M\n    count: {count}\n  - name: master\n"
            ),
        );
        assert_ne!(text, original);
        std::fs::write(&lab.file, text).expect("lab file");
    };
    let addresses = private_addresses(lab);
    let pids = |nodes: &[&str]| -> Vec<Option<String>> {
        nodes.iter().map(|n| qemu_pid_of(lab, n)).collect()
    };
    let running = pids(&["boot", "master"]);
    assert!(running.iter().all(Option::is_some), "{running:?}");
    let dnsmasq = dnsmasq_of(lab);
    let only_about = |v: &serde_json::Value, node: &str| {
        let actions: Vec<&str> = v["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert!(
            !actions.is_empty() && actions.iter().all(|a| a.contains(node)),
            "not only {node}: {actions:#?}"
        );
    };

    lab.step("an agent group added");
    with_agents(1);
    only_about(&lab.json(&["up", &f, "--json"]), "agent1");
    let agent1 = qemu_pid_of(lab, "agent1");
    lab.step("its count raised");
    with_agents(2);
    let plan = lab.json(&["plan", &f, "--json"]);
    let planned: Vec<String> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert!(
        planned.iter().all(|a| a.contains("agent2")),
        "plan shows more than the addition: {planned:#?}"
    );
    only_about(&lab.json(&["up", &f, "--json"]), "agent2");
    assert_eq!(pids(&["boot", "master"]), running, "a node restarted");
    assert_eq!(qemu_pid_of(lab, "agent1"), agent1, "agent1 restarted");
    assert_eq!(dnsmasq_of(lab), dnsmasq, "a network's dnsmasq restarted");
    let now = private_addresses(lab);
    for a in &addresses {
        assert!(now.contains(a), "{a:?} moved: {now:?}");
    }
    let ip_of = |node: &str| {
        now.iter()
            .find(|(n, _)| n == node)
            .map(|(_, ip)| ip.clone())
            .expect("address")
    };
    // Every node, old and new, resolves the new name; the new one the old.
    let resolve = "getent hosts agent2 | cut -d' ' -f1";
    let facts = lab.sh_each(&[
        ("boot", &[resolve]),
        ("master", &[resolve]),
        ("agent1", &[resolve]),
        ("agent2", &["getent hosts master | cut -d' ' -f1"]),
    ]);
    for (i, node) in ["boot", "master", "agent1"].iter().enumerate() {
        assert_eq!(
            facts[i][0].trim(),
            ip_of("agent2"),
            "{node} resolves agent2"
        );
    }
    assert_eq!(facts[3][0].trim(), ip_of("master"));
    let host = std::process::Command::new("getent")
        .args(["hosts", &format!("agent2.{}", lab.name)])
        .output()
        .expect("getent");
    assert!(
        String::from_utf8_lossy(&host.stdout).starts_with(&ip_of("agent2")),
        "the host resolves agent2: {}",
        String::from_utf8_lossy(&host.stdout)
    );
    lab.assert_verify_passes("with the agents added");

    lab.step("a master refused, the agent removed alone");
    let out = lab
        .cmd()
        .args(["down", &f, "--node", "master"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let gone = lab.json(&["down", &f, "--node", "agent2", "--json"]);
    assert_eq!(gone["nodes"], serde_json::json!(["agent2"]), "{gone}");
    assert!(qemu_pid_of(lab, "agent2").is_none());
    assert_eq!(
        pids(&["boot", "master", "agent1"]),
        [running.clone(), vec![agent1]].concat()
    );
    let left = lab.sh_each(&[
        ("boot", &["getent hosts agent2 || echo none"]),
        ("agent1", &["getent hosts agent2 || echo none"]),
    ]);
    assert!(left.iter().all(|f| f[0].trim() == "none"), "{left:?}");
    with_agents(1);
    let up = lab.json(&["up", &f, "--json"]);
    assert_eq!(up["actions"], serde_json::json!([]), "{up}");

    lab.step("a lab file without an agent that exists");
    std::fs::write(&lab.file, &original).expect("lab file");
    let out = lab.cmd().args(["up", &f]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--node agent1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.json(&["down", &f, "--node", "agent1", "--json"]);
    let up = lab.json(&["up", &f, "--json"]);
    assert_eq!(up["actions"], serde_json::json!([]), "{up}");
    assert_eq!(pids(&["boot", "master"]), running);
}

/// The PIDs of the QEMU processes of `lab`'s domains (libvirt names the guest on QEMU's
/// command line: `-name guest=<domain>,...`).
fn qemu_of(lab: &TestLab) -> Vec<String> {
    let guest = format!("guest=dcos-lab-{}-", lab.name);
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| {
            let e = e.ok()?;
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains("qemu") && cmd.contains(&guest)).then(|| pid.to_string())
        })
        .collect()
}

/// The snapshot test's lab (at "first": the master's process `pid` runs) suspended: every node's
/// memory on disk and no QEMU of the lab left, `status` and `list` saying so, a snapshot refused,
/// a libvirtd restart survived; resumed: the process runs on, the clocks are right, `verify`
/// passes. Suspended again, `up` resumes it.
fn suspended_lab_comes_back_as_it_was(lab: &TestLab, pid: &str) {
    let f = lab.file_arg();
    assert_eq!(qemu_of(lab).len(), 2, "a QEMU per node while it runs");
    // A process in every node: the master's (`pid`), and one started on the boot node.
    let boot_pid = lab
        .sh(
            "boot",
            "setsid nohup sleep 100001 >/dev/null 2>&1 </dev/null & echo $!",
        )
        .trim()
        .to_string();
    assert!(!boot_pid.is_empty());
    let s = lab.json(&["suspend", &f, "--json"]);
    assert_eq!(s["suspended"], serde_json::json!(["boot", "master"]), "{s}");
    assert_eq!(
        qemu_of(lab),
        Vec::<String>::new(),
        "QEMU left while suspended"
    );
    let st = lab.json(&["status", &f, "--json"]);
    for n in st["nodes"].as_array().expect("nodes") {
        assert_eq!(n["state"], "suspended", "{n}");
    }
    let list = lab.json(&["list", "--json"]);
    let row = list
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["lab"] == lab.name.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(
        (row["running"].as_u64(), row["suspended"].as_u64()),
        (Some(0), Some(2))
    );
    let out = lab
        .cmd()
        .args(["snapshot", &f, "night"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dcos-lab resume"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Suspended labs outlive a libvirtd restart (where nothing supervises it, as here); the
    // guests' clocks fall behind meanwhile.
    if !std::path::Path::new("/run/systemd/system").exists() {
        common::restart_libvirtd();
    }
    std::thread::sleep(std::time::Duration::from_secs(5));
    let st = lab.json(&["status", &f, "--json"]);
    for n in st["nodes"].as_array().expect("nodes") {
        assert_eq!(n["state"], "suspended", "after a libvirtd restart: {n}");
    }

    let r = lab.json(&["resume", &f, "--json"]);
    assert_eq!(r["resumed"], serde_json::json!(["boot", "master"]), "{r}");
    for o in r["clock_offsets"].as_array().expect("offsets") {
        let offset = o[1].as_f64().expect("f64");
        assert!(
            offset.abs() < 2.0,
            "{} clock off by {offset} s after resume",
            o[0]
        );
    }
    assert_eq!(
        lab.sh("master", "cat /root/marker; pgrep -f '[s]leep 100000'"),
        format!("one\n{pid}\n"),
        "the master's file and process after the resume"
    );
    assert_eq!(
        lab.sh("boot", "pgrep -f '[s]leep 100001'").trim(),
        boot_pid,
        "the boot node's process after the resume"
    );
    let (before, guest, after) = common::guest_time(lab, "master");
    assert!(
        guest > before - 2.0 && guest < after + 2.0,
        "guest {guest} vs host {before}..{after} after the resume"
    );
    lab.assert_verify_passes("right after a resume");

    // `up` of a suspended lab resumes it.
    lab.json(&["suspend", &f, "--json"]);
    let up = lab.json(&["up", &f, "--json"]);
    assert!(
        up["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.starts_with("resume"))),
        "{up}"
    );
    assert_eq!(lab.sh("master", "pgrep -f '[s]leep 100000'").trim(), pid);
}

/// What the master shows of snapshot "first": its marker, the pid of the process it ran, and
/// how many of the files made after it are there (one login).
fn at_first(lab: &TestLab) -> Vec<String> {
    lab.sh_parts(
        "master",
        &[
            "cat /root/marker",
            "pgrep -f '[s]leep 100000'",
            "ls /root/later /root/after 2>/dev/null | wc -l",
        ],
    )
}

/// The snapshot test's lab as a golden: `snapshot export` of "first" (the lab runs on), a name
/// clash refused, `down`, damaged files refused with nothing made, then `up --from` twice: each
/// time at the snapshot (marker, process, no later files), clocks right, `verify` passing, a
/// revert working, and random state of its own; `down` leaves nothing.
fn golden_lab_comes_back_running(lab: &TestLab, pid: &str) {
    let f = lab.file_arg();
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    let file = lab.state.path().join("first.golden");
    let path = file.to_str().expect("path").to_string();
    let out = lab.json(&["snapshot", "export", &f, "first", &path, "--json"]);
    assert!(out["bytes"].as_u64().unwrap_or(0) > 0, "{out}");
    let st = lab.json(&["status", &f, "--json"]);
    for n in st["nodes"].as_array().expect("nodes") {
        assert_eq!(
            n["state"], "active",
            "the lab runs on after the export: {n}"
        );
    }
    let out = lab
        .cmd()
        .args(["up", &f, "--from", &path])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exists on this host"),
        "{}",
        stderr(&out)
    );
    lab.run(&["down", &f]);
    assert_eq!(lab.leftovers(), Vec::<String>::new());

    let bytes = std::fs::read(&file).expect("read");
    let short = lab.state.path().join("short.golden");
    std::fs::write(&short, &bytes[..bytes.len() / 2]).expect("write");
    let flipped = lab.state.path().join("flipped.golden");
    let mut b = bytes;
    let at = b.len() * 3 / 4;
    b[at] ^= 0xff;
    std::fs::write(&flipped, &b).expect("write");
    drop(b);
    for bad in [&short, &flipped] {
        let out = lab
            .cmd()
            .args(["up", &f, "--from", bad.to_str().expect("path")])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("is not a usable golden lab") && stderr(&out).contains("member"),
            "{}",
            stderr(&out)
        );
        assert_eq!(lab.leftovers(), Vec::<String>::new());
        assert!(!lab.state.path().join("labs").join(&lab.name).exists());
        std::fs::remove_file(bad).expect("rm");
    }

    hostile_goldens_are_refused_and_touch_no_host_file(lab, &file);

    // `up --from` SIGKILLed right after it recorded the import: `down` takes over and leaves
    // nothing. Killed among the disks (before round 0) and in the resume (before round 1): that
    // round's `up --from` takes over. (The fast tier kills it after every step.)
    let killed_at = |k: u32| {
        use std::os::unix::process::ExitStatusExt;
        let out = lab
            .cmd()
            .envs([common::fault_env(&format!("up:{k}:kill"))])
            .args(["up", &f, "--from", &path])
            .output()
            .expect("runs");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGKILL),
            "up --from was not killed at step {k}: {}",
            stderr(&out)
        );
    };
    killed_at(1);
    lab.run(&["down", &f]);
    assert_eq!(lab.leftovers(), Vec::<String>::new());

    let mut randoms = Vec::new();
    for round in 0..2 {
        killed_at(if round == 0 { 6 } else { 12 });
        let up = lab.json(&["up", &f, "--from", &path, "--json"]);
        assert_eq!(up["lab"], lab.name.as_str(), "{up}");
        randoms.push(lab.sh(
            "master",
            "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; cat /proc/sys/kernel/random/uuid",
        ));
        let back = at_first(lab);
        assert_eq!(back[0].trim(), "one", "round {round}");
        assert_eq!(back[1].trim(), pid, "round {round}");
        assert_eq!(back[2].trim(), "0", "later files, round {round}");
        // The guest's clock read between two readings of the host's (the SSH round trip in
        // between takes its time under emulation): within 2 s of that interval.
        let (before, guest, after) = common::guest_time(lab, "master");
        assert!(
            guest > before - 2.0 && guest < after + 2.0,
            "guest {guest} vs host {before}..{after}"
        );
        let snaps = lab.json(&["snapshots", &f, "--json"]);
        assert_eq!(snaps[0]["name"], "first", "{snaps}");
        assert_eq!(snaps[0]["complete"], true, "{snaps}");
        if round == 0 {
            lab.assert_verify_passes("after up --from");
            lab.run(&["revert", &f, "first"]);
        }
        lab.run(&["down", &f]);
        assert_eq!(lab.leftovers(), Vec::<String>::new());
    }
    let (a, b) = (&randoms[0], &randoms[1]);
    assert_eq!(a.lines().count(), 2, "{a}");
    for (x, y) in a.lines().zip(b.lines()) {
        assert_ne!(
            x, y,
            "two restores of one golden gave the same random state"
        );
    }
}

/// Goldens edited by hand, their manifest's hashes recomputed (the manifest is in the same
/// file: its hashes prove integrity against accidents, not against an author), each pointing
/// the host at a root-only host file or directory: a node's disk backed by the file, the seed
/// disk of a snapshot's domain pointed at it, a snapshot's domain sharing a host directory.
/// Each `up --from` exits 2 naming the member and what it points at; nothing is left, and the
/// host file keeps its owner, mode and bytes (libvirt would have given it to libvirt-qemu).
fn hostile_goldens_are_refused_and_touch_no_host_file(lab: &TestLab, golden: &std::path::Path) {
    use sha2::Digest;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let f = lab.file_arg();
    let host_file =
        std::path::PathBuf::from(format!("/var/tmp/dltest-hostile-{}", std::process::id()));
    let host_dir = std::path::PathBuf::from(format!(
        "/var/tmp/dltest-hostile-dir-{}",
        std::process::id()
    ));
    struct Gone(Vec<std::path::PathBuf>);
    impl Drop for Gone {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = std::fs::remove_file(p);
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
    let _gone = Gone(vec![host_file.clone(), host_dir.clone()]);
    std::fs::write(&host_file, b"the host's own bytes\n").expect("host file");
    std::fs::set_permissions(&host_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::create_dir_all(&host_dir).expect("host dir");
    let facts = || {
        let m = std::fs::metadata(&host_file).expect("host file");
        (
            m.uid(),
            m.gid(),
            m.mode(),
            std::fs::read(&host_file).expect("read"),
        )
    };
    let before = facts();

    let x = tempfile::Builder::new()
        .prefix("dltest-hostile-")
        .tempdir_in(lab.state.path())
        .expect("dir");
    let dir = x.path();
    let tar = |args: &[&std::ffi::OsStr]| {
        let st = std::process::Command::new("tar")
            .args(args)
            .status()
            .expect("tar");
        assert!(st.success(), "tar {args:?}");
    };
    tar(&[
        "-xf".as_ref(),
        golden.as_os_str(),
        "-C".as_ref(),
        dir.as_os_str(),
    ]);
    let manifest_path = dir.join("golden.json");
    let manifest = std::fs::read_to_string(&manifest_path).expect("manifest");
    let members: Vec<String> = {
        let m: serde_json::Value = serde_json::from_str(&manifest).expect("json");
        m["members"]
            .as_object()
            .expect("members")
            .keys()
            .cloned()
            .collect()
    };
    // The golden with `member` changed by `edit`, its hash recomputed; undone afterwards.
    let hostile = |member: &str, edit: &dyn Fn(&std::path::Path)| -> std::path::PathBuf {
        let p = dir.join(member);
        edit(&p);
        let bytes = std::fs::read(&p).expect("member");
        let mut m: serde_json::Value = serde_json::from_str(&manifest).expect("json");
        m["members"][member] = serde_json::json!({
            "sha256": format!("{:x}", sha2::Sha256::digest(&bytes)),
            "bytes": bytes.len(),
        });
        std::fs::write(&manifest_path, m.to_string()).expect("manifest");
        let out = lab.state.path().join("hostile.golden");
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "-cSf".as_ref(),
            out.as_os_str(),
            "-C".as_ref(),
            dir.as_os_str(),
            "golden.json".as_ref(),
        ];
        args.extend(members.iter().map(|m| std::ffi::OsStr::new(m.as_str())));
        tar(&args);
        out
    };
    let xml_member = "snapshots/master.xml";
    let xml = std::fs::read_to_string(dir.join(xml_member)).expect("snapshot xml");
    let seed = lab
        .state
        .path()
        .join(format!("labs/{}/disks/master-seed.img", lab.name));
    let seed = seed.to_str().expect("utf8");
    assert!(
        xml.contains(seed),
        "the snapshot's domain names the seed {seed}"
    );
    let disk_member = "disks/master.qcow2";
    let qemu_img = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("qemu-img")
            .args(args)
            .output()
            .expect("qemu-img");
        assert!(
            out.status.success(),
            "qemu-img {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let disk = dir.join(disk_member);
    let info: serde_json::Value = serde_json::from_str(&qemu_img(&[
        "info".as_ref(),
        "-U".as_ref(),
        "--output=json".as_ref(),
        "-f".as_ref(),
        "qcow2".as_ref(),
        disk.as_os_str(),
    ]))
    .expect("info");
    let base = info["backing-filename"]
        .as_str()
        .expect("backed")
        .to_string();
    let hf = host_file.to_str().expect("utf8").to_string();
    let hd = host_dir.to_str().expect("utf8").to_string();
    // What is wrong, the member, how the test makes it and undoes it, what it points at.
    type Edit<'a> = Box<dyn Fn(&std::path::Path) + 'a>;
    let cases: Vec<(&str, &str, Edit, Edit, &str)> = vec![
        (
            "a disk backed by a host file",
            disk_member,
            Box::new(|p| {
                qemu_img(&[
                    "rebase".as_ref(),
                    "-u".as_ref(),
                    "-F".as_ref(),
                    "raw".as_ref(),
                    "-b".as_ref(),
                    hf.as_ref(),
                    p.as_os_str(),
                ]);
            }),
            Box::new(|p| {
                qemu_img(&[
                    "rebase".as_ref(),
                    "-u".as_ref(),
                    "-F".as_ref(),
                    "qcow2".as_ref(),
                    "-b".as_ref(),
                    base.as_ref(),
                    p.as_os_str(),
                ]);
            }),
            &hf,
        ),
        (
            "the seed disk pointed at a host file",
            xml_member,
            Box::new(|p| std::fs::write(p, xml.replace(seed, &hf)).expect("edit")),
            Box::new(|p| std::fs::write(p, &xml).expect("undo")),
            &hf,
        ),
        (
            "a shared host directory",
            xml_member,
            Box::new(|p| {
                let fs = format!(
                    "<filesystem type='mount' accessmode='passthrough'><source dir='{hd}'/><target dir='share'/></filesystem>"
                );
                std::fs::write(
                    p,
                    xml.replacen("<interface ", &format!("{fs}<interface "), 1),
                )
                .expect("edit")
            }),
            Box::new(|p| std::fs::write(p, &xml).expect("undo")),
            &hd,
        ),
    ];
    for (what, member, edit, undo, points_at) in &cases {
        let file = hostile(member, edit.as_ref());
        let out = lab
            .cmd()
            .args(["up", &f, "--from", file.to_str().expect("path")])
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        lab.step(&format!(
            "hostile golden ({what}): exit {:?}",
            out.status.code()
        ));
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains(member) && err.contains(points_at),
            "{what}: {err}"
        );
        assert_eq!(lab.leftovers(), Vec::<String>::new(), "{what}");
        assert_eq!(facts(), before, "{what}: the host file was touched");
        undo(&dir.join(member));
        std::fs::remove_file(&file).expect("rm");
    }
    std::fs::write(&manifest_path, &manifest).expect("manifest");
}

/// A guest that never becomes reachable (here: an image with nothing to boot) makes `up` fail
/// after the bounded wait, naming the node and showing its console; the nodes stay for inspection.
#[test]
#[ignore = "system tier: libvirtd, root, real guests (scripts/test.sh runs it)"]
fn unreachable_guest_fails_up_after_the_wait_and_is_left_running() {
    let _vm = common::vm_lock();
    let lab = TestLab::new("broken", 68, TWO_NODES);
    let broken = lab.state.path().join("broken.raw");
    std::fs::write(&broken, vec![0u8; 1 << 20]).expect("write");
    let text = std::fs::read_to_string(&lab.file).expect("read").replace(
        "accel: tcg\n",
        &format!("accel: tcg\nimage: {}\n", broken.display()),
    );
    std::fs::write(&lab.file, text).expect("write");
    let f = lab.file_arg();
    let t = Instant::now();
    let out = lab
        .cmd()
        .args(["up", &f, "--wait", "15"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        t.elapsed() < Duration::from_secs(120),
        "the wait is bounded"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not reachable") && err.contains("did not answer over SSH within 15 s"),
        "{err}"
    );
    assert!(err.contains("the last lines of its console"), "{err}");
    assert!(err.contains("left running for inspection"), "{err}");
    let st = lab.json(&["status", &f, "--json"]);
    assert!(
        st["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .all(|n| n["state"] == "active"),
        "{st}"
    );
    lab.run(&["down", &f]);
    assert_eq!(lab.leftovers(), Vec::<String>::new());
}
