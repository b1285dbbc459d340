//! One SSH session to a guest as root with the lab key, host key pinned [I/O].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};

use super::{GuestError, KnownHosts, LabKey};

/// Output of a command run on a guest.
#[derive(Debug, Clone)]
pub struct Output {
    /// `None` when the command died without an exit status (e.g. killed by a signal).
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

struct Pinning {
    node: String,
    known: KnownHosts,
    mismatch: Arc<std::sync::atomic::AtomicBool>,
}

impl client::Handler for Pinning {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        match self.known.check_or_pin(&self.node, key) {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.mismatch
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(false)
            }
            Err(e) => {
                tracing::warn!("cannot record the host key of {}: {e}", self.node);
                Ok(false)
            }
        }
    }
}

/// An authenticated SSH session to one node.
pub struct Session {
    node: String,
    handle: Handle<Pinning>,
}

/// A command's input: given when it starts (or none), or answered to its first output.
enum Input<R, F> {
    Given(Option<R>),
    Answer(F),
}

fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(600)),
        keepalive_interval: Some(Duration::from_secs(15)),
        nodelay: true,
        ..client::Config::default()
    })
}

impl Session {
    /// Connects to `addr` as root with the lab key; the node's host key is pinned on first
    /// contact and must match afterwards.
    pub async fn connect(
        node: &str,
        addr: SocketAddr,
        key: &LabKey,
        known: &KnownHosts,
        timeout: Duration,
    ) -> Result<Session, GuestError> {
        Self::connect_over(node, addr, None, key, known, timeout).await
    }

    /// As `connect`, over `tcp` when given (a connection already open to `addr`).
    async fn connect_over(
        node: &str,
        addr: SocketAddr,
        tcp: Option<tokio::net::TcpStream>,
        key: &LabKey,
        known: &KnownHosts,
        timeout: Duration,
    ) -> Result<Session, GuestError> {
        let mismatch = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler = Pinning {
            node: node.to_string(),
            known: known.clone(),
            mismatch: mismatch.clone(),
        };
        let connect = async {
            match tcp {
                Some(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    client::connect_stream(config(), tcp, handler).await
                }
                None => client::connect(config(), addr, handler).await,
            }
        };
        let result = match tokio::time::timeout(timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(russh::Error::ConnectionTimeout),
        };
        let mut handle = match result {
            Ok(h) => h,
            Err(_) if mismatch.load(std::sync::atomic::Ordering::SeqCst) => {
                return Err(GuestError::HostKeyMismatch {
                    node: node.to_string(),
                    address: addr.to_string(),
                });
            }
            Err(source) => {
                return Err(GuestError::Connect {
                    node: node.to_string(),
                    address: addr.to_string(),
                    source: Box::new(source),
                });
            }
        };
        let auth = handle
            .authenticate_publickey(
                "root",
                PrivateKeyWithHashAlg::new(key.private.clone(), None),
            )
            .await
            .map_err(|source| GuestError::Connect {
                node: node.to_string(),
                address: addr.to_string(),
                source: Box::new(source),
            })?;
        if !auth.success() {
            return Err(GuestError::AuthRejected {
                node: node.to_string(),
            });
        }
        Ok(Session {
            node: node.to_string(),
            handle,
        })
    }

    /// Runs `command` through the guest's shell, with `stdin` (if any) fed to it, and collects its
    /// output and exit status. Reads on after the exit status until the channel closes.
    pub async fn exec_with_input(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, GuestError> {
        self.exec_reading(command, stdin).await
    }

    /// Like [`Session::exec_with_input`], with stdin streamed from `stdin` (a file of any size).
    pub async fn exec_reading<R: tokio::io::AsyncRead + Unpin>(
        &self,
        command: &str,
        stdin: Option<R>,
    ) -> Result<Output, GuestError> {
        self.run(command, Input::<R, fn() -> Vec<u8>>::Given(stdin))
            .await
    }

    /// Runs `command` and, when it first prints, sends it `answer()` as its whole input: for
    /// input that must be made at the moment the command is ready (a clock to set). What it
    /// prints after that first output is returned.
    pub async fn exec_answering(
        &self,
        command: &str,
        answer: impl FnOnce() -> Vec<u8>,
    ) -> Result<Output, GuestError> {
        self.run(command, Input::<&[u8], _>::Answer(answer)).await
    }

    /// One command on a new channel: its input given up front, or made by `answer` when the
    /// command first prints; collects its output and exit status until the channel closes.
    async fn run<R: tokio::io::AsyncRead + Unpin, F: FnOnce() -> Vec<u8>>(
        &self,
        command: &str,
        input: Input<R, F>,
    ) -> Result<Output, GuestError> {
        let err = |source| GuestError::Channel {
            node: self.node.clone(),
            command: command.to_string(),
            source: Box::new(source),
        };
        let mut ch = self.handle.channel_open_session().await.map_err(err)?;
        ch.exec(true, command).await.map_err(err)?;
        let mut answer = match input {
            Input::Given(stdin) => {
                if let Some(data) = stdin {
                    ch.data(data).await.map_err(err)?;
                }
                ch.eof().await.map_err(err)?;
                None
            }
            Input::Answer(answer) => Some(answer),
        };
        let mut out = Output {
            status: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } => match answer.take() {
                    Some(f) => {
                        ch.data_bytes(f()).await.map_err(err)?;
                        ch.eof().await.map_err(err)?;
                    }
                    None => out.stdout.extend_from_slice(&data),
                },
                ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                _ => {}
            }
        }
        Ok(out)
    }

    pub async fn exec(&self, command: &str) -> Result<Output, GuestError> {
        self.exec_with_input(command, None).await
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// Waits until `node` answers over SSH and `ready_check` (if any) succeeds there, retrying with back-off
/// (0.1 s doubling to 1 s; the check every 0.4 s over one session once SSH answers) until
/// `timeout`. A host key mismatch is final. `on_try` hears each
/// failed attempt.
pub async fn wait_ready(
    node: &str,
    ready_check: Option<&str>,
    addr: SocketAddr,
    key: &LabKey,
    known: &KnownHosts,
    timeout: Duration,
    on_try: &(dyn Fn(&str) + Send + Sync),
) -> Result<Session, GuestError> {
    let deadline = Instant::now() + timeout;
    let timed_out = |last: String| GuestError::Timeout {
        node: node.to_string(),
        seconds: timeout.as_secs(),
        last,
    };
    let mut delay = Duration::from_millis(100);
    let mut last = String::from("no attempt yet");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(last));
        }
        // A quick TCP probe first: cheap while the guest is still booting. The SSH session goes
        // over the probe's connection (a second one would cost the guest another sshd).
        let probe = tokio::time::timeout(
            left.min(Duration::from_secs(2)),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        match probe {
            Ok(Ok(tcp)) => {
                let connect_timeout = left.min(Duration::from_secs(20));
                match Session::connect_over(node, addr, Some(tcp), key, known, connect_timeout)
                    .await
                {
                    Ok(s) => match ready_check {
                        None => return Ok(s),
                        // Once SSH answers, the check is repeated over the same session: a new
                        // connection per try would make the booting guest start another sshd
                        // and do another key exchange each time, which costs it seconds of CPU
                        // under software emulation.
                        Some(check) => loop {
                            match s.exec(check).await {
                                Ok(o) if o.success() => return Ok(s),
                                Ok(_) => {
                                    last = "SSH answers; first-boot configuration not finished yet"
                                        .into();
                                    on_try(&last);
                                }
                                Err(e) => {
                                    last = crate::error_chain(&e);
                                    break;
                                }
                            }
                            let left = deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                return Err(timed_out(last));
                            }
                            tokio::time::sleep(Duration::from_millis(400).min(left)).await;
                        },
                    },
                    Err(e @ GuestError::HostKeyMismatch { .. }) => return Err(e),
                    Err(e) => last = crate::error_chain(&e),
                }
            }
            Ok(Err(e)) => last = format!("TCP {addr}: {e}"),
            Err(_) => last = format!("TCP {addr}: no answer"),
        }
        on_try(&last);
        tokio::time::sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Puts the terminal on `fd` in raw mode and restores it on drop.
struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: i32) -> Option<RawMode> {
        // SAFETY: termios calls on a valid fd with a zeroed struct they fill in.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes saved from the same fd.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

fn terminal_size() -> (u32, u32) {
    // SAFETY: TIOCGWINSZ fills a winsize struct; on failure we fall back to 80x24.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            (u32::from(ws.ws_col), u32::from(ws.ws_row))
        } else {
            (80, 24)
        }
    }
}

impl Session {
    /// An interactive login shell on a pseudo-terminal, wired to this process's terminal.
    /// Returns the shell's exit status.
    pub async fn interactive_shell(&self) -> Result<u32, GuestError> {
        use std::io::IsTerminal;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let err = |source| GuestError::Channel {
            node: self.node.clone(),
            command: "(interactive shell)".into(),
            source: Box::new(source),
        };
        let mut ch = self.handle.channel_open_session().await.map_err(err)?;
        let tty = std::io::stdin().is_terminal();
        if tty {
            let (w, h) = terminal_size();
            let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
            ch.request_pty(false, &term, w, h, 0, 0, &[])
                .await
                .map_err(err)?;
        }
        ch.request_shell(true).await.map_err(err)?;
        let _raw = if tty { RawMode::enter(0) } else { None };
        let mut stdin = tokio::io::stdin();
        let mut stdout = tokio::io::stdout();
        let mut stderr = tokio::io::stderr();
        let mut buf = vec![0u8; 4096];
        let mut stdin_open = true;
        let mut status = 255;
        loop {
            tokio::select! {
                n = stdin.read(&mut buf), if stdin_open => match n {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        ch.eof().await.map_err(err)?;
                    }
                    Ok(n) => ch.data(&buf[..n]).await.map_err(err)?,
                },
                msg = ch.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        let _ = stdout.write_all(&data).await;
                        let _ = stdout.flush().await;
                    }
                    Some(ChannelMsg::ExtendedData { data, .. }) => {
                        let _ = stderr.write_all(&data).await;
                        let _ = stderr.flush().await;
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => status = exit_status,
                    Some(_) => {}
                    None => break,
                },
            }
        }
        Ok(status)
    }
}
