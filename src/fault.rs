//! Fault injection for the reliability tests [process]; only in a build with the `test-hooks`
//! feature (scripts/test.sh builds the tests so): the shipped binary has none, and its `step`,
//! `fails` and `set_command` do nothing.
//!
//! `DCOS_LAB_TEST_FAULT=<command>:<n>:<kill|stop>` makes the process SIGKILL (or SIGSTOP) itself
//! right after the `n`-th step of `<command>` (`up`, `down`, `snapshot`, `revert`, `install`)
//! has taken effect. A step is one change on the host: a libvirt object defined, started,
//! paused, resumed, snapshotted, reverted or removed, or one of the lab's files written or
//! removed. The tests use it to stop a command at every step and check that the next command
//! takes over; nothing else sets it.
//!
//! `<command>:<n>:fail` makes the libvirt change that would be step `n` fail instead of being
//! made, and every later try of that same change in this process: a call that keeps failing.

/// The environment variable the tests set.
pub const ENV: &str = "DCOS_LAB_TEST_FAULT";

/// Whether this build has the hooks (`--features test-hooks`).
pub fn built_in() -> bool {
    cfg!(feature = "test-hooks")
}

#[cfg(feature = "test-hooks")]
pub use hooks::{fails, set_command, step};

/// Names the command this process runs: nothing to do without the hooks.
#[cfg(not(feature = "test-hooks"))]
pub fn set_command(_command: &str) {}

/// The end of one step: nothing to do without the hooks.
#[cfg(not(feature = "test-hooks"))]
pub fn step(_what: &str) {}

/// Whether a change is to fail: never, without the hooks.
#[cfg(not(feature = "test-hooks"))]
pub fn fails(_what: &str) -> bool {
    false
}

#[cfg(feature = "test-hooks")]
mod hooks {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Mutex, OnceLock};

    use super::ENV;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mode {
        Kill,
        Stop,
        Fail,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Spec {
        command: String,
        step: u32,
        mode: Mode,
    }

    fn parse(s: &str) -> Option<Spec> {
        let mut it = s.split(':');
        let command = it.next()?.to_string();
        let step = it.next()?.parse().ok()?;
        let mode = match it.next().unwrap_or("kill") {
            "kill" => Mode::Kill,
            "stop" => Mode::Stop,
            "fail" => Mode::Fail,
            _ => return None,
        };
        Some(Spec {
            command,
            step,
            mode,
        })
    }

    static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
    static COMMAND: OnceLock<String> = OnceLock::new();
    static STEPS: AtomicU32 = AtomicU32::new(0);

    /// Names the command this process runs (the CLI calls it once).
    pub fn set_command(command: &str) {
        let _ = COMMAND.set(command.to_string());
    }

    /// The test's spec, when it is for the command this process runs.
    fn active() -> Option<&'static Spec> {
        let spec = SPEC
            .get_or_init(|| std::env::var(ENV).ok().and_then(|s| parse(&s)))
            .as_ref()?;
        (COMMAND.get().map(String::as_str) == Some(spec.command.as_str())).then_some(spec)
    }

    /// Marks the end of one step; stops the process here when the test asked for it.
    pub fn step(what: &str) {
        let Some(spec) = active() else {
            return;
        };
        let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
        let signal = match spec.mode {
            _ if n != spec.step => return,
            Mode::Fail => return,
            Mode::Kill => libc::SIGKILL,
            Mode::Stop => libc::SIGSTOP,
        };
        eprintln!(
            "fault injection: {} after step {n} of {} ({what})",
            if signal == libc::SIGSTOP {
                "SIGSTOP"
            } else {
                "SIGKILL"
            },
            spec.command
        );
        // SAFETY: raise() has no memory-safety preconditions.
        unsafe {
            libc::raise(signal);
        }
    }

    /// The change that fails (`<command>:<n>:fail`), once the n-th change was asked for.
    static FAILING: Mutex<Option<String>> = Mutex::new(None);

    /// Whether the libvirt change `what`, about to be made, is to fail instead: the one that would
    /// be step n of a `<command>:<n>:fail` spec, and every later try of that same change.
    pub fn fails(what: &str) -> bool {
        let Some(spec) = active().filter(|s| s.mode == Mode::Fail) else {
            return false;
        };
        let mut failing = FAILING.lock().unwrap_or_else(|p| p.into_inner());
        let fail = match failing.as_deref() {
            Some(w) => w == what,
            None if STEPS.load(Ordering::SeqCst) + 1 == spec.step => {
                *failing = Some(what.to_string());
                true
            }
            None => false,
        };
        if fail {
            eprintln!("fault injection: {what} fails ({})", spec.command);
        }
        fail
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
                    mode: Mode::Kill
                })
            );
            assert_eq!(parse("down:1:stop").map(|s| s.mode), Some(Mode::Stop));
            assert_eq!(parse("revert:4:fail").map(|s| s.mode), Some(Mode::Fail));
            assert_eq!(parse("down:x"), None);
            assert_eq!(parse("down:1:maybe"), None);
        }
    }
}
