//! libvirt itself validates the rendered XML: every network, pool and domain of every built-in lab
//! is defined (not started) on the real qemu:///system and undefined again, leaving nothing behind.

mod common;

use dcos_lab::driver::Hypervisor;
use dcos_lab::model::{self, Accel, NetKind};
use dcos_lab::paths::Dirs;
use dcos_lab::plan;
use dcos_lab::render::{self, RenderCtx};

#[test]
#[ignore = "system tier: libvirtd, root, real guests (scripts/test.sh runs it)"]
fn rendered_xml_is_accepted_by_libvirt_and_read_back_as_ours() {
    let hv = common::system_libvirt();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs = Dirs {
        state: tmp.path().join("state"),
        cache: tmp.path().join("cache"),
        shared: None,
    };
    for (builtin, text) in model::BUILTIN_LABS {
        for accel in [Accel::Tcg, Accel::Kvm] {
            let name = format!("{}-def-{builtin}-{accel}", common::TEST_PREFIX);
            let text = text.replace(&format!("name: {builtin}"), &format!("name: {name}"));
            let lab = model::parse(&text, "t.yaml", None, &["debian-12"]).expect("valid");
            let addrs = plan::plan_addresses(&lab);
            let ctx = RenderCtx {
                accel,
                dirs: dirs.lab(&lab.name),
                image: dcos_lab::image::boot_image(&dirs, &lab.image),
            };
            let mut guard = common::Cleanup::new(&hv);
            for kind in NetKind::ALL {
                let xml = render::network_xml(&lab, &addrs, kind).expect("render");
                let n = hv
                    .define_network(&xml)
                    .unwrap_or_else(|e| panic!("{}\n{xml}", dcos_lab::error_chain(&e)));
                guard.networks.push(n);
            }
            let pool = hv
                .define_pool(&render::pool_xml(&lab, &ctx.dirs, None).expect("render"))
                .expect("pool");
            guard.pools.push(pool);
            for node in &lab.nodes {
                let xml = render::domain_xml(&lab, &addrs, &node.name, &ctx).expect("render");
                let d = hv
                    .define_domain(&xml)
                    .unwrap_or_else(|e| panic!("{}\n{xml}", dcos_lab::error_chain(&e)));
                guard.domains.push(d);
            }

            // libvirt hands our metadata back: this is how status and down find a lab.
            let doms: Vec<_> = hv
                .owned_domains()
                .expect("list")
                .into_iter()
                .filter(|d| d.tag.lab == name)
                .collect();
            assert_eq!(doms.len(), lab.nodes.len());
            for d in &doms {
                let node = lab
                    .node(d.tag.node.as_deref().expect("node tag"))
                    .expect("known node");
                assert_eq!(d.tag.role.as_deref(), Some(node.role.as_str()));
                assert_eq!(d.tag.accel.as_deref(), Some(accel.to_string().as_str()));
                assert!(d.tag.spec.is_some());
            }
            let nets: Vec<_> = hv
                .owned_networks()
                .expect("list")
                .into_iter()
                .filter(|n| n.tag.lab == name)
                .collect();
            assert_eq!(nets.len(), 2);

            drop(guard);
            assert!(
                hv.owned_domains()
                    .expect("list")
                    .iter()
                    .all(|d| d.tag.lab != name),
                "domains left"
            );
            assert!(
                hv.owned_networks()
                    .expect("list")
                    .iter()
                    .all(|n| n.tag.lab != name),
                "networks left"
            );
            assert!(
                hv.pool(&dcos_lab::names::pool_name(&name))
                    .expect("pool")
                    .is_none(),
                "pool left"
            );
        }
    }
    // Nothing was written to the state directory either: define does not create files.
    assert!(!tmp.path().join("state").exists());
}

#[test]
#[ignore = "system tier: libvirtd, root, real guests (scripts/test.sh runs it)"]
fn a_started_network_brings_up_its_bridge_and_removal_takes_it_away() {
    let hv = common::system_libvirt();
    let name = format!("{}-netstart", common::TEST_PREFIX);
    let text = model::BUILTIN_LABS[0]
        .1
        .replace("name: minimal", &format!("name: {name}"));
    let lab = model::parse(&text, "t.yaml", None, &["debian-12"]).expect("valid");
    let addrs = plan::plan_addresses(&lab);
    let mut guard = common::Cleanup::new(&hv);
    let xml = render::network_xml(&lab, &addrs, NetKind::Private).expect("render");
    guard
        .networks
        .push(hv.define_network(&xml).expect("define"));
    hv.start_network(&guard.networks[0]).expect("start");
    let bridge = &addrs.network(NetKind::Private).expect("private").bridge;
    assert!(
        std::path::Path::new("/sys/class/net").join(bridge).exists(),
        "bridge {bridge} is up"
    );
    // Starting again is a no-op.
    hv.start_network(&guard.networks[0]).expect("start again");
    drop(guard);
    assert!(
        !std::path::Path::new("/sys/class/net").join(bridge).exists(),
        "bridge {bridge} removed"
    );
}

/// The memory a host offers its labs (what `placement: auto` spreads by), as libvirt reports it,
/// is the kernel's MemAvailable within what moved between the two readings.
#[test]
#[ignore = "system tier: libvirtd, root, real guests (scripts/test.sh runs it)"]
fn free_memory_is_what_the_kernel_calls_available() {
    let hv = common::system_libvirt();
    let available = || -> u64 {
        let m = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("MemAvailable")
            * 1024
    };
    let before = available();
    let free = hv.free_memory().expect("free memory");
    let after = available();
    let (lo, hi) = (before.min(after), before.max(after));
    // MemAvailable also counts part of the reclaimable slab; libvirt's free + buffers + cached
    // does not: allow 10 % of it.
    assert!(
        free <= hi + hi / 10 && free + lo / 10 >= lo,
        "libvirt says {free} bytes, the kernel {lo}..{hi}"
    );
}

/// A node's entries go into a running network and out again through libvirt's network update:
/// the running network and its definition both hold them, dnsmasq is given them (its hosts
/// files) without a restart (same dnsmasq process, same bridge), and the network reads back as
/// the lab file renders it, node for node.
#[test]
#[ignore = "system tier: libvirtd, root, real guests (scripts/test.sh runs it)"]
fn a_running_network_takes_and_gives_up_a_nodes_entries_without_a_restart() {
    let hv = common::system_libvirt();
    let name = format!("{}-netupd", common::TEST_PREFIX);
    // The lab as made (minimal: one public agent), then with a second public agent. (A
    // network's first DHCP host, or its last, turns its DHCP on or off, for which libvirt
    // restarts dnsmasq; every lab network has a node before one is added.)
    let text = format!(
        "{}  - name: public2\n    role: agent-public\n    memory: 1G\n    networks: [private, public]\n",
        model::BUILTIN_LABS[0]
            .1
            .replace("name: minimal", &format!("name: {name}"))
    );
    let lab = model::parse(&text, "t.yaml", None, &["debian-12"]).expect("valid");
    let mut fewer = lab.clone();
    fewer.nodes.retain(|n| n.name != "public2");
    let addrs = plan::plan_addresses(&lab);
    let mut guard = common::Cleanup::new(&hv);
    let xml =
        render::network_xml(&fewer, &plan::plan_addresses(&fewer), NetKind::Public).expect("xml");
    guard
        .networks
        .push(hv.define_network(&xml).expect("define"));
    let net = guard.networks[0].clone();
    hv.start_network(&net).expect("start");
    let before = hv.network_entries(&net).expect("entries");
    assert_eq!(before.len(), 4, "the public agent's: {before:?}");
    let dnsmasq_pid = || {
        std::fs::read_to_string(format!("/run/libvirt/network/{net}.pid"))
            .expect("dnsmasq pid file")
            .trim()
            .to_string()
    };
    let bridge = &addrs.network(NetKind::Public).expect("public").bridge;
    let ifindex =
        || std::fs::read_to_string(format!("/sys/class/net/{bridge}/ifindex")).expect("bridge");
    let (pid, index) = (dnsmasq_pid(), ifindex());

    let entries = addrs.entries(NetKind::Public, "public2");
    assert_eq!(entries.len(), 4, "IPv4 and IPv6 DHCP hosts, two DNS hosts");
    for e in &entries {
        hv.update_network(&net, e, true)
            .unwrap_or_else(|err| panic!("add {e:?}: {}", dcos_lab::error_chain(&err)));
    }
    let sorted = |mut v: Vec<dcos_lab::plan::NetEntry>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(hv.network_entries(&net).expect("entries")),
        sorted([before.clone(), entries.clone()].concat())
    );
    let conn = virt::connect::Connect::open(Some("qemu:///system")).expect("libvirt");
    let persistent = conn
        .lookup_network_by_name(&net)
        .expect("network")
        .xml_desc(virt::sys::VIR_NETWORK_XML_INACTIVE)
        .expect("xml");
    for e in &entries {
        let (dcos_lab::plan::NetEntry::Dhcp { address, .. }
        | dcos_lab::plan::NetEntry::Dns { address, .. }) = e;
        assert!(
            persistent.contains(address.as_str()),
            "{address} in\n{persistent}"
        );
    }
    let files = |ext: &str| {
        std::fs::read_to_string(format!("/var/lib/libvirt/dnsmasq/{net}.{ext}")).unwrap_or_default()
    };
    let mac = addrs
        .node("public2")
        .and_then(|n| n.nic(NetKind::Public))
        .map(|n| n.mac.to_string())
        .expect("mac");
    assert!(files("hostsfile").contains(&mac), "{}", files("hostsfile"));
    assert!(
        files("addnhosts").contains(&format!("public2.{name}.dcos-lab")),
        "{}",
        files("addnhosts")
    );
    // The network now reads back as the lab with the node renders it.
    let want = render::network_xml(&lab, &addrs, NetKind::Public).expect("xml");
    let tag = hv
        .owned_networks()
        .expect("list")
        .into_iter()
        .find(|n| n.name == net)
        .and_then(|n| n.tag.spec)
        .expect("spec");
    assert!(want.contains(&format!("spec=\"{tag}\"")));

    for e in &entries {
        hv.update_network(&net, e, false)
            .unwrap_or_else(|err| panic!("delete {e:?}: {}", dcos_lab::error_chain(&err)));
    }
    assert_eq!(hv.network_entries(&net).expect("entries"), before);
    assert!(!files("hostsfile").contains(&mac));
    assert_eq!(
        (dnsmasq_pid(), ifindex()),
        (pid, index),
        "dnsmasq and the bridge were not restarted"
    );
}
