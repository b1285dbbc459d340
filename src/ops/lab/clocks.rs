//! A node's clock and random state after it was stopped in time (a revert, a resume): the
//! clock set from the host's, the kernel's random state renewed from the host's [SSH I/O].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use crate::guest::{Guests, Target};
use crate::ops::lab::state::NodeState;

/// Each node's clock corrected (and its random state renewed) as soon as it runs again and
/// answers; the boot node's first: it is the lab's time server, and a node that asked it for the
/// time before its clock was corrected would follow it back to the old time.
pub struct Clocks {
    guests: Arc<dyn Guests>,
    wait: Duration,
    set: tokio::task::JoinSet<anyhow::Result<(String, f64)>>,
    boot: Option<String>,
    boot_fixed: Option<watch::Sender<bool>>,
    boot_fixed_rx: watch::Receiver<bool>,
}

impl Clocks {
    /// For `nodes` (the boot node among them is the reference); each waits at most `wait` for
    /// its node to answer.
    pub fn new<'a>(
        guests: Arc<dyn Guests>,
        mut nodes: impl Iterator<Item = &'a NodeState>,
        wait: Duration,
    ) -> Clocks {
        let (tx, rx) = watch::channel(false);
        let boot = nodes.find(|n| n.role == "boot").map(|n| n.name.clone());
        Clocks {
            guests,
            wait,
            set: tokio::task::JoinSet::new(),
            boot_fixed: boot.is_some().then_some(tx),
            boot,
            boot_fixed_rx: rx,
        }
    }

    /// `target`'s node runs again: its clock is corrected once it answers.
    pub fn running(&mut self, target: Target) {
        let order = if Some(&target.node) == self.boot.as_ref() {
            ClockOrder::Reference(self.boot_fixed.take())
        } else {
            ClockOrder::Follower(self.boot.is_some().then(|| self.boot_fixed_rx.clone()))
        };
        self.set
            .spawn(fix_clock(self.guests.clone(), target, self.wait, order));
    }

    /// Stops every correction under way.
    pub fn abort(&mut self) {
        self.set.abort_all();
    }

    /// Each node's clock offset from the host after correction, in seconds, by node name.
    pub async fn offsets(mut self) -> anyhow::Result<Vec<(String, f64)>> {
        let mut out = Vec::new();
        while let Some(r) = self.set.join_next().await {
            out.push(r.context("a clock task failed")??);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

fn now_secs() -> f64 {
    crate::unix_time().as_secs_f64()
}

/// Where a node's clock stands among the lab's: the boot node is the reference (it says when its
/// clock is right), the others follow it (and wait for that before asking it for the time).
enum ClockOrder {
    Reference(Option<tokio::sync::watch::Sender<bool>>),
    Follower(Option<tokio::sync::watch::Receiver<bool>>),
}

/// After a revert (or a resume) a guest's clock is as old as the snapshot (or the suspend): wait until the node answers over
/// SSH, set its clock from the host's and read it back in the same round trip; the offset left
/// is reported (half the round trip is its uncertainty). Setting the clock tells the kernel it
/// is no longer synchronised; a follower then asks chrony for an immediate burst of samples from
/// the boot node (corrected by then), so the kernel reports the clock synchronised again within
/// a second instead of at chrony's next poll.
async fn fix_clock(
    guests: Arc<dyn Guests>,
    target: Target,
    wait: Duration,
    mut order: ClockOrder,
) -> anyhow::Result<(String, f64)> {
    let node = target.node.clone();
    let t = Instant::now();
    let n2 = node.clone();
    let s = guests
        .wait_ready(&target, None, wait, &move |last| {
            tracing::debug!("{n2}: {:.2} s: {last}", t.elapsed().as_secs_f64())
        })
        .await?;
    tracing::debug!(
        "{node}: SSH answers after {:.2} s",
        t.elapsed().as_secs_f64()
    );
    // The host's time is sent when the guest's shell is up and waiting for it, not with the
    // command: starting a shell in a guest whose translation cache the revert emptied takes a
    // few tenths of a second. bash's EPOCHREALTIME reads the clock back without another process.
    let set_clock = "echo ready; read -r t && date -u -s \"@$t\" >/dev/null && echo ${EPOCHREALTIME:-$(date -u +%s.%N)}";
    let (command, seed) = match &mut order {
        // The reference's clock is set on its own, so the followers wait for nothing else; its
        // random state is renewed after.
        ClockOrder::Reference(_) | ClockOrder::Follower(None) => (set_clock.to_string(), None),
        // A follower's clock, its chrony's burst of samples from the (corrected) boot node and
        // its random state in one command: one shell started in the guest, not two.
        ClockOrder::Follower(Some(rx)) => {
            // A failed boot node fails the whole revert; the wait is bounded by it.
            let _ = tokio::time::timeout(wait, rx.wait_for(|fixed| *fixed)).await;
            match host_entropy(&node) {
                Some(hex) => (
                    format!(
                        "{set_clock}; {{ chronyc -a burst 2/2 </dev/null >/dev/null 2>&1 & }}; read -r h; \
                         printf '%s\\n' \"$h\" | {{ {}; }} || echo '{RESEED_FAILED}' >&2",
                        reseed_program()
                    ),
                    Some(hex),
                ),
                None => (
                    format!("{set_clock}; chronyc -a burst 2/2 >/dev/null 2>&1 || true"),
                    None,
                ),
            }
        }
    };
    let renewed = seed.is_some();
    let mut before = 0.0;
    let out = s
        .exec_answering(
            &command,
            Box::new(|| {
                before = now_secs();
                let mut answer = format!("{before:.6}\n");
                if let Some(hex) = seed {
                    answer.push_str(&hex);
                    answer.push('\n');
                }
                answer.into_bytes()
            }),
        )
        .await?;
    let after = now_secs();
    if let ClockOrder::Reference(Some(tx)) = order {
        let _ = tx.send(true);
    }
    if renewed {
        if out.stderr_str().contains(RESEED_FAILED) {
            tracing::warn!(
                "{node}: random state not renewed: {}",
                out.stderr_str().trim()
            );
        }
    } else {
        renew_random_state(&node, s.as_ref()).await;
    }
    s.close().await;
    let guest: f64 = out
        .stdout_str()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .replace(',', ".")
        .parse()
        .with_context(|| {
            format!(
                "{node}: cannot set or read the clock: {:?} {:?}",
                out.stdout_str(),
                out.stderr_str()
            )
        })?;
    Ok((node, guest - (before + after) / 2.0))
}

/// What a node prints on stderr when its kernel could not be reseeded.
const RESEED_FAILED: &str = "dcos-lab: random state not renewed";

/// Fresh bytes from the host's /dev/urandom, as hex; `None` (said in the log) when unreadable.
fn host_entropy(node: &str) -> Option<String> {
    let mut seed = [0u8; RESEED_BYTES];
    if let Err(e) = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
    {
        tracing::warn!(
            "{node}: random state not renewed: cannot read the host's /dev/urandom: {e}"
        );
        return None;
    }
    Some(seed.iter().map(|b| format!("{b:02x}")).collect())
}

/// Bytes of fresh host entropy a node's kernel gets after a revert.
pub(crate) const RESEED_BYTES: usize = 64;

/// The kernel's `RNDADDENTROPY` and `RNDRESEEDCRNG` ioctls (linux/random.h), run by the guest's
/// Perl (perl-base is Essential in Debian, so every Debian image has it, and it starts in a tenth
/// of Python's time in a guest whose translation cache the revert just emptied): the host's
/// bytes, read as hex from stdin, go into the input pool, credited, and the CRNG is reseeded from
/// it at once, so what /dev/urandom gives from then on differs between two reverts of one
/// snapshot. No single quote inside: it is passed in single quotes.
const RESEED_PERL: &str = r#"my $h = <STDIN>; chomp $h; my $d = pack("H*", $h); open(my $f, ">", "/dev/random") or die "open /dev/random: $!\n"; ioctl($f, 0x40085203, pack("ii", 8 * length($d), length($d)) . $d) or die "RNDADDENTROPY: $!\n"; ioctl($f, 0x5207, 0) or die "RNDRESEEDCRNG: $!\n";"#;

/// The same with Python, for images without Perl.
const RESEED_PYTHON: &str = "import fcntl, os, struct, sys\n\
d = bytes.fromhex(sys.stdin.readline().strip())\n\
fd = os.open('/dev/random', os.O_WRONLY)\n\
fcntl.ioctl(fd, 0x40085203, struct.pack('ii', len(d) * 8, len(d)) + d)\n\
fcntl.ioctl(fd, 0x5207)\n";

/// After a revert every node's kernel holds the random state of the snapshot: two reverts of
/// one snapshot would hand out the same /dev/urandom bytes (TLS nonces, keys, UUIDs) until the
/// kernel next reseeds on its own, up to a minute later. So each node is sent fresh entropy from
/// the host (over stdin, not on a command line) and reseeds at once. The lab's image kernel has
/// no VM generation ID driver, so libvirt's `<genid/>` (renewed by every revert) is not enough
/// on its own. A node that cannot do it (an imported image with neither Perl nor Python) is
/// named in the log.
async fn renew_random_state(node: &str, s: &dyn crate::guest::Shell) {
    let Some(hex) = host_entropy(node) else {
        return;
    };
    let cmd = reseed_command();
    match s
        .exec_answering(&cmd, Box::new(move || format!("{hex}\n").into_bytes()))
        .await
    {
        Ok(o) if o.success() => {}
        Ok(o) => tracing::warn!(
            "{node}: random state not renewed (exit {:?}): {}",
            o.status,
            o.stderr_str().trim()
        ),
        Err(e) => tracing::warn!("{node}: random state not renewed: {e}"),
    }
}

/// The shell command that reseeds a node's kernel: says `ready`, then takes the hex line.
fn reseed_command() -> String {
    format!("echo ready; {}", reseed_program())
}

/// The guest's program that reseeds its kernel from a hex line on stdin: Perl, else Python.
fn reseed_program() -> String {
    format!(
        "if command -v perl >/dev/null; then perl -e '{RESEED_PERL}'; \
         else python3 -I -S -c \"$(printf '%s' '{}' | base64 -d)\"; fi",
        crate::base64::encode(RESEED_PYTHON.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both reseed programs compile (Perl's `-c`, Python's `compile`), and the Perl one survives
    /// the single quotes it is passed in. Running them needs root (RNDADDENTROPY): the system
    /// tier's random-state test does that in real guests.
    #[test]
    fn reseed_programs_compile() {
        assert!(!RESEED_PERL.contains('\''));
        assert!(reseed_command().contains(RESEED_PERL));
        let perl = std::process::Command::new("perl")
            .args(["-c", "-e", RESEED_PERL])
            .output()
            .expect("perl runs");
        assert!(
            perl.status.success(),
            "{}",
            String::from_utf8_lossy(&perl.stderr)
        );
        let py = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys; compile(sys.stdin.read(), 'reseed', 'exec')",
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin
                    .take()
                    .expect("stdin")
                    .write_all(RESEED_PYTHON.as_bytes())?;
                c.wait()
            })
            .expect("python3 runs");
        assert!(py.success());
    }
}
