//! `verify`: named checks inside every node over SSH (hardening, IPv6, isolation, telemetry), each
//! with expected and actual values; JUnit XML for CI [SSH I/O in `run`; the checks are pure].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::guest::CONNECT_TIMEOUT;
use crate::model::{ByteSize, Hardening, Lab, NetKind};
use crate::ops::lab::nodes;
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
pub fn facts_script(ping6_targets: &[String], public_mac: Option<&str>, docker: bool) -> String {
    let mut s = String::from(
        r#"echo "swap_bytes=$(swapon --show=SIZE --bytes --noheadings 2>/dev/null | awk '{s+=$1} END {print s+0}')"
echo "tmp_fstype=$(findmnt -no FSTYPE /tmp 2>/dev/null)"
echo "tmp_bytes=$(findmnt -bno SIZE /tmp 2>/dev/null)"
echo "ipv6_disabled=$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null)"
echo "route_outside=$(ip -4 route get 192.0.2.1 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -1)"
echo "private_dev_routes=$(ip -4 route show default 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | tr '\n' ' ')"
units="apt-daily.timer apt-daily-upgrade.timer systemd-timesyncd.service popularity-contest.timer ntp.service ntpsec.service dcos-signal.service dcos-signal.timer"
# One systemctl for every unit, chrony last (a call costs a quarter of a second under
# emulation): it prints one state per unit, in order, "inactive" for a unit that does not exist.
set -- $(systemctl is-active $units chrony.service 2>/dev/null)
phone=""
for u in $units; do
  [ "${1:-}" = active ] && phone="$phone $u"
  [ $# -gt 0 ] && shift
done
echo "phone_home=${phone# }"
echo "chrony_active=${1:-}"
echo "chrony_sources=$(chronyc -n -c sources 2>/dev/null | cut -d, -f3 | tr '\n' ' ')"
echo "chrony_ref=$(chronyc -n -c tracking 2>/dev/null | cut -d, -f1)"
echo "ntp_synchronized=$(timedatectl show -p NTPSynchronized --value 2>/dev/null)"
echo "adjtimex=$(python3 -c 'import ctypes; b = ctypes.create_string_buffer(512); rc = ctypes.CDLL(None, use_errno=True).adjtimex(b); v = memoryview(b.raw); print(rc, int.from_bytes(v[40:44], "little"), int.from_bytes(v[32:40], "little", signed=True), int.from_bytes(v[24:32], "little", signed=True))' 2>/dev/null)"
for f in /opt/mesosphere/etc/user.config.yaml /root/dcos/genconf/config.yaml; do
  [ -r "$f" ] || continue
  echo "dcos_config=$f"
  echo "dcos_telemetry=$(sed -n 's/^telemetry_enabled: *//p' "$f" | head -1)"
  echo "dcos_ui_tracking=$(sed -n 's/^ui_tracking: *//p' "$f" | head -1)"
  break
done
"#,
    );
    if docker {
        s.push_str(
            "echo \"docker=$(timeout 20 docker info --format '{{.ServerVersion}} {{.Driver}}' 2>/dev/null)\"\n",
        );
    }
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

/// Telemetry, from the running system: no unit that phones home is active; a time daemon is
/// fine while every source it uses is inside the lab; the DC/OS config the installer used
/// (the node's installed user.config.yaml, or the boot node's genconf) turns it off.
fn telemetry_check(lab: &Lab, node: &str, get: &dyn Fn(&str) -> String) -> Check {
    let mut phone: Vec<String> = get("phone_home")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let outside: Vec<String> = get("chrony_sources")
        .split_whitespace()
        .filter(|a| !in_lab(lab, a))
        .map(str::to_string)
        .collect();
    if get("chrony_active") == "active" && !outside.is_empty() {
        phone.push(format!(
            "chrony.service (sources outside the lab: {})",
            outside.join(", ")
        ));
    }
    let unquote = |v: String| v.trim_matches(|c| c == '\'' || c == '"').to_string();
    let config = get("dcos_config");
    let dcos_tel = unquote(get("dcos_telemetry"));
    let dcos_ui = unquote(get("dcos_ui_tracking"));
    // A key the config leaves out takes DC/OS's default, which is 'true' for both.
    let dcos_ok = config.is_empty() || (dcos_tel == "false" && dcos_ui == "false");
    let shown = |v: &str| {
        if v.is_empty() {
            "unset (DC/OS default: 'true')".to_string()
        } else {
            format!("'{v}'")
        }
    };
    Check {
        node: node.into(),
        name: "telemetry".into(),
        expected: "nothing phones home: no such unit active, time only from inside the lab, DC/OS telemetry_enabled and ui_tracking 'false' in the config the installer used".into(),
        actual: format!(
            "active phone-home units: {}; time sources: {}; DC/OS config: {}",
            if phone.is_empty() { "none".to_string() } else { phone.join(", ") },
            if get("chrony_sources").is_empty() { "none".to_string() } else { get("chrony_sources") },
            if config.is_empty() {
                "not installed".to_string()
            } else {
                format!("{config}: telemetry_enabled {}, ui_tracking {}", shown(&dcos_tel), shown(&dcos_ui))
            }
        ),
        passed: phone.is_empty() && dcos_ok,
    }
}

/// On a `dcos:` lab: Docker running with overlay2, as the DC/OS installer's preflight asks.
fn docker_check(node: &str, docker: &str) -> Check {
    let mut it = docker.split_whitespace();
    let (version, driver) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
    Check {
        node: node.into(),
        name: "docker".into(),
        expected: "Docker running (the DC/OS installer's preflight: `docker info` answers), storage driver overlay2".into(),
        actual: if version.is_empty() {
            "Docker is not running (`docker info` does not answer)".into()
        } else {
            format!("Docker {version}, storage driver {driver}")
        },
        passed: !version.is_empty() && driver == "overlay2",
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
    out.push(telemetry_check(lab, node, &get));
    out.push(time_check(lab, plan, node, &get));
    if lab.dcos.enabled {
        out.push(docker_check(node, &get("docker")));
    }
    out
}

/// True when `addr` is inside one of the lab's networks (or is the host on one of them).
fn in_lab(lab: &Lab, addr: &str) -> bool {
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => [NetKind::Private, NetKind::Public]
            .iter()
            .any(|k| lab.network(*k).cidr.contains(a)),
        Ok(std::net::IpAddr::V6(a)) => lab
            .network(NetKind::Public)
            .ipv6
            .is_some_and(|p| p.contains(a)),
        Err(_) => false,
    }
}

use crate::render::cloudinit::check_time::{self, STA_UNSYNC};

/// `time-sync`. A node that follows the boot node passes what DC/OS's `check-time` asks of the
/// kernel (adjtimex: not TIME_ERROR, no STA_UNSYNC, estimated error at most 100 ms), and
/// timedated says NTPSynchronized=yes, with its source the boot node. The boot node is the lab's
/// clock: its chrony serves its own clock (`local stratum`); chrony never tells the kernel it is
/// synchronised in that mode, so the boot node is checked for serving instead.
fn time_check(lab: &Lab, plan: &AddressPlan, node: &str, get: &dyn Fn(&str) -> String) -> Check {
    let boot_name = crate::render::genconf::boot_node(lab).unwrap_or_default();
    let boot = node == boot_name;
    let boot_ip = plan
        .node(boot_name)
        .and_then(|a| a.private_ipv4())
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let sources = get("chrony_sources");
    if boot {
        let reference = get("chrony_ref");
        return Check {
            node: node.into(),
            name: "time-sync".into(),
            expected: "chrony serves the lab its own clock (reference LOCL, local stratum) and asks no one".into(),
            actual: format!(
                "chrony {}; reference {}; sources {}",
                if get("chrony_active").is_empty() { "absent".to_string() } else { get("chrony_active") },
                if reference.is_empty() { "none".to_string() } else { reference.clone() },
                if sources.is_empty() { "none".to_string() } else { sources.clone() }
            ),
            passed: get("chrony_active") == "active" && reference == "7F7F0101" && sources.is_empty(),
        };
    }
    let adj = get("adjtimex");
    let nums: Vec<i64> = adj
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let (rc, status, esterror) = match nums.as_slice() {
        [rc, status, esterror, ..] => (*rc, *status, *esterror),
        _ => (-1, STA_UNSYNC, i64::MAX),
    };
    let kernel_ok = check_time::passes(rc, status, esterror);
    let synced = get("ntp_synchronized");
    let follows = sources.split_whitespace().collect::<Vec<_>>() == [boot_ip.as_str()];
    Check {
        node: node.into(),
        name: "time-sync".into(),
        expected: format!(
            "clock synchronised to the boot node ({boot_ip}): adjtimex not TIME_ERROR, no STA_UNSYNC, estimated error <= 100 ms; NTPSynchronized=yes"
        ),
        actual: if adj.is_empty() {
            "adjtimex could not be read".into()
        } else {
            format!(
                "adjtimex rc {rc}, status {status:#06x}{}, esterror {esterror} us; NTPSynchronized={}; sources {}",
                if status & STA_UNSYNC != 0 {
                    " (STA_UNSYNC)"
                } else {
                    ""
                },
                if synced.is_empty() {
                    "unknown"
                } else {
                    &synced
                },
                if sources.is_empty() { "none" } else { &sources }
            )
        },
        passed: kernel_ok && synced == "yes" && follows,
    }
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

/// The report as `verify` prints it: one line per check, then the count.
pub fn describe(report: &VerifyReport) -> String {
    let mut out = String::new();
    for c in &report.checks {
        out.push_str(&format!(
            "{} {:<8} {:<40} {}\n",
            if c.passed { "ok  " } else { "FAIL" },
            c.node,
            c.name,
            if c.passed {
                c.actual.clone()
            } else {
                format!("expected {}; got {}", c.expected, c.actual)
            }
        ));
    }
    out.push_str(&format!(
        "{} checks, {} failed\n",
        report.checks.len(),
        report.failed().len()
    ));
    out
}

/// Runs every node's facts script concurrently and evaluates the checks.
pub async fn run(ctx: &crate::ops::Ctx, lab: &Lab) -> anyhow::Result<VerifyReport> {
    let dirs = &ctx.dirs;
    let lab = &crate::ops::lab::indices::as_made(ctx, lab).await?;
    let plan = crate::plan::plan_addresses(lab);
    let hv = ctx.hv();
    let state = crate::ops::lab::state::read(ctx, &lab.name).await?;
    if !state.exists() {
        return Err(crate::BadInput(format!(
            "lab {} does not exist; `dcos-lab up` makes it",
            lab.name
        ))
        .into());
    }
    let mut checks = Vec::new();
    // The host side: the private network forwards nowhere, as libvirt has it now (the running
    // network) and as it is defined (what its next start gives): a `<forward>` added out of band
    // fails the check, whatever the lab file says.
    let private_name = crate::names::network_name(&lab.name, NetKind::Private);
    let pn = private_name.clone();
    let fwd = crate::driver::blocking(hv, move |h| match h.network_forward(&pn) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    })
    .await?;
    let describe = |m: &Option<String>| match m {
        None => "no <forward>".to_string(),
        Some(m) => format!("<forward mode='{m}'>"),
    };
    checks.push(Check {
        node: "lab".into(),
        name: "private-network-isolated".into(),
        expected: format!(
            "{private_name} runs with no <forward> in its live or persistent definition (isolated)"
        ),
        actual: match &fwd {
            None => "missing".into(),
            Some(f) => format!(
                "{}; live: {}; defined: {}",
                if f.active { "running" } else { "not running" },
                if f.active {
                    describe(&f.live)
                } else {
                    "-".into()
                },
                describe(&f.defined)
            ),
        },
        passed: fwd
            .as_ref()
            .is_some_and(|f| f.active && f.live.is_none() && f.defined.is_none()),
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
    let docker = lab.dcos.enabled;
    let scripts = per_node
        .iter()
        .map(|(ns, targets, mac)| (ns.clone(), facts_script(targets, mac.as_deref(), docker)));
    let results = nodes::exec_each(ctx, &dirs.lab(&lab.name), scripts, CONNECT_TIMEOUT).await?;
    for ((_, targets, _), res) in per_node.iter().zip(results) {
        match res.error {
            None => checks.extend(evaluate(lab, &plan, &res.node, &res.stdout, targets)),
            Some(e) => checks.push(Check {
                node: res.node.clone(),
                name: "ssh".into(),
                expected: "answers over SSH".into(),
                actual: e,
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

    /// A hardened master's facts: synchronised to the boot node, nothing phoning home.
    fn good(l: &Lab) -> String {
        let plan = crate::plan::plan_addresses(l);
        let boot = plan
            .node("boot")
            .and_then(|a| a.private_ipv4())
            .expect("boot");
        format!(
            "swap_bytes=2147479552\ntmp_fstype=tmpfs\ntmp_bytes=1073741824\nipv6_disabled=0\nroute_outside=\nphone_home=\n\
             chrony_active=active\nchrony_sources={boot} \nchrony_ref=AC1E0A0A\nntp_synchronized=yes\nadjtimex=0 8192 1200 40000\n"
        )
    }

    fn check<'a>(c: &'a [Check], name: &str) -> &'a Check {
        c.iter().find(|c| c.name == name).expect("check")
    }

    #[test]
    fn a_hardened_node_passes_every_check() {
        let l = lab();
        let plan = crate::plan::plan_addresses(&l);
        let checks = evaluate(&l, &plan, "master", &good(&l), &[]);
        let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "swap",
                "tmp",
                "ipv6",
                "private-isolation",
                "telemetry",
                "time-sync"
            ]
        );
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    }

    #[test]
    fn an_unhardened_node_fails_exactly_the_unmet_checks() {
        let l = lab();
        let plan = crate::plan::plan_addresses(&l);
        let facts = "swap_bytes=0\ntmp_fstype=ext4\ntmp_bytes=\nipv6_disabled=0\nroute_outside=\nphone_home=systemd-timesyncd.service\n";
        let failed: Vec<_> = evaluate(&l, &plan, "master", facts, &[])
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect();
        assert_eq!(failed, ["swap", "tmp", "telemetry", "time-sync"]);
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
            "{}public_dev=enp2s0\npublic_ipv6={want}/64\nroute_outside=enp2s0\nping6 {}=fail\n",
            good(&l),
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
        let facts = good(&l).replace("route_outside=\n", "route_outside=enp1s0\n");
        let c = evaluate(&l, &plan, "master", &facts, &[]);
        assert!(!check(&c, "private-isolation").passed);
    }

    #[test]
    fn telemetry_reads_the_config_the_installer_used() {
        let l = lab();
        let plan = crate::plan::plan_addresses(&l);
        let with = |extra: &str| {
            let c = evaluate(&l, &plan, "master", &format!("{}{extra}", good(&l)), &[]);
            check(&c, "telemetry").passed
        };
        let cfg = "dcos_config=/opt/mesosphere/etc/user.config.yaml\n";
        assert!(with(&format!(
            "{cfg}dcos_telemetry='false'\ndcos_ui_tracking='false'\n"
        )));
        assert!(!with(&format!(
            "{cfg}dcos_telemetry='true'\ndcos_ui_tracking='false'\n"
        )));
        // Left out, a key takes DC/OS's default: on.
        assert!(!with(&format!(
            "{cfg}dcos_telemetry='false'\ndcos_ui_tracking=\n"
        )));
    }

    #[test]
    fn a_running_dcos_signal_or_a_time_source_outside_fails_telemetry() {
        let l = lab();
        let plan = crate::plan::plan_addresses(&l);
        let facts = good(&l).replace("phone_home=\n", "phone_home=dcos-signal.service\n");
        assert!(!check(&evaluate(&l, &plan, "master", &facts, &[]), "telemetry").passed);
        let boot = plan
            .node("boot")
            .and_then(|a| a.private_ipv4())
            .expect("boot");
        let facts = good(&l).replace(
            &format!("chrony_sources={boot} \n"),
            &format!("chrony_sources={boot} 162.159.200.1\n"),
        );
        let c = evaluate(&l, &plan, "master", &facts, &[]);
        assert!(!check(&c, "telemetry").passed, "{c:#?}");
        assert!(check(&c, "telemetry").actual.contains("162.159.200.1"));
    }

    #[test]
    fn time_sync_reads_the_kernel_clock_state() {
        let l = lab();
        let plan = crate::plan::plan_addresses(&l);
        let at = |adj: &str, synced: &str| {
            let facts = good(&l)
                .replace("adjtimex=0 8192 1200 40000\n", &format!("adjtimex={adj}\n"))
                .replace(
                    "ntp_synchronized=yes\n",
                    &format!("ntp_synchronized={synced}\n"),
                );
            check(&evaluate(&l, &plan, "master", &facts, &[]), "time-sync").passed
        };
        assert!(at("0 8192 1200 40000", "yes"));
        assert!(!at("5 8256 1200 16000000", "no"), "STA_UNSYNC, TIME_ERROR");
        assert!(!at("0 8256 1200 40000", "yes"), "STA_UNSYNC alone");
        assert!(
            !at("0 8192 150000 40000", "yes"),
            "esterror over DC/OS's 100 ms"
        );
        assert!(!at("", "yes"), "unreadable");
        // The boot node is the reference: it serves its local clock and follows nobody.
        let boot = "chrony_active=active\nchrony_sources=\nchrony_ref=7F7F0101\n";
        assert!(check(&evaluate(&l, &plan, "boot", boot, &[]), "time-sync").passed);
        let boot = "chrony_active=active\nchrony_sources=10.0.0.1\nchrony_ref=0A000001\n";
        assert!(!check(&evaluate(&l, &plan, "boot", boot, &[]), "time-sync").passed);
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
