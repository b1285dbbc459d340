//! Address plans: deterministic, inside their CIDRs, unique, and never colliding across labs.

use std::collections::HashSet;

use dcos_lab::model::{self, Lab, LabSource};
use dcos_lab::plan::{AddressPlan, plan_addresses};
use proptest::prelude::*;

fn lab_named(name: &str, agents: u32) -> Lab {
    let text = format!(
        "name: {name}\nnodes:\n  - name: boot\n    role: boot\n  - name: m\n    role: master\n    count: 3\n  - name: a\n    role: agent-private\n    count: {agents}\n  - name: public\n    role: agent-public\n"
    );
    model::parse(&text, "t.yaml", None, &["debian-12"]).unwrap_or_else(|e| panic!("{e}"))
}

/// Every name, bridge and MAC the plan would create on the host.
fn host_visible(p: &AddressPlan) -> HashSet<String> {
    let mut s = HashSet::new();
    for n in &p.networks {
        s.insert(n.name.clone());
        s.insert(n.bridge.clone());
    }
    for n in &p.nodes {
        s.insert(n.domain.clone());
        for nic in &n.nics {
            s.insert(nic.mac.to_string());
        }
    }
    s
}

#[test]
fn builtin_labs_never_collide() {
    let plans: Vec<_> = model::BUILTIN_LABS
        .iter()
        .map(|(n, _)| {
            let lab =
                model::load(&LabSource::find(n).expect("builtin"), &["debian-12"]).expect("valid");
            (lab.clone(), plan_addresses(&lab))
        })
        .collect();
    for (i, (la, a)) in plans.iter().enumerate() {
        for (lb, b) in plans.iter().skip(i + 1) {
            let common: Vec<_> = host_visible(a)
                .intersection(&host_visible(b))
                .cloned()
                .collect();
            assert!(
                common.is_empty(),
                "{} and {} share {common:?}",
                la.name,
                lb.name
            );
            for k in dcos_lab::model::NetKind::ALL {
                assert!(
                    !la.network(k).cidr.overlaps(lb.network(k).cidr),
                    "{} and {} overlap on {k}",
                    la.name,
                    lb.name
                );
            }
        }
    }
}

#[test]
fn plans_are_deterministic() {
    let a = serde_json::to_string(&plan_addresses(&lab_named("det", 2))).expect("json");
    let b = serde_json::to_string(&plan_addresses(&lab_named("det", 2))).expect("json");
    assert_eq!(a, b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn two_labs_never_share_names_bridges_or_macs(
        a in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        b in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
    ) {
        prop_assume!(a != b);
        let pa = plan_addresses(&lab_named(&a, 2));
        let pb = plan_addresses(&lab_named(&b, 2));
        let common: Vec<_> = host_visible(&pa).intersection(&host_visible(&pb)).cloned().collect();
        prop_assert!(common.is_empty(), "{a} and {b} share {common:?}");
    }

    #[test]
    fn addresses_stay_inside_cidrs_and_are_unique(
        octet in 0u8..=255,
        prefix in 20u8..=27,
        agents in 1u32..=8,
    ) {
        let text = format!(
            "name: p\nnetworks:\n  private:\n    cidr: 10.{octet}.0.0/{prefix}\n  public:\n    cidr: 192.168.{octet}.0/{}\nnodes:\n  - name: boot\n    role: boot\n  - name: m\n    role: master\n  - name: a\n    role: agent-private\n    count: {agents}\n  - name: public\n    role: agent-public\n",
            prefix.max(24)
        );
        let lab = model::parse(&text, "t.yaml", None, &["debian-12"]);
        let Ok(lab) = lab else { return Ok(()); };
        let plan = plan_addresses(&lab);
        let mut seen = HashSet::new();
        for n in &plan.nodes {
            for nic in &n.nics {
                let net = lab.network(nic.net);
                prop_assert!(net.cidr.contains(nic.ipv4));
                prop_assert_ne!(nic.ipv4, net.cidr.network());
                prop_assert_ne!(nic.ipv4, net.cidr.broadcast());
                let gw = plan.network(nic.net).map(|p| p.gateway4);
                prop_assert_ne!(Some(nic.ipv4), gw);
                prop_assert!(seen.insert(nic.ipv4), "duplicate {}", nic.ipv4);
                prop_assert!(seen.len() < 1000);
                if let (Some(ip), Some(p6)) = (nic.ipv6, net.ipv6) {
                    prop_assert!(p6.contains(ip));
                }
            }
        }
    }

    /// The parser and validator never panic, whatever the input.
    #[test]
    fn parser_never_panics(text in "\\PC{0,400}") {
        let _ = model::parse(&text, "fuzz.yaml", None, &["debian-12"]);
    }

    /// Nor on inputs that look like lab files with random values.
    #[test]
    fn validator_never_panics(
        name in "[ -~]{0,40}",
        mem in "[0-9A-Za-z]{0,8}",
        cidr in "[0-9./a-z:]{0,24}",
        count in 0u32..300,
    ) {
        let text = format!(
            "name: \"{}\"\nnetworks:\n  private:\n    cidr: \"{cidr}\"\n  public:\n    ipv6: \"{cidr}\"\nnodes:\n  - name: boot\n    role: boot\n    memory: \"{mem}\"\n  - name: m\n    role: master\n    count: {count}\n",
            name.replace(['"', '\\'], "")
        );
        let _ = model::parse(&text, "fuzz.yaml", None, &["debian-12"]);
    }
}
