//! A command stopped by Ctrl-C: run to its end or until Ctrl-C, then say what exists of the lab
//! and how to go on [reads libvirt and the state directory].

use std::fmt::Write as _;

use crate::ops::Ctx;
use crate::ops::lab::state as lab_state;

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
        let pool = crate::names::pool_name(lab);
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
