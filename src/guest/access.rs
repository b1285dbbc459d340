//! How operations reach nodes: the `Guests` trait (wait until a node is ready, talk to its shell)
//! and its implementation over SSH [I/O].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use super::{GuestError, KnownHosts, LabKey, Output, Session};

/// A boxed future, for trait methods that are async.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One node as an operation reaches it: its name and domain, its address, the lab's key and
/// the pinned host keys.
#[derive(Clone)]
pub struct Target {
    pub node: String,
    pub domain: String,
    pub addr: SocketAddr,
    pub key: LabKey,
    pub known: KnownHosts,
}

/// Input streamed to a command on a node (a file of any size, or bytes in memory).
pub type Input<'a> = Box<dyn tokio::io::AsyncRead + Send + Unpin + 'a>;

/// A shell on a node that answers.
pub trait Shell: Send + Sync {
    /// Runs `command` through the node's shell, with `stdin` (if any) streamed to it, and
    /// collects its output and exit status.
    fn exec_input<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<Input<'a>>,
    ) -> BoxFuture<'a, Result<Output, GuestError>>;
    /// Runs `command`; when it first prints, `answer()` is sent as its whole input (for input
    /// that must be made at the moment the command is ready: a clock to set). What it prints
    /// after that first output is returned.
    fn exec_answering<'a>(
        &'a self,
        command: &'a str,
        answer: Box<dyn FnOnce() -> Vec<u8> + Send + 'a>,
    ) -> BoxFuture<'a, Result<Output, GuestError>>;
    /// Ends the session.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
    /// Runs `command` with no input.
    fn exec<'a>(&'a self, command: &'a str) -> BoxFuture<'a, Result<Output, GuestError>> {
        self.exec_input(command, None)
    }
    /// Runs `command` with `input` as its whole input.
    fn exec_with_input<'a>(
        &'a self,
        command: &'a str,
        input: &'a [u8],
    ) -> BoxFuture<'a, Result<Output, GuestError>> {
        self.exec_input(command, Some(Box::new(input)))
    }
}

/// What operations ask of the nodes themselves.
pub trait Guests: Send + Sync {
    /// Waits until `t` answers and `check` (a shell test, if any) succeeds there, for at most
    /// `timeout`; `on_try` hears each failed attempt. A host key mismatch is final.
    fn wait_ready<'a>(
        &'a self,
        t: &'a Target,
        check: Option<&'a str>,
        timeout: Duration,
        on_try: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Box<dyn Shell>, GuestError>>;
    /// Connects to `t` once, giving up after `timeout`: a node that does not answer is an error
    /// at once (commands on a running lab), not waited for.
    fn connect<'a>(
        &'a self,
        t: &'a Target,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Box<dyn Shell>, GuestError>>;
}

/// The nodes over SSH (russh, in-process).
pub struct Ssh;

impl Guests for Ssh {
    fn wait_ready<'a>(
        &'a self,
        t: &'a Target,
        check: Option<&'a str>,
        timeout: Duration,
        on_try: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Box<dyn Shell>, GuestError>> {
        Box::pin(async move {
            let s = super::wait_ready(&t.node, check, t.addr, &t.key, &t.known, timeout, on_try)
                .await?;
            Ok(Box::new(s) as Box<dyn Shell>)
        })
    }

    fn connect<'a>(
        &'a self,
        t: &'a Target,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Box<dyn Shell>, GuestError>> {
        Box::pin(async move {
            let s = Session::connect(&t.node, t.addr, &t.key, &t.known, timeout).await?;
            Ok(Box::new(s) as Box<dyn Shell>)
        })
    }
}

impl Shell for Session {
    fn exec_input<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<Input<'a>>,
    ) -> BoxFuture<'a, Result<Output, GuestError>> {
        Box::pin(Session::exec_reading(self, command, stdin))
    }

    fn exec_answering<'a>(
        &'a self,
        command: &'a str,
        answer: Box<dyn FnOnce() -> Vec<u8> + Send + 'a>,
    ) -> BoxFuture<'a, Result<Output, GuestError>> {
        Box::pin(Session::exec_answering(self, command, answer))
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(Session::close(*self))
    }
}
