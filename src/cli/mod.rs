//! Command-line arguments (clap) and a thin `exec` per command over `ops`.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::BadInput;
use crate::model::{AccelChoice, NetKind};
use crate::ops;

mod commands;
use crate::paths::Dirs;

/// Multi-node DC/OS-style cluster labs on libvirt/KVM.
#[derive(Debug, Parser)]
#[command(name = "dcos-lab", version, about, propagate_version = true)]
pub struct Cli {
    /// libvirt connection URI.
    #[arg(long, global = true, env = "DCOS_LAB_URI", default_value = crate::driver::DEFAULT_URI)]
    pub uri: String,
    /// More detail on stderr (or set DCOS_LAB_LOG=debug).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Fail at once instead of waiting when another command is working on the same lab.
    #[arg(long, global = true)]
    pub no_wait: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

impl From<AccelArg> for AccelChoice {
    fn from(a: AccelArg) -> Self {
        match a {
            AccelArg::Auto => AccelChoice::Auto,
            AccelArg::Kvm => AccelChoice::Kvm,
            AccelArg::Tcg => AccelChoice::Tcg,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NetArg {
    Private,
    Public,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the ordered actions `up` would take for a lab, changing nothing.
    Plan(PlanArgs),
    /// Print the libvirt XML of one of a lab's objects, or a node's cloud-init seed.
    Render(RenderArgs),
    /// Check inside every node: swap, /tmp, IPv6, isolation, telemetry. Non-zero if any fails.
    Verify(VerifyArgs),
    /// Check that this host can run labs: libvirt, accelerator, memory, tools.
    Doctor(DoctorArgs),
    /// Bring a lab up, or converge it: create what is missing, start what is stopped, wait for SSH.
    Up(UpArgs),
    /// Install DC/OS on a running lab with the lab file's installer (resumes a stopped install).
    Install(InstallArgs),
    /// Remove everything a lab owns: domains, networks, disks, seeds, keys, console logs.
    Down(DownArgs),
    /// Nodes, roles, states and addresses of one lab (or all), read from libvirt.
    Status(StatusArgs),
    /// The labs that exist on this host.
    List(JsonArg),
    /// Run a command on one node, or open a shell there.
    Ssh(SshArgs),
    /// Run a command on several nodes at once; non-zero if any failed.
    Exec(ExecArgs),
    /// Snapshot the whole lab (every node paused, captured with its memory, resumed).
    Snapshot(SnapshotArgs),
    /// Put the whole lab back to a snapshot (the newest when no name is given), running.
    Revert(RevertArgs),
    /// The lab's snapshots: name, time, memory state saved.
    Snapshots(LabJsonArgs),
    /// Give the host the lab's memory back: every node paused at once, its memory saved to disk.
    Suspend(LabJsonArgs),
    /// Bring a suspended lab back as it was, running, clocks corrected (`up` does this too).
    Resume(ResumeArgs),
    /// Power nodes off cleanly (forced after --timeout), disks kept; `up` starts them again.
    Halt(HaltArgs),
    /// An OpenSSH config block per node (for `ssh -F` and Ansible).
    SshConfig(LabArg),
    /// An Ansible YAML inventory of the lab, grouped by role.
    Inventory(LabArg),
    /// Build, list, import and remove guest images.
    #[command(subcommand)]
    Image(ImageCmd),
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Build a recipe from Debian packages into the image cache (a cache hit when unchanged).
    Build {
        /// A built-in recipe.
        #[arg(default_value = crate::model::DEFAULT_IMAGE)]
        recipe: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the images in the cache.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove an image (every build of a recipe, or an imported image) from the cache.
    Rm { name: String },
    /// Import your own cloud image (qcow2 or raw), booted through its own bootloader.
    Import {
        file: std::path::PathBuf,
        /// Name to use as `image:` in lab files.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct LabArg {
    /// A built-in lab (minimal, standard, ha) or the path of a lab file.
    pub lab: String,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub sub: Option<SnapshotSub>,
    /// A lab name, built-in lab or lab file.
    #[arg(required = true)]
    pub lab: Option<String>,
    /// The snapshot's name (default: s<date>-<time>).
    pub name: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotSub {
    /// Delete a snapshot from every node.
    Rm { lab: String, name: String },
    /// Write the lab at one of its snapshots into one file (a golden lab) that `up --from`
    /// brings back running on this or another host.
    Export {
        /// A built-in lab or lab file (its text goes into the golden).
        lab: String,
        /// The snapshot.
        name: String,
        /// The file to write (a tar stream).
        file: std::path::PathBuf,
        /// Put the base image in the file too (the restoring host need not build it).
        #[arg(long)]
        with_image: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RevertArgs {
    /// A lab name, built-in lab or lab file.
    pub lab: String,
    /// The snapshot (default: the newest complete one).
    pub name: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Seconds a node may take to answer over SSH after the revert.
    #[arg(long, default_value_t = 120)]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct HaltArgs {
    /// A lab name, built-in lab or lab file.
    pub lab: String,
    /// Only this node (repeatable; default: every node).
    #[arg(long)]
    pub node: Vec<String>,
    /// Seconds each node gets to power off before it is forced off.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// A lab name, built-in lab or lab file.
    pub lab: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Seconds a node may take to answer over SSH once it runs again.
    #[arg(long, default_value_t = 120)]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct LabJsonArgs {
    /// A lab name, built-in lab or lab file.
    pub lab: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// A built-in lab (minimal, standard, ha) or the path of a lab file.
    pub lab: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Override the lab file's accelerator.
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
    /// Seconds one node may take to answer over SSH before `up` fails.
    #[arg(long, default_value_t = 300, env = "DCOS_LAB_WAIT")]
    pub wait: u64,
    /// Do not install DC/OS even when the lab file names an installer.
    #[arg(long)]
    pub no_install: bool,
    /// Seconds one install phase on one node may take (with an installer).
    #[arg(long, default_value_t = 1800)]
    pub install_timeout: u64,
    /// Make the lab from a golden (`snapshot export`) and resume it running, without booting.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["accel", "no_install", "node"])]
    pub from: Option<std::path::PathBuf>,
    /// Only this node (repeatable): part of the lab; a later `up` adds the rest.
    #[arg(long)]
    pub node: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// A built-in lab (minimal, standard, ha) or the path of a lab file with `dcos.installer`.
    pub lab: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Seconds one phase on one node may take (the masters' health check included).
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["lab", "all"])))]
pub struct DownArgs {
    /// A lab name, built-in lab or lab file.
    pub lab: Option<String>,
    /// Remove every lab on this host.
    #[arg(long)]
    pub all: bool,
    /// Remove only this agent (repeatable): its domain, disk, seed, DHCP and DNS entries and its
    /// name on the other nodes; the rest of the lab keeps running. A master or the boot node
    /// goes only with the whole lab.
    #[arg(long = "node", value_name = "NODE", conflicts_with = "all")]
    pub nodes: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A lab name, built-in lab or lab file; every lab when left out.
    pub lab: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// A lab name, built-in lab or lab file.
    pub lab: String,
    /// The node.
    pub node: String,
    /// The command; an interactive shell when left out.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A lab name, built-in lab or lab file.
    pub lab: String,
    /// Only this node (repeatable).
    #[arg(long)]
    pub node: Vec<String>,
    /// Only nodes of this role: boot, master, agent-private, agent-public (repeatable).
    #[arg(long)]
    pub role: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The command, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A built-in lab (minimal, standard, ha) or the path of a lab file.
    pub lab: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Override the lab file's accelerator.
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
    /// Plan as if nothing of the lab existed, without asking libvirt.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    group(clap::ArgGroup::new("what").required(true).args(["node", "network", "pool", "volume"]))
)]
pub struct RenderArgs {
    #[command(subcommand)]
    pub sub: Option<RenderSub>,
    /// A built-in lab (minimal, standard, ha) or the path of a lab file.
    #[arg(required = true)]
    pub lab: Option<String>,
    /// Domain XML of this node.
    #[arg(long)]
    pub node: Option<String>,
    /// Network XML of this network.
    #[arg(long, value_enum)]
    pub network: Option<NetArg>,
    /// Storage pool XML of the lab.
    #[arg(long)]
    pub pool: bool,
    /// Storage volume XML of this node's disk.
    #[arg(long)]
    pub volume: Option<String>,
    /// Override the lab file's accelerator.
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
}

#[derive(Debug, Subcommand)]
pub enum RenderSub {
    /// A node's cloud-init user-data (usable as-is as a cloud provider's `user_data`).
    CloudInit {
        /// A built-in lab (minimal, standard, ha) or the path of a lab file.
        lab: String,
        node: String,
        /// Which seed file to print.
        #[arg(long, value_enum, default_value = "user-data")]
        part: SeedPart,
        /// Public key to authorise for root instead of the lab's key.
        #[arg(long)]
        ssh_key: Option<std::path::PathBuf>,
    },
    /// The DC/OS installer's genconf/config.yaml that `install` writes on the boot node.
    Genconf {
        /// A built-in lab (minimal, standard, ha) or the path of a lab file.
        lab: String,
        /// Print genconf/ip-detect instead.
        #[arg(long)]
        ip_detect: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SeedPart {
    UserData,
    MetaData,
    NetworkConfig,
    /// dcos-lab's fast first boot: the same configuration as one shell script.
    Firstboot,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A built-in lab (minimal, standard, ha) or the path of a lab file.
    pub lab: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the results as JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs a command that catches Ctrl-C (`up`, `up --from`, `install`) to its end. Once it has
/// said what exists, the process ends at once: a blocking task it left behind (an image build,
/// a disk copy) is not waited for, as dropping the runtime would; the next command takes over.
pub(crate) fn run_interruptible<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let rt = runtime()?;
    let r = rt.block_on(work);
    rt.shutdown_background();
    r
}

/// The node table `up` and `status` print.
pub(crate) fn nodes_table(nodes: &[ops::lab::state::NodeState]) -> String {
    nodes_table_with(nodes, None)
}

/// The nodes as a table; with `install`, a column of each node's DC/OS install state.
pub(crate) fn nodes_table_with(
    nodes: &[ops::lab::state::NodeState],
    install: Option<&std::collections::BTreeMap<String, ops::lab::dcos::NodeInstall>>,
) -> String {
    let col = |name: &str| -> String {
        match install {
            None => String::new(),
            Some(m) => format!(
                " {:<26}",
                m.get(name)
                    .map(|s| s.describe())
                    .unwrap_or_else(|| "?".into())
            ),
        }
    };
    // A lab across hosts has a HOST column; a lab on one host prints as it always has.
    let spans = nodes.iter().any(|n| n.host != crate::model::LOCAL_HOST);
    let host = |h: &str| -> String {
        if spans {
            format!("{h:<10} ")
        } else {
            String::new()
        }
    };
    let mut out = format!(
        "{:<12} {}{:<14} {:<9}{} {}\n",
        "NODE",
        host("HOST"),
        "ROLE",
        "STATE",
        if install.is_some() {
            format!(" {:<26}", "DC/OS")
        } else {
            String::new()
        },
        "ADDRESSES"
    );
    for n in nodes {
        let addrs: Vec<String> = n
            .nics
            .iter()
            .map(|nic| match &nic.ipv6 {
                Some(v6) => format!("{}={},{}", nic.network, nic.ipv4, v6),
                None => format!("{}={}", nic.network, nic.ipv4),
            })
            .collect();
        out.push_str(&format!(
            "{:<12} {}{:<14} {:<9}{} {}\n",
            n.name,
            host(&n.host),
            n.role,
            n.state.to_string(),
            col(&n.name),
            addrs.join(" ")
        ));
    }
    out
}

pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .context("cannot write to stdout")
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut s = serde_json::to_string_pretty(v).context("cannot encode JSON")?;
    s.push('\n');
    print(&s)
}

/// Runs the command; returns the exit status on success paths that still report failure
/// (e.g. `doctor` finding problems, `verify` failing a check).
pub fn run(cli: Cli) -> Result<i32, crate::Failure> {
    run_command(cli).map_err(crate::Failure::from)
}

fn run_command(cli: Cli) -> anyhow::Result<i32> {
    let dirs = Dirs::discover();
    let no_wait = cli.no_wait;
    let open = |dirs: Dirs| ops::Ctx::open(&cli.uri, dirs, no_wait);
    crate::fault::set_command(match &cli.command {
        Command::Up(_) => "up",
        Command::Down(_) => "down",
        Command::Snapshot(_) => "snapshot",
        Command::Revert(_) => "revert",
        Command::Install(_) => "install",
        Command::Suspend(_) => "suspend",
        Command::Resume(_) => "resume",
        Command::Halt(_) => "halt",
        _ => "",
    });
    match cli.command {
        Command::Plan(a) => plan(a, &dirs, &cli.uri),
        Command::Render(RenderArgs {
            sub:
                Some(RenderSub::CloudInit {
                    lab,
                    node,
                    part,
                    ssh_key,
                }),
            ..
        }) => {
            let lab = ops::load_lab(&lab)?;
            let part = match part {
                SeedPart::UserData => ops::render::SeedPart::UserData,
                SeedPart::MetaData => ops::render::SeedPart::MetaData,
                SeedPart::NetworkConfig => ops::render::SeedPart::NetworkConfig,
                SeedPart::Firstboot => ops::render::SeedPart::Firstboot,
            };
            print(&ops::render::cloud_init(
                &dirs,
                &lab,
                &node,
                part,
                ssh_key.as_deref(),
            )?)?;
            Ok(0)
        }
        Command::Render(RenderArgs {
            sub: Some(RenderSub::Genconf { lab, ip_detect }),
            ..
        }) => {
            let lab = ops::load_lab(&lab)?;
            print(&ops::render::genconf(&lab, ip_detect)?)?;
            Ok(0)
        }
        Command::Verify(a) => verify(&open(dirs)?, a),
        Command::Render(a) => render(a, &dirs),
        Command::Doctor(a) => doctor(a, &dirs, &cli.uri),
        Command::Image(cmd) => image(cmd, &dirs),
        Command::Up(UpArgs {
            lab,
            json,
            wait,
            from: Some(file),
            ..
        }) => {
            let ctx = open(dirs)?;
            let report = run_interruptible(ops::golden::restore_command(
                &ctx,
                &lab,
                &file,
                std::time::Duration::from_secs(wait),
            ))?;
            if json {
                print_json(&report)?;
            } else {
                print(&commands::up_summary(&ops::up::UpOutcome {
                    up: report,
                    install: None,
                }))?;
            }
            Ok(0)
        }
        Command::Up(a) => up(a, || open(dirs)),
        Command::Install(a) => install(&open(dirs)?, a),
        Command::Down(a) => commands::down(&open(dirs)?, a),
        Command::Status(a) => commands::status(&open(dirs)?, a),
        Command::List(a) => commands::list(&open(dirs)?, a),
        Command::Ssh(a) => commands::ssh(&open(dirs)?, a),
        Command::Exec(a) => commands::exec(&open(dirs)?, a),
        Command::Snapshot(a) => commands::snapshot(&open(dirs)?, a),
        Command::Revert(a) => commands::revert(&open(dirs)?, a),
        Command::Snapshots(a) => commands::snapshots(&open(dirs)?, a),
        Command::Suspend(a) => commands::suspend(&open(dirs)?, a),
        Command::Resume(a) => commands::resume(&open(dirs)?, a),
        Command::Halt(a) => commands::halt(&open(dirs)?, a),
        Command::SshConfig(a) => commands::ssh_config(&open(dirs)?, a),
        Command::Inventory(a) => commands::inventory(&open(dirs)?, a),
    }
}
/// `plan`: the actions `up` would take.
fn plan(a: PlanArgs, dirs: &Dirs, uri: &str) -> anyhow::Result<i32> {
    let lab = ops::load_lab(&a.lab)?;
    let accel = ops::decide_accel(&lab, a.accel.map(Into::into));
    let report =
        ops::plan::plan_command(&lab, accel, dirs, uri, a.offline, &ops::context::libvirt())?;
    if a.json {
        print_json(&report)?;
    } else {
        print(&ops::plan::describe(&report))?;
    }
    Ok(0)
}

/// `verify`: named checks read from the machine; non-zero if any fails.
fn verify(ctx: &ops::Ctx, a: VerifyArgs) -> anyhow::Result<i32> {
    let lab = ops::load_lab(&a.lab)?;
    let report = runtime()?.block_on(ops::verify::run(ctx, &lab))?;
    if let Some(path) = &a.junit {
        std::fs::write(path, ops::verify::junit(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if a.json {
        print_json(&report)?;
    } else {
        print(&ops::verify::describe(&report))?;
    }
    Ok(if report.failed().is_empty() {
        0
    } else {
        crate::EXIT_FAILURE
    })
}

/// `render`: the libvirt XML of one object.
fn render(a: RenderArgs, dirs: &Dirs) -> anyhow::Result<i32> {
    let lab = ops::load_lab(a.lab.as_deref().unwrap_or_default())?;
    let accel = ops::decide_accel(&lab, a.accel.map(Into::into));
    let target = match (a.node, a.network, a.pool, a.volume) {
        (Some(n), _, _, _) => ops::render::Target::Node(n),
        (_, Some(NetArg::Private), _, _) => ops::render::Target::Network(NetKind::Private),
        (_, Some(NetArg::Public), _, _) => ops::render::Target::Network(NetKind::Public),
        (_, _, true, _) => ops::render::Target::Pool,
        (_, _, _, Some(v)) => ops::render::Target::Volume(v),
        _ => {
            return Err(BadInput(
                "say what to render: --node, --network, --pool or --volume".into(),
            )
            .into());
        }
    };
    let xml = ops::render::render(&lab, &accel, dirs, &target)
        .with_context(|| format!("cannot render lab {}", lab.name))?;
    print(&xml)?;
    Ok(0)
}

/// `doctor`: what this host and user can do, each missing piece with the fix.
fn doctor(a: DoctorArgs, dirs: &Dirs, uri: &str) -> anyhow::Result<i32> {
    let report = ops::doctor::doctor(uri, dirs, &ops::context::libvirt());
    if a.json {
        print_json(&report)?;
    } else {
        print(&ops::doctor::describe(&report))?;
    }
    Ok(if report.ready() {
        0
    } else {
        crate::EXIT_FAILURE
    })
}

/// `up`: the lab brought up or converged (and installed, when it names an installer).
fn up(a: UpArgs, open: impl FnOnce() -> anyhow::Result<ops::Ctx>) -> anyhow::Result<i32> {
    let lab = ops::load_lab(&a.lab)?;
    let accel = ops::decide_accel(&lab, a.accel.map(Into::into));
    let opts = ops::up::UpOptions {
        wait: std::time::Duration::from_secs(a.wait),
        install: (lab.dcos.installer.is_some() && !a.no_install).then(|| {
            ops::lab::dcos::InstallOptions {
                timeout: std::time::Duration::from_secs(a.install_timeout),
            }
        }),
        nodes: a.node.clone(),
    };
    let ctx = open()?;
    let report = run_interruptible(ops::up::up_command(&ctx, &lab, &a.lab, accel, &opts))?;
    if a.json {
        print_json(&report)?;
    } else {
        print(&commands::up_summary(&report))?;
    }
    Ok(0)
}

/// `install`: DC/OS installed on the running lab.
fn install(ctx: &ops::Ctx, a: InstallArgs) -> anyhow::Result<i32> {
    let lab = ops::load_lab(&a.lab)?;
    let opts = ops::lab::dcos::InstallOptions {
        timeout: std::time::Duration::from_secs(a.timeout),
    };
    let report = run_interruptible(ops::install::install_command(ctx, &lab, &a.lab, &opts))?;
    if a.json {
        print_json(&report)?;
    } else {
        print(&commands::install_summary(&report))?;
    }
    Ok(0)
}

fn image(cmd: ImageCmd, dirs: &Dirs) -> anyhow::Result<i32> {
    use crate::image;
    match cmd {
        ImageCmd::Build { recipe, json } => {
            if !image::recipe_names().contains(&recipe) {
                return Err(BadInput(format!(
                    "no image recipe \"{recipe}\"; built-in recipes: {}",
                    image::recipe_names().join(", ")
                ))
                .into());
            }
            let progress = crate::progress::Progress::new();
            let spinner = progress.spinner(&format!("image {recipe}"));
            let built = image::build(dirs, &recipe, &|step| spinner.step(step))
                .with_context(|| format!("cannot build image {recipe}"))?;
            spinner.done(&if built.built {
                format!("built in {:.0} s", built.seconds)
            } else {
                "cached".to_string()
            });
            if json {
                print_json(&built)?;
            } else {
                print(&format!(
                    "{} {} ({} MiB on disk, {:.1} s)\n",
                    if built.built { "built" } else { "cached" },
                    built.dir.display(),
                    built.disk_bytes / (1024 * 1024),
                    built.seconds
                ))?;
            }
            Ok(0)
        }
        ImageCmd::List { json } => {
            let list = image::list(dirs)?;
            if json {
                print_json(&list)?;
            } else {
                let mut out = format!("{:<16} {:<9} {:>8}  {}\n", "NAME", "KIND", "MiB", "DIR");
                for i in &list {
                    out.push_str(&format!(
                        "{:<16} {:<9} {:>8}  {}{}\n",
                        i.name,
                        i.kind,
                        i.disk_bytes / (1024 * 1024),
                        i.dir.display(),
                        if i.kind == "built" && !i.current {
                            " (stale)"
                        } else {
                            ""
                        }
                    ));
                }
                print(&out)?;
            }
            Ok(0)
        }
        ImageCmd::Rm { name } => {
            let removed = image::remove(dirs, &name)?;
            for d in removed {
                print(&format!("removed {}\n", d.display()))?;
            }
            Ok(0)
        }
        ImageCmd::Import { file, name } => {
            let info = image::import(dirs, &file, &name)?;
            print(&format!("imported {} as {}\n", file.display(), info.name))?;
            Ok(0)
        }
    }
}
