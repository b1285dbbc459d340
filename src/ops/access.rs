//! Reaching a lab's nodes: choose nodes, run commands on them concurrently, and the OpenSSH
//! config and Ansible inventory that let other tools in [SSH I/O in `exec`; text pure].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::lab_state::{LabState, NodeState};
use crate::guest::{KnownHosts, LabKey, Session};
use crate::names::LabDirs;

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

/// Runs `command` on the nodes of `lab` named in `nodes` or having one of `roles` (all when
/// both are empty), at once.
pub async fn exec_on(
    ctx: &super::Ctx,
    lab: &str,
    nodes: &[String],
    roles: &[String],
    command: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<NodeResult>> {
    let state = super::lab_state::existing(ctx, lab).await?;
    let targets = select(&state, nodes, roles)?;
    exec(&ctx.dirs.lab(lab), &targets, command, timeout).await
}

/// An interactive shell on `node` of `lab`; its exit status.
pub async fn shell(ctx: &super::Ctx, lab: &str, node: &str) -> anyhow::Result<i32> {
    let state = super::lab_state::existing(ctx, lab).await?;
    let n = select(&state, &[node.to_string()], &[])?
        .first()
        .map(|n| (n.name.clone(), n.private_ipv4()))
        .ok_or_else(|| anyhow::anyhow!("lab {lab} has no node {node}"))?;
    crate::guest::interactive(&ctx.dirs.lab(lab), &n.0, n.1).await
}

/// The OpenSSH config of `lab` (`ssh-config`), with the known_hosts file it points to written.
pub async fn ssh_config_of(ctx: &super::Ctx, lab: &str) -> anyhow::Result<String> {
    let state = super::lab_state::existing(ctx, lab).await?;
    let lab_dirs = ctx.dirs.lab(lab);
    let kh = write_openssh_known_hosts(lab, &lab_dirs, &state)?;
    Ok(ssh_config(lab, &lab_dirs, &state, &kh))
}

/// The Ansible inventory of `lab` (`inventory`), with the known_hosts file it points to written.
pub async fn inventory_of(ctx: &super::Ctx, lab: &str) -> anyhow::Result<String> {
    let state = super::lab_state::existing(ctx, lab).await?;
    let lab_dirs = ctx.dirs.lab(lab);
    let kh = write_openssh_known_hosts(lab, &lab_dirs, &state)?;
    Ok(inventory(lab, &lab_dirs, &state, &kh))
}

/// Name of a node's host key in the OpenSSH known_hosts file we keep (`HostKeyAlias`).
pub fn host_alias(lab: &str, node: &str) -> String {
    crate::names::domain_name(lab, node)
}

/// Writes the pinned host keys as an OpenSSH known_hosts file, keyed by `HostKeyAlias`.
pub fn write_openssh_known_hosts(
    lab: &str,
    lab_dirs: &LabDirs,
    state: &LabState,
) -> anyhow::Result<std::path::PathBuf> {
    let known = KnownHosts::load(&lab_dirs.known_hosts())?;
    let mut text = String::new();
    for n in &state.nodes {
        if let Some(k) = known.get(&n.name) {
            text.push_str(&format!("{} {k}\n", host_alias(lab, &n.name)));
        }
    }
    let path = lab_dirs.ssh_dir().join("known_hosts.openssh");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// An OpenSSH config block per node: `ssh -F FILE <node>.<lab>` logs in with the lab key and
/// checks the pinned host key.
pub fn ssh_config(
    lab: &str,
    lab_dirs: &LabDirs,
    state: &LabState,
    known_hosts: &std::path::Path,
) -> String {
    let mut out = format!("# dcos-lab: lab {lab}\n");
    for n in &state.nodes {
        let Some(ip) = n.private_ipv4() else { continue };
        // A lab across hosts: every address is on the lab's networks, which the overlay carries
        // to the lab's first host, where dcos-lab runs and this file is used.
        if n.host != crate::model::LOCAL_HOST {
            out.push_str(&format!(
                "# {} runs on host {}: reached over the overlay from the lab's first host\n",
                n.name, n.host
            ));
        }
        out.push_str(&format!(
            "Host {node}.{lab} {lab}-{node}\n  HostName {ip}\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  HostKeyAlias {alias}\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n\n",
            node = n.name,
            key = lab_dirs.ssh_key().display(),
            kh = known_hosts.display(),
            alias = host_alias(lab, &n.name),
        ));
    }
    out
}

/// An Ansible YAML inventory: one group per role, hosts by node name.
pub fn inventory(
    lab: &str,
    lab_dirs: &LabDirs,
    state: &LabState,
    known_hosts: &std::path::Path,
) -> String {
    let mut out = format!(
        "# dcos-lab: lab {lab}\nall:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {}\n    ansible_ssh_common_args: \"-o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes\"\n  children:\n",
        lab_dirs.ssh_key().display(),
        known_hosts.display()
    );
    let spans = state
        .nodes
        .iter()
        .any(|n| n.host != crate::model::LOCAL_HOST);
    for role in ["boot", "master", "agent-private", "agent-public"] {
        let members: Vec<_> = state.nodes.iter().filter(|n| n.role == role).collect();
        if members.is_empty() {
            continue;
        }
        out.push_str(&format!("    {}:\n      hosts:\n", role.replace('-', "_")));
        for n in members {
            let ip = n.private_ipv4().map(|a| a.to_string()).unwrap_or_default();
            out.push_str(&format!(
                "        {}:\n          ansible_host: {ip}\n          ansible_ssh_extra_args: \"-o HostKeyAlias={}\"\n",
                n.name,
                host_alias(lab, &n.name)
            ));
            // Which libvirt host runs it (a lab across hosts), for plays that care.
            if spans {
                out.push_str(&format!("          dcos_lab_host: {}\n", n.host));
            }
        }
    }
    out
}

/// Shared handle type for callers.
pub type Shared<T> = Arc<T>;
