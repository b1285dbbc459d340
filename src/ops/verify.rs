//! `verify`: named checks inside every node over SSH (hardening, IPv6, isolation, telemetry), each
//! with expected and actual values; JUnit XML for CI [SSH I/O in `run`; the checks are pure].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::model::{ByteSize, Hardening, Lab, NetKind};
use crate::plan::AddressPlan;

/// One check on one node (or on the lab, `node` = "lab").
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    pub node: String,
    pub name: String,
    pub expected: String,
    pub actual: String,
    pub passed: bool,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub lab: String,
    pub checks: Vec<Check>,
}

impl VerifyReport {
    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }
}

/// What verify requires of a node: the lab's sizes where it sets them, the cloud path's
/// defaults where it turned them off. Turning hardening off does not make a lab pass.
pub fn required(h: &Hardening) -> Hardening {
    let d = Hardening::default();
    Hardening {
        swap: h.swap.or(d.swap),
        tmp_size: h.tmp_size.or(d.tmp_size),
        persistent: h.persistent,
        telemetry: false,
        ipv6: true,
    }
}

/// The shell script that gathers a node's facts as `key=value` lines. Sends no packet beyond the
/// lab: reachability is tested with pings to the host and to other nodes only.
pub fn facts_script(ping6_targets: &[String], public_mac: Option<&str>) -> String {
    let mut s = String::from(
        r#"echo "swap_bytes=$(swapon --show=SIZE --bytes --noheadings 2>/dev/null | awk '{s+=$1} END {print s+0}')"
echo "tmp_fstype=$(findmnt -no FSTYPE /tmp 2>/dev/null)"
echo "tmp_bytes=$(findmnt -bno SIZE /tmp 2>/dev/null)"
echo "ipv6_disabled=$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null)"
echo "route_outside=$(ip -4 route get 192.0.2.1 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -1)"
echo "private_dev_routes=$(ip -4 route show default 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | tr '\n' ' ')"
phone=""
for u in apt-daily.timer apt-daily-upgrade.timer systemd-timesyncd.service popularity-contest.timer chrony.service ntp.service ntpsec.service; do
  [ "$(systemctl is-active "$u" 2>/dev/null)" = active ] && phone="$phone $u"
done
echo "phone_home=${phone# }"
echo "telemetry_marker=$(sed -n 's/^telemetry=//p' /etc/dcos-lab/hardening 2>/dev/null)"
echo "dcos_telemetry=$(grep -hs '^telemetry_enabled' /opt/mesosphere/etc/user.config.yaml /root/dcos/genconf/config.yaml 2>/dev/null | head -1 | sed 's/^telemetry_enabled: *//')"
"#,
    );
    if let Some(mac) = public_mac {
        let _ = writeln!(
            s,
            "dev=$(ip -o link | awk -v m='{mac}' '$0 ~ m {{sub(\":\", \"\", $2); print $2}}' | head -1)\n\
             echo \"public_dev=$dev\"\n\
             echo \"public_ipv6=$(ip -6 -o addr show dev \"$dev\" scope global 2>/dev/null | awk '{{print $4}}' | tr '\\n' ' ')\""
        );
    }
    for t in ping6_targets {
        let _ = writeln!(
            s,
            "ping -6 -c1 -W3 {t} >/dev/null 2>&1 && echo \"ping6 {t}=ok\" || echo \"ping6 {t}=fail\""
        );
    }
    s
}

fn parse_facts(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn size_check(node: &str, name: &str, want: ByteSize, got: Option<u64>, what: &str) -> Check {
    // A tmpfs or swap file of "1G" comes out a few pages short of 1 GiB in some tools.
    let slack = 4 * 1024 * 1024;
    let got_b = got.unwrap_or(0);
    Check {
        node: node.into(),
        name: name.into(),
        expected: format!("{what} of at least {want}"),
        actual: match got {
            Some(b) if b > 0 => format!("{what} of {} MiB", b / (1024 * 1024)),
            _ => format!("no {what}"),
        },
        passed: got_b + slack >= want.bytes(),
    }
}

/// Turns one node's facts into its checks.
pub fn evaluate(
    lab: &Lab,
    plan: &AddressPlan,
    node: &str,
    facts_text: &str,
    ping6_targets: &[String],
) -> Vec<Check> {
    let f = parse_facts(facts_text);
    let Some(n) = lab.node(node) else {
        return Vec::new();
    };
    let req = required(&n.hardening);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let mut out = Vec::new();
    if let Some(want) = req.swap {
        out.push(size_check(
            node,
            "swap",
            want,
            get("swap_bytes").parse().ok(),
            "active swap",
        ));
    }
    if let Some(want) = req.tmp_size {
        let fstype = get("tmp_fstype");
        let mut c = size_check(
            node,
            "tmp",
            want,
            get("tmp_bytes").parse().ok(),
            "tmpfs /tmp",
        );
        if fstype != "tmpfs" {
            c.passed = false;
            c.actual = format!(
                "/tmp is {}",
                if fstype.is_empty() {
                    "not a mount"
                } else {
                    &fstype
                }
            );
        }
        out.push(c);
    }
    out.push(Check {
        node: node.into(),
        name: "ipv6".into(),
        expected: "IPv6 enabled (net.ipv6.conf.all.disable_ipv6 = 0)".into(),
        actual: format!("disable_ipv6 = {}", get("ipv6_disabled")),
        passed: get("ipv6_disabled") == "0",
    });
    if let Some(nic) = plan.node(node).and_then(|a| a.nic(NetKind::Public))
        && let Some(want) = nic.ipv6
    {
        let have = get("public_ipv6");
        out.push(Check {
            node: node.into(),
            name: "ipv6-address".into(),
            expected: format!("{want} on the public interface"),
            actual: if have.is_empty() {
                "no global IPv6 address on the public interface".into()
            } else {
                have.clone()
            },
            passed: have
                .split_whitespace()
                .any(|a| a.split('/').next() == Some(&want.to_string())),
        });
        for t in ping6_targets {
            let r = get(&format!("ping6 {t}"));
            out.push(Check {
                node: node.into(),
                name: format!("ipv6-reach {t}"),
                expected: format!("{t} answers ping over IPv6"),
                actual: if r == "ok" {
                    "answers".into()
                } else {
                    "no answer".into()
                },
                passed: r == "ok",
            });
        }
    }
    // Isolation: traffic for outside addresses never leaves through the private network.
    let outside = get("route_outside");
    let public_dev = get("public_dev");
    let contained = outside.is_empty() || (!public_dev.is_empty() && outside == public_dev);
    out.push(Check {
        node: node.into(),
        name: "private-isolation".into(),
        expected: "no route off the host through the private network".into(),
        actual: if outside.is_empty() {
            "no route to outside addresses".into()
        } else {
            format!("outside addresses route via {outside}")
        },
        passed: contained,
    });
    let phone = get("phone_home");
    let marker = get("telemetry_marker");
    let dcos = get("dcos_telemetry");
    let dcos_ok = dcos.is_empty() || dcos.trim_matches(|c| c == '\'' || c == '"') == "false";
    out.push(Check {
        node: node.into(),
        name: "telemetry".into(),
        expected: "telemetry off: no service that reaches outside, DC/OS telemetry_enabled 'false' where configured".into(),
        actual: format!(
            "profile telemetry={}; active phone-home services: {}; DC/OS telemetry_enabled: {}",
            if marker.is_empty() { "unset" } else { &marker },
            if phone.is_empty() { "none" } else { &phone },
            if dcos.is_empty() { "not configured" } else { &dcos }
        ),
        passed: phone.is_empty() && marker == "off" && dcos_ok,
    });
    out
}

/// The IPv6 addresses a public node pings: the host's on the public network and every other
/// public node's.
pub fn ping6_targets(plan: &AddressPlan, node: &str) -> Vec<String> {
    let Some(me) = plan.node(node).and_then(|a| a.nic(NetKind::Public)) else {
        return Vec::new();
    };
    if me.ipv6.is_none() {
        return Vec::new();
    }
    let mut t: Vec<String> = plan
        .network(NetKind::Public)
        .and_then(|n| n.gateway6)
        .map(|g| vec![g.to_string()])
        .unwrap_or_default();
    for other in &plan.nodes {
        if other.node != node
            && let Some(v6) = other.nic(NetKind::Public).and_then(|n| n.ipv6)
        {
            t.push(v6.to_string());
        }
    }
    t
}

/// JUnit XML: one test case per check, grouped by node.
pub fn junit(r: &VerifyReport) -> String {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }
    let failures = r.failed().len();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"dcos-lab verify\" tests=\"{}\" failures=\"{failures}\">\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
        r.checks.len(),
        esc(&r.lab),
        r.checks.len()
    );
    for c in &r.checks {
        let _ = write!(
            out,
            "    <testcase classname=\"{}.{}\" name=\"{}\">",
            esc(&r.lab),
            esc(&c.node),
            esc(&c.name)
        );
        if c.passed {
            out.push_str("</testcase>\n");
        } else {
            let _ = write!(
                out,
                "\n      <failure message=\"expected {}; got {}\"/>\n    </testcase>\n",
                esc(&c.expected),
                esc(&c.actual)
            );
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Runs every node's facts script concurrently and evaluates the checks.
pub async fn run(lab: &Lab, dirs: &crate::paths::Dirs, uri: &str) -> anyhow::Result<VerifyReport> {
    let plan = crate::plan::plan_addresses(lab);
    let hv = super::up::connect(uri).await?;
    let state = super::lab_state::read(&hv, &lab.name).await?;
    if !state.exists() {
        return Err(crate::BadInput(format!(
            "lab {} does not exist; `dcos-lab up` makes it",
            lab.name
        ))
        .into());
    }
    let mut checks = Vec::new();
    // The host side: the private network has no <forward>.
    let nets = super::up::blocking(&hv, |h| {
        use crate::driver::Hypervisor;
        h.owned_networks()
    })
    .await?;
    let private_name = crate::plan::network_name(&lab.name, NetKind::Private);
    let private_exists = nets.iter().any(|n| n.name == private_name);
    checks.push(Check {
        node: "lab".into(),
        name: "private-network-isolated".into(),
        expected: format!("{private_name} exists and forwards nowhere (isolated)"),
        actual: if !private_exists {
            "missing".into()
        } else if lab.networks.private.mode == crate::model::NetMode::Isolated {
            "isolated".into()
        } else {
            format!("{:?} forwarding", lab.networks.private.mode).to_lowercase()
        },
        passed: private_exists && lab.networks.private.mode == crate::model::NetMode::Isolated,
    });
    let mut per_node = Vec::new();
    for n in &lab.nodes {
        let Some(ns) = state.node(&n.name) else {
            checks.push(Check {
                node: n.name.clone(),
                name: "exists".into(),
                expected: "node exists".into(),
                actual: "missing from libvirt".into(),
                passed: false,
            });
            continue;
        };
        let targets = ping6_targets(&plan, &n.name);
        let mac = plan
            .node(&n.name)
            .and_then(|a| a.nic(NetKind::Public))
            .map(|nic| nic.mac.to_string());
        per_node.push((ns.clone(), targets, mac));
    }
    let lab_dirs = dirs.lab(&lab.name);
    let mut set = tokio::task::JoinSet::new();
    for (ns, targets, mac) in per_node {
        let lab_dirs = lab_dirs.clone();
        set.spawn(async move {
            let script = facts_script(&targets, mac.as_deref());
            let r = super::access::exec(
                &lab_dirs,
                &[&ns],
                &script,
                std::time::Duration::from_secs(30),
            )
            .await;
            (ns.name.clone(), targets, r)
        });
    }
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        results.push(r?);
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    for (node, targets, r) in results {
        let r = r?.into_iter().next();
        match r {
            Some(res) if res.error.is_none() => {
                checks.extend(evaluate(lab, &plan, &node, &res.stdout, &targets));
            }
            other => checks.push(Check {
                node: node.clone(),
                name: "ssh".into(),
                expected: "answers over SSH".into(),
                actual: other
                    .and_then(|r| r.error)
                    .unwrap_or_else(|| "no result".into()),
                passed: false,
            }),
        }
    }
    Ok(VerifyReport {
        lab: lab.name.clone(),
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Lab {
        crate::model::parse(
            crate::model::BUILTIN_LABS[0].1,
            "minimal",
            None,
            &["debian-12"],
        )
        .expect("valid")
    }

    const GOOD: &str = "swap_bytes=2147479552\ntmp_fstype=tmpfs\ntmp_bytes=1073741824\nipv6_disabled=0\nroute_outside=\nphone_home=\ntelemetry_marker=off\ndcos_telemetry=\n";

    #[test]
    fn a_hardened_node_passes_every_check() {
        let l = lab();
        let plan = crate::plan::plan_addresses(&l);
        let checks = evaluate(&l, &plan, "master", GOOD, &[]);
        let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["swap", "tmp", "ipv6", "private-isolation", "telemetry"]
        );
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    }

    #[test]
    fn an_unhardened_node_fails_exactly_the_unmet_checks() {
        let l = lab();
        let plan = crate::plan::plan_addresses(&l);
        let facts = "swap_bytes=0\ntmp_fstype=ext4\ntmp_bytes=\nipv6_disabled=0\nroute_outside=\nphone_home=systemd-timesyncd.service\ntelemetry_marker=on\n";
        let failed: Vec<_> = evaluate(&l, &plan, "master", facts, &[])
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect();
        assert_eq!(failed, ["swap", "tmp", "telemetry"]);
    }

    #[test]
    fn public_node_checks_its_ipv6_address_and_reach() {
        let l = lab();
        let plan = crate::plan::plan_addresses(&l);
        let targets = ping6_targets(&plan, "public");
        assert_eq!(
            targets.len(),
            1,
            "only the host: minimal has one public node"
        );
        let want = plan
            .node("public")
            .and_then(|a| a.nic(NetKind::Public))
            .and_then(|n| n.ipv6)
            .expect("v6");
        let facts = format!(
            "{GOOD}public_dev=enp2s0\npublic_ipv6={want}/64\nroute_outside=enp2s0\nping6 {}=fail\n",
            targets[0]
        );
        let checks = evaluate(&l, &plan, "public", &facts, &targets);
        let failed: Vec<_> = checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(failed, [format!("ipv6-reach {}", targets[0])]);
    }

    #[test]
    fn private_route_off_the_host_fails_isolation() {
        let l = lab();
        let plan = crate::plan::plan_addresses(&l);
        let facts = GOOD.replace("route_outside=\n", "route_outside=enp1s0\n");
        let c = evaluate(&l, &plan, "master", &facts, &[]);
        assert!(
            !c.iter()
                .find(|c| c.name == "private-isolation")
                .expect("check")
                .passed
        );
    }

    #[test]
    fn dcos_config_with_telemetry_on_fails() {
        let l = lab();
        let plan = crate::plan::plan_addresses(&l);
        let facts = GOOD.replace("dcos_telemetry=\n", "dcos_telemetry='true'\n");
        let c = evaluate(&l, &plan, "master", &facts, &[]);
        assert!(
            !c.iter()
                .find(|c| c.name == "telemetry")
                .expect("check")
                .passed
        );
        let facts = GOOD.replace("dcos_telemetry=\n", "dcos_telemetry='false'\n");
        let c = evaluate(&l, &plan, "master", &facts, &[]);
        assert!(
            c.iter()
                .find(|c| c.name == "telemetry")
                .expect("check")
                .passed
        );
    }

    #[test]
    fn junit_names_failures() {
        let r = VerifyReport {
            lab: "minimal".into(),
            checks: vec![
                Check {
                    node: "boot".into(),
                    name: "swap".into(),
                    expected: "a".into(),
                    actual: "b".into(),
                    passed: false,
                },
                Check {
                    node: "boot".into(),
                    name: "tmp".into(),
                    expected: "a".into(),
                    actual: "a".into(),
                    passed: true,
                },
            ],
        };
        let x = junit(&r);
        assert!(x.contains("tests=\"2\" failures=\"1\""));
        assert!(x.contains("<testcase classname=\"minimal.boot\" name=\"swap\">\n      <failure message=\"expected a; got b\"/>"));
        assert!(x.contains("<testcase classname=\"minimal.boot\" name=\"tmp\"></testcase>"));
    }
}
