//! `status` and `list`: the labs as libvirt has them, with each node's DC/OS install state and
//! an interrupted revert [reads libvirt, the state directory and the nodes].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::Ctx;
use super::lab_state::{self, LabState};
use crate::plan::ObjState;

/// A lab as `status` shows it: libvirt's view plus each node's DC/OS install state.
#[derive(Debug, Serialize)]
pub struct LabStatus {
    #[serde(flatten)]
    pub state: LabState,
    pub install: BTreeMap<String, super::install::NodeInstall>,
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
        let install = super::install::probe(&lab_dirs, &state.nodes).await;
        let unfinished_revert = super::snapshot::unfinished_revert(&lab_dirs)?;
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
        })
        .collect())
}

/// The lab as libvirt has it; bad input when it does not exist.
pub async fn existing(ctx: &Ctx, lab: &str) -> anyhow::Result<LabState> {
    let state = lab_state::read(ctx, lab).await?;
    if !state.exists() {
        return Err(crate::BadInput(format!(
            "lab {lab} does not exist; `dcos-lab up {lab}` makes it"
        ))
        .into());
    }
    Ok(state)
}

/// Runs a command's `work` to its end, or until Ctrl-C: then (and when `work` fails on a change
/// the driver refused because Ctrl-C came first, before tokio's wake-up) the error `report`
/// makes. Commands that catch Ctrl-C (`up`, `up --from`, `install`) run through this.
pub async fn until_ctrl_c<T, R>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
    report: impl FnOnce() -> R,
) -> anyhow::Result<T>
where
    R: std::future::Future<Output = anyhow::Error>,
{
    crate::interrupt::watch();
    tokio::select! {
        r = work => match r {
            Err(_) if crate::interrupt::pressed() => Err(report().await),
            r => r,
        },
        _ = tokio::signal::ctrl_c() => Err(report().await),
    }
}

/// How long the Ctrl-C report waits for a libvirt change under way.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(1500);

/// The error for a command stopped by Ctrl-C: what exists of the lab now (read from libvirt),
/// and how to go on.
pub async fn interrupted(ctx: &Ctx, lab: &str, arg: &str, command: &str) -> anyhow::Error {
    // A change already under way when Ctrl-C came finishes first (none starts after it); one
    // that takes longer is named, not waited for: Ctrl-C answers within 2 s.
    let under_way = tokio::task::spawn_blocking(|| crate::interrupt::settle(SETTLE))
        .await
        .unwrap_or_default();
    let mut parts = Vec::new();
    let read = async {
        let s = lab_state::read(ctx, lab).await?;
        let pool = crate::plan::pool_name(lab);
        let p = pool.clone();
        let pool = crate::driver::blocking(ctx.hv(), move |h| h.pool(&p))
            .await?
            .map(|i| format!("storage pool {pool} ({} volumes)", i.volumes.len()));
        anyhow::Ok((s, pool))
    };
    match read.await {
        Ok((s, pool)) => {
            parts.extend(pool);
            parts.extend(
                s.networks
                    .iter()
                    .map(|n| format!("network {} ({})", n.name, n.state)),
            );
            parts.extend(
                s.nodes
                    .iter()
                    .map(|n| format!("domain {} ({})", n.domain, n.state)),
            );
        }
        Err(e) => parts.push(format!("(cannot ask libvirt: {e})")),
    }
    let dir = ctx.dirs.lab(lab);
    if dir.path().exists() {
        parts.push(format!("directory {}", dir.path().display()));
    }
    let mut what = if parts.is_empty() {
        format!("lab {lab} has nothing on this host")
    } else {
        format!("lab {lab} has now: {}", parts.join(", "))
    };
    if !under_way.is_empty() {
        let _ = write!(
            what,
            "; still under way in libvirt: {}",
            under_way.join(", ")
        );
    }
    crate::Interrupted(format!(
        "interrupted: `{command}` stopped by Ctrl-C; {what}\n  fix: `dcos-lab up {arg}` finishes the lab, `dcos-lab down {lab}` removes it"
    ))
    .into()
}
