#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (packages, libvirtd),
# then runs every test, including the system tests against the real qemu:///system.
set -euo pipefail
cd "$(dirname "$0")/.."

# The whole suite means the whole suite. There is no skip switch any more (the system tier is
# opt-in with `#[ignore]`, and this script opts in); one left in the environment, from an older
# habit or a CI setting, is refused rather than ignored, with CI set or not.
for v in DCOS_LAB_SKIP_SYSTEM DCOS_LAB_SKIP; do
    if [ -n "${!v+x}" ]; then
        echo "test.sh: $v is set${CI:+ (CI=$CI)}; the test command runs every test, both tiers (unset it)" >&2
        exit 2
    fi
done

# The run's time and the machine's CPU, last thing printed, green or red: a time means nothing
# without the CPU (hosts of this kind differ about 3x in guest speed; docs/testing.md).
started=$(date +%s)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
summary() {
    echo "test.sh: $1 after $(( $(date +%s) - started )) s on ${cpu:-an unnamed CPU} ($(nproc) cores)" >&2
}
clippy_pid=
clippy_log=
goldens=
finish() {
    local rc=$?
    if [ -n "$clippy_pid" ]; then kill "$clippy_pid" 2>/dev/null || true; fi
    if [ -n "$goldens" ]; then rm -rf "$goldens"; fi
    if [ -n "$clippy_log" ]; then rm -f "$clippy_log"; fi
    if [ $rc -eq 0 ]; then summary "green"; else summary "red (exit $rc)"; fi
}
trap finish EXIT

# Arguments are cargo's, as for `cargo test` (`--test install`); those after `--` go to every
# test binary (a name filter).
cargo_args=()
test_args=()
seen_dashes=0
for a in "$@"; do
    if [ $seen_dashes -eq 0 ] && [ "$a" = -- ]; then
        seen_dashes=1
    elif [ $seen_dashes -eq 0 ]; then
        cargo_args+=("$a")
    else
        test_args+=("$a")
    fi
done

bash scripts/setup-host.sh

cargo fmt --check
# The fast tier: no libvirtd, no root, no network (unit tests, the fake hypervisor, goldens, CLI).
# This builds every test binary.
# The tests are built with the fault-injection hooks (src/fault.rs) the reliability tests drive;
# the shipped binary is built without them.
cargo test --all-targets --features test-hooks "$@"

# The test binaries, as cargo runs them: by name (image_build first of the system tier: on a
# fresh machine it builds the image every later test boots).
mapfile -t bins < <(cargo test --all-targets --features test-hooks --no-run --message-format=json "${cargo_args[@]}" 2>/dev/null \
    | grep '"profile":{[^}]*"test":true' \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' \
    | awk -F/ '{ print $NF "\t" $0 }' | sort | cut -f2)
[ ${#bins[@]} -gt 0 ] || { echo "test.sh: cargo listed no test binaries" >&2; exit 1; }

# Clippy beside the system tier, at idle priority in the same target directory: the guests
# leave about a core idle for minutes at a time (one node works while the others wait), and the
# test build is done, so the two share nothing but that idle time. The system tier runs its
# binaries itself, without cargo, which would wait on clippy's lock on the target directory.
clippy_log=$(mktemp /tmp/dltest-clippy.XXXXXX)
# Both builds: the shipped one, and the tests' with the hooks.
chrt --idle 0 nice -n 19 sh -c 'cargo clippy --all-targets --quiet -- -D warnings && cargo clippy --all-targets --features test-hooks --quiet -- -D warnings' >"$clippy_log" 2>&1 &
clippy_pid=$!

# The system tier: real libvirtd, real guests, image builds. One lab at a time on small hosts:
# tests that boot guests serialise themselves, and the binaries run one after another (a second
# stream beside it, the multihost test once the shared lab had booted, bought nothing
# measurable: the guests keep both cores busy while they boot; docs/testing.md). Every binary
# runs, so that one failure does not hide another's.
# Tests that need a freshly booted lab but do not test booting share one (TestLab::up_fresh):
# the first boots it and exports it as a golden here, the later ones `up --from` it.
goldens=$(mktemp -d /tmp/dltest-goldens.XXXXXX)
export DCOS_LAB_TEST_GOLDENS=$goldens
failed=()
for bin in "${bins[@]}"; do
    echo "     Running ${bin#"$PWD"/} --ignored" >&2
    "$bin" --ignored "${test_args[@]}" || failed+=("$(basename "$bin")")
done

clippy_rc=0
wait "$clippy_pid" || clippy_rc=$?
clippy_pid=
if [ $clippy_rc -ne 0 ] || [ -s "$clippy_log" ]; then
    cat "$clippy_log" >&2
fi
[ $clippy_rc -eq 0 ] || failed+=("clippy (exit $clippy_rc)")
if [ ${#failed[@]} -gt 0 ]; then
    echo "test.sh: failed: ${failed[*]}" >&2
    exit 101
fi
