//! `suspend`, `resume` and `halt`: a lab put away and brought back, each under the lab's lock
//! (the work is `lab::suspension` and `lab::halt`) [I/O].

use std::time::Duration;

use crate::ops::Ctx;
use crate::ops::lab::halt::{self, HaltReport};
use crate::ops::lab::suspension::{self, ResumeReport, SuspendReport};

/// Suspends `lab`: every node paused at once, then saved to disk; no QEMU process of it is left.
pub async fn suspend(ctx: &Ctx, lab: &str) -> anyhow::Result<SuspendReport> {
    let _lock = ctx.lock(lab)?;
    suspension::suspend(ctx, lab).await
}

/// Resumes `lab` as it was, running, clocks corrected; each node may take `wait` to answer.
pub async fn resume(ctx: &Ctx, lab: &str, wait: Duration) -> anyhow::Result<ResumeReport> {
    let _lock = ctx.lock(lab)?;
    suspension::resume(ctx, lab, wait).await
}

/// Powers off `nodes` of `lab` (all when empty) cleanly, forced after `timeout`; disks kept.
pub async fn halt(
    ctx: &Ctx,
    lab: &str,
    nodes: &[String],
    timeout: Duration,
) -> anyhow::Result<HaltReport> {
    let _lock = ctx.lock(lab)?;
    halt::halt(ctx, lab, nodes, timeout).await
}
