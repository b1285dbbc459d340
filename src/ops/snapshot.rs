//! `snapshot`, `revert`, `snapshots` and `snapshot rm`: each under the lab's lock (`snapshots`
//! only reads); the work is `lab::snapshots` [I/O].

use std::time::Duration;

use crate::ops::Ctx;
use crate::ops::lab::snapshots::{self, LabSnapshot, RevertReport, SnapshotReport};

/// Takes snapshot `name` (a name made of the time when `None`) of every node of `lab`.
pub async fn take(ctx: &Ctx, lab: &str, name: Option<String>) -> anyhow::Result<SnapshotReport> {
    let _lock = ctx.lock(lab)?;
    let name = name.unwrap_or_else(snapshots::default_name);
    snapshots::snapshot(ctx, lab, &name).await
}

/// Puts `lab` back to snapshot `name` (the newest when `None`), running.
pub async fn revert(
    ctx: &Ctx,
    lab: &str,
    name: Option<&str>,
    wait: Duration,
) -> anyhow::Result<RevertReport> {
    let _lock = ctx.lock(lab)?;
    snapshots::revert(ctx, lab, name, wait).await
}

/// Removes snapshot `name` from every node of `lab`.
pub async fn remove(ctx: &Ctx, lab: &str, name: &str) -> anyhow::Result<()> {
    let _lock = ctx.lock(lab)?;
    snapshots::remove(ctx, lab, name).await
}

/// The snapshots of `lab`, with what each holds on disk.
pub async fn list(ctx: &Ctx, lab: &str) -> anyhow::Result<Vec<LabSnapshot>> {
    snapshots::list_with_sizes(ctx, lab).await
}
