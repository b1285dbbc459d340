//! The DC/OS advanced installer's input: `genconf/config.yaml` and `genconf/ip-detect` [pure].
//!
//! Both are written on the boot node by `dcos-lab install`, which then runs the user's own
//! `dcos_generate_config.sh` there.

use std::net::Ipv4Addr;

use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

use crate::model::{Lab, NetKind, Role};
use crate::plan::AddressPlan;

use super::RenderError;

/// Where the installer and its `genconf/` live on the boot node.
pub const WORK_DIR: &str = "/root/dcos";

/// Keys in file order; a key from the lab file's `dcos.config` replaces the generated one in place.
struct Ordered(Vec<(String, Value)>);

impl serde::Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Ordered {
    fn set(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }
}

fn private_ipv4(addrs: &AddressPlan, node: &str) -> Result<Ipv4Addr, RenderError> {
    addrs
        .node(node)
        .and_then(|n| n.private_ipv4())
        .ok_or(RenderError::Invariant(
            "every node of a checked lab has a private address",
        ))
}

/// The boot node's name (validation guarantees exactly one).
pub fn boot_node(lab: &Lab) -> Result<&str, RenderError> {
    lab.nodes
        .iter()
        .find(|n| n.role == Role::Boot)
        .map(|n| n.name.as_str())
        .ok_or(RenderError::Invariant("a validated lab has a boot node"))
}

/// `http://<boot node's private address>:<bootstrap_port>`: where the nodes fetch the bootstrap.
pub fn bootstrap_url(lab: &Lab, addrs: &AddressPlan) -> Result<String, RenderError> {
    let ip = private_ipv4(addrs, boot_node(lab)?)?;
    Ok(format!("http://{ip}:{}", lab.dcos.bootstrap_port))
}

fn ips(lab: &Lab, addrs: &AddressPlan, role: Role) -> Result<Value, RenderError> {
    let mut out = Vec::new();
    for n in lab.nodes.iter().filter(|n| n.role == role) {
        out.push(Value::String(private_ipv4(addrs, &n.name)?.to_string()));
    }
    Ok(Value::Array(out))
}

fn flag(on: bool) -> Value {
    // DC/OS reads these as the strings 'true' / 'false'.
    Value::String(if on { "true" } else { "false" }.to_string())
}

/// `genconf/config.yaml`. Static master discovery over the private network; DNS from the host's
/// dnsmasq on the private network (it answers the lab's names and never forwards off the host);
/// telemetry and IPv6 follow the hardening profile; login stays local (`oauth_enabled: 'false'`).
///
/// No `agent_list` or `public_agent_list`: the advanced installer never reads them (only the old
/// SSH installer did), and DC/OS's genconf hashes every key of the file into the configuration's
/// id (gen/__init__.py, `get_config_id`), so a list of agents would make an agent added later
/// a different configuration from the cluster it joins.
pub fn config_yaml(lab: &Lab, addrs: &AddressPlan) -> Result<String, RenderError> {
    config_yaml_with(lab, addrs, false)
}

/// The `genconf/config.yaml` an earlier dcos-lab wrote, with the agent lists, by which a lab
/// installed then is known as installed from this configuration.
pub fn legacy_config_yaml(lab: &Lab, addrs: &AddressPlan) -> Result<String, RenderError> {
    config_yaml_with(lab, addrs, true)
}

fn config_yaml_with(
    lab: &Lab,
    addrs: &AddressPlan,
    agent_lists: bool,
) -> Result<String, RenderError> {
    let resolver =
        addrs
            .network(NetKind::Private)
            .map(|n| n.gateway4)
            .ok_or(RenderError::Invariant(
                "a validated lab has a private network",
            ))?;
    let mut c = Ordered(Vec::new());
    c.set("bootstrap_url", Value::String(bootstrap_url(lab, addrs)?));
    c.set("cluster_name", Value::String(lab.dcos.cluster_name.clone()));
    c.set("master_discovery", Value::String("static".into()));
    c.set("exhibitor_storage_backend", Value::String("static".into()));
    c.set("master_list", ips(lab, addrs, Role::Master)?);
    if agent_lists {
        c.set("agent_list", ips(lab, addrs, Role::AgentPrivate)?);
        c.set("public_agent_list", ips(lab, addrs, Role::AgentPublic)?);
    }
    c.set(
        "resolvers",
        Value::Array(vec![Value::String(resolver.to_string())]),
    );
    c.set("enable_ipv6", flag(lab.hardening.ipv6));
    c.set("telemetry_enabled", flag(lab.hardening.telemetry));
    // The web UI's own tracking (its analytics calls), beside the cluster's telemetry.
    c.set("ui_tracking", flag(lab.hardening.telemetry));
    c.set("oauth_enabled", flag(false));
    for (k, v) in &lab.dcos.config {
        c.set(k, v.clone());
    }
    let body = serde_saphyr::to_string(&c).map_err(|e| RenderError::Yaml {
        what: "genconf/config.yaml".to_string(),
        message: e.to_string(),
    })?;
    Ok(format!(
        "# genconf/config.yaml for lab {}, written by dcos-lab; `dcos.config` in the lab file adds or overrides keys.\n{body}",
        lab.name
    ))
}

/// `genconf/ip-detect`: prints the node's address on the lab's private network.
pub fn ip_detect(lab: &Lab) -> String {
    let cidr = lab.network(NetKind::Private).cidr;
    format!(
        "#!/bin/sh\n\
         # ip-detect for lab {lab}, written by dcos-lab: this node's address on the private network {cidr}.\n\
         set -o nounset -o errexit\n\
         ip -4 -o addr show to {cidr} | awk '{{ split($4, a, \"/\"); print a[1]; exit }}'\n",
        lab = lab.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan_addresses;

    fn lab(extra: &str) -> Lab {
        let text = format!("{}{extra}", crate::model::BUILTIN_LABS[0].1);
        crate::model::parse(&text, "t.yaml", None, &["debian-12"]).expect("valid lab")
    }

    fn parsed(l: &Lab) -> serde_json::Value {
        let text = config_yaml(l, &plan_addresses(l)).expect("renders");
        serde_saphyr::from_str(&text).expect("valid YAML")
    }

    #[test]
    fn lists_come_from_roles_and_private_addresses() {
        let l = lab("");
        let c = parsed(&l);
        let plan = plan_addresses(&l);
        let ip = |n: &str| {
            plan.node(n)
                .and_then(|n| n.private_ipv4())
                .map(|a| a.to_string())
        };
        assert_eq!(
            c["bootstrap_url"],
            format!("http://{}:4040", ip("boot").expect("boot"))
        );
        assert_eq!(c["master_list"], serde_json::json!([ip("master")]));
        // Agents are not listed: one added later joins the same configuration.
        assert!(c.get("agent_list").is_none() && c.get("public_agent_list").is_none());
        let legacy: serde_json::Value =
            serde_saphyr::from_str(&legacy_config_yaml(&l, &plan).expect("renders"))
                .expect("valid YAML");
        assert_eq!(
            legacy["public_agent_list"],
            serde_json::json!([ip("public")])
        );
        assert_eq!(c["telemetry_enabled"], "false");
        assert_eq!(c["oauth_enabled"], "false");
        assert_eq!(c["enable_ipv6"], "true");
        assert_eq!(c["master_discovery"], "static");
    }

    #[test]
    fn resolver_is_the_host_on_the_private_network_never_a_public_one() {
        let l = lab("");
        let c = parsed(&l);
        let gw = plan_addresses(&l)
            .network(NetKind::Private)
            .map(|n| n.gateway4.to_string());
        assert_eq!(c["resolvers"], serde_json::json!([gw]));
    }

    #[test]
    fn hardening_drives_telemetry_and_ipv6() {
        let l = lab("hardening:\n  telemetry: true\n  ipv6: false\n");
        let c = parsed(&l);
        assert_eq!(c["telemetry_enabled"], "true");
        assert_eq!(c["ui_tracking"], "true");
        assert_eq!(c["enable_ipv6"], "false");
        let c = parsed(&lab(""));
        assert_eq!(c["telemetry_enabled"], "false");
        assert_eq!(c["ui_tracking"], "false");
        assert_eq!(c["oauth_enabled"], "false");
        // The lab meets DC/OS's time check; it never turns it off.
        assert!(c.get("check_time").is_none());
    }

    #[test]
    fn lab_file_config_wins_over_generated_keys() {
        let l = lab(
            "dcos:\n  cluster_name: demo\n  config:\n    telemetry_enabled: 'true'\n    dns_search: lab\n",
        );
        let text = config_yaml(&l, &plan_addresses(&l)).expect("renders");
        let c: serde_json::Value = serde_saphyr::from_str(&text).expect("yaml");
        assert_eq!(c["telemetry_enabled"], "true");
        assert_eq!(c["dns_search"], "lab");
        assert_eq!(c["cluster_name"], "demo");
        assert_eq!(text.matches("telemetry_enabled").count(), 1);
    }

    #[test]
    fn ip_detect_filters_by_the_private_cidr() {
        let l = lab("");
        let s = ip_detect(&l);
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(&format!("show to {}", l.network(NetKind::Private).cidr)));
    }
}
