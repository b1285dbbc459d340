//! Progress on stderr: indicatif bars on a terminal, plain log lines (tracing) otherwise [stderr].

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The set of progress lines of one command.
pub struct Progress {
    multi: MultiProgress,
    tty: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Progress {
        let tty = std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Progress { multi, tty }
    }

    /// A line for one thing (a node, an image) that moves through steps.
    pub fn spinner(&self, label: &str) -> Line {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<14} {wide_msg} {elapsed:>4}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label.to_string());
        if self.tty {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Line {
            bar,
            label: label.to_string(),
            tty: self.tty,
            last: std::sync::Mutex::new(String::new()),
        }
    }
}

/// One progress line. Without a terminal every step is also logged, so CI logs say what happened.
pub struct Line {
    bar: ProgressBar,
    label: String,
    tty: bool,
    last: std::sync::Mutex<String>,
}

impl Line {
    /// Shows `msg`; logged (without a terminal) only when it differs from the previous step.
    pub fn step(&self, msg: &str) {
        if self.tty {
            self.bar.set_message(msg.to_string());
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if *last != msg {
            tracing::info!("{}: {msg}", self.label);
            *last = msg.to_string();
        }
    }

    pub fn done(&self, msg: &str) {
        if self.tty {
            self.bar.finish_with_message(msg.to_string());
        } else {
            tracing::info!("{}: {msg}", self.label);
        }
    }

    pub fn fail(&self, msg: &str) {
        if self.tty {
            self.bar.abandon_with_message(format!("FAILED: {msg}"));
        } else {
            tracing::warn!("{}: FAILED: {msg}", self.label);
        }
    }
}
