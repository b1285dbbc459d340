//! System test of the DC/OS install flow on real guests, with the test fixture installer
//! (tests/fixtures/dcos_generate_config.fixture.sh): the flow is the real one, the installer is not.

mod common;

use std::path::Path;

use common::TestLab;

/// The minimal layout; the public agent's /tmp is what a stock tmpfs /tmp gives a 1 GiB node
/// (half its RAM), the master's is the hardened 1 GiB.
const NODES: &str = "  - name: boot\n    role: boot\n    memory: 512M\n  - name: master\n    role: master\n    memory: 1G\n  - name: public\n    role: agent-public\n    memory: 1G\n    hardening:\n      tmp_size: 512M\n";

/// The fixture with its two tunable lines set.
fn write_installer(path: &Path, bootstrap_mib: u32, fail_role: &str) {
    let text = std::fs::read_to_string(
        common::repo().join("tests/fixtures/dcos_generate_config.fixture.sh"),
    )
    .expect("fixture");
    let text = text
        .replace(
            "\nBOOTSTRAP_MIB=16\n",
            &format!("\nBOOTSTRAP_MIB={bootstrap_mib}\n"),
        )
        .replace("\nFAIL_ROLE=none\n", &format!("\nFAIL_ROLE={fail_role}\n"));
    assert!(text.contains(&format!("FAIL_ROLE={fail_role}\n")));
    std::fs::write(path, text).expect("write installer");
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn up_installs_dcos_masters_first_and_install_resumes_after_failures() {
    if common::system_libvirt().is_none() {
        return;
    }
    let _vm = common::vm_lock();
    let lab = TestLab::new("dcos", 69, NODES);
    let f = lab.file_arg();
    let installer = lab.state.path().join("dcos_generate_config.sh");
    let mut text = std::fs::read_to_string(&lab.file).expect("lab file");
    text.push_str("dcos:\n  installer: dcos_generate_config.sh\n  bootstrap_port: 8080\n");
    std::fs::write(&lab.file, text).expect("lab file");

    // A lab file whose installer is missing is refused before anything is created.
    let out = lab.cmd().args(["up", &f]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("dcos.installer") && stderr(&out).contains("fix:"),
        "{}",
        stderr(&out)
    );
    assert!(lab.leftovers().is_empty(), "{:?}", lab.leftovers());

    // 1. A broken installer: `up` brings the lab up, the install fails on the master, and the
    //    error names the node, the phase and the command, with the remote log's tail.
    write_installer(&installer, 16, "master");
    let out = lab.cmd().args(["up", &f]).output().expect("runs");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("install failed on node master in phase install"),
        "{err}"
    );
    assert!(err.contains("dcos_install.sh master`"), "{err}");
    assert!(err.contains("built to fail for role master"), "{err}");
    assert!(err.contains("left up for inspection"), "{err}");
    let status = lab.json(&["status", &f, "--json"]);
    for n in status["nodes"].as_array().expect("nodes") {
        assert_eq!(n["state"], "active", "the lab stays up: {n}");
    }
    assert_eq!(status["install"]["master"]["state"], "failed", "{status}");
    assert_eq!(status["install"]["master"]["phase"], "install", "{status}");
    assert_eq!(status["install"]["public"]["state"], "none", "{status}");

    // 2. The real-sized bootstrap (600 MiB, more than half of a 1 GiB node's RAM,
    //    incompressible). The master, with the hardened 1 GiB /tmp, installs; the public agent's
    //    512 MiB /tmp (a stock tmpfs for its RAM) cannot hold the download.
    write_installer(&installer, 600, "none");
    let out = lab.cmd().args(["install", &f]).output().expect("runs");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("install failed on node public in phase install"),
        "{err}"
    );
    assert!(err.contains("Failure writing output"), "{err}");
    assert!(
        err.contains("/tmp:"),
        "the failure shows /tmp's space: {err}"
    );
    let status = lab.json(&["status", &f, "--json"]);
    assert_eq!(
        status["install"]["master"]["state"], "installed",
        "{status}"
    );
    assert_eq!(status["install"]["public"]["state"], "failed", "{status}");

    // 3. With the public agent's /tmp as large as the hardening makes it, `up` converges and the
    //    install resumes: nothing is redone where a node already finished.
    lab.sh("public", "mount -o remount,size=1G /tmp");
    let up = lab.json(&["up", &f, "--json"]);
    assert_eq!(up["actions"].as_array().map(Vec::len), Some(0), "{up}");
    let outcome = |node: &str| -> String {
        up["install"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["node"] == node)
            .and_then(|n| n["outcome"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(outcome("boot"), "already served", "{up}");
    assert_eq!(outcome("master"), "already installed", "{up}");
    assert_eq!(outcome("public"), "installed", "{up}");
    let status = lab.json(&["status", &f, "--json"]);
    assert_eq!(status["install"]["boot"]["state"], "serving", "{status}");
    assert_eq!(
        status["install"]["public"]["state"], "installed",
        "{status}"
    );
    assert_eq!(
        status["install"]["public"]["role"], "slave_public",
        "{status}"
    );

    // Every node runs its role; the master's started before the agent's.
    let started = |node: &str| -> f64 {
        lab.sh(node, "cat /var/lib/dcos-fixture/started")
            .trim()
            .parse()
            .expect("a start time")
    };
    assert!(
        lab.sh("master", "systemctl is-active dcos-fixture-master")
            .trim()
            == "active"
    );
    assert!(
        lab.sh("public", "systemctl is-active dcos-fixture-slave_public")
            .trim()
            == "active"
    );
    let (m, p) = (started("master"), started("public"));
    assert!(m < p, "master started at {m}, the public agent at {p}");

    // The bootstrap really was larger than half a node's RAM; /tmp on the nodes is the tmpfs.
    let payload: u64 = lab
        .sh("master", "stat -c %s /opt/mesosphere/payload.bin")
        .trim()
        .parse()
        .expect("size");
    let ram_kib: u64 = lab
        .sh("master", "awk '/MemTotal/ {print $2}' /proc/meminfo")
        .trim()
        .parse()
        .expect("meminfo");
    assert!(
        payload > ram_kib * 1024 / 2,
        "{payload} vs RAM {ram_kib} KiB"
    );
    assert_eq!(lab.sh("master", "findmnt -no FSTYPE /tmp").trim(), "tmpfs");

    // The config genconf read on the boot node.
    let config = lab.sh("boot", "cat /root/dcos/genconf/config.yaml");
    let c: serde_json::Value = serde_saphyr::from_str(&config).expect("yaml");
    assert_eq!(c["telemetry_enabled"], "false", "{config}");
    assert_eq!(c["oauth_enabled"], "false", "{config}");
    assert_eq!(c["bootstrap_url"], "http://172.29.69.10:8080", "{config}");
    assert_eq!(c["master_list"], serde_json::json!(["172.29.69.11"]));
    assert_eq!(c["agent_list"], serde_json::json!([]));
    assert_eq!(c["public_agent_list"], serde_json::json!(["172.29.69.12"]));
    assert_eq!(c["resolvers"], serde_json::json!(["172.29.69.1"]));
    // ip-detect, run on a node, prints its private address.
    assert_eq!(
        lab.sh("boot", "sh /root/dcos/genconf/ip-detect").trim(),
        "172.29.69.10"
    );
    // The nodes got that config with the bootstrap.
    let user = lab.sh("master", "cat /opt/mesosphere/etc/user.config.yaml");
    assert_eq!(user, config);

    lab.run(&["down", &f]);
    assert!(lab.leftovers().is_empty(), "{:?}", lab.leftovers());
}
