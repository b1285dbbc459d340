//! The real binary: exit codes, JSON output, help on every command.

use assert_cmd::Command;

fn cmd() -> Command {
    let mut c = Command::cargo_bin("dcos-lab").expect("binary");
    // Never touch a real state directory from these tests.
    c.env("DCOS_LAB_STATE_DIR", "/nonexistent/dcos-lab-test-state")
        .env("DCOS_LAB_CACHE_DIR", "/nonexistent/dcos-lab-test-cache");
    c
}

/// `plan LAB --json --offline`, which must succeed, as JSON.
fn offline_plan(lab: &str) -> serde_json::Value {
    let out = cmd()
        .args(["plan", lab, "--json", "--offline"])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

#[test]
fn plan_json_lists_networks_volumes_domains_in_creation_order() {
    let v = offline_plan("minimal");
    assert_eq!(v["lab"], "minimal");
    let actions = v["actions"].as_array().expect("actions");
    let kinds: Vec<&str> = actions
        .iter()
        .map(|a| a["action"].as_str().expect("action"))
        .collect();
    let first = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k} in {kinds:?}"))
    };
    let last = |k: &str| {
        kinds
            .iter()
            .rposition(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    assert!(last("define_network") < first("create_disk"), "{kinds:?}");
    assert!(last("create_disk") < first("define_domain"), "{kinds:?}");
    assert!(last("define_domain") < first("start_domain"), "{kinds:?}");
    assert!(
        actions.iter().all(|a| a.get("host").is_none()) && v.get("placement").is_none(),
        "a lab on one host plans as it always has: {v}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "define_network").count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == "create_disk").count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == "define_domain").count(), 3);
    let nets: Vec<&str> = actions
        .iter()
        .filter(|a| a["action"] == "define_network")
        .map(|a| a["network"].as_str().expect("name"))
        .collect();
    assert_eq!(
        nets,
        ["dcos-lab-minimal-private", "dcos-lab-minimal-public"]
    );
    // Addresses are part of the plan.
    let nodes = v["addresses"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    assert_eq!(
        v["accel"]["accel"]
            .as_str()
            .map(|s| s == "kvm" || s == "tcg"),
        Some(true)
    );
}

#[test]
fn plan_accel_override_is_reported() {
    let out = cmd()
        .args(["plan", "minimal", "--json", "--offline", "--accel", "kvm"])
        .output()
        .expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["accel"]["accel"], "kvm");
    assert_eq!(v["accel"]["reason"], "forced: kvm");
}

#[test]
fn bad_lab_file_exits_2_naming_file_and_field() {
    let out = cmd()
        .args(["plan", "tests/bad-labs/memory-no-unit.yaml", "--offline"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tests/bad-labs/memory-no-unit.yaml:5:13: nodes[0].memory"),
        "{err}"
    );
    assert!(err.contains("fix: "), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_lab_and_unknown_node_exit_2() {
    let out = cmd()
        .args(["plan", "nosuchlab", "--offline"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let out = cmd()
        .args(["render", "minimal", "--node", "nosuchnode"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("node \"nosuchnode\" is not in the lab"));
}

#[test]
fn bad_arguments_exit_2() {
    let out = cmd().args(["plan"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let out = cmd().args(["render", "minimal"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn render_prints_domain_and_network_xml() {
    let out = cmd()
        .args(["render", "minimal", "--node", "master", "--accel", "tcg"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(xml.starts_with("<domain type=\"qemu\">"), "{xml}");
    assert!(xml.contains("<name>dcos-lab-minimal-master</name>"));
    assert!(xml.contains("/nonexistent/dcos-lab-test-state/labs/minimal/disks/master.qcow2"));
    let out = cmd()
        .args(["render", "minimal", "--network", "private"])
        .output()
        .expect("runs");
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(xml.starts_with("<network"), "{xml}");
    assert!(
        !xml.contains("<forward"),
        "private network must be isolated: {xml}"
    );
}

/// clap's own consistency checks on the whole command-line definition.
#[test]
fn the_command_line_definition_is_consistent() {
    use clap::CommandFactory;
    dcos_lab::cli::Cli::command().debug_assert();
}

/// `--help` works for every command and subcommand clap knows of (the list comes from the
/// definition itself, so a new command is covered without touching this test).
#[test]
fn every_command_has_help() {
    use clap::CommandFactory;
    fn paths(c: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(prefix.clone());
        for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut p = prefix.clone();
            p.push(sub.get_name().to_string());
            paths(sub, p, out);
        }
    }
    let mut all = Vec::new();
    paths(&dcos_lab::cli::Cli::command(), Vec::new(), &mut all);
    assert!(all.len() > 20, "{all:?}");
    for sub in all {
        let mut args = sub.clone();
        args.push("--help".into());
        let out = cmd().args(&args).output().expect("runs");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: dcos-lab"), "{args:?}: {text}");
        if let Some(last) = sub.last() {
            assert!(text.contains(last.as_str()), "{args:?}: {text}");
        }
    }
}

/// A `dcos.config` key the DC/OS installer does not know is refused when the lab file is loaded:
/// exit 2, the key's line and the closest real name, and nothing made on the host.
#[test]
fn unknown_genconf_key_is_refused_before_anything_is_created() {
    let state = tempfile::tempdir().expect("state dir");
    let out = cmd()
        .env("DCOS_LAB_STATE_DIR", state.path())
        .env("DCOS_LAB_URI", "test:///default")
        .args(["up", "tests/bad-labs/dcos-config-unknown-key.yaml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dcos-config-unknown-key.yaml:10:5: dcos.config.telemetry_enable")
            && err.contains("did you mean `telemetry_enabled`?"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(state.path()).expect("state dir").count(),
        0,
        "nothing written"
    );
}

/// Rendering makes nothing: a lab that was never brought up has no key, and `render
/// cloud-init` says to pass one instead of making the lab's key on disk.
#[test]
fn render_cloud_init_makes_no_key() {
    let state = tempfile::tempdir().expect("state dir");
    let out = cmd()
        .env("DCOS_LAB_STATE_DIR", state.path())
        .args(["render", "cloud-init", "minimal", "master"])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--ssh-key"), "{err}");
    assert!(
        std::fs::read_dir(state.path())
            .expect("dir")
            .next()
            .is_none(),
        "render wrote into the state directory"
    );
    let key = state.path().join("key.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample test\n").expect("key");
    let out = cmd()
        .env("DCOS_LAB_STATE_DIR", state.path())
        .args(["render", "cloud-init", "minimal", "master", "--ssh-key"])
        .arg(&key)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("AAAAIExample"));
}

/// A lab across hosts: `plan` shows each node's host and each action's; `up` names a host it
/// cannot reach, with exit 2, and makes nothing.
#[test]
fn a_lab_across_hosts_is_planned_per_host_and_up_refuses_it() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("span.yaml");
    std::fs::write(
        &file,
        "name: span\nhosts:\n  runner2: qemu+ssh://root@runner2.invalid/system\nnodes:\n  - {name: boot, role: boot}\n  - {name: master, role: master, host: runner2}\n  - {name: public, role: agent-public}\n",
    )
    .expect("lab file");
    let f = file.to_str().expect("utf-8");
    let v = offline_plan(f);
    // (node, host) of each item of a JSON list.
    let pairs = |items: Vec<&serde_json::Value>| -> Vec<(String, String)> {
        items
            .iter()
            .map(|n| {
                (
                    n["node"].as_str().expect("node").to_string(),
                    n["host"].as_str().expect("host").to_string(),
                )
            })
            .collect()
    };
    let hosts = pairs(
        v["placement"]["nodes"]
            .as_array()
            .expect("placement")
            .iter()
            .collect(),
    );
    assert_eq!(
        hosts,
        [
            ("boot", "local"),
            ("master", "runner2"),
            ("public", "local")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let domain_hosts = pairs(
        v["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .filter(|a| a["action"] == "define_domain")
            .collect(),
    );
    assert_eq!(
        domain_hosts,
        [
            ("boot", "local"),
            ("public", "local"),
            ("master", "runner2")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    let state = tempfile::tempdir().expect("state dir");
    let out = cmd()
        .env("DCOS_LAB_STATE_DIR", state.path())
        .env("DCOS_LAB_URI", "test:///default")
        .args(["up", f])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // The host cannot be reached (its name never resolves): named, with the fix, before anything.
    assert!(
        err.contains(
            "hosts.runner2: cannot connect to libvirt at qemu+ssh://root@runner2.invalid/system"
        ) && err.contains("fix: start libvirtd there"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(state.path()).expect("state").count(),
        0,
        "nothing written"
    );
}

/// The metadata of `path` a host file keeps when nothing touches it: owner, group, mode.
fn ownership(path: &std::path::Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).expect("metadata");
    (m.uid(), m.gid(), m.mode())
}

/// `image import` of an image that names other host files (a qcow2 backed by a root-only file,
/// one with an external data file, a vmdk descriptor with a host file as its extent) is refused
/// with exit 2 naming what it points at: the import runs as root and would copy that file into
/// the image. Nothing lands in the cache, and the host file keeps its owner, mode and bytes.
/// A self-contained qcow2 and a raw file beside them import.
#[test]
fn image_import_refuses_an_image_that_names_host_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("dltest-import-")
        .tempdir()
        .expect("dir");
    let d = dir.path();
    let secret = d.join("secret");
    std::fs::write(&secret, b"the host's own bytes\n").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let state = || {
        let bytes = std::fs::read(&secret).expect("read");
        (
            ownership(&secret),
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    };
    let before = state();
    let qemu_img = |args: &[&str]| {
        let st = std::process::Command::new("qemu-img")
            .args(args)
            .current_dir(d)
            .status()
            .expect("qemu-img runs (scripts/test.sh installs it)");
        assert!(st.success(), "qemu-img {args:?}");
    };
    let s = secret.to_str().expect("utf8");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "raw",
        "-b",
        s,
        "backed.qcow2",
        "1M",
    ]);
    // (qemu-img writes the data file it is given: another file of the host's.)
    let data_file = d.join("data.raw").display().to_string();
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        &format!("data_file={data_file},data_file_raw=on"),
        "data.qcow2",
        "1M",
    ]);
    std::fs::write(
        d.join("extent.vmdk"),
        format!("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 1 FLAT \"{s}\" 0\n"),
    )
    .expect("vmdk");
    let cache = d.join("cache");
    let import = |file: &str, name: &str| {
        Command::cargo_bin("dcos-lab")
            .expect("binary")
            .env("DCOS_LAB_STATE_DIR", d.join("state"))
            .env("DCOS_LAB_CACHE_DIR", &cache)
            .args([
                "image",
                "import",
                &d.join(file).display().to_string(),
                "--name",
                name,
            ])
            .output()
            .expect("runs")
    };
    for (file, says) in [
        ("backed.qcow2", s.to_string()),
        ("data.qcow2", data_file.clone()),
        ("extent.vmdk", "vmdk".to_string()),
    ] {
        let out = import(file, "dltest-hostile");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert!(
            err.contains(file) && err.contains(&says) && err.contains("fix:"),
            "{file}: {err}"
        );
        assert!(
            !cache.join("images/imported-dltest-hostile").exists(),
            "{file}: an image was imported"
        );
        assert_eq!(state(), before, "{file}: the host file was touched");
    }
    qemu_img(&["create", "-q", "-f", "qcow2", "alone.qcow2", "1M"]);
    std::fs::write(d.join("plain.img"), vec![0u8; 1 << 20]).expect("raw");
    for (file, name) in [("alone.qcow2", "dltest-alone"), ("plain.img", "dltest-raw")] {
        let out = import(file, name);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            cache
                .join(format!("images/imported-{name}/disk.qcow2"))
                .is_file()
        );
    }
}
