//! Fault injection for the reliability tests [process].
//!
//! `DCOS_LAB_TEST_FAULT=<command>:<n>:<kill|stop>` makes the process SIGKILL (or SIGSTOP) itself
//! right after the `n`-th step of `<command>` (`up`, `down`, `snapshot`, `revert`, `install`)
//! has taken effect. A step is one change on the host: a libvirt object defined, started,
//! paused, resumed, snapshotted, reverted or removed, or one of the lab's files written or
//! removed. The tests use it to stop a command at every step and check that the next command
//! takes over; nothing else sets it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable the tests set.
pub const ENV: &str = "DCOS_LAB_TEST_FAULT";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    command: String,
    step: u32,
    stop: bool,
}

fn parse(s: &str) -> Option<Spec> {
    let mut it = s.split(':');
    let command = it.next()?.to_string();
    let step = it.next()?.parse().ok()?;
    let stop = match it.next().unwrap_or("kill") {
        "kill" => false,
        "stop" => true,
        _ => return None,
    };
    Some(Spec {
        command,
        step,
        stop,
    })
}

static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
static COMMAND: OnceLock<String> = OnceLock::new();
static STEPS: AtomicU32 = AtomicU32::new(0);

/// Names the command this process runs (the CLI calls it once).
pub fn set_command(command: &str) {
    let _ = COMMAND.set(command.to_string());
}

/// Marks the end of one step; stops the process here when the test asked for it.
pub fn step(what: &str) {
    let Some(spec) = SPEC.get_or_init(|| std::env::var(ENV).ok().and_then(|s| parse(&s))) else {
        return;
    };
    if COMMAND.get().map(String::as_str) != Some(spec.command.as_str()) {
        return;
    }
    let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
    if n == spec.step {
        let signal = if spec.stop {
            libc::SIGSTOP
        } else {
            libc::SIGKILL
        };
        eprintln!(
            "fault injection: {} after step {n} of {} ({what})",
            if spec.stop { "SIGSTOP" } else { "SIGKILL" },
            spec.command
        );
        // SAFETY: raise() has no memory-safety preconditions.
        unsafe {
            libc::raise(signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            parse("up:3"),
            Some(Spec {
                command: "up".into(),
                step: 3,
                stop: false
            })
        );
        assert_eq!(parse("down:1:stop").map(|s| s.stop), Some(true));
        assert_eq!(parse("down:x"), None);
        assert_eq!(parse("down:1:maybe"), None);
    }
}
