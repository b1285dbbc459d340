//! Thin wrappers of the lab commands over `ops`.

use std::time::Duration;

use anyhow::Context;

use super::{
    DownArgs, ExecArgs, HaltArgs, JsonArg, LabArg, LabJsonArgs, ResumeArgs, RevertArgs,
    SnapshotArgs, SnapshotSub, SshArgs, StatusArgs, print, print_json, runtime,
};
use crate::ops::{self, Ctx, access};

pub fn down(ctx: &Ctx, a: DownArgs) -> anyhow::Result<i32> {
    let which = match &a.lab {
        Some(arg) if !a.all => Some(ops::lab_name(arg)?),
        _ => None,
    };
    if let (Some(lab), false) = (&which, a.nodes.is_empty()) {
        let r = runtime()?.block_on(ops::down::down_nodes(ctx, lab, &a.nodes))?;
        if a.json {
            print_json(&r)?;
        } else {
            let mut out = String::new();
            for x in &r.removed {
                out.push_str(&format!("removed {x}\n"));
            }
            for w in &r.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            out.push_str(&format!(
                "lab {}: {} removed ({:.1} s)\n",
                r.lab,
                r.nodes.join(", "),
                r.seconds
            ));
            print(&out)?;
        }
        return Ok(0);
    }
    let reports = runtime()?.block_on(ops::down::down_labs(ctx, which.as_deref()))?;
    if a.json {
        print_json(&reports)?;
    } else {
        let mut out = String::new();
        for r in &reports {
            if r.removed.is_empty() {
                out.push_str(&format!("lab {}: nothing to remove\n", r.lab));
            } else {
                for x in &r.removed {
                    out.push_str(&format!("removed {x}\n"));
                }
                out.push_str(&format!("lab {} is down ({:.1} s)\n", r.lab, r.seconds));
            }
        }
        if reports.is_empty() {
            out.push_str("no labs\n");
        }
        print(&out)?;
    }
    Ok(0)
}

pub fn status(ctx: &Ctx, a: StatusArgs) -> anyhow::Result<i32> {
    let which = a.lab.as_deref().map(ops::lab_name).transpose()?;
    let labs = runtime()?.block_on(ops::status::status(ctx, which.as_deref()))?;
    if a.json {
        if a.lab.is_some() {
            print_json(&labs[0])?;
        } else {
            print_json(&labs)?;
        }
    } else {
        let mut out = String::new();
        for ops::status::LabStatus {
            state: l,
            install,
            unfinished_revert,
        } in &labs
        {
            if !l.exists() {
                out.push_str(&format!("lab {}: not found (nothing in libvirt)\n", l.lab));
                continue;
            }
            let accel = l
                .nodes
                .iter()
                .find_map(|n| n.accel.clone())
                .unwrap_or_default();
            out.push_str(&format!("lab {} (accelerator {accel})\n", l.lab));
            // The DC/OS column appears once any node has started an install.
            let any = install.values().any(|s| {
                !matches!(
                    s,
                    ops::lab::dcos::NodeInstall::None | ops::lab::dcos::NodeInstall::Unknown { .. }
                )
            });
            out.push_str(&super::nodes_table_with(&l.nodes, any.then_some(install)));
            if !l.snapshots.is_empty() {
                out.push_str(&format!("snapshots: {}\n", l.snapshots.join(", ")));
            }
            if let Some(snap) = unfinished_revert {
                out.push_str(&format!(
                    "revert to {snap}: interrupted, not finished; fix: `dcos-lab up {}` or `dcos-lab revert {} {snap}`\n",
                    l.lab, l.lab
                ));
            }
        }
        if labs.is_empty() {
            out.push_str("no labs\n");
        }
        print(&out)?;
    }
    // A named lab that does not exist is not an error for status, but scripts can tell.
    Ok(
        if a.lab.is_some() && !labs.iter().any(|l| l.state.exists()) {
            1
        } else {
            0
        },
    )
}

/// The text summary of `up` (and its install).
pub fn up_summary(r: &ops::up::UpOutcome) -> String {
    let report = &r.up;
    let mut out = super::nodes_table(&report.nodes);
    out.push_str(&format!(
        "lab {} is up ({} nodes, accelerator {}) in {:.1} s{}\n",
        report.lab,
        report.nodes.len(),
        report.accel.accel,
        report.seconds,
        if report.actions.is_empty() {
            ", nothing to change"
        } else {
            ""
        }
    ));
    if let Some(i) = &r.install {
        out.push_str(&install_summary(i));
    }
    out
}

/// The text summary of an install.
pub fn install_summary(r: &ops::lab::dcos::InstallReport) -> String {
    let mut out = String::new();
    for n in &r.nodes {
        out.push_str(&format!(
            "{:<12} {:<14} {} ({:.0} s)\n",
            n.node, n.role, n.outcome, n.seconds
        ));
    }
    out.push_str(&format!(
        "DC/OS installed on lab {} from {} (config {}) in {:.1} s\n",
        r.lab, r.bootstrap_url, r.config, r.seconds
    ));
    out
}

pub fn list(ctx: &Ctx, a: JsonArg) -> anyhow::Result<i32> {
    let rows = runtime()?.block_on(ops::status::list(ctx))?;
    if a.json {
        print_json(&rows)?;
    } else {
        let mut out = format!(
            "{:<24} {:>5} {:>8} {:>10}\n",
            "LAB", "NODES", "RUNNING", "SUSPENDED"
        );
        for r in &rows {
            out.push_str(&format!(
                "{:<24} {:>5} {:>8} {:>10}\n",
                r.lab, r.nodes, r.running, r.suspended
            ));
        }
        print(&out)?;
    }
    Ok(0)
}

pub fn exec(ctx: &Ctx, a: ExecArgs) -> anyhow::Result<i32> {
    let name = ops::lab_name(&a.lab)?;
    let command = shell_join(&a.command);
    let results = runtime()?.block_on(access::exec_on(
        ctx,
        &name,
        &a.node,
        &a.role,
        &command,
        crate::guest::CONNECT_TIMEOUT,
    ))?;
    let failed = results.iter().filter(|r| !r.ok()).count();
    if a.json {
        print_json(&results)?;
    } else {
        let mut out = String::new();
        for r in &results {
            for line in r.stdout.lines() {
                out.push_str(&format!("{}: {line}\n", r.node));
            }
            for line in r.stderr.lines() {
                out.push_str(&format!("{} (stderr): {line}\n", r.node));
            }
            match (&r.error, r.status) {
                (Some(e), _) => out.push_str(&format!("{}: FAILED: {e}\n", r.node)),
                (None, Some(0)) => {}
                (None, s) => out.push_str(&format!(
                    "{}: exit status {}\n",
                    r.node,
                    s.map(|s| s.to_string())
                        .unwrap_or_else(|| "none (killed)".into())
                )),
            }
        }
        out.push_str(&format!(
            "{} of {} nodes succeeded\n",
            results.len() - failed,
            results.len()
        ));
        print(&out)?;
    }
    Ok(if failed == 0 { 0 } else { crate::EXIT_FAILURE })
}

/// Joins arguments into one shell command line, quoting where needed.
fn shell_join(args: &[String]) -> String {
    if args.len() == 1 {
        // One argument is taken as a shell command line, as `ssh host 'cmd; cmd'` does.
        return args[0].clone();
    }
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn ssh(ctx: &Ctx, a: SshArgs) -> anyhow::Result<i32> {
    let rt = runtime()?;
    let name = ops::lab_name(&a.lab)?;
    if a.command.is_empty() {
        return rt.block_on(access::shell(ctx, &name, &a.node));
    }
    let command = shell_join(&a.command);
    let results = rt.block_on(access::exec_on(
        ctx,
        &name,
        std::slice::from_ref(&a.node),
        &[],
        &command,
        crate::guest::CONNECT_TIMEOUT,
    ))?;
    let r = results.into_iter().next().context("no result")?;
    use std::io::Write;
    let _ = std::io::stdout().write_all(r.stdout.as_bytes());
    let _ = std::io::stderr().write_all(r.stderr.as_bytes());
    if let Some(e) = r.error {
        anyhow::bail!(e);
    }
    // The remote command's status, as ssh does (255 when it had none).
    Ok(r.status
        .map(|s| i32::try_from(s).unwrap_or(255))
        .unwrap_or(255))
}

pub fn ssh_config(ctx: &Ctx, a: LabArg) -> anyhow::Result<i32> {
    let name = ops::lab_name(&a.lab)?;
    print(&runtime()?.block_on(access::ssh_config_of(ctx, &name))?)?;
    Ok(0)
}

pub fn inventory(ctx: &Ctx, a: LabArg) -> anyhow::Result<i32> {
    let name = ops::lab_name(&a.lab)?;
    print(&runtime()?.block_on(access::inventory_of(ctx, &name))?)?;
    Ok(0)
}

pub fn snapshot(ctx: &Ctx, a: SnapshotArgs) -> anyhow::Result<i32> {
    let rt = runtime()?;
    if let Some(SnapshotSub::Export {
        lab,
        name,
        file,
        with_image,
        json,
    }) = a.sub
    {
        let lab = ops::load_lab(&lab)?;
        let _lock = ctx.lock(&lab.name)?;
        let r = rt.block_on(ops::golden::export(ctx, &lab, &name, &file, with_image))?;
        if json {
            print_json(&r)?;
        } else {
            print(&format!(
                "lab {} at snapshot {} written to {} ({} MiB) in {:.1} s, nodes paused {:.1} s\n",
                r.lab,
                r.snapshot,
                r.file.display(),
                r.bytes / (1024 * 1024),
                r.seconds,
                r.paused_seconds
            ))?;
        }
        return Ok(0);
    }
    if let Some(SnapshotSub::Rm { lab, name }) = a.sub {
        let lab = ops::lab_name(&lab)?;
        rt.block_on(ops::snapshot::remove(ctx, &lab, &name))?;
        print(&format!("removed snapshot {name} of lab {lab}\n"))?;
        return Ok(0);
    }
    let lab = ops::lab_name(a.lab.as_deref().unwrap_or_default())?;
    let report = rt.block_on(ops::snapshot::take(ctx, &lab, a.name))?;
    if a.json {
        print_json(&report)?;
    } else {
        print(&format!(
            "snapshot {} of lab {} taken in {:.1} s\n",
            report.snapshot, report.lab, report.seconds
        ))?;
    }
    Ok(0)
}

pub fn revert(ctx: &Ctx, a: RevertArgs) -> anyhow::Result<i32> {
    let lab = ops::lab_name(&a.lab)?;
    let report = runtime()?.block_on(ops::snapshot::revert(
        ctx,
        &lab,
        a.name.as_deref(),
        Duration::from_secs(a.wait),
    ))?;
    if a.json {
        print_json(&report)?;
    } else {
        let offsets: Vec<String> = report
            .clock_offsets
            .iter()
            .map(|(n, o)| format!("{n} {o:+.2} s"))
            .collect();
        print(&format!(
            "lab {} reverted to {}: running in {:.1} s, every node answering in {:.1} s; clocks corrected ({})\n",
            report.lab,
            report.snapshot,
            report.seconds_to_running,
            report.seconds,
            offsets.join(", ")
        ))?;
    }
    Ok(0)
}

pub fn snapshots(ctx: &Ctx, a: LabJsonArgs) -> anyhow::Result<i32> {
    let lab = ops::lab_name(&a.lab)?;
    let snaps = runtime()?.block_on(ops::snapshot::list(ctx, &lab))?;
    if a.json {
        print_json(&snaps)?;
    } else {
        let mut out = format!(
            "{:<28} {:<23} {:>10}  {}\n",
            "NAME", "CREATED", "MEMORY MiB", "NODES"
        );
        for s in &snaps {
            out.push_str(&format!(
                "{:<28} {:<23} {:>10}  {}{}\n",
                s.name,
                format!("{} UTC", crate::calendar::utc_time(s.created_unix)),
                s.vm_state_bytes / (1024 * 1024),
                s.nodes.join(","),
                if s.complete { "" } else { " (incomplete)" }
            ));
        }
        print(&out)?;
    }
    Ok(0)
}

pub fn suspend(ctx: &Ctx, a: LabJsonArgs) -> anyhow::Result<i32> {
    let lab = ops::lab_name(&a.lab)?;
    let r = runtime()?.block_on(ops::suspend::suspend(ctx, &lab))?;
    if a.json {
        print_json(&r)?;
    } else {
        let mut out = format!(
            "lab {} suspended in {:.1} s (every node paused at {:.1} s): {}\n",
            r.lab,
            r.seconds,
            r.seconds_to_paused,
            if r.suspended.is_empty() {
                "no node was running".to_string()
            } else {
                format!("memory of {} saved to disk", r.suspended.join(", "))
            }
        );
        if !r.already.is_empty() {
            out.push_str(&format!("already suspended: {}\n", r.already.join(", ")));
        }
        if !r.stopped.is_empty() {
            out.push_str(&format!(
                "stopped (nothing to save; `up` starts them): {}\n",
                r.stopped.join(", ")
            ));
        }
        out.push_str(&format!("`dcos-lab resume {}` brings it back\n", r.lab));
        print(&out)?;
    }
    Ok(0)
}

pub fn resume(ctx: &Ctx, a: ResumeArgs) -> anyhow::Result<i32> {
    let lab = ops::lab_name(&a.lab)?;
    let r = runtime()?.block_on(ops::suspend::resume(ctx, &lab, Duration::from_secs(a.wait)))?;
    if a.json {
        print_json(&r)?;
    } else if r.resumed.is_empty() {
        print(&format!("lab {} was not suspended: nothing to do\n", r.lab))?;
    } else {
        let offsets: Vec<String> = r
            .clock_offsets
            .iter()
            .map(|(n, o)| format!("{n} {o:+.2} s"))
            .collect();
        print(&format!(
            "lab {} resumed: running in {:.1} s, every node answering in {:.1} s; clocks corrected ({})\n",
            r.lab,
            r.seconds_to_running,
            r.seconds,
            offsets.join(", ")
        ))?;
    }
    Ok(0)
}

pub fn halt(ctx: &Ctx, a: HaltArgs) -> anyhow::Result<i32> {
    let lab = ops::lab_name(&a.lab)?;
    let r = runtime()?.block_on(ops::suspend::halt(
        ctx,
        &lab,
        &a.node,
        Duration::from_secs(a.timeout),
    ))?;
    if a.json {
        print_json(&r)?;
    } else {
        let mut out = String::new();
        for n in &r.nodes {
            out.push_str(&format!("{}: {}\n", n.node, n.outcome));
        }
        out.push_str(&format!(
            "lab {} halted in {:.1} s; `dcos-lab up {}` starts it again\n",
            r.lab, r.seconds, r.lab
        ));
        print(&out)?;
    }
    Ok(0)
}
