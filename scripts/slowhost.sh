#!/usr/bin/env bash
# Runs a command as on a host FACTOR times slower than this one, by CPU bandwidth (cgroup v1
# `cpu` controller, CFS quotas), so that the suite's time on the slower host of this kind can be
# measured here instead of extrapolated:
#
#   scripts/slowhost.sh 2.2 bash scripts/test.sh
#
# - The whole machine's work, guests and host tree together, gets this host's cores / FACTOR: the
#   command's process tree runs in `machine/dltest-slowhost-<pid>`, beside the guests libvirt
#   places in `machine/` (its partition for domains without systemd), and `machine/` is capped.
# - Each guest thread group libvirt makes (`machine/*.libvirt-qemu/vcpuN`, and `emulator` for
#   QEMU's own threads) gets one core / FACTOR, as slower cores would run them (a watcher sets
#   each as it appears). The multihost test's daemons (scripts/nshost.sh: mount namespaces that
#   share the cgroup mounts) place their guests there too.
# - Not emulated: a slower core for the host's own serial work (one host thread can still use
#   cores / FACTOR, more than 1 / FACTOR of a core), nor slower memory or disks. So this is a
#   lower bound for the slower host, its compile and host-side work the most flattered part.
#
# Calibrate FACTOR with a `minimal` cold `up` under it against the slower host's (~120 s):
#   scripts/slowhost.sh 2.2 target/debug/dcos-lab up minimal
# Everything it made (its cgroup, the caps it set) is undone when it ends, also on failure.
set -euo pipefail

usage() { echo "usage: scripts/slowhost.sh FACTOR COMMAND [ARG...]  (FACTOR > 1, e.g. 2.2)" >&2; exit 2; }
[ $# -ge 2 ] || usage
factor=$1
shift
awk -v f="$factor" 'BEGIN { exit !(f + 0 > 1) }' || usage
[ "$(id -u)" -eq 0 ] || { echo "slowhost.sh: needs root (it writes cgroup quotas)" >&2; exit 2; }

cpu_root=/sys/fs/cgroup/cpu
acct_root=/sys/fs/cgroup/cpuacct
if [ ! -f "$cpu_root/cpu.cfs_quota_us" ]; then
    echo "slowhost.sh: no cgroup v1 cpu controller at $cpu_root (CFS quotas); this host cannot emulate a slower one" >&2
    exit 2
fi
period=100000
cores=$(nproc)
# Microseconds of CPU per period: the machine's total, and one core's.
total=$(awk -v c="$cores" -v p="$period" -v f="$factor" 'BEGIN { printf "%d", c * p / f }')
per_core=$(awk -v p="$period" -v f="$factor" 'BEGIN { printf "%d", p / f }')

machine=$cpu_root/machine
made_machine=0
if [ ! -d "$machine" ]; then
    mkdir "$machine"
    made_machine=1
fi
for other in "$machine"/dltest-slowhost-*; do
    if [ -d "$other" ]; then
        echo "slowhost.sh: $other exists: another slowhost.sh runs (or one was killed: rmdir it once empty)" >&2
        exit 2
    fi
done
old_quota=$(cat "$machine/cpu.cfs_quota_us")
old_period=$(cat "$machine/cpu.cfs_period_us")
host=$machine/dltest-slowhost-$$
# The command's own CPU time (cpuacct), to say how much host-side work the run held: one host
# thread is not slowed as a slower core would slow it (above).
acct=
# The guest groups the watcher capped, one per line: only those are uncapped at the end.
capped=$(mktemp /tmp/dltest-slowhost.XXXXXX)
watcher=

# Moves this script and whatever still runs in GROUP (a daemon a test started, say) back to ROOT,
# the hierarchy's root group, and removes GROUP.
leave() {
    local group=$1 root=$2 pid
    [ -d "$group" ] || return 0
    echo $$ > "$root/cgroup.procs" 2>/dev/null || true
    for pid in $(cat "$group/cgroup.procs" 2>/dev/null); do
        echo "$pid" > "$root/cgroup.procs" 2>/dev/null || true
    done
    rmdir "$group" 2>/dev/null || echo "slowhost.sh: could not remove $group" >&2
}

restore() {
    local rc=$?
    if [ -n "$watcher" ]; then kill "$watcher" 2>/dev/null || true; wait "$watcher" 2>/dev/null || true; fi
    leave "$host" "$cpu_root"
    local host_cpu=
    if [ -n "$acct" ]; then
        host_cpu=$(awk '{ printf "%.0f", $1 / 1e9 }' "$acct/cpuacct.usage" 2>/dev/null || true)
        leave "$acct" "$acct_root"
    fi
    local g
    while read -r g; do
        if [ -f "$g/cpu.cfs_quota_us" ]; then echo -1 > "$g/cpu.cfs_quota_us" 2>/dev/null || true; fi
    done < "$capped"
    rm -f "$capped"
    echo "$old_quota" > "$machine/cpu.cfs_quota_us" || true
    echo "$old_period" > "$machine/cpu.cfs_period_us" || true
    if [ $made_machine -eq 1 ]; then rmdir "$machine" 2>/dev/null || true; fi
    echo "slowhost.sh: exit $rc, ${SECONDS} s as on a host ${factor}x slower ($cores cores at $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1) / $factor)${host_cpu:+; its own processes used $host_cpu s of CPU}" >&2
    exit $rc
}
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir "$host"
if [ -f "$acct_root/cpuacct.usage" ]; then
    acct=$acct_root/dltest-slowhost-$$
    mkdir "$acct"
fi

echo "$period" > "$machine/cpu.cfs_period_us"
echo "$total" > "$machine/cpu.cfs_quota_us"

# Each guest as on slower cores: libvirt makes machine/<qemu-N-name>.libvirt-qemu per domain, with
# a group per vCPU thread (vcpuN) and one for QEMU's own threads (emulator: the main loop, I/O);
# each gets one core / FACTOR, once, as it appears.
(
    trap - EXIT INT TERM
    while :; do
        for g in "$machine"/*.libvirt-qemu/vcpu[0-9]* "$machine"/*.libvirt-qemu/emulator; do
            [ -f "$g/cpu.cfs_quota_us" ] || continue
            read -r q < "$g/cpu.cfs_quota_us" 2>/dev/null || continue
            [ "$q" = -1 ] || continue
            echo "$period" > "$g/cpu.cfs_period_us" 2>/dev/null || true
            echo "$per_core" > "$g/cpu.cfs_quota_us" 2>/dev/null && echo "$g" >> "$capped"
        done
        sleep 0.2
    done
) &
watcher=$!

echo $$ > "$host/cgroup.procs"
if [ -n "$acct" ]; then echo $$ > "$acct/cgroup.procs"; fi
echo "slowhost.sh: $* as on a host ${factor}x slower: the machine $total/$period us of CPU, each guest vCPU $per_core/$period" >&2
SECONDS=0
set +e
"$@"
rc=$?
set -e
exit $rc
