//! Which host each node runs on: the lab file's `host:`, else the local host, else (with
//! `placement: auto`) spread by free memory [pure].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{ByteSize, LOCAL_HOST, Lab, Placement, Problem};

/// Why a node is on its host, as `plan` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlacedBy {
    /// The lab file's `host:`.
    File,
    /// `placement: manual` (the default) and no `host:`: the local host.
    Default,
    /// `placement: auto`: the host with the most memory left when the node's turn came.
    Auto,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placed {
    pub node: String,
    pub host: String,
    pub by: PlacedBy,
}

/// Every node's host, in the lab's node order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodePlacement {
    pub nodes: Vec<Placed>,
    /// Whether free memory was read from every host (`false`: `plan --offline`, or a host that
    /// did not answer; `auto` then spreads as if every host had the same memory free).
    pub memory_known: bool,
}

impl NodePlacement {
    pub fn host_of(&self, node: &str) -> &str {
        self.nodes
            .iter()
            .find(|p| p.node == node)
            .map_or(LOCAL_HOST, |p| p.host.as_str())
    }

    /// The hosts that get at least one node, in the lab's host order.
    pub fn used_hosts<'a>(&self, lab: &'a Lab) -> Vec<&'a str> {
        lab.hosts
            .iter()
            .map(|h| h.name.as_str())
            .filter(|h| self.nodes.iter().any(|p| p.host == *h))
            .collect()
    }
}

/// Places the nodes of `lab`. `free` holds each host's free memory in bytes, when known; a
/// host whose nodes (pinned ones, plus those `auto` gives it) need more than it has free is a
/// problem of the lab file, named with the host, the nodes and the fix.
pub fn place(
    lab: &Lab,
    free: Option<&BTreeMap<String, u64>>,
) -> Result<NodePlacement, Vec<Problem>> {
    let mut problems = Vec::new();
    if !lab.spans_hosts() {
        // One host: everything is local, and `up`'s preflight checks the memory as it always has.
        return Ok(NodePlacement {
            nodes: lab
                .nodes
                .iter()
                .map(|n| Placed {
                    node: n.name.clone(),
                    host: LOCAL_HOST.to_string(),
                    by: PlacedBy::Default,
                })
                .collect(),
            memory_known: free.is_some(),
        });
    }
    // Memory left per host: what is free (or, unknown, the same large figure for every host so
    // that `auto` spreads by memory alone).
    let mut left: BTreeMap<&str, i128> = lab
        .hosts
        .iter()
        .map(|h| {
            let f = free.and_then(|f| f.get(&h.name)).copied();
            (h.name.as_str(), f.map_or(i128::from(u64::MAX), i128::from))
        })
        .collect();
    let mut placed: Vec<Option<Placed>> = vec![None; lab.nodes.len()];
    for (i, n) in lab.nodes.iter().enumerate() {
        let (host, by) = match (&n.host, lab.placement) {
            (Some(h), _) => (h.as_str(), PlacedBy::File),
            (None, Placement::Manual) => (LOCAL_HOST, PlacedBy::Default),
            (None, Placement::Auto) => continue,
        };
        if let Some(l) = left.get_mut(host) {
            *l -= i128::from(n.memory.bytes());
        }
        placed[i] = Some(Placed {
            node: n.name.clone(),
            host: host.to_string(),
            by,
        });
    }
    // `auto`: the largest nodes first, each to the host with the most memory left (the first such
    // host in the lab's order on a tie), so the hosts end up as evenly loaded as whole nodes allow.
    let mut open: Vec<usize> = (0..lab.nodes.len())
        .filter(|&i| placed[i].is_none())
        .collect();
    open.sort_by_key(|&i| std::cmp::Reverse(lab.nodes[i].memory.bytes()));
    for i in open {
        let n = &lab.nodes[i];
        let mut best = LOCAL_HOST;
        for h in &lab.hosts {
            if left[h.name.as_str()] > left[best] {
                best = h.name.as_str();
            }
        }
        if let Some(l) = left.get_mut(best) {
            *l -= i128::from(n.memory.bytes());
        }
        placed[i] = Some(Placed {
            node: n.name.clone(),
            host: best.to_string(),
            by: PlacedBy::Auto,
        });
    }
    let nodes: Vec<Placed> = placed.into_iter().flatten().collect();
    if let Some(free) = free {
        for h in &lab.hosts {
            let Some(&has) = free.get(&h.name) else {
                continue;
            };
            let on: Vec<&Placed> = nodes.iter().filter(|p| p.host == h.name).collect();
            let need: u64 = on
                .iter()
                .filter_map(|p| lab.node(&p.node))
                .map(|n| n.memory.bytes())
                .sum();
            if need > has {
                let names: Vec<&str> = on.iter().map(|p| p.node.as_str()).collect();
                problems.push(Problem {
                    pos: None,
                    field: format!("hosts.{}", h.name),
                    message: format!(
                        "host {} has {:.1} GiB of memory free; its nodes ({}) need {}",
                        h.name,
                        has as f64 / f64::from(1u32 << 30),
                        names.join(", "),
                        ByteSize::from_bytes(need)
                    ),
                    fix: match lab.placement {
                        Placement::Auto => "add a host, or give the nodes less memory".into(),
                        Placement::Manual => "put some of these nodes on another host (host:), \
                                              or let placement: auto spread them"
                            .into(),
                    },
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(NodePlacement {
            nodes,
            memory_known: free.is_some_and(|f| lab.hosts.iter().all(|h| f.contains_key(&h.name))),
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(extra: &str, nodes: &str) -> Lab {
        let text = format!(
            "name: spread\n{extra}\nnodes:\n  - {{name: boot, role: boot, memory: 1G}}\n{nodes}"
        );
        crate::model::parse(&text, "spread.yaml", None, &["debian-12"]).expect("valid")
    }

    const HOSTS: &str = "hosts:\n  r2: qemu+ssh://root@r2/system\n  r3: qemu+ssh://root@r3/system";

    fn gib(n: u64) -> u64 {
        n << 30
    }

    fn hosts_of(p: &NodePlacement) -> Vec<(&str, &str)> {
        p.nodes
            .iter()
            .map(|n| (n.node.as_str(), n.host.as_str()))
            .collect()
    }

    #[test]
    fn a_single_host_lab_is_all_local() {
        let l = lab(
            "",
            "  - {name: master, role: master}\n  - {name: a, role: agent-private, count: 2}\n",
        );
        let p = place(&l, None).expect("placed");
        assert!(
            p.nodes
                .iter()
                .all(|n| n.host == LOCAL_HOST && n.by == PlacedBy::Default)
        );
        assert!(!l.spans_hosts());
    }

    #[test]
    fn pinned_nodes_stay_and_count_groups_share_their_host() {
        let l = lab(
            HOSTS,
            "  - {name: master, role: master, host: r2}\n  - {name: a, role: agent-private, count: 2, host: r3}\n",
        );
        let p = place(&l, None).expect("placed");
        assert_eq!(
            hosts_of(&p),
            [
                ("boot", "local"),
                ("master", "r2"),
                ("a1", "r3"),
                ("a2", "r3")
            ]
        );
        assert_eq!(p.used_hosts(&l), ["local", "r2", "r3"]);
    }

    #[test]
    fn auto_spreads_by_free_memory_largest_nodes_first() {
        let l = lab(
            &format!("{HOSTS}\nplacement: auto"),
            "  - {name: master, role: master, memory: 2G}\n  - {name: a, role: agent-private, count: 3, memory: 6G}\n  - {name: p, role: agent-public, memory: 1536M}\n",
        );
        let free = BTreeMap::from([
            ("local".to_string(), gib(8)),
            ("r2".to_string(), gib(16)),
            ("r3".to_string(), gib(12)),
        ]);
        let p = place(&l, Some(&free)).expect("placed");
        // GiB left (local, r2, r3) = (8, 16, 12). a1 → r2 (8, 10, 12), a2 → r3 (8, 10, 6),
        // a3 → r2 (8, 4, 6), master → local (6, 4, 6), p → local, first of a tie (4.5, 4, 6),
        // boot → r3 (4.5, 4, 5).
        assert_eq!(
            hosts_of(&p),
            [
                ("boot", "r3"),
                ("master", "local"),
                ("a1", "r2"),
                ("a2", "r3"),
                ("a3", "r2"),
                ("p", "local")
            ]
        );
        assert!(p.nodes.iter().all(|n| n.by == PlacedBy::Auto));
        assert!(p.memory_known);
    }

    #[test]
    fn auto_without_memory_figures_spreads_evenly() {
        let l = lab(
            &format!("{HOSTS}\nplacement: auto"),
            "  - {name: master, role: master}\n  - {name: a, role: agent-private, count: 2}\n",
        );
        let p = place(&l, None).expect("placed");
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &p.nodes {
            *per.entry(n.host.as_str()).or_default() += 1;
        }
        assert_eq!(
            per.values().copied().collect::<Vec<_>>(),
            [2, 1, 1],
            "{per:?}"
        );
        assert!(!p.memory_known);
    }

    #[test]
    fn a_host_short_of_memory_is_named_with_its_nodes() {
        let l = lab(
            HOSTS,
            "  - {name: master, role: master, memory: 2G}\n  - {name: a, role: agent-private, count: 2, memory: 6G, host: r2}\n",
        );
        let free = BTreeMap::from([
            ("local".to_string(), gib(8)),
            ("r2".to_string(), gib(10)),
            ("r3".to_string(), gib(10)),
        ]);
        let e = place(&l, Some(&free)).expect_err("r2 is short");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "hosts.r2");
        assert!(
            e[0].message.contains("(a1, a2) need 12G"),
            "{}",
            e[0].message
        );
        assert!(e[0].fix.contains("placement: auto"), "{}", e[0].fix);
        // Auto cannot fit what no host has room for either.
        let l = lab(
            &format!("{HOSTS}\nplacement: auto"),
            "  - {name: master, role: master, memory: 2G}\n  - {name: a, role: agent-private, count: 4, memory: 6G}\n",
        );
        assert!(place(&l, Some(&free)).is_err());
    }
}
