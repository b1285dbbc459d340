//! The DC/OS advanced install on a running lab (`install`, `up --install`), and each node's
//! install state (`status`) [I/O: the nodes through `ctx.guests`, the installer file].
//!
//! The user's `dcos_generate_config.sh` is copied to the boot node, its genconf step runs there on
//! the `genconf/config.yaml` and `genconf/ip-detect` from [`crate::render::genconf`], and
//! `genconf/serve` is served over HTTP on the bootstrap port from the boot node. Then every master
//! at once fetches `dcos_install.sh` and runs it with the `master` role; once every master passes
//! the health check, every agent at once with `slave` / `slave_public`.
//!
//! Each node records its progress in [`STATE_FILE`] (the node itself is the truth, so a snapshot
//! and revert carry it along), and every remote command appends to [`LOG_FILE`] on that node.
//! Running `install` again skips what already finished for the same installer and configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::guest::{CONNECT_TIMEOUT, Shell};
use crate::model::{Lab, Role};
use crate::names::LabDirs;
use crate::names::ObjState;
use crate::ops::Ctx;
use crate::ops::lab::nodes;
use crate::ops::lab::state::{self as lab_state, NodeState};
use crate::plan;
use crate::progress::{Line, Progress};
use crate::render::genconf::{self, WORK_DIR};

/// A node's install state: one line, see [`NodeInstall`].
pub const STATE_FILE: &str = "/var/lib/dcos-lab/install/state";
/// Every remote install command appends its output here, on its node.
pub const LOG_FILE: &str = "/var/log/dcos-lab/install.log";
/// The systemd unit on the boot node that serves `genconf/serve`.
pub const SERVE_UNIT: &str = "dcos-lab-bootstrap.service";
/// DC/OS's own node health check (dcos-check-runner since 1.12, dcos-diagnostics before).
const HEALTH_CHECK: &str = "if [ -x /opt/mesosphere/bin/dcos-check-runner ]; then /opt/mesosphere/bin/dcos-check-runner check node-poststart; else /opt/mesosphere/bin/dcos-diagnostics check node-poststart; fi";
/// Lines of the remote log shown with a failure.
const TAIL_LINES: usize = 25;

/// The steps of the install, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Copy the installer to the boot node.
    Upload,
    /// The installer's genconf step, on the boot node.
    Genconf,
    /// Serve `genconf/serve` over HTTP from the boot node.
    Serve,
    /// Fetch `dcos_install.sh` from the bootstrap URL.
    Download,
    /// `dcos_install.sh ROLE`.
    Install,
    /// Wait until the node passes DC/OS's health check.
    Health,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Upload => "upload",
            Phase::Genconf => "genconf",
            Phase::Serve => "serve",
            Phase::Download => "download",
            Phase::Install => "install",
            Phase::Health => "health",
        }
    }

    fn parse(s: &str) -> Option<Phase> {
        [
            Phase::Upload,
            Phase::Genconf,
            Phase::Serve,
            Phase::Download,
            Phase::Install,
            Phase::Health,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a node's [`STATE_FILE`] says. `config` identifies the installer + generated config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum NodeInstall {
    /// Nothing installed (no state file).
    None,
    Running {
        phase: Phase,
        config: String,
    },
    Failed {
        phase: Phase,
        config: String,
    },
    /// The boot node: genconf done for `config` (written on the node by the genconf command
    /// itself, so a run interrupted locally still records it), not served yet.
    Generated {
        config: String,
    },
    /// The boot node: genconf done, bootstrap served.
    Serving {
        config: String,
    },
    Installed {
        config: String,
        role: String,
    },
    /// The node could not be asked (stopped, unreachable).
    Unknown {
        reason: String,
    },
}

impl NodeInstall {
    /// Parses the state file's first line [pure].
    pub fn parse(text: &str) -> NodeInstall {
        let f: Vec<&str> = text.split_whitespace().collect();
        let phase = |i: usize| f.get(i).and_then(|p| Phase::parse(p));
        let s = |i: usize| f.get(i).map(|s| s.to_string()).unwrap_or_default();
        match f.first().copied() {
            None => NodeInstall::None,
            Some("running") if phase(1).is_some() => NodeInstall::Running {
                phase: phase(1).unwrap_or(Phase::Install),
                config: s(2),
            },
            Some("failed") if phase(1).is_some() => NodeInstall::Failed {
                phase: phase(1).unwrap_or(Phase::Install),
                config: s(2),
            },
            Some("generated") => NodeInstall::Generated { config: s(1) },
            Some("serving") => NodeInstall::Serving { config: s(1) },
            Some("installed") => NodeInstall::Installed {
                config: s(1),
                role: s(2),
            },
            Some(_) => NodeInstall::Unknown {
                reason: format!("unreadable state file: {}", text.trim()),
            },
        }
    }

    /// A short word for `status`.
    pub fn describe(&self) -> String {
        match self {
            NodeInstall::None => "-".into(),
            NodeInstall::Running { phase, .. } => format!("running: {phase}"),
            NodeInstall::Failed { phase, .. } => format!("FAILED: {phase}"),
            NodeInstall::Generated { .. } => "generated, not served".into(),
            NodeInstall::Serving { .. } => "serving bootstrap".into(),
            NodeInstall::Installed { role, .. } => format!("installed ({role})"),
            NodeInstall::Unknown { .. } => "?".into(),
        }
    }

    /// The installer + configuration the state is of, when it is of one.
    pub fn config(&self) -> Option<&str> {
        match self {
            NodeInstall::Running { config, .. }
            | NodeInstall::Failed { config, .. }
            | NodeInstall::Generated { config }
            | NodeInstall::Serving { config }
            | NodeInstall::Installed { config, .. } => Some(config),
            NodeInstall::None | NodeInstall::Unknown { .. } => None,
        }
    }
}

/// The `dcos_install.sh` role of a node; `None` for the boot node.
pub fn dcos_role(role: Role) -> Option<&'static str> {
    match role {
        Role::Boot => None,
        Role::Master => Some("master"),
        Role::AgentPrivate => Some("slave"),
        Role::AgentPublic => Some("slave_public"),
    }
}

/// A remote command that failed: node, phase, command, and the tail of the node's log.
#[derive(Debug)]
pub struct PhaseFailed {
    pub node: String,
    pub phase: Phase,
    pub command: String,
    pub why: String,
    /// The installer's own checks that failed in this run (its preflight prints
    /// `Checking ...: FAIL`), named so the error says what to fix.
    pub failed_checks: Vec<String>,
    pub log_tail: String,
}

impl fmt::Display for PhaseFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "install failed on node {} in phase {}: `{}` {}",
            self.node, self.phase, self.command, self.why
        )?;
        if !self.failed_checks.is_empty() {
            write!(
                f,
                "\n  the installer's preflight checks that failed on {}:",
                self.node
            )?;
            for c in &self.failed_checks {
                write!(f, "\n    - {c}")?;
            }
        }
        write!(
            f,
            "\n  the last lines of {LOG_FILE} on {}:\n{}",
            self.node, self.log_tail
        )
    }
}

/// The failed checks in the output of the last command in the log (the lines after its `== `
/// header that DC/OS's preflight marks FAIL), without the `Checking`/`FAIL` words.
pub fn failed_checks(log_since_header: &str) -> Vec<String> {
    log_since_header
        .lines()
        .filter_map(|l| {
            let (what, rest) = l.split_once(": FAIL")?;
            let what = what.trim().strip_prefix("Checking ").unwrap_or(what.trim());
            let detail = rest.trim();
            Some(if detail.is_empty() {
                what.to_string()
            } else {
                format!("{what} {detail}")
            })
        })
        .collect()
}

impl std::error::Error for PhaseFailed {}

/// How `install` fails, for a caller or a test to tell apart. The first three are bad input:
/// nothing was run on the nodes.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The lab file names no installer, or one that cannot be read (the message says which).
    #[error("{0}")]
    Installer(String),
    #[error(
        "node {node} of lab {lab} is not running, so DC/OS cannot be installed\n  fix: `dcos-lab up {arg}` first"
    )]
    NotRunning {
        lab: String,
        node: String,
        /// How the user names the lab file.
        arg: String,
    },
    #[error(
        "node {node} of lab {lab} has DC/OS from another installer or configuration (the installer or the dcos section of {file} changed since)\n  fix: undo the change, or `dcos-lab down {lab}` and `up` to install afresh"
    )]
    OtherConfig {
        lab: String,
        node: String,
        file: String,
    },
    /// A step failed on the nodes (a [`PhaseFailed`] among its causes when a phase failed); the
    /// failure first, then what is left and how to go on.
    #[error(
        "{}\n  the lab is left up for inspection (`dcos-lab ssh {lab} NODE`); fix the cause and run `dcos-lab install` again: it resumes where it stopped",
        crate::error_chain(failure.as_ref())
    )]
    LeftUp {
        lab: String,
        #[source]
        failure: anyhow::Error,
    },
}

impl InstallError {
    /// Whether the user's input is at fault (nothing was run on the nodes).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, InstallError::LeftUp { .. })
    }

    /// The phase that failed, when one did.
    pub fn phase_failed(&self) -> Option<&PhaseFailed> {
        match self {
            InstallError::LeftUp { failure, .. } => failure.chain().find_map(|c| c.downcast_ref()),
            _ => None,
        }
    }
}

/// How `install` runs.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// How long one phase on one node may take (the health check included).
    pub timeout: Duration,
}

/// One node's result.
#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub role: Role,
    /// What this run did: `installed`, `already installed`, `served`, `already served`, or
    /// `not made yet` (an agent `up --node` left out; a later `up` adds and installs it).
    pub outcome: String,
    pub seconds: f64,
}

/// What `install` reports.
#[derive(Debug, Serialize)]
pub struct InstallReport {
    pub lab: String,
    pub bootstrap_url: String,
    /// Identifies the installer + generated configuration the nodes were installed from.
    pub config: String,
    pub nodes: Vec<NodeReport>,
    pub seconds: f64,
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The installer file named by the lab, checked before anything happens.
pub fn installer_path(lab: &Lab) -> Result<PathBuf, InstallError> {
    let Some(path) = &lab.dcos.installer else {
        return Err(InstallError::Installer(format!(
            "{}: dcos.installer is not set, so there is nothing to install\n  fix: set dcos.installer to the path of your dcos_generate_config.sh (dcos-lab never downloads one)",
            lab.source
        )));
    };
    match std::fs::File::open(path) {
        Ok(f) if f.metadata().map(|m| m.is_file()).unwrap_or(false) => Ok(path.clone()),
        Ok(_) => Err(InstallError::Installer(format!(
            "{}: dcos.installer: {} is not a file\n  fix: point dcos.installer at dcos_generate_config.sh",
            lab.source,
            path.display()
        ))),
        Err(e) => Err(InstallError::Installer(format!(
            "{}: dcos.installer: cannot read {}: {e}\n  fix: point dcos.installer at your dcos_generate_config.sh (relative paths are from the lab file's folder)",
            lab.source,
            path.display()
        ))),
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// How long `install` gives a node's settling clock before running the installer there.
const CLOCK_SETTLE: Duration = Duration::from_secs(60);

/// One connected node.
struct Remote {
    node: String,
    role: Role,
    session: Box<dyn Shell>,
    timeout: Duration,
    config: String,
}

impl Remote {
    /// Runs `command` under bash, its output appended to the node's log, its phase in the state
    /// file; a failure records `failed` and carries the log's tail.
    async fn run(&self, phase: Phase, command: &str) -> anyhow::Result<()> {
        let header = format!("== {phase}: {command}");
        let wrapped = format!(
            "mkdir -p /var/lib/dcos-lab/install /var/log/dcos-lab && echo 'running {phase} {cfg}' > {STATE_FILE} && \
             {{ echo \"$(date -u +%FT%TZ)\" {h}; bash -o errexit -o pipefail -c {c}; }} >> {LOG_FILE} 2>&1",
            cfg = self.config,
            h = sh_quote(&header),
            c = sh_quote(command),
        );
        let out = tokio::time::timeout(self.timeout, self.session.exec(&wrapped)).await;
        let why = match out {
            Ok(Ok(o)) if o.success() => return Ok(()),
            Ok(Ok(o)) => match o.status {
                Some(code) => format!("exited with status {code}"),
                None => "died without an exit status".to_string(),
            },
            Ok(Err(e)) => format!("could not run: {}", crate::error_chain(&e)),
            Err(_) => format!(
                "did not finish within {} s (it may still be running there)",
                self.timeout.as_secs()
            ),
        };
        Err(self.failed(phase, command, why).await.into())
    }

    /// Records the failure on the node and builds the error with the log's tail.
    async fn failed(&self, phase: Phase, command: &str, why: String) -> PhaseFailed {
        let tail_cmd = format!(
            "echo 'failed {phase} {}' > {STATE_FILE}; tail -n {TAIL_LINES} {LOG_FILE}; df -h --output=size,used,avail /tmp | awk 'NR == 2 {{ print \"(/tmp: size \" $1 \", used \" $2 \", available \" $3 \")\" }}'",
            self.config
        );
        // The last command's own output: from its header line on.
        let checks_cmd = format!("tac {LOG_FILE} 2>/dev/null | sed '/ == /q' | tac");
        let failed_checks = match self.session.exec(&checks_cmd).await {
            Ok(o) => failed_checks(&o.stdout_str()),
            Err(_) => Vec::new(),
        };
        let log_tail = match self.session.exec(&tail_cmd).await {
            Ok(o) => o
                .stdout_str()
                .lines()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("  (cannot read the log: {e})"),
        };
        PhaseFailed {
            node: self.node.clone(),
            phase,
            command: command.to_string(),
            why,
            failed_checks,
            log_tail,
        }
    }

    async fn set_state(&self, line: &str) -> anyhow::Result<()> {
        let o = self
            .session
            .exec(&format!(
                "mkdir -p /var/lib/dcos-lab/install && echo {} > {STATE_FILE}",
                sh_quote(line)
            ))
            .await?;
        anyhow::ensure!(
            o.success(),
            "cannot write {STATE_FILE} on {}: {}",
            self.node,
            o.stderr_str()
        );
        Ok(())
    }

    /// Writes `content` to `path` on the node (atomically, via a temporary file).
    async fn write_file(&self, path: &str, content: &[u8], mode: &str) -> anyhow::Result<()> {
        let cmd = format!(
            "mkdir -p \"$(dirname {p})\" && cat > {p}.part && chmod {mode} {p}.part && mv {p}.part {p}",
            p = sh_quote(path)
        );
        let o = self.session.exec_with_input(&cmd, content).await?;
        anyhow::ensure!(
            o.success(),
            "cannot write {path} on {}: {}",
            self.node,
            o.stderr_str()
        );
        Ok(())
    }

    /// Gives a clock that chrony is still settling (just started, or stepped by a revert or a
    /// golden's restore) up to [`CLOCK_SETTLE`] to come within what DC/OS's check-time accepts,
    /// so the installer's preflight does not fail on a clock that is about to pass. A clock
    /// nothing synchronises is not waited for: the preflight names it.
    async fn settle_clock(&self) -> anyhow::Result<bool> {
        let cmd = format!(
            "systemctl is-active --quiet chrony.service || exit 0; {}",
            crate::render::cloudinit::check_time::guest_wait(CLOCK_SETTLE.as_secs() as u32)
        );
        Ok(self.session.exec(&cmd).await?.success())
    }

    async fn read_state(&self) -> anyhow::Result<NodeInstall> {
        let o = self
            .session
            .exec(&format!("cat {STATE_FILE} 2>/dev/null || true"))
            .await?;
        Ok(NodeInstall::parse(&o.stdout_str()))
    }

    /// Polls DC/OS's health check with back-off (1 s doubling to 10 s) until it passes.
    async fn wait_healthy(&self, line: &Line) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.timeout;
        let mut delay = Duration::from_secs(1);
        loop {
            let o = self.session.exec(HEALTH_CHECK).await?;
            if o.success() {
                return Ok(());
            }
            if Instant::now() + delay > deadline {
                let log = format!(
                    "== health: {HEALTH_CHECK}\n{}{}",
                    o.stdout_str(),
                    o.stderr_str()
                );
                let _ = self
                    .session
                    .exec(&format!("echo {} >> {LOG_FILE}", sh_quote(log.trim())))
                    .await;
                return Err(self
                    .failed(
                        Phase::Health,
                        HEALTH_CHECK,
                        format!("kept failing for {} s", self.timeout.as_secs()),
                    )
                    .await
                    .into());
            }
            line.step(&format!(
                "health check: not yet ({})",
                o.stdout_str().trim()
            ));
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}

/// Connects to every node of the lab at once, through `ctx.guests`.
async fn connect_all(
    ctx: &Ctx,
    lab: &Lab,
    state: &lab_state::LabState,
    timeout: Duration,
    config: &str,
) -> anyhow::Result<BTreeMap<String, Remote>> {
    let access = nodes::Access::load(&ctx.dirs.lab(&lab.name))?;
    let each: Vec<(NodeState, Role)> = lab
        .nodes
        .iter()
        .filter_map(|n| state.node(&n.name).map(|ns| (ns.clone(), n.role)))
        .collect();
    let connected = nodes::all_at_once(each, |(ns, role)| {
        let (guests, access, config) = (ctx.guests.clone(), access.clone(), config.to_string());
        async move {
            let session = nodes::connect(&guests, &access, &ns, CONNECT_TIMEOUT).await?;
            anyhow::Ok(Remote {
                node: ns.name,
                role,
                session,
                timeout,
                config,
            })
        }
    })
    .await?;
    let mut out = BTreeMap::new();
    for r in connected {
        let r = r?;
        out.insert(r.node.clone(), r);
    }
    Ok(out)
}

/// Held on the boot node while genconf runs: a genconf that an interrupted run left going there
/// (commands started on a node run on) is waited for, not run beside.
const GENCONF_LOCK: &str = "/var/lib/dcos-lab/install/genconf.lock";

/// The boot node's record of a finished genconf (`generated CONFIG`), written by the genconf
/// command itself and copied over [`STATE_FILE`] after it: `run` rewrites the state file with
/// `running genconf` before the command starts, so the record cannot live there alone.
const GENERATED_FILE: &str = "/var/lib/dcos-lab/install/state.generated";

/// The boot node: installer, genconf, HTTP server. Skips what is already done for `config`.
async fn boot(
    remote: &Remote,
    line: &Line,
    installer: &Path,
    installer_sha: &str,
    files: &[(String, String, &str)],
    serve_unit: &str,
    url: &str,
) -> anyhow::Result<&'static str> {
    let state = remote.read_state().await?;
    let already = matches!(&state, NodeInstall::Serving { config } if *config == remote.config);
    if already {
        // Done before; the server must still run (a reboot starts it too: it is enabled).
        line.step("already generated; checking the server");
    } else {
        if matches!(&state, NodeInstall::Generated { config } if *config == remote.config) {
            line.step("genconf: already generated for this installer and configuration");
        } else {
            upload(remote, line, installer, installer_sha).await?;
            line.step("genconf: running the installer's genconf step");
            for (path, content, mode) in files {
                remote.write_file(path, content.as_bytes(), mode).await?;
            }
            // Under the lock: a genconf an interrupted run left going is waited for, and when
            // it generated this very configuration, that is not done again. The genconf
            // command records its own success, so an interrupted run's genconf counts.
            let generated = sh_quote(&format!("generated {}", remote.config));
            remote
                .run(
                    Phase::Genconf,
                    &format!(
                        "cd {WORK_DIR} && exec 9>>{GENCONF_LOCK} && \
                         {{ flock -n 9 || {{ echo 'genconf: waiting for the one an earlier run left running'; flock 9; }}; }} && \
                         if grep -qxF {generated} {GENERATED_FILE} 2>/dev/null; then \
                         echo 'genconf: generated by an earlier run for this configuration; not run again'; \
                         else rm -f {GENERATED_FILE} && rm -rf genconf/serve && \
                         bash dcos_generate_config.sh && echo {generated} > {GENERATED_FILE}; fi && \
                         cp {GENERATED_FILE} {STATE_FILE}"
                    ),
                )
                .await?;
        }
        line.step("serve: starting the HTTP server");
        remote
            .write_file(
                &format!("/etc/systemd/system/{SERVE_UNIT}"),
                serve_unit.as_bytes(),
                "644",
            )
            .await?;
    }
    let start = if already {
        format!("systemctl is-active --quiet {SERVE_UNIT} || systemctl restart {SERVE_UNIT}")
    } else {
        // `enable` reloads systemd's configuration itself (the unit file was just written): a
        // `daemon-reload` before it would be a second reload, ~5 s under emulation.
        format!("systemctl enable --quiet {SERVE_UNIT} && systemctl restart {SERVE_UNIT}")
    };
    // Served once the server answers: asked every 0.2 s, up to 300 times (curl's own `--retry`
    // waits 1, 2, 4 s, ... between tries, seconds more than a server that takes a second or two
    // to start here needs), then once more to say why not.
    let probe = format!("curl -fsS -o /dev/null {url}/dcos_install.sh");
    remote
        .run(
            Phase::Serve,
            &format!(
                "{start} && {{ for i in $(seq 300); do {probe} 2>/dev/null && exit 0; sleep 0.2; done; {probe}; }}"
            ),
        )
        .await?;
    remote
        .set_state(&format!("serving {}", remote.config))
        .await?;
    Ok(if already { "already served" } else { "served" })
}

/// Copies the installer to the boot node unless the same file (by SHA-256) is there already.
async fn upload(
    remote: &Remote,
    line: &Line,
    installer: &Path,
    installer_sha: &str,
) -> anyhow::Result<()> {
    let target = format!("{WORK_DIR}/dcos_generate_config.sh");
    let there = remote
        .session
        .exec(&format!("sha256sum {target} 2>/dev/null | cut -d' ' -f1"))
        .await?;
    if there.stdout_str().trim() == installer_sha {
        return Ok(());
    }
    let size = std::fs::metadata(installer).map(|m| m.len()).unwrap_or(0);
    line.step(&format!(
        "upload: copying the installer ({} MiB)",
        size >> 20
    ));
    let file = tokio::fs::File::open(installer)
        .await
        .with_context(|| format!("cannot read {}", installer.display()))?;
    let cmd = format!("mkdir -p {WORK_DIR} && cat > {target}.part && mv {target}.part {target}");
    let o = remote
        .session
        .exec_input(&cmd, Some(Box::new(file)))
        .await?;
    if !o.success() {
        return Err(remote
            .failed(Phase::Upload, &cmd, o.stderr_str().trim().to_string())
            .await
            .into());
    }
    Ok(())
}

/// One master or agent: fetch and run `dcos_install.sh ROLE` unless done, then the health check.
async fn node(remote: Arc<Remote>, line: Arc<Line>, url: String) -> anyhow::Result<NodeReport> {
    let t0 = Instant::now();
    let role = dcos_role(remote.role).context("the boot node has no DC/OS role")?;
    let state = remote.read_state().await?;
    let outcome = if matches!(&state, NodeInstall::Installed { config, role: r }
        if *config == remote.config && r == role)
    {
        "already installed"
    } else {
        line.step("download: fetching dcos_install.sh");
        remote
            .run(
                Phase::Download,
                &format!("mkdir -p /tmp/dcos && cd /tmp/dcos && curl -fsS --retry 5 --retry-connrefused -o dcos_install.sh {url}/dcos_install.sh"),
            )
            .await?;
        line.step("clock: waiting until it passes check-time");
        if !remote.settle_clock().await? {
            tracing::warn!(
                "{}: the clock is still outside check-time's bound after {} s; the preflight will say",
                remote.node,
                CLOCK_SETTLE.as_secs()
            );
        }
        line.step(&format!("install: dcos_install.sh {role}"));
        remote
            .run(
                Phase::Install,
                &format!("cd /tmp/dcos && bash dcos_install.sh {role}"),
            )
            .await?;
        remote
            .set_state(&format!("installed {} {role}", remote.config))
            .await?;
        "installed"
    };
    line.step("health: waiting for the node to pass its health check");
    remote.wait_healthy(&line).await?;
    line.done(&format!(
        "{outcome}, healthy ({:.0} s)",
        t0.elapsed().as_secs_f64()
    ));
    Ok(NodeReport {
        node: remote.node.clone(),
        role: remote.role,
        outcome: outcome.to_string(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Runs `node` on every remote of `roles` at once; the first failure (by node order) is returned
/// after every node of the group finished, so no install is cut off halfway.
async fn group(
    remotes: &BTreeMap<String, Arc<Remote>>,
    lab: &Lab,
    roles: &[Role],
    progress: &Progress,
    url: &str,
) -> anyhow::Result<Vec<NodeReport>> {
    let mut members = Vec::new();
    for n in lab.nodes.iter().filter(|n| roles.contains(&n.role)) {
        // A node not made yet has no remote: a later `up` adds and installs it.
        if let Some(remote) = remotes.get(&n.name) {
            members.push((remote.clone(), Arc::new(progress.spinner(&n.name))));
        }
    }
    let results = nodes::all_at_once(members, |(remote, line)| {
        let url = url.to_string();
        async move {
            let l2 = line.clone();
            let r = node(remote, line, url).await;
            if let Err(e) = &r {
                l2.fail(&first_line(e));
            }
            r
        }
    })
    .await?;
    results.into_iter().collect()
}

fn first_line(e: &anyhow::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// The systemd unit serving `genconf/serve` on the boot node's private address only.
fn serve_unit(lab: &Lab, boot_ip: &str) -> String {
    format!(
        "# Written by dcos-lab: serves the DC/OS bootstrap of lab {lab} to its nodes.\n\
         [Unit]\nDescription=dcos-lab: DC/OS bootstrap over HTTP\nAfter=network-online.target\n\n\
         [Service]\nExecStart=/usr/bin/python3 -m http.server {port} --bind {boot_ip} --directory {WORK_DIR}/genconf/serve\n\
         Restart=always\n\n[Install]\nWantedBy=multi-user.target\n",
        lab = lab.name,
        port = lab.dcos.bootstrap_port
    )
}

/// Installs DC/OS on the running lab, or resumes an install that stopped.
pub async fn install(ctx: &Ctx, lab: &Lab, opts: &InstallOptions) -> anyhow::Result<InstallReport> {
    let started = Instant::now();
    let installer = installer_path(lab)?;
    let lab = &crate::ops::lab::indices::as_made(ctx, lab).await?;
    let state = lab_state::read(ctx, &lab.name).await?;
    for n in &lab.nodes {
        let made = state.node(&n.name).is_some();
        // An agent not made yet (`up --node`) is installed when a later `up` adds it.
        if !made && !matches!(n.role, Role::Boot | Role::Master) {
            continue;
        }
        if state.node(&n.name).map(|s| s.state) != Some(ObjState::Active) {
            return Err(InstallError::NotRunning {
                lab: lab.name.clone(),
                node: n.name.clone(),
                arg: lab.source.trim_start_matches("builtin:").to_string(),
            }
            .into());
        }
    }
    let addrs = plan::plan_addresses(lab);
    let config_yaml = genconf::config_yaml(lab, &addrs)?;
    let ip_detect = genconf::ip_detect(lab);
    let url = genconf::bootstrap_url(lab, &addrs)?;
    let boot_name = genconf::boot_node(lab)?.to_string();
    let boot_ip = addrs
        .node(&boot_name)
        .and_then(|n| n.private_ipv4())
        .context("boot address")?
        .to_string();
    let progress = Progress::new();
    let boot_line = progress.spinner(&boot_name);
    boot_line.step("hashing the installer");
    let inst = installer.clone();
    let installer_sha = tokio::task::spawn_blocking(move || sha256_file(&inst))
        .await?
        .with_context(|| format!("cannot read {}", installer.display()))?;
    let identity = |yaml: &str| {
        crate::render::short_hash(&[installer_sha.as_str(), yaml, &ip_detect].join("\0"))
    };
    let mut config = identity(&config_yaml);
    let mut remotes = connect_all(ctx, lab, &state, opts.timeout, &config).await?;
    let mut states = BTreeMap::new();
    for (name, r) in &remotes {
        states.insert(name.clone(), r.read_state().await?);
    }
    // A lab installed by an earlier dcos-lab, whose configuration listed the agents, keeps the
    // configuration it was installed from.
    let legacy_yaml = genconf::legacy_config_yaml(lab, &addrs)?;
    let legacy = identity(&legacy_yaml);
    let recorded = |c: &str| states.values().any(|s| s.config() == Some(c));
    let config_yaml = if !recorded(&config) && recorded(&legacy) {
        config = legacy;
        for r in remotes.values_mut() {
            r.config = config.clone();
        }
        legacy_yaml
    } else {
        config_yaml
    };
    let remotes: BTreeMap<String, Arc<Remote>> =
        remotes.into_iter().map(|(n, r)| (n, Arc::new(r))).collect();

    // A node installed from another installer or configuration cannot be installed over.
    for (name, st) in &states {
        if let NodeInstall::Installed { config: c, .. } = st
            && *c != config
        {
            return Err(InstallError::OtherConfig {
                lab: lab.name.clone(),
                node: name.clone(),
                file: lab.source.clone(),
            }
            .into());
        }
    }

    let t0 = Instant::now();
    let files = [
        (
            format!("{WORK_DIR}/genconf/config.yaml"),
            config_yaml,
            "644",
        ),
        (format!("{WORK_DIR}/genconf/ip-detect"), ip_detect, "755"),
    ];
    let boot_remote = remotes.get(&boot_name).context("boot remote")?;
    let outcome = match boot(
        boot_remote,
        &boot_line,
        &installer,
        &installer_sha,
        &files,
        &serve_unit(lab, &boot_ip),
        &url,
    )
    .await
    {
        Ok(o) => o,
        Err(e) => {
            boot_line.fail(&first_line(&e));
            return Err(left_up(lab, e));
        }
    };
    boot_line.done(&format!("{outcome} at {url}"));
    let mut nodes = vec![NodeReport {
        node: boot_name.clone(),
        role: Role::Boot,
        outcome: outcome.to_string(),
        seconds: t0.elapsed().as_secs_f64(),
    }];
    for roles in [
        &[Role::Master][..],
        &[Role::AgentPrivate, Role::AgentPublic][..],
    ] {
        match group(&remotes, lab, roles, &progress, &url).await {
            Ok(r) => nodes.extend(r),
            Err(e) => return Err(left_up(lab, e)),
        }
    }
    for n in lab.nodes.iter().filter(|n| !remotes.contains_key(&n.name)) {
        nodes.push(NodeReport {
            node: n.name.clone(),
            role: n.role,
            outcome: "not made yet".to_string(),
            seconds: 0.0,
        });
    }
    for r in remotes.into_values() {
        if let Ok(r) = Arc::try_unwrap(r) {
            r.session.close().await;
        }
    }
    Ok(InstallReport {
        lab: lab.name.clone(),
        bootstrap_url: url,
        config,
        nodes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The failure first (node, phase, command, log), then what is left and how to go on.
fn left_up(lab: &Lab, failure: anyhow::Error) -> anyhow::Error {
    InstallError::LeftUp {
        lab: lab.name.clone(),
        failure,
    }
    .into()
}

/// Each running node's install state, asked over SSH at once (a few seconds at most).
pub async fn probe(
    ctx: &Ctx,
    lab_dirs: &LabDirs,
    nodes: &[NodeState],
) -> BTreeMap<String, NodeInstall> {
    let mut out: BTreeMap<String, NodeInstall> = nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                NodeInstall::Unknown {
                    reason: format!("node is {}", n.state),
                },
            )
        })
        .collect();
    let running: Vec<&NodeState> = nodes
        .iter()
        .filter(|n| n.state == ObjState::Active)
        .collect();
    if running.is_empty() {
        return out;
    }
    let cmd = format!("cat {STATE_FILE} 2>/dev/null || true");
    match crate::ops::lab::nodes::exec(ctx, lab_dirs, &running, &cmd, Duration::from_secs(5)).await
    {
        Ok(results) => {
            for r in results {
                let v = match (&r.error, r.ok()) {
                    (None, true) => NodeInstall::parse(&r.stdout),
                    (Some(e), _) => NodeInstall::Unknown { reason: e.clone() },
                    (None, false) => NodeInstall::Unknown {
                        reason: r.stderr.trim().to_string(),
                    },
                };
                out.insert(r.node, v);
            }
        }
        Err(e) => {
            for n in running {
                out.insert(
                    n.name.clone(),
                    NodeInstall::Unknown {
                        reason: crate::error_chain(e.as_ref()),
                    },
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_preflight_checks_are_named() {
        let log = "2026-12-01T00:00:00Z == install: bash dcos_install.sh master\nRunning preflight checks\n\
                   Checking if Docker is running: FAIL\nChecking if ipset is installed and in PATH: PASS\n\
                   Checking if the clock is synchronized (check_time): FAIL (Clock is out of sync / in unsync state (STA_UNSYNC).)\n\
                   Preflight checks failed (2). Exiting installation.\n";
        assert_eq!(
            failed_checks(log),
            [
                "if Docker is running",
                "if the clock is synchronized (check_time) (Clock is out of sync / in unsync state (STA_UNSYNC).)"
            ]
        );
        assert!(failed_checks("all good\n").is_empty());
    }

    #[test]
    fn state_lines_parse() {
        assert_eq!(NodeInstall::parse(""), NodeInstall::None);
        assert_eq!(
            NodeInstall::parse("installed abc master\n"),
            NodeInstall::Installed {
                config: "abc".into(),
                role: "master".into()
            }
        );
        assert_eq!(
            NodeInstall::parse("failed download abc"),
            NodeInstall::Failed {
                phase: Phase::Download,
                config: "abc".into()
            }
        );
        assert_eq!(
            NodeInstall::parse("generated abc\n"),
            NodeInstall::Generated {
                config: "abc".into()
            }
        );
        assert_eq!(
            NodeInstall::parse("serving abc"),
            NodeInstall::Serving {
                config: "abc".into()
            }
        );
        assert!(matches!(
            NodeInstall::parse("failed nonsense"),
            NodeInstall::Unknown { .. }
        ));
    }

    #[test]
    fn roles_map_to_the_installer_roles() {
        assert_eq!(dcos_role(Role::Master), Some("master"));
        assert_eq!(dcos_role(Role::AgentPrivate), Some("slave"));
        assert_eq!(dcos_role(Role::AgentPublic), Some("slave_public"));
        assert_eq!(dcos_role(Role::Boot), None);
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn a_missing_installer_names_the_field_and_the_fix() {
        let text = format!(
            "{}dcos:\n  installer: /nonexistent/dcos_generate_config.sh\n",
            crate::model::BUILTIN_LABS[0].1
        );
        let lab = crate::model::parse(&text, "lab.yaml", None, &["debian-12"]).expect("valid");
        let e = installer_path(&lab).expect_err("missing").to_string();
        assert!(e.contains("lab.yaml: dcos.installer"), "{e}");
        assert!(e.contains("fix:"), "{e}");
        let lab = crate::model::parse(
            crate::model::BUILTIN_LABS[0].1,
            "lab.yaml",
            None,
            &["debian-12"],
        )
        .expect("valid");
        assert!(
            installer_path(&lab)
                .expect_err("unset")
                .to_string()
                .contains("not set")
        );
    }
}
