//! Labs across hosts, against real libvirt daemons: two test hosts on this machine
//! (`scripts/nshost.sh`: each a network and mount namespace with its own libvirtd and Open
//! vSwitch, an overlay of VXLAN tunnels between them).

mod common;

use std::process::Command;

use dcos_lab::driver::{Hypervisor, Libvirt};

/// Two test hosts, removed (every daemon stopped by its PID) when dropped, even after a panic.
struct Hosts {
    names: [String; 2],
}

impl Hosts {
    fn up() -> Hosts {
        let tag = std::process::id() % 100_000;
        let names = [format!("a{tag}"), format!("b{tag}")];
        let out = Command::new("bash")
            .arg(common::repo().join("scripts/nshost.sh"))
            .arg("up")
            .args(&names)
            .output()
            .expect("nshost.sh runs");
        let hosts = Hosts { names };
        assert!(
            out.status.success(),
            "nshost.sh up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        hosts
    }

    fn uri(&self, i: usize) -> String {
        format!(
            "qemu+unix:///system?socket=/tmp/dltest-hosts/{}/run/libvirt/libvirt-sock",
            self.names[i]
        )
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(common::repo().join("scripts/nshost.sh"))
            .arg("down")
            .args(&self.names)
            .status();
    }
}

#[test]
#[ignore = "system tier: root, libvirtd and Open vSwitch in namespaces (scripts/test.sh runs it)"]
fn a_lab_across_two_hosts_is_placed_by_memory_comes_up_snapshots_reverts_and_goes() {
    let _vms = common::vm_lock();
    let hosts = Hosts::up();
    let (local, remote) = (hosts.uri(0), hosts.uri(1));
    for uri in [&local, &remote] {
        let hv = Libvirt::open(Some(uri)).expect("each host's libvirt answers");
        assert!(hv.free_memory().expect("free memory") > 1 << 30);
    }

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("dltest-span.yaml");
    std::fs::write(
        &file,
        format!(
            "name: dltest-span\nhosts:\n  far: \"{remote}\"\n  gone: \"qemu+unix:///system?socket={}/none\"\nplacement: auto\nnodes:\n  - {{name: boot, role: boot, memory: 1G, host: local}}\n  - {{name: master, role: master, memory: 2G}}\n  - {{name: a, role: agent-private, count: 2, memory: 2G, host: far}}\n  - {{name: public, role: agent-public, memory: 1G}}\n",
            dir.path().display()
        ),
    )
    .expect("lab file");
    let f = file.to_str().expect("utf-8");
    let state = tempfile::tempdir().expect("state");
    let dcos_lab = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dcos-lab"));
        c.env("DCOS_LAB_URI", &local)
            .env("DCOS_LAB_STATE_DIR", state.path());
        c
    };
    // Runs dcos-lab, checks its exit code, returns (stdout, stderr).
    let run = |args: &[&str], code: i32| -> (Vec<u8>, String) {
        let out = dcos_lab().args(args).output().expect("dcos-lab runs");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        (out.stdout, err)
    };

    // A host that does not answer is named; the plan goes on for the others.
    let (_, err) = run(&["plan", f, "--json"], 0);
    assert!(err.contains("host gone: cannot connect"), "{err}");
    // `up` names it too, with the fix, and exits 2 before making anything anywhere.
    let (_, err) = run(&["up", f], 2);
    assert!(
        err.contains("hosts.gone: cannot connect to libvirt")
            && err.contains("fix: start libvirtd there"),
        "{err}"
    );
    // Without it, every host's free memory is read and placement: auto spreads by it.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .expect("read")
            .lines()
            .filter(|l| !l.contains("gone:"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .expect("rewrite");
    let (out, _) = run(&["plan", f, "--json"], 0);
    let v: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    assert_eq!(v["observed"], true, "{v}");
    assert_eq!(v["placement"]["memory_known"], true, "{v}");
    let host_of = |node: &str| -> String {
        v["placement"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["node"] == node)
            .and_then(|n| n["host"].as_str())
            .expect("placed")
            .to_string()
    };
    assert_eq!(host_of("boot"), "local");
    assert_eq!((host_of("a1"), host_of("a2")), ("far".into(), "far".into()));
    // Both hosts have the same memory (one machine): master (2G, the larger) goes to the one with
    // more left, local (1G used against far's 4G), then public to the next.
    assert_eq!(host_of("master"), "local", "{v}");
    let define_net_on_far: Vec<&serde_json::Value> = v["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["host"] == "far" && a["action"] == "define_network")
        .collect();
    assert!(
        define_net_on_far
            .iter()
            .all(|a| a["bridge"] == "dcoslab0" && a["vlan"].as_u64().is_some()),
        "{define_net_on_far:?}"
    );

    // The network a host other than the first gets: libvirt there takes it and starts it on the
    // host's overlay bridge.
    let lab = dcos_lab::model::parse(
        &std::fs::read_to_string(&file).expect("read"),
        f,
        None,
        &["debian-12"],
    )
    .expect("valid");
    let plan = dcos_lab::plan::plan_addresses(&lab);
    let far = Libvirt::open(Some(&remote)).expect("far");
    let xml = dcos_lab::render::overlay_network_xml(&lab, &plan, dcos_lab::model::NetKind::Private)
        .expect("render");
    let name = far
        .define_network(&xml)
        .expect("libvirt takes the overlay network");
    let started = far.start_network(&name);
    let owned = far.owned_networks().expect("owned");
    far.remove_network(&name).expect("removed");
    started.expect("it starts on dcoslab0");
    assert!(
        owned
            .iter()
            .any(|n| n.name == name && n.tag.lab == "dltest-span")
    );

    // Disks and seeds reach a host through libvirt alone: a file streamed into a volume of a
    // pool there is on that host's disk byte for byte, and streams back the same; an upload that
    // cannot start (the name is taken) changes nothing, and one whose file is missing makes no
    // volume.
    let pool_dir = tempfile::Builder::new()
        .prefix("dltest-pool-")
        .tempdir()
        .expect("pool dir");
    let pool_xml = format!(
        "<pool type='dir'><name>dltest-span-upload</name><target><path>{}</path></target></pool>",
        pool_dir.path().join("disks").display()
    );
    let pool = far.define_pool(&pool_xml).expect("pool defined");
    // (A panic on the way leaves the pool to the host's removal: its definitions go with it.)
    let uploaded = {
        far.start_pool(&pool, true).expect("pool started");
        let data: Vec<u8> = (0..(3u32 << 20))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let src = dir.path().join("seed.img");
        std::fs::write(&src, &data).expect("source");
        let vol_xml = format!(
            "<volume><name>seed.img</name><capacity>{}</capacity><target><format type='raw'/></target></volume>",
            data.len()
        );
        let path = far.upload_volume(&pool, &vol_xml, &src).expect("uploaded");
        assert_eq!(std::fs::read(&path).expect("on the host's disk"), data);
        let back = dir.path().join("back.img");
        far.download_volume(&pool, "seed.img", &back)
            .expect("downloaded");
        assert_eq!(std::fs::read(&back).expect("back"), data);
        std::fs::write(&src, b"other").expect("source");
        assert!(
            far.upload_volume(&pool, &vol_xml, &src).is_err(),
            "name taken"
        );
        assert_eq!(std::fs::read(&path).expect("still there"), data);
        let gone_xml = vol_xml.replace("seed.img", "gone.img");
        assert!(
            far.upload_volume(&pool, &gone_xml, &dir.path().join("none"))
                .is_err()
        );
        far.pool(&pool).expect("pool").expect("exists").volumes
    };
    far.remove_pool(&pool).expect("pool removed");
    assert_eq!(uploaded, ["seed.img"]);

    // A minimal lab across the two hosts: the boot node on the first, master and public agent on
    // the other; the boot node is on the public network too, so that each network has a node on
    // each host. dcos-lab runs on the first host (inside its namespaces, where its bridges and
    // its Open vSwitch are) and reaches the other host's guests through the overlay.
    let span = dir.path().join("dltest-span2.yaml");
    std::fs::write(
        &span,
        format!(
            "name: dltest-span2\naccel: tcg\nnetworks:\n  private:\n    cidr: 172.29.71.0/24\n  public:\n    mode: isolated\n    cidr: 172.28.71.0/24\n    ipv6: \"fd00:dc05:47::/64\"\nhosts:\n  far: \"{remote}\"\nnodes:\n  - {{name: boot, role: boot, memory: 512M, networks: [private, public]}}\n  - {{name: master, role: master, memory: 1G, host: far}}\n  - {{name: public, role: agent-public, memory: 1G, host: far}}\n"
        ),
    )
    .expect("lab file");
    let s = span.to_str().expect("utf-8");
    // The image is built (or found in the cache) here: a test host has no route to the mirror.
    let built = Command::new(env!("CARGO_BIN_EXE_dcos-lab"))
        .args(["image", "build", "debian-12"])
        .env_remove("DCOS_LAB_CACHE_DIR")
        .output()
        .expect("image build");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let first = hosts.names[0].clone();
    let on_first = |args: &[&str]| -> std::process::Output {
        let t = std::time::Instant::now();
        let out = Command::new("bash")
            .arg(common::repo().join("scripts/nshost.sh"))
            .args(["run", &first, "env", "-u", "DCOS_LAB_CACHE_DIR"])
            .arg(format!("DCOS_LAB_STATE_DIR={}", state.path().display()))
            .arg(format!("DCOS_LAB_URI={local}"))
            .arg("DCOS_LAB_WAIT=300")
            .arg(env!("CARGO_BIN_EXE_dcos-lab"))
            .args(args)
            .output()
            .expect("dcos-lab runs on the first host");
        eprintln!(
            "[multihost] dcos-lab {} ({:.1} s)",
            args.join(" "),
            t.elapsed().as_secs_f64()
        );
        assert!(
            out.status.success(),
            "dcos-lab {args:?} on the first host: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let sh = |node: &str, cmd: &str| -> String {
        String::from_utf8_lossy(&on_first(&["ssh", s, node, "--", cmd]).stdout).into_owned()
    };
    on_first(&["up", s]);
    let v: serde_json::Value =
        serde_json::from_slice(&on_first(&["status", "dltest-span2", "--json"]).stdout)
            .expect("status JSON");
    let hosts_of: Vec<(String, String, String)> = v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or("").to_string(),
                n["host"].as_str().unwrap_or("").to_string(),
                n["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        hosts_of,
        [
            ("boot".into(), "local".into(), "active".into()),
            ("master".into(), "far".into(), "active".into()),
            ("public".into(), "far".into(), "active".into())
        ],
        "{v}"
    );
    // Each domain is where the plan put it, as each host's libvirt says.
    let far = Libvirt::open(Some(&remote)).expect("far");
    let near = Libvirt::open(Some(&local)).expect("first host");
    let names_on = |hv: &Libvirt| -> Vec<String> {
        let mut n: Vec<String> = hv
            .owned_domains()
            .expect("domains")
            .into_iter()
            .filter(|d| d.tag.lab == "dltest-span2")
            .filter_map(|d| d.tag.node)
            .collect();
        n.sort();
        n
    };
    assert_eq!(names_on(&near), ["boot"]);
    assert_eq!(names_on(&far), ["master", "public"]);
    // Node to node across hosts on the private network, both ways, and from the other host to
    // the first host's address on the public network (v4 and v6: DNS there answers on TCP).
    let tcp = |node: &str, addr: &str, port: u16| {
        let out = sh(
            node,
            &format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{addr}/{port}' && echo open"),
        );
        assert!(out.contains("open"), "{node} -> {addr}:{port}: {out}");
    };
    tcp("boot", "172.29.71.11", 22);
    tcp("master", "172.29.71.10", 22);
    // Node to node across hosts on the public network, both ways, v4 and v6.
    tcp("boot", "172.28.71.12", 22);
    tcp("public", "172.28.71.10", 22);
    tcp("boot", "fd00:dc05:47::c", 22);
    tcp("public", "fd00:dc05:47::a", 22);
    tcp("public", "172.28.71.1", 53);
    tcp("public", "fd00:dc05:47::1", 53);
    // Full-size frames cross too (the underlay carries VXLAN's 50 bytes more): 1 MB from the
    // far host to dcos-lab over SSH.
    let zeros = sh("master", "head -c 1000000 /dev/zero | tr '\\0' z");
    assert_eq!(zeros.len(), 1_000_000);
    let out = on_first(&["verify", s, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
    let failed = common::failed_checks(&v);
    assert!(failed.is_empty(), "{failed:#?}");

    // One snapshot across both hosts, a change on each, a revert: both changes are gone and
    // every node runs again.
    on_first(&["snapshot", s, "s1"]);
    sh("boot", "touch /root/after-s1");
    sh("master", "touch /root/after-s1");
    on_first(&["revert", s, "s1"]);
    for node in ["boot", "master", "public"] {
        let out = sh(node, "ls /root/after-s1 2>/dev/null || echo absent");
        assert!(out.contains("absent"), "{node}: {out}");
    }

    // down removes everything on both hosts: domains, networks, pools, the overlay ports.
    let out = on_first(&["down", "dltest-span2"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("on far"), "{said}");
    for hv in [&near, &far] {
        let left: Vec<String> = hv
            .owned_domains()
            .expect("domains")
            .into_iter()
            .map(|d| format!("{} ({:?})", d.name, d.state))
            .collect();
        assert!(
            left.is_empty(),
            "domains left: {left:?}; down said:\n{said}"
        );
        assert!(hv.owned_networks().expect("networks").is_empty());
        assert!(hv.owned_pools().expect("pools").is_empty());
    }
    let ports = Command::new("bash")
        .arg(common::repo().join("scripts/nshost.sh"))
        .args(["run", &first, "ovs-vsctl", "list-ports", "dcoslab0"])
        .output()
        .expect("ovs-vsctl");
    let ports = String::from_utf8_lossy(&ports.stdout);
    assert!(
        ports.lines().all(|p| p.starts_with("vx-")),
        "overlay ports left: {ports}"
    );
    let names = hosts.names.clone();
    drop(hosts);
    let links = Command::new("ip")
        .args(["-br", "link"])
        .output()
        .expect("ip");
    let links = String::from_utf8_lossy(&links.stdout);
    for n in &names {
        assert!(!links.contains(&format!("dltest-{n}")), "{links}");
        assert!(!std::path::Path::new("/tmp/dltest-hosts").join(n).exists());
    }
}
