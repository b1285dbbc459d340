//! Choosing a lab's nodes and running commands on them, all at once, through the `Guests` seam
//! (`ctx.guests`) [SSH I/O].

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::guest::{Guests, KnownHosts, LabKey, Shell, Target};
use crate::names::LabDirs;
use crate::ops::Ctx;
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

/// Runs `f` on every item at once, each in its own task; the results in the items' order.
pub async fn all_at_once<I, T, Fut>(
    items: impl IntoIterator<Item = I>,
    f: impl Fn(I) -> Fut,
) -> anyhow::Result<Vec<T>>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let fut = f(item);
        set.spawn(async move { (i, fut.await) });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

/// How the lab's nodes are reached: the lab key and the pinned host keys, loaded once.
#[derive(Clone)]
pub struct Access {
    pub key: LabKey,
    pub known: KnownHosts,
}

impl Access {
    /// Loads the lab's key and pinned host keys from its private directory.
    pub fn load(lab_dirs: &LabDirs) -> Result<Access, crate::guest::GuestError> {
        Ok(Access {
            key: LabKey::load(&lab_dirs.ssh_key())?,
            known: KnownHosts::load(&lab_dirs.known_hosts())?,
        })
    }

    /// `n` as the `Guests` seam reaches it (SSH on its private address).
    pub fn target(&self, n: &NodeState) -> anyhow::Result<Target> {
        let addr = n
            .private_ipv4()
            .ok_or_else(|| anyhow::anyhow!("node {} has no private address", n.name))?;
        Ok(self.target_at(&n.name, &n.domain, addr))
    }

    /// Node `node` (domain `domain`) reached at `addr` on its private network.
    pub fn target_at(&self, node: &str, domain: &str, addr: Ipv4Addr) -> Target {
        Target {
            node: node.to_string(),
            domain: domain.to_string(),
            addr: SocketAddr::new(IpAddr::V4(addr), 22),
            key: self.key.clone(),
            known: self.known.clone(),
        }
    }
}

/// A shell on running node `n`, connected once within `timeout`.
pub async fn connect(
    guests: &Arc<dyn Guests>,
    access: &Access,
    n: &NodeState,
    timeout: Duration,
) -> anyhow::Result<Box<dyn Shell>> {
    let t = access.target(n)?;
    Ok(guests.connect(&t, timeout).await?)
}

/// Runs `command` on every node in `targets` at once; a node that cannot be reached has its
/// error in its result.
pub async fn exec(
    ctx: &Ctx,
    lab_dirs: &LabDirs,
    targets: &[&NodeState],
    command: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<NodeResult>> {
    let each = targets.iter().map(|n| ((*n).clone(), command.to_string()));
    exec_each(ctx, lab_dirs, each, timeout).await
}

/// Runs each node's own command on it, all at once; the results in the order given.
pub async fn exec_each(
    ctx: &Ctx,
    lab_dirs: &LabDirs,
    commands: impl IntoIterator<Item = (NodeState, String)>,
    timeout: Duration,
) -> anyhow::Result<Vec<NodeResult>> {
    let access = Access::load(lab_dirs)?;
    all_at_once(commands, |(n, command)| {
        let (guests, access) = (ctx.guests.clone(), access.clone());
        async move {
            let run = async {
                let s = connect(&guests, &access, &n, timeout).await?;
                let out = s.exec(&command).await;
                s.close().await;
                anyhow::Ok(out?)
            };
            match run.await {
                Ok(o) => NodeResult {
                    node: n.name.clone(),
                    status: o.status,
                    stdout: o.stdout_str(),
                    stderr: o.stderr_str(),
                    error: None,
                },
                Err(e) => NodeResult {
                    node: n.name.clone(),
                    status: None,
                    stdout: String::new(),
                    stderr: String::new(),
                    error: Some(crate::error_chain(e.as_ref())),
                },
            }
        }
    })
    .await
}
