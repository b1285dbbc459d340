//! `exec`, `ssh`, `ssh-config` and `inventory`: commands on a lab's nodes (through
//! `lab::nodes`), and the OpenSSH config and Ansible inventory that let other tools in [SSH I/O
//! in `exec` and `ssh`; text pure].

use std::time::Duration;

use crate::guest::KnownHosts;
use crate::names::LabDirs;
use crate::ops::lab::nodes::{self as lab_nodes, NodeResult};
use crate::ops::lab::state::LabState;

/// Runs `command` on the nodes of `lab` named in `nodes` or having one of `roles` (all when
/// both are empty), at once.
pub async fn exec_on(
    ctx: &crate::ops::Ctx,
    lab: &str,
    nodes: &[String],
    roles: &[String],
    command: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<NodeResult>> {
    let state = crate::ops::lab::state::existing(ctx, lab).await?;
    let targets = lab_nodes::select(&state, nodes, roles)?;
    lab_nodes::exec(ctx, &ctx.dirs.lab(lab), &targets, command, timeout).await
}

/// An interactive shell on `node` of `lab`; its exit status.
pub async fn shell(ctx: &crate::ops::Ctx, lab: &str, node: &str) -> anyhow::Result<i32> {
    let state = crate::ops::lab::state::existing(ctx, lab).await?;
    let n = lab_nodes::select(&state, &[node.to_string()], &[])?
        .first()
        .map(|n| (n.name.clone(), n.private_ipv4()))
        .ok_or_else(|| anyhow::anyhow!("lab {lab} has no node {node}"))?;
    crate::guest::interactive(&ctx.dirs.lab(lab), &n.0, n.1).await
}

/// The OpenSSH config of `lab` (`ssh-config`), with the known_hosts file it points to written.
pub async fn ssh_config_of(ctx: &crate::ops::Ctx, lab: &str) -> anyhow::Result<String> {
    let state = crate::ops::lab::state::existing(ctx, lab).await?;
    let lab_dirs = ctx.dirs.lab(lab);
    let kh = write_openssh_known_hosts(lab, &lab_dirs, &state)?;
    Ok(ssh_config(lab, &lab_dirs, &state, &kh))
}

/// The Ansible inventory of `lab` (`inventory`), with the known_hosts file it points to written.
pub async fn inventory_of(ctx: &crate::ops::Ctx, lab: &str) -> anyhow::Result<String> {
    let state = crate::ops::lab::state::existing(ctx, lab).await?;
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
