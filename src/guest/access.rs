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

/// A shell on a node that answers.
pub trait Shell: Send + Sync {
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
}

impl Shell for Session {
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
