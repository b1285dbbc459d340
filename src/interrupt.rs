//! Ctrl-C in a command that changes the host [process].
//!
//! `tokio::signal::ctrl_c` wakes a task; until that task runs, the command goes on and may start
//! its next change, which then finishes on a blocking thread after the command has said what
//! exists. So the commands that catch Ctrl-C ([`watch`] it first) also get a flag set inside the
//! signal handler, the moment the signal arrives: from then on the driver makes no change
//! ([`gate`] refuses it), and [`settle`] waits for a change already under way, so that the report
//! that follows reads the host as the command leaves it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, RwLock, RwLockReadGuard};

static PRESSED: AtomicBool = AtomicBool::new(false);
/// Held (shared) by every change while it is made; taken whole by [`settle`].
static GATE: RwLock<()> = RwLock::new(());
static WATCH: Once = Once::new();

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

/// Held while one change is made: `None` once Ctrl-C was pressed (make no change then).
pub fn gate() -> Option<RwLockReadGuard<'static, ()>> {
    let guard = GATE.read().unwrap_or_else(|p| p.into_inner());
    (!pressed()).then_some(guard)
}

/// Waits until no change is under way (none starts once Ctrl-C was pressed). Blocks.
pub fn settle() {
    drop(GATE.write().unwrap_or_else(|p| p.into_inner()));
}
