//! Choosing a lab's nodes and running commands on them, all at once, through the `Guests` seam
//! (`ctx.guests`) [SSH I/O].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::guest::{KnownHosts, LabKey, Session};
use crate::names::LabDirs;
use crate::ops::lab::state::{LabState, NodeState};

/// The nodes of `state` named in `nodes` or having one of `roles`; all when both are empty.
pub fn select<'a>(
    state: &'a LabState,
    nodes: &[String],
    roles: &[String],
) -> Result<Vec<&'a NodeState>, crate::BadInput> {
    for n in nodes {
        if state.node(n).is_none() {
            let known: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
            return Err(crate::BadInput(format!(
                "lab {} has no node \"{n}\"; its nodes: {}",
                state.lab,
                known.join(", ")
            )));
        }
    }
    for r in roles {
        if crate::model::Role::parse(r).is_none() {
            return Err(crate::BadInput(format!(
                "unknown role \"{r}\"; roles: boot, master, agent-private, agent-public"
            )));
        }
    }
    Ok(state
        .nodes
        .iter()
        .filter(|n| {
            (nodes.is_empty() && roles.is_empty())
                || nodes.contains(&n.name)
                || roles.contains(&n.role)
        })
        .collect())
}

/// One node's result of `exec`.
#[derive(Debug, Serialize)]
pub struct NodeResult {
    pub node: String,
    /// The command's exit status; `None` when it could not be run (see `error`).
    pub status: Option<u32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
}

impl NodeResult {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }
}

/// Runs `command` on every node in `targets` at once.
pub async fn exec(
    lab_dirs: &LabDirs,
    targets: &[&NodeState],
    command: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<NodeResult>> {
    let key = LabKey::load(&lab_dirs.ssh_key())?;
    let known = KnownHosts::load(&lab_dirs.known_hosts())?;
    let mut set = tokio::task::JoinSet::new();
    for (i, n) in targets.iter().enumerate() {
        let node = n.name.clone();
        let addr = n.private_ipv4();
        let key = key.clone();
        let known = known.clone();
        let command = command.to_string();
        set.spawn(async move {
            let run = async {
                let addr =
                    addr.ok_or_else(|| anyhow::anyhow!("node {node} has no private address"))?;
                let s = Session::connect(
                    &node,
                    SocketAddr::new(IpAddr::V4(addr), 22),
                    &key,
                    &known,
                    timeout,
                )
                .await?;
                let out = s.exec(&command).await?;
                s.close().await;
                anyhow::Ok(out)
            };
            let r = match run.await {
                Ok(o) => NodeResult {
                    node: node.clone(),
                    status: o.status,
                    stdout: o.stdout_str(),
                    stderr: o.stderr_str(),
                    error: None,
                },
                Err(e) => NodeResult {
                    node: node.clone(),
                    status: None,
                    stdout: String::new(),
                    stderr: String::new(),
                    error: Some(crate::error_chain(e.as_ref())),
                },
            };
            (i, r)
        });
    }
    let mut results: Vec<(usize, NodeResult)> = Vec::new();
    while let Some(r) = set.join_next().await {
        results.push(r?);
    }
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}
