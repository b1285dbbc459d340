//! Rendered libvirt XML of the built-in labs, compared with checked-in files under tests/golden/.
//! `DCOS_LAB_BLESS=1 cargo test --test golden` rewrites them on purpose.

mod common;

use dcos_lab::host::AccelDecision;
use dcos_lab::model::{self, Accel, LabSource, NetKind};
use dcos_lab::ops::render::{Target, render};
use dcos_lab::paths::Dirs;

fn dirs() -> Dirs {
    Dirs {
        state: "/var/lib/dcos-lab".into(),
        cache: "/var/cache/dcos-lab".into(),
        shared: None,
    }
}

fn tcg() -> AccelDecision {
    AccelDecision {
        accel: Accel::Tcg,
        reason: "test".into(),
    }
}

#[test]
fn builtin_labs_render_as_the_golden_files() {
    for (name, _) in model::BUILTIN_LABS {
        let lab =
            model::load(&LabSource::find(name).expect("builtin"), &["debian-12"]).expect("valid");
        let dir = common::repo().join("tests/golden").join(name);
        let mut targets = vec![
            (
                "network-private".to_string(),
                Target::Network(NetKind::Private),
            ),
            (
                "network-public".to_string(),
                Target::Network(NetKind::Public),
            ),
            ("pool".to_string(), Target::Pool),
        ];
        for n in &lab.nodes {
            targets.push((format!("domain-{}", n.name), Target::Node(n.name.clone())));
            targets.push((format!("volume-{}", n.name), Target::Volume(n.name.clone())));
        }
        for (file, target) in targets {
            let xml = render(&lab, &tcg(), &dirs(), &target).expect("renders");
            common::assert_golden(&dir.join(format!("{file}.xml")), &xml);
        }
    }
}

#[test]
fn kvm_domains_differ_from_tcg_only_in_accelerator_bits() {
    let lab = model::load(
        &LabSource::find("minimal").expect("builtin"),
        &["debian-12"],
    )
    .expect("valid");
    let kvm = AccelDecision {
        accel: Accel::Kvm,
        reason: "test".into(),
    };
    let t = Target::Node("master".into());
    let a = render(&lab, &tcg(), &dirs(), &t).expect("renders");
    let b = render(&lab, &kvm, &dirs(), &t).expect("renders");
    assert!(a.starts_with("<domain type=\"qemu\">"));
    assert!(b.starts_with("<domain type=\"kvm\">"));
    assert!(a.contains("<tb-cache unit=\"MiB\">128</tb-cache>"));
    assert!(!b.contains("tb-cache"));
    assert!(b.contains("<cpu mode=\"host-passthrough\"/>"));
    assert!(!a.contains("host-passthrough"));
}

#[test]
fn imported_image_boots_its_own_bootloader() {
    let text = model::BUILTIN_LABS[0]
        .1
        .replace("image: debian-12", "image: /srv/images/my-cloud.qcow2");
    let lab = model::parse(&text, "t.yaml", None, &["debian-12"]).expect("valid");
    let xml = render(&lab, &tcg(), &dirs(), &Target::Node("boot".into())).expect("renders");
    assert!(!xml.contains("<kernel>"), "{xml}");
    assert!(xml.contains("<boot dev=\"hd\"/>"), "{xml}");
    let vol = render(&lab, &tcg(), &dirs(), &Target::Volume("boot".into())).expect("renders");
    assert!(
        vol.contains("<path>/srv/images/my-cloud.qcow2</path>"),
        "{vol}"
    );
}

/// A fixed key, so the golden seeds do not change with every run.
const TEST_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdjb2xkZW4ta2V5LWZvci10ZXN0cy1vbmx5LW5vdC1yZWFs dcos-lab golden";

#[test]
fn cloud_init_seeds_render_as_the_golden_files() {
    for name in ["minimal", "standard", "ha"] {
        let lab =
            model::load(&LabSource::find(name).expect("builtin"), &["debian-12"]).expect("valid");
        let plan = dcos_lab::plan::plan_addresses(&lab);
        let dir = common::repo().join("tests/golden").join(name);
        for n in &lab.nodes {
            let seed =
                dcos_lab::render::cloudinit::seed(&lab, &plan, &n.name, TEST_KEY).expect("renders");
            common::assert_golden(
                &dir.join(format!("seed-{}-user-data.yaml", n.name)),
                &seed.user_data,
            );
            common::assert_golden(
                &dir.join(format!("seed-{}-meta-data.yaml", n.name)),
                &seed.meta_data,
            );
            common::assert_golden(
                &dir.join(format!("seed-{}-network-config.yaml", n.name)),
                &seed.network_config,
            );
            common::assert_golden(
                &dir.join(format!("seed-{}-firstboot.sh", n.name)),
                &seed.firstboot,
            );
        }
        let genconf = dcos_lab::render::genconf::config_yaml(&lab, &plan).expect("renders");
        common::assert_golden(&dir.join("genconf-config.yaml"), &genconf);
        common::assert_golden(
            &dir.join("genconf-ip-detect"),
            &dcos_lab::render::genconf::ip_detect(&lab),
        );
    }
}

#[test]
fn hardening_profile_shapes_the_user_data() {
    let text = model::BUILTIN_LABS[0].1.replace(
        "nodes:",
        "hardening:\n  swap: none\n  tmp_size: 2G\n  persistent: true\n  telemetry: true\n  ipv6: false\nnodes:",
    );
    let lab = model::parse(&text, "t.yaml", None, &["debian-12"]).expect("valid");
    // ipv6: false takes IPv6 off the public network as well as out of the guests.
    assert!(lab.networks.public.ipv6.is_none());
    let plan = dcos_lab::plan::plan_addresses(&lab);
    let ud = dcos_lab::render::cloudinit::seed(&lab, &plan, "master", TEST_KEY)
        .expect("renders")
        .user_data;
    assert!(ud.starts_with("#cloud-config\n"));
    assert!(ud.contains("# Swap: none."), "{ud}");
    assert!(ud.contains("size=2048M,mode=1777"), "{ud}");
    assert!(
        ud.contains("echo 'tmpfs /tmp tmpfs size=2048M"),
        "persistent writes fstab: {ud}"
    );
    assert!(ud.contains("disable_ipv6 = 1"), "{ud}");
    assert!(!ud.contains("Telemetry off"), "{ud}");
    // The user-data is valid YAML with the keys cloud-init reads.
    let v: serde_json::Value =
        serde_saphyr::from_str(ud.trim_start_matches("#cloud-config\n")).expect("yaml");
    assert_eq!(v["hostname"], "master");
    assert_eq!(v["write_files"][0]["path"], "/root/.ssh/authorized_keys");
    assert_eq!(v["write_files"][0]["content"], format!("{TEST_KEY}\n"));
}

/// A golden mismatch shows the lines that differ, not two whole documents.
#[test]
fn a_golden_mismatch_prints_a_diff() {
    let d = common::line_diff("a\nb\nc\nd\ne\n", "a\nb\nX\nd\ne\n");
    assert_eq!(d, "@@\n b\n-c\n+X\n d\n");
    assert_eq!(common::line_diff("same\n", "same\n"), "");
}

/// A lab across hosts: on a host other than the first, each lab network is its VLAN on the
/// overlay bridge (no addresses, DHCP or DNS there: those stay on the first host); the first
/// host's networks render as for one host plus the record of the lab's other hosts (how `down`
/// and `status` find them from libvirt alone), and every domain as for one host.
#[test]
fn a_lab_across_hosts_renders_overlay_networks_for_its_other_hosts() {
    let text = "name: span\nhosts:\n  runner2: qemu+ssh://root@runner2/system\nnodes:\n  - {name: boot, role: boot}\n  - {name: master, role: master, host: runner2}\n  - {name: public, role: agent-public, host: runner2}\n";
    let lab = model::parse(text, "span.yaml", None, &["debian-12"]).expect("valid");
    let plan = dcos_lab::plan::plan_addresses(&lab);
    let dir = common::repo().join("tests/golden/span");
    for kind in NetKind::ALL {
        let xml = dcos_lab::render::overlay_network_xml(&lab, &plan, kind).expect("renders");
        common::assert_golden(&dir.join(format!("overlay-network-{kind}.xml")), &xml);
    }
    let one_host = model::parse(
        &text
            .replace("hosts:\n  runner2: qemu+ssh://root@runner2/system\n", "")
            .replace(", host: runner2", ""),
        "span.yaml",
        None,
        &["debian-12"],
    )
    .expect("valid");
    let first = render(&lab, &tcg(), &dirs(), &Target::Network(NetKind::Private)).expect("renders");
    let record = "\">\n      <dcoslab:host name=\"runner2\" uri=\"qemu+ssh://root@runner2/system\"/>\n    </dcoslab:lab>";
    assert!(first.contains(record), "{first}");
    assert_eq!(
        first.replace(record, "\"/>"),
        render(
            &one_host,
            &tcg(),
            &dirs(),
            &Target::Network(NetKind::Private)
        )
        .expect("renders"),
        "the first host's network is the one-host network plus the hosts record"
    );
    let node = Target::Node("master".into());
    assert_eq!(
        render(&lab, &tcg(), &dirs(), &node).expect("renders"),
        render(&one_host, &tcg(), &dirs(), &node).expect("renders"),
        "a domain renders as for one host"
    );
}
