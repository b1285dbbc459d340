//! dcos-lab: multi-node DC/OS-style cluster labs on libvirt.
//!
//! Data flows one way: lab file → `model` (checked lab) → `plan` (addresses, actions) → `render`
//! (libvirt XML) → `driver` (libvirt). `ops` holds one operation per command; `cli` is the thin
//! command-line layer over it.

pub mod cli;
pub mod driver;
pub mod fault;
pub mod guest;
pub mod host;
pub mod image;
pub mod lock;
pub mod model;
pub mod names;
pub mod ops;
pub mod paths;
pub mod plan;
pub mod progress;
pub mod render;
pub mod tag;

/// Exit status for bad input (an invalid lab file, an unknown node, bad arguments).
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit status for any other failure.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status after Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

/// The command was interrupted (SIGINT); the message says what it left and how to go on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// Marks an error as the user's input being wrong (exit 2) rather than a failure (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The exit status for an error: 130 when interrupted, 2 when anything in its chain is bad input,
/// else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.chain().any(|e| e.is::<Interrupted>()) {
        return EXIT_INTERRUPTED;
    }
    let bad = err.chain().any(|e| {
        e.is::<BadInput>()
            || e.is::<model::ModelError>()
            || matches!(
                e.downcast_ref::<render::RenderError>(),
                Some(render::RenderError::NoSuchNode { .. })
            )
    });
    if bad { EXIT_BAD_INPUT } else { EXIT_FAILURE }
}

/// Time since the Unix epoch (zero if the clock is before it).
pub fn unix_time() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// `outer: cause: root cause`, each cause once.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        src = e.source();
    }
    out
}
