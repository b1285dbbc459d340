//! `status` and `list`: the labs as libvirt has them, with each node's DC/OS install state and
//! an interrupted revert [reads libvirt, the state directory and the nodes].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::names::ObjState;
use crate::ops::Ctx;
use crate::ops::lab::state::{self as lab_state, LabState};

/// A lab as `status` shows it: libvirt's view plus each node's DC/OS install state.
#[derive(Debug, Serialize)]
pub struct LabStatus {
    #[serde(flatten)]
    pub state: LabState,
    pub install: BTreeMap<String, crate::ops::lab::dcos::NodeInstall>,
    /// The snapshot of a revert that was interrupted (`up` or `revert` finishes it).
    pub unfinished_revert: Option<String>,
}

/// One lab (`Some`), which may not exist, or every lab libvirt knows of.
pub async fn status(ctx: &Ctx, lab: Option<&str>) -> anyhow::Result<Vec<LabStatus>> {
    let states = match lab {
        Some(name) => vec![lab_state::read(ctx, name).await?],
        None => lab_state::read_all(ctx).await?.into_values().collect(),
    };
    let mut out = Vec::new();
    for state in states {
        let lab_dirs = ctx.dirs.lab(&state.lab);
        let install = crate::ops::lab::dcos::probe(ctx, &lab_dirs, &state.nodes).await;
        let unfinished_revert = crate::ops::lab::snapshots::unfinished_revert(&lab_dirs)?;
        out.push(LabStatus {
            state,
            install,
            unfinished_revert,
        });
    }
    Ok(out)
}

/// One row of `list`.
#[derive(Debug, Serialize)]
pub struct LabRow {
    pub lab: String,
    pub nodes: usize,
    pub running: usize,
    /// Nodes whose memory is saved to disk (`suspend`); `resume` or `up` brings them back.
    pub suspended: usize,
}

/// Every lab libvirt knows of, with how many of its nodes run.
pub async fn list(ctx: &Ctx) -> anyhow::Result<Vec<LabRow>> {
    Ok(lab_state::read_all(ctx)
        .await?
        .values()
        .map(|l| LabRow {
            lab: l.lab.clone(),
            nodes: l.nodes.len(),
            running: l
                .nodes
                .iter()
                .filter(|n| n.state == ObjState::Active)
                .count(),
            suspended: l
                .nodes
                .iter()
                .filter(|n| n.state == ObjState::Suspended)
                .count(),
        })
        .collect())
}
