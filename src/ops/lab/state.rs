//! What a lab is, read from libvirt alone (its objects' metadata): nodes, roles, states, addresses [I/O].

use std::collections::BTreeMap;

use serde::Serialize;

use anyhow::Context;

use crate::driver::{Hv, blocking};
use crate::model::LOCAL_HOST;
use crate::names::ObjState;
use crate::ops::Ctx;
use crate::tag::NicTag;

/// A NIC of a node as reported (`status --json`).
#[derive(Debug, Clone, Serialize)]
pub struct NicState {
    pub network: String,
    pub mac: String,
    pub ipv4: String,
    pub ipv6: Option<String>,
}

impl From<NicTag> for NicState {
    fn from(t: NicTag) -> Self {
        NicState {
            network: t.network,
            mac: t.mac,
            ipv4: t.ipv4,
            ipv6: t.ipv6,
        }
    }
}

/// One node as libvirt has it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    pub name: String,
    /// The host it runs on (`local` on a lab of one host).
    pub host: String,
    pub domain: String,
    pub role: String,
    pub state: ObjState,
    pub accel: Option<String>,
    pub nics: Vec<NicState>,
}

impl NodeState {
    /// The private IPv4 address, which dcos-lab uses to reach the node.
    pub fn private_ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.nics
            .iter()
            .find(|n| n.network == "private")
            .and_then(|n| n.ipv4.parse().ok())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkState {
    pub name: String,
    pub network: String,
    pub state: ObjState,
    pub host: String,
    /// The lab's other hosts, recorded on the first host's networks.
    #[serde(skip)]
    pub hosts: Vec<crate::tag::HostTag>,
}

/// A lab as libvirt has it.
#[derive(Debug, Clone, Serialize)]
pub struct LabState {
    pub lab: String,
    pub nodes: Vec<NodeState>,
    pub networks: Vec<NetworkState>,
    /// Snapshot names held by any node, oldest first.
    pub snapshots: Vec<String>,
}

impl LabState {
    pub fn exists(&self) -> bool {
        !self.nodes.is_empty() || !self.networks.is_empty()
    }

    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The bad input of a command a suspended lab cannot take (`snapshot`): the fix is `resume`.
    pub fn refuse_suspended(&self, command: &str) -> Result<(), crate::BadInput> {
        let saved: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| n.state == ObjState::Suspended)
            .map(|n| n.name.as_str())
            .collect();
        if saved.is_empty() {
            return Ok(());
        }
        Err(crate::BadInput(format!(
            "lab {lab} is suspended (nodes {}), so `{command}` cannot run on it\n  fix: `dcos-lab resume {lab}` first",
            saved.join(", "),
            lab = self.lab
        )))
    }
}

const ROLE_ORDER: [&str; 4] = ["boot", "master", "agent-private", "agent-public"];

fn role_rank(r: &str) -> usize {
    ROLE_ORDER
        .iter()
        .position(|x| *x == r)
        .unwrap_or(ROLE_ORDER.len())
}

/// Every lab libvirt knows of on the local host, by name (a lab across hosts is there too: its
/// first host holds its networks).
///
/// Only the labs of the command's user (`Ctx::owner`): another user's labs are not listed.
pub async fn read_all(ctx: &Ctx) -> anyhow::Result<BTreeMap<String, LabState>> {
    let mut out = read_labs(ctx.hv(), None, LOCAL_HOST, ctx.owner).await?;
    for state in out.values_mut() {
        across_hosts(ctx, state).await?;
    }
    Ok(out)
}

/// The labs of user `owner` libvirt knows of on one host, or only `only`; snapshots are listed
/// for the labs returned alone. Asked for one lab that another user's objects make up, it
/// refuses, naming that user: labs belong to the user who made them, and their names are
/// libvirt's, one per host.
async fn read_labs(
    hv: &Hv,
    only: Option<&str>,
    host: &str,
    owner: u32,
) -> anyhow::Result<BTreeMap<String, LabState>> {
    let (mut doms, mut nets) =
        blocking(hv, |h| Ok((h.owned_domains()?, h.owned_networks()?))).await?;
    if let Some(lab) = only {
        doms.retain(|d| d.tag.lab == lab);
        nets.retain(|n| n.tag.lab == lab);
        mine_or_refused(lab, &doms, &nets, owner)?;
    }
    doms.retain(|d| d.tag.owner() == owner);
    nets.retain(|n| n.tag.owner() == owner);
    let mut labs: BTreeMap<String, LabState> = BTreeMap::new();
    let entry = |labs: &mut BTreeMap<String, LabState>, lab: &str| {
        labs.entry(lab.to_string())
            .or_insert_with(|| LabState {
                lab: lab.to_string(),
                nodes: Vec::new(),
                networks: Vec::new(),
                snapshots: Vec::new(),
            })
            .lab
            .clone()
    };
    for d in doms {
        let lab = entry(&mut labs, &d.tag.lab);
        if let Some(l) = labs.get_mut(&lab) {
            l.nodes.push(NodeState {
                name: d.tag.node.clone().unwrap_or_default(),
                host: host.to_string(),
                domain: d.name,
                role: d.tag.role.clone().unwrap_or_default(),
                state: d.state,
                accel: d.tag.accel.clone(),
                nics: d.tag.nics.into_iter().map(NicState::from).collect(),
            });
        }
    }
    for n in nets {
        let lab = entry(&mut labs, &n.tag.lab);
        if let Some(l) = labs.get_mut(&lab) {
            l.networks.push(NetworkState {
                name: n.name,
                network: n.tag.network.unwrap_or_default(),
                state: n.state,
                host: host.to_string(),
                hosts: n.tag.hosts,
            });
        }
    }
    for l in labs.values_mut() {
        let domains: Vec<String> = l.nodes.iter().map(|n| n.domain.clone()).collect();
        let snaps = blocking(hv, move |h| {
            let mut all: Vec<(u64, String)> = Vec::new();
            for d in &domains {
                // A domain removed while we listed has no snapshots; any other failure is real
                // (it would show a lab with snapshots as one without).
                let listed = match h.snapshots(d) {
                    Ok(l) => l,
                    Err(e) if e.is_not_found() => Vec::new(),
                    Err(e) => return Err(e),
                };
                for s in listed {
                    if !all.iter().any(|(_, n)| *n == s.name) {
                        all.push((s.created_unix, s.name));
                    }
                }
            }
            all.sort();
            Ok(all.into_iter().map(|(_, n)| n).collect::<Vec<_>>())
        })
        .await?;
        l.snapshots = snaps;
        sort(l);
    }
    Ok(labs)
}

/// Role order, then the order of the address plan (the private address).
fn sort(l: &mut LabState) {
    l.nodes
        .sort_by_key(|n| (role_rank(&n.role), n.private_ipv4(), n.name.clone()));
    l.networks.sort_by(|a, b| {
        (a.host != LOCAL_HOST, &a.host, &a.network).cmp(&(
            b.host != LOCAL_HOST,
            &b.host,
            &b.network,
        ))
    });
}

/// Refuses lab `lab` when any of its objects among `doms` and `nets` belongs to a user other
/// than `owner`.
fn mine_or_refused(
    lab: &str,
    doms: &[crate::driver::Owned],
    nets: &[crate::driver::Owned],
    owner: u32,
) -> Result<(), crate::BadInput> {
    let other = doms
        .iter()
        .map(|d| &d.tag)
        .chain(nets.iter().map(|n| &n.tag))
        .filter(|t| t.lab == lab)
        .map(crate::tag::LabTag::owner)
        .find(|o| *o != owner);
    match other {
        None => Ok(()),
        Some(other) => Err(crate::BadInput(format!(
            "lab {lab} belongs to another user ({}); dcos-lab shows, changes and removes only your own labs\n  fix: give your lab another name (`name:` in its lab file), or ask that user to `dcos-lab down {lab}`",
            user_name(other)
        ))),
    }
}

/// Refuses lab `lab` on the local host when another user made it (before `up` changes
/// anything: libvirt's names are one per host, and a define would replace that user's objects).
pub async fn refuse_foreign(ctx: &Ctx, lab: &str) -> anyhow::Result<()> {
    let (doms, nets) =
        blocking(ctx.hv(), |h| Ok((h.owned_domains()?, h.owned_networks()?))).await?;
    mine_or_refused(lab, &doms, &nets, ctx.owner)?;
    Ok(())
}

/// A user's name and uid (`alice (uid 1000)`), or the uid alone when the host does not know it.
fn user_name(uid: u32) -> String {
    match crate::host::user_name(uid) {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// One lab on one host, of user `owner`; empty (not an error) when that libvirt has nothing of
/// it, refused when another user's objects make it up.
pub async fn read_on(hv: &Hv, lab: &str, host: &str, owner: u32) -> anyhow::Result<LabState> {
    Ok(read_labs(hv, Some(lab), host, owner)
        .await?
        .remove(lab)
        .unwrap_or(LabState {
            lab: lab.to_string(),
            nodes: Vec::new(),
            networks: Vec::new(),
            snapshots: Vec::new(),
        }))
}

/// One lab, on every host it spans; empty (not an error) when libvirt has nothing of it.
/// The local host's networks name the lab's other hosts: each is reached (one that does not
/// answer is an error naming it) and read, and `ctx` learns where every domain is.
pub async fn read(ctx: &Ctx, lab: &str) -> anyhow::Result<LabState> {
    let mut state = read_on(ctx.hv(), lab, LOCAL_HOST, ctx.owner).await?;
    across_hosts(ctx, &mut state).await?;
    Ok(state)
}

/// Adds to a lab read on the local host what its other hosts (recorded in its networks) hold.
async fn across_hosts(ctx: &Ctx, state: &mut LabState) -> anyhow::Result<()> {
    let lab = state.lab.clone();
    let mut others: Vec<(String, String)> = Vec::new();
    for n in &state.networks {
        for h in &n.hosts {
            if !others.iter().any(|(name, _)| *name == h.name) {
                others.push((h.name.clone(), h.uri.clone()));
            }
        }
    }
    if others.is_empty() {
        return Ok(());
    }
    crate::ops::lab::hosts::reach_uris(ctx, &format!("lab {lab}"), &others, false).await?;
    for (name, _) in &others {
        let hv = ctx
            .host(name)
            .ok_or_else(|| anyhow::anyhow!("internal: host {name} not reached"))?;
        let there = read_on(&hv, &lab, name, ctx.owner)
            .await
            .with_context(|| format!("cannot read lab {lab} on host {name}"))?;
        state.nodes.extend(there.nodes);
        state.networks.extend(there.networks);
        for s in there.snapshots {
            if !state.snapshots.contains(&s) {
                state.snapshots.push(s);
            }
        }
    }
    for n in &state.nodes {
        ctx.place_domain(&n.domain, &n.host);
    }
    sort(state);
    Ok(())
}

/// The lab as libvirt has it; bad input when it does not exist.
pub async fn existing(ctx: &Ctx, lab: &str) -> anyhow::Result<LabState> {
    let state = read(ctx, lab).await?;
    if !state.exists() {
        return Err(crate::BadInput(format!(
            "lab {lab} does not exist; `dcos-lab up {lab}` makes it"
        ))
        .into());
    }
    Ok(state)
}
