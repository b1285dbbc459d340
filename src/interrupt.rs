//! Ctrl-C in a command that changes the host [process].
//!
//! `tokio::signal::ctrl_c` wakes a task; until that task runs, the command goes on and may start
//! its next change, which then finishes on a blocking thread after the command has said what
//! exists. So the commands that catch Ctrl-C ([`watch`] it first) also get a flag set inside the
//! signal handler, the moment the signal arrives: from then on the driver makes no change
//! ([`gate`] refuses it), and [`settle`] waits (briefly) for a change already under way, so that
//! the report that follows reads the host as the command leaves it, or names what is still
//! being made.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

static PRESSED: AtomicBool = AtomicBool::new(false);
static WATCH: Once = Once::new();
/// The changes under way: a number per change (to remove the right one) and what it does.
static MAKING: Mutex<(u64, Vec<(u64, String)>)> = Mutex::new((0, Vec::new()));
static MADE: Condvar = Condvar::new();

fn making() -> MutexGuard<'static, (u64, Vec<(u64, String)>)> {
    MAKING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets the flag on SIGINT, beside tokio's own handler (which wakes the task that reports).
/// Once per process; call it before awaiting `tokio::signal::ctrl_c`.
pub fn watch() {
    WATCH.call_once(|| {
        // SAFETY: the action only stores to an atomic, which is async-signal-safe; it allocates,
        // locks and blocks nothing.
        let r = unsafe {
            signal_hook_registry::register(libc::SIGINT, || PRESSED.store(true, Ordering::SeqCst))
        };
        if let Err(e) = r {
            // Without the flag Ctrl-C still stops the command (tokio's handler); only the
            // change it may have started is not waited for.
            tracing::warn!("cannot watch for Ctrl-C: {e}");
        }
    });
}

/// Whether Ctrl-C was pressed since [`watch`].
pub fn pressed() -> bool {
    PRESSED.load(Ordering::SeqCst)
}

/// One change under way ([`gate`]); dropped when it is made (or failed).
#[derive(Debug)]
pub struct Making(u64);

impl Drop for Making {
    fn drop(&mut self) {
        making().1.retain(|(n, _)| *n != self.0);
        MADE.notify_all();
    }
}

/// Held while the change `what` is made: `None` once Ctrl-C was pressed (make no change then).
pub fn gate(what: &str) -> Option<Making> {
    let mut m = making();
    // Under the lock: a change either sees the flag or is among those `settle` waits for.
    if pressed() {
        return None;
    }
    m.0 += 1;
    let n = m.0;
    m.1.push((n, what.to_string()));
    Some(Making(n))
}

/// Waits up to `limit` until no change is under way (none starts once Ctrl-C was pressed).
/// Returns the changes still under way then (a libvirt call does not stop halfway). Blocks.
pub fn settle(limit: Duration) -> Vec<String> {
    let end = Instant::now() + limit;
    let mut m = making();
    while !m.1.is_empty() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        m = MADE
            .wait_timeout(m, left)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
    m.1.iter().map(|(_, w)| w.clone()).collect()
}
