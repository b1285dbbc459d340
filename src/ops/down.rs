//! `down`: remove a lab, or every lab of this user, each under its lock (the work is
//! `lab::teardown`); or agents of a lab alone (`lab::removal`) [I/O].

use crate::ops::Ctx;
use crate::ops::lab::teardown::{self, DownReport};

/// Removes lab `lab` (`Some`), or every lab this host knows of, each under its lock.
pub async fn down_labs(ctx: &Ctx, lab: Option<&str>) -> anyhow::Result<Vec<DownReport>> {
    let labs = match lab {
        Some(l) => vec![l.to_string()],
        None => teardown::known_labs(ctx).await?,
    };
    let mut reports = Vec::new();
    for lab in labs {
        let _lock = ctx.lock(&lab)?;
        reports.push(teardown::down(ctx, &lab).await?);
    }
    Ok(reports)
}

/// Removes `nodes` from lab `lab` alone, under the lab's lock.
pub async fn down_nodes(
    ctx: &Ctx,
    lab: &str,
    nodes: &[String],
) -> anyhow::Result<crate::ops::lab::removal::RemoveReport> {
    let _lock = ctx.lock(lab)?;
    crate::ops::lab::removal::remove_nodes(ctx, lab, nodes).await
}
