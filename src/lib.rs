//! dcos-lab: multi-node DC/OS-style cluster labs on libvirt.
//!
//! Data flows one way: lab file → `model` (checked lab) → `plan` (addresses, actions) → `render`
//! (libvirt XML) → `driver` (libvirt). `ops` holds one operation per command; `cli` is the thin
//! command-line layer over it.

pub mod base64;
pub mod calendar;
pub mod cli;
pub mod driver;
pub mod failure;
pub mod fault;
pub mod guest;
pub mod host;
pub mod image;
pub mod interrupt;
pub mod lock;
pub mod model;
pub mod names;
pub mod ops;
pub mod overlay;
pub mod paths;
pub mod plan;
pub mod progress;
pub mod render;
pub mod tag;
pub mod tarball;

pub use failure::{BadInput, EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED, Failure, Interrupted};

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
