//! Talking to guests over SSH (russh, in-process): the lab key, pinned host keys, commands, waits [I/O].

mod access;
mod keys;
mod session;

pub use access::{BoxFuture, Guests, Input, Shell, Ssh, Target};
pub use keys::{KnownHosts, LabKey};
pub use session::{Output, Session, wait_ready};

/// How long connecting to a running node may take (commands on a running lab).
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("cannot {what} {}", path.display())]
    Io {
        what: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the lab key {} is not a valid OpenSSH private key: {message}", path.display())]
    BadKey {
        path: std::path::PathBuf,
        message: String,
    },
    #[error(
        "this lab has no SSH key at {}\n  fix: the lab was made with another state directory (DCOS_LAB_STATE_DIR) or by another user; use that, or `dcos-lab down` and `up` it again",
        path.display()
    )]
    NoKey { path: std::path::PathBuf },
    #[error("cannot generate an SSH key: {0}")]
    KeyGen(String),
    #[error(
        "the SSH host key of {node} ({address}) is not the one pinned on first contact\n  fix: if the node was rebuilt outside dcos-lab, run `dcos-lab down` and `up` again; \
         otherwise someone else answers at {address}"
    )]
    HostKeyMismatch { node: String, address: String },
    #[error("cannot reach {node} at {address} over SSH")]
    Connect {
        node: String,
        address: String,
        #[source]
        source: Box<russh::Error>,
    },
    #[error("{node} refused the lab key for root")]
    AuthRejected { node: String },
    #[error("SSH to {node} failed while running `{command}`")]
    Channel {
        node: String,
        command: String,
        #[source]
        source: Box<russh::Error>,
    },
    #[error("{node} did not answer over SSH within {seconds} s (last error: {last})")]
    Timeout {
        node: String,
        seconds: u64,
        last: String,
    },
}

/// `dcos-lab ssh LAB NODE` without a command: a shell on the node, over russh.
pub async fn interactive(
    lab_dirs: &crate::names::LabDirs,
    node: &str,
    addr: Option<std::net::Ipv4Addr>,
) -> anyhow::Result<i32> {
    let addr = addr.ok_or_else(|| anyhow::anyhow!("node {node} has no private address"))?;
    let key = LabKey::load(&lab_dirs.ssh_key())?;
    let known = KnownHosts::load(&lab_dirs.known_hosts())?;
    let s = Session::connect(
        node,
        std::net::SocketAddr::new(std::net::IpAddr::V4(addr), 22),
        &key,
        &known,
        CONNECT_TIMEOUT,
    )
    .await?;
    let status = s.interactive_shell().await?;
    s.close().await;
    Ok(i32::try_from(status).unwrap_or(255))
}
