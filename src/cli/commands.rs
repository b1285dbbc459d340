//! Thin wrappers of the lab commands over `ops`.

use std::time::Duration;

use anyhow::Context;

use super::{
    DownArgs, ExecArgs, JsonArg, LabArg, LabJsonArgs, RevertArgs, SnapshotArgs, SnapshotSub,
    SshArgs, StatusArgs, print, print_json, runtime,
};
use crate::BadInput;
use crate::ops::{self, access, lab_state};
use crate::paths::Dirs;

/// How long connecting to a running node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub fn down(uri: &str, dirs: &Dirs, a: DownArgs, no_wait: bool) -> anyhow::Result<i32> {
    let rt = runtime()?;
    let reports = rt.block_on(async {
        let hv = ops::up::connect(uri).await?;
        let labs = match &a.lab {
            Some(arg) if !a.all => vec![ops::lab_name(arg)?],
            _ => ops::down::known_labs(&hv, dirs).await?,
        };
        let mut reports = Vec::new();
        for lab in labs {
            let _lock = super::lock(dirs, &lab, no_wait)?;
            reports.push(ops::down::down(&hv, dirs, &lab).await?);
        }
        anyhow::Ok(reports)
    })?;
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

/// A lab as `status` shows it: libvirt's view plus each node's DC/OS install state.
#[derive(serde::Serialize)]
struct LabStatus {
    #[serde(flatten)]
    state: lab_state::LabState,
    install: std::collections::BTreeMap<String, ops::install::NodeInstall>,
    /// The snapshot of a revert that was interrupted (`up` or `revert` finishes it).
    unfinished_revert: Option<String>,
}

pub fn status(uri: &str, dirs: &Dirs, a: StatusArgs) -> anyhow::Result<i32> {
    let rt = runtime()?;
    let labs = rt.block_on(async {
        let hv = ops::up::connect(uri).await?;
        let states = match &a.lab {
            Some(arg) => {
                let name = ops::lab_name(arg)?;
                vec![lab_state::read(&hv, &name).await?]
            }
            None => lab_state::read_all(&hv).await?.into_values().collect(),
        };
        let mut out = Vec::new();
        for state in states {
            let lab_dirs = dirs.lab(&state.lab);
            let install = ops::install::probe(&lab_dirs, &state.nodes).await;
            let unfinished_revert = ops::snapshot::unfinished_revert(&lab_dirs)?;
            out.push(LabStatus {
                state,
                install,
                unfinished_revert,
            });
        }
        anyhow::Ok(out)
    })?;
    if a.json {
        if a.lab.is_some() {
            print_json(&labs[0])?;
        } else {
            print_json(&labs)?;
        }
    } else {
        let mut out = String::new();
        for LabStatus {
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
                    ops::install::NodeInstall::None | ops::install::NodeInstall::Unknown { .. }
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

/// The text summary of an install.
pub fn install_summary(r: &ops::install::InstallReport) -> String {
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

pub fn list(uri: &str, a: JsonArg) -> anyhow::Result<i32> {
    let rt = runtime()?;
    let labs = rt.block_on(async {
        let hv = ops::up::connect(uri).await?;
        lab_state::read_all(&hv).await
    })?;
    #[derive(serde::Serialize)]
    struct Row {
        lab: String,
        nodes: usize,
        running: usize,
    }
    let rows: Vec<Row> = labs
        .values()
        .map(|l| Row {
            lab: l.lab.clone(),
            nodes: l.nodes.len(),
            running: l
                .nodes
                .iter()
                .filter(|n| n.state == crate::plan::ObjState::Active)
                .count(),
        })
        .collect();
    if a.json {
        print_json(&rows)?;
    } else {
        let mut out = format!("{:<24} {:>5} {:>8}\n", "LAB", "NODES", "RUNNING");
        for r in &rows {
            out.push_str(&format!("{:<24} {:>5} {:>8}\n", r.lab, r.nodes, r.running));
        }
        print(&out)?;
    }
    Ok(0)
}

fn existing(state: &lab_state::LabState) -> anyhow::Result<()> {
    if !state.exists() {
        return Err(BadInput(format!(
            "lab {} does not exist; `dcos-lab up {}` makes it",
            state.lab, state.lab
        ))
        .into());
    }
    Ok(())
}

pub fn exec(uri: &str, dirs: &Dirs, a: ExecArgs) -> anyhow::Result<i32> {
    let rt = runtime()?;
    let name = ops::lab_name(&a.lab)?;
    let command = shell_join(&a.command);
    let results = rt.block_on(async {
        let hv = ops::up::connect(uri).await?;
        let state = lab_state::read(&hv, &name).await?;
        existing(&state)?;
        let targets = access::select(&state, &a.node, &a.role)?;
        access::exec(&dirs.lab(&name), &targets, &command, CONNECT_TIMEOUT).await
    })?;
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

pub fn ssh(uri: &str, dirs: &Dirs, a: SshArgs) -> anyhow::Result<i32> {
    let rt = runtime()?;
    let name = ops::lab_name(&a.lab)?;
    let lab_dirs = dirs.lab(&name);
    let state = rt.block_on(async {
        let hv = ops::up::connect(uri).await?;
        lab_state::read(&hv, &name).await
    })?;
    existing(&state)?;
    let node = access::select(&state, std::slice::from_ref(&a.node), &[])?;
    let node = node.first().context("node")?;
    if a.command.is_empty() {
        return rt.block_on(crate::guest::interactive(
            &lab_dirs,
            &node.name,
            node.private_ipv4(),
        ));
    }
    let command = shell_join(&a.command);
    let results = rt.block_on(access::exec(&lab_dirs, &[node], &command, CONNECT_TIMEOUT))?;
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

fn access_files(
    uri: &str,
    dirs: &Dirs,
    a: &LabArg,
) -> anyhow::Result<(String, lab_state::LabState, std::path::PathBuf)> {
    let rt = runtime()?;
    let name = ops::lab_name(&a.lab)?;
    let state = rt.block_on(async {
        let hv = ops::up::connect(uri).await?;
        lab_state::read(&hv, &name).await
    })?;
    existing(&state)?;
    let kh = access::write_openssh_known_hosts(&name, &dirs.lab(&name), &state)?;
    Ok((name, state, kh))
}

pub fn ssh_config(uri: &str, dirs: &Dirs, a: LabArg) -> anyhow::Result<i32> {
    let (name, state, kh) = access_files(uri, dirs, &a)?;
    print(&access::ssh_config(&name, &dirs.lab(&name), &state, &kh))?;
    Ok(0)
}

pub fn inventory(uri: &str, dirs: &Dirs, a: LabArg) -> anyhow::Result<i32> {
    let (name, state, kh) = access_files(uri, dirs, &a)?;
    print(&access::inventory(&name, &dirs.lab(&name), &state, &kh))?;
    Ok(0)
}

pub fn snapshot(uri: &str, dirs: &Dirs, a: SnapshotArgs, no_wait: bool) -> anyhow::Result<i32> {
    let rt = runtime()?;
    if let Some(SnapshotSub::Rm { lab, name }) = a.sub {
        let lab = ops::lab_name(&lab)?;
        let _lock = super::lock(dirs, &lab, no_wait)?;
        rt.block_on(async {
            let hv = ops::up::connect(uri).await?;
            ops::snapshot::remove(&hv, dirs, &lab, &name).await
        })?;
        print(&format!("removed snapshot {name} of lab {lab}\n"))?;
        return Ok(0);
    }
    let lab = ops::lab_name(a.lab.as_deref().unwrap_or_default())?;
    let _lock = super::lock(dirs, &lab, no_wait)?;
    let name = a.name.unwrap_or_else(ops::snapshot::default_name);
    let report = rt.block_on(async {
        let hv = ops::up::connect(uri).await?;
        ops::snapshot::snapshot(&hv, dirs, &lab, &name).await
    })?;
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

pub fn revert(uri: &str, dirs: &Dirs, a: RevertArgs, no_wait: bool) -> anyhow::Result<i32> {
    let rt = runtime()?;
    let lab = ops::lab_name(&a.lab)?;
    let _lock = super::lock(dirs, &lab, no_wait)?;
    let report = rt.block_on(async {
        let hv = ops::up::connect(uri).await?;
        ops::snapshot::revert(
            &hv,
            dirs,
            &lab,
            a.name.as_deref(),
            Duration::from_secs(a.wait),
        )
        .await
    })?;
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

pub fn snapshots(uri: &str, dirs: &Dirs, a: LabJsonArgs) -> anyhow::Result<i32> {
    let rt = runtime()?;
    let lab = ops::lab_name(&a.lab)?;
    let mut snaps = rt.block_on(async {
        let hv = ops::up::connect(uri).await?;
        ops::snapshot::list(&hv, &lab).await
    })?;
    ops::snapshot::add_sizes(dirs, &lab, &mut snaps);
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
                format!("{} UTC", ops::snapshot::utc_time(s.created_unix)),
                s.vm_state_bytes / (1024 * 1024),
                s.nodes.join(","),
                if s.complete { "" } else { " (incomplete)" }
            ));
        }
        print(&out)?;
    }
    Ok(0)
}
