//! Nodes powered off cleanly, disks kept: the guest asked to power off (its agent, else the
//! ACPI power button), a bounded wait, then forced off, saying which [I/O: libvirt].

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::names::ObjState;
use crate::ops::Ctx;
use crate::ops::lab::nodes;
use crate::ops::lab::state as lab_state;

/// How one node ended.
#[derive(Debug, Serialize)]
pub struct HaltedNode {
    pub node: String,
    /// `shut down`, `forced off after N s` (its guest did not power off in time), `already
    /// stopped`, or `suspended` (its saved memory kept; `resume` or `up` brings it back).
    pub outcome: String,
}

/// What `halt` did.
#[derive(Debug, Serialize)]
pub struct HaltReport {
    pub lab: String,
    pub nodes: Vec<HaltedNode>,
    pub seconds: f64,
}

/// Powers off `nodes` of `lab` (every node when empty): each running one is asked to shut down
/// (a paused one runs again first: a paused guest hears nothing), all at once; one still running
/// after `timeout` is forced off. `up` starts them again.
pub async fn halt(
    ctx: &Ctx,
    lab: &str,
    nodes: &[String],
    timeout: Duration,
) -> anyhow::Result<HaltReport> {
    let t0 = Instant::now();
    let state = lab_state::existing(ctx, lab).await?;
    let chosen = nodes::select(&state, nodes, &[])?;
    let live: Vec<String> = chosen
        .iter()
        .filter(|n| matches!(n.state, ObjState::Active | ObjState::Paused))
        .map(|n| n.domain.clone())
        .collect();
    let paused: Vec<String> = chosen
        .iter()
        .filter(|n| n.state == ObjState::Paused)
        .map(|n| n.domain.clone())
        .collect();
    for (d, r) in ctx.for_domains(&paused, |h, d| h.resume_domain(d)).await {
        r.map_err(|e| e.context(format!("cannot run {d} again to shut it down")))?;
    }
    for (d, r) in ctx.for_domains(&live, |h, d| h.shutdown_domain(d)).await {
        r.map_err(|e| e.context(format!("cannot ask {d} to shut down")))?;
    }
    let forced = wait_for_power_off(ctx, live.clone(), timeout).await?;
    for (d, r) in ctx.for_domains(&forced, |h, d| h.stop_domain(d)).await {
        r.map_err(|e| e.context(format!("cannot force {d} off")))?;
    }
    let nodes = chosen
        .iter()
        .map(|n| HaltedNode {
            node: n.name.clone(),
            outcome: if forced.contains(&n.domain) {
                format!("forced off after {} s", timeout.as_secs())
            } else if live.contains(&n.domain) {
                "shut down".to_string()
            } else if n.state == ObjState::Suspended {
                "suspended".to_string()
            } else {
                "already stopped".to_string()
            },
        })
        .collect();
    Ok(HaltReport {
        lab: lab.to_string(),
        nodes,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Waits until every domain of `left` is off, for at most `timeout`; returns those still on.
async fn wait_for_power_off(
    ctx: &Ctx,
    mut left: Vec<String>,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut on = Vec::new();
        for (d, r) in ctx.for_domains(&left, |h, d| h.domain_state(d)).await {
            if matches!(r?, ObjState::Active | ObjState::Paused) {
                on.push(d);
            }
        }
        left.retain(|d| on.contains(d));
        if left.is_empty() || Instant::now() >= deadline {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
