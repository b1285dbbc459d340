//! A lab put away for the night and brought back as it was: every node paused at once (one
//! consistent cut), then each node's memory saved to disk through libvirt's managed save, its
//! QEMU process gone; on resume every node restored at once, each running as soon as its memory
//! is back, its clock corrected and random state renewed as after a revert [I/O: libvirt, SSH].

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::names::ObjState;
use crate::ops::Ctx;
use crate::ops::lab::clocks::Clocks;
use crate::ops::lab::nodes::Access;
use crate::ops::lab::state::{self as lab_state, LabState, NodeState};

/// What `suspend` did.
#[derive(Debug, Serialize)]
pub struct SuspendReport {
    pub lab: String,
    /// Nodes whose memory this run saved.
    pub suspended: Vec<String>,
    /// Nodes suspended before this run (a suspend cut short and run again).
    pub already: Vec<String>,
    /// Nodes that were stopped: nothing to save; `up` starts them.
    pub stopped: Vec<String>,
    /// Until every node was paused (the cut), and until every node was saved.
    pub seconds_to_paused: f64,
    pub seconds: f64,
}

/// What `resume` did.
#[derive(Debug, Serialize)]
pub struct ResumeReport {
    pub lab: String,
    /// Nodes this run brought back (restored from disk, or left paused by a run cut short).
    pub resumed: Vec<String>,
    /// Until every node ran again.
    pub seconds_to_running: f64,
    /// Until every node answered over SSH with its clock corrected.
    pub seconds: f64,
    /// Each resumed node's clock offset from the host after correction, in seconds.
    pub clock_offsets: Vec<(String, f64)>,
}

fn named(nodes: &[&NodeState]) -> Vec<String> {
    nodes.iter().map(|n| n.name.clone()).collect()
}

fn domains(nodes: &[&NodeState]) -> Vec<String> {
    nodes.iter().map(|n| n.domain.clone()).collect()
}

fn in_state<'a>(state: &'a LabState, states: &[ObjState]) -> Vec<&'a NodeState> {
    state
        .nodes
        .iter()
        .filter(|n| states.contains(&n.state))
        .collect()
}

/// Suspends `lab`: every running node paused, then every paused node's memory saved to disk, all
/// at once. A node that cannot be paused leaves the lab as it was (the others run on); a node
/// that cannot be saved is named, and `suspend` again (or `resume`) takes over from there.
pub async fn suspend(ctx: &Ctx, lab: &str) -> anyhow::Result<SuspendReport> {
    let t0 = Instant::now();
    let state = lab_state::existing(ctx, lab).await?;
    refuse_half_reverted(ctx, lab)?;
    let live = in_state(&state, &[ObjState::Active, ObjState::Paused]);
    let running = in_state(&state, &[ObjState::Active]);
    // One consistent cut: every running node paused before any is saved, so no node runs on
    // while another's memory is already on disk.
    ctx.pause_all_or_none(&domains(&running), |d| {
        format!("cannot pause {d}; lab {lab} was not suspended, it runs as it did")
    })
    .await?;
    let seconds_to_paused = t0.elapsed().as_secs_f64();
    save_all(ctx, lab, &live).await?;
    Ok(SuspendReport {
        lab: lab.to_string(),
        suspended: named(&live),
        already: named(&in_state(&state, &[ObjState::Suspended])),
        stopped: named(&in_state(&state, &[ObjState::Inactive])),
        seconds_to_paused,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// A lab half way through a revert is neither suspended nor resumed (its paused nodes would run
/// on half reverted): the revert is finished first.
fn refuse_half_reverted(ctx: &Ctx, lab: &str) -> anyhow::Result<()> {
    match crate::ops::lab::snapshots::unfinished_revert(&ctx.dirs.lab(lab))? {
        None => Ok(()),
        Some(snap) => Err(crate::BadInput(format!(
            "lab {lab} is half way through a revert to {snap}\n  fix: `dcos-lab revert {lab} {snap}` or `dcos-lab up {lab}` finishes it first"
        ))
        .into()),
    }
}

/// Every paused node's memory saved to disk at once.
async fn save_all(ctx: &Ctx, lab: &str, nodes: &[&NodeState]) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for (d, r) in ctx
        .for_domains(&domains(nodes), |h, d| h.save_domain(d))
        .await
    {
        if let Err(e) = r {
            failed.push(format!("{d}: {}", crate::error_chain(e.as_ref())));
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "cannot save the memory of every node of lab {lab}:\n  - {}\n  the nodes not named are suspended, the named ones paused\n  fix: `dcos-lab suspend {lab}` again, or `dcos-lab resume {lab}` to run the lab again",
        failed.join("\n  - ")
    )
}

/// Resumes `lab`: every suspended node restored from disk (paused) at once, then every paused
/// node run again at once; each node's clock is corrected and its random state renewed as soon
/// as it answers, the boot node's first. A lab with nothing suspended or paused is left as it is.
pub async fn resume(ctx: &Ctx, lab: &str, wait: Duration) -> anyhow::Result<ResumeReport> {
    let t0 = Instant::now();
    let state = lab_state::existing(ctx, lab).await?;
    refuse_half_reverted(ctx, lab)?;
    let to_run = in_state(&state, &[ObjState::Suspended, ObjState::Paused]);
    let access = Access::load(&ctx.dirs.lab(lab))?;
    let mut clocks = Clocks::new(ctx.guests.clone(), to_run.iter().copied(), wait);
    // Every node restored at once; each runs as soon as its own memory is back (the suspend's
    // cut already made the lab consistent), and its clock is corrected once it answers, without
    // waiting for the other nodes' restores.
    let mut restoring = tokio::task::JoinSet::new();
    for n in &to_run {
        let (hv, d) = (ctx.hv_for(&n.domain), n.domain.clone());
        restoring.spawn(async move {
            let r = crate::driver::blocking(&hv, {
                let d = d.clone();
                move |h| run_again(h, &d)
            })
            .await;
            (d, r)
        });
    }
    while let Some(joined) = restoring.join_next().await {
        let (d, r) = joined?;
        if let Err(e) = r {
            restoring.abort_all();
            clocks.abort();
            return Err(e.context(format!(
                "cannot restore {d} from its saved memory and run it\n  fix: `dcos-lab resume {lab}` again takes over; `dcos-lab down {lab}` removes the lab"
            )));
        }
        if let Some(n) = to_run.iter().find(|n| n.domain == d) {
            clocks.running(access.target(n)?);
        }
    }
    let seconds_to_running = t0.elapsed().as_secs_f64();
    let clock_offsets = clocks.offsets().await?;
    Ok(ResumeReport {
        lab: lab.to_string(),
        resumed: named(&to_run),
        seconds_to_running,
        seconds: t0.elapsed().as_secs_f64(),
        clock_offsets,
    })
}

/// Domain `d` running again: its saved memory restored (running), or, left paused (by a
/// suspend or resume cut short, or saved paused by an earlier dcos-lab), run.
fn run_again(h: &dyn crate::driver::Hypervisor, d: &str) -> Result<(), crate::driver::DriverError> {
    h.start_domain(d)?;
    if h.domain_state(d)? == ObjState::Paused {
        h.resume_domain(d)?;
    }
    Ok(())
}
