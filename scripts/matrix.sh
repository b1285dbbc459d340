#!/usr/bin/env bash
# The system tier against another libvirt stack: Debian 13 (trixie)'s libvirt, QEMU and dnsmasq,
# installed by mmdebstrap (Debian packages only) into a tree under /var/cache/dcos-lab/matrix, run
# in place of this host's daemon: same socket (/run/libvirt), same pid file (/run/libvirtd.pid),
# the same paths for labs, images and the tests' state directories (bind-mounted into the tree),
# so dcos-lab and the tests talk to it as they talk to the host's. The host's libvirtd and virtlogd
# are stopped for the run and started again after, also when the run fails or is interrupted.
#
#   scripts/matrix.sh                      # the whole system tier on trixie's stack
#   scripts/matrix.sh -- snapshot          # only the system tests whose names contain "snapshot"
#   scripts/matrix.sh --start-daemon       # (used by the tests' libvirtd restart) start the tree's
#
# Results (versions, per-binary times, pass/fail) go to target/matrix-trixie.log; docs/
# portability.md records them. Needs root and a machine with no lab running.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=trixie
TREE=${DCOS_LAB_MATRIX_DIR:-/var/cache/dcos-lab/matrix}/$SUITE
# What a libvirt host needs and no more: the monolithic libvirtd with its QEMU, network and
# storage drivers, virtlogd, QEMU with its firmware and option ROMs, dnsmasq, and both firewall
# front ends (trixie's libvirt picks nftables when `nft` is there).
PACKAGES=libvirt-daemon,libvirt-daemon-driver-qemu,libvirt-daemon-driver-network,libvirt-daemon-driver-storage,libvirt-daemon-log,libvirt-clients,qemu-system-x86,qemu-system-data,qemu-utils,seabios,ipxe-qemu,dnsmasq-base,nftables,iptables,iproute2,procps
LOG="$PWD/target/matrix-$SUITE.log"
# Paths the host's dcos-lab and tests use, which QEMU in the tree must see at the same place.
SHARED=(/dev /proc /sys /run /tmp /var/lib/dcos-lab /var/cache/dcos-lab/images)

log() { printf 'matrix: %s\n' "$*" >&2; }

# The daemon pid in a pid file, when that process is the named daemon.
pid_of() {
    local pid
    pid=$(cat "/run/$1.pid" 2>/dev/null) || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

# Whether a process is gone: no such PID, or a zombie (PID 1 here reaps late).
gone() {
    [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# Stops a daemon by the PID in its pid file and waits until that process is gone; one that
# does not end within 20 s of SIGTERM (a libvirtd stuck on a QEMU) is killed.
stop_daemon() {
    local pid
    pid=$(pid_of "$1") || return 0
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        gone "$pid" && return 0
        sleep 0.2
    done
    log "$1 ($pid) did not stop within 20 s of SIGTERM: killing it"
    kill -KILL "$pid"
    for _ in $(seq 1 50); do
        gone "$pid" && return 0
        sleep 0.2
    done
    log "$1 ($pid) did not die"
    return 1
}

# The tree's daemons keep their runtime state (status of running domains and active networks)
# apart from the host's: a directory of the tree is mounted over /run/libvirt for the run, so the
# socket is where clients look and the host's state is there again, untouched, afterwards.
RUNDIR="$TREE-run-libvirt"
hide_host_run() {
    mountpoint -q /run/libvirt && [ "$(stat -c %i /run/libvirt)" = "$(stat -c %i "$RUNDIR" 2>/dev/null)" ] && return 0
    mkdir -p /run/libvirt "$RUNDIR"
    mount --bind "$RUNDIR" /run/libvirt
}
unhide_host_run() {
    if [ -d "$RUNDIR" ] && [ "$(stat -c %i /run/libvirt)" = "$(stat -c %i "$RUNDIR")" ]; then
        umount /run/libvirt
    fi
}

# Starts the tree's virtlogd and libvirtd in a private mount namespace that holds the bind
# mounts into the tree: they go when its last process ends.
start_tree_daemon() {
    hide_host_run
    # The tree is a mount point of its own, so that libvirt's per-domain mount namespace can
    # make the root it sees private (it refuses to start a domain otherwise).
    local binds="mount --bind $TREE $TREE && "
    for d in "${SHARED[@]}"; do
        mkdir -p "$d" "$TREE$d"
        binds+="mount --rbind $d $TREE$d && "
    done
    # A restart of libvirtd alone (the tests do that) finds the tree's virtlogd running.
    local virtlogd="chroot $TREE /usr/sbin/virtlogd -d &&"
    if pid_of virtlogd >/dev/null; then
        virtlogd=""
    fi
    unshare --mount --propagation private sh -c "$binds
        $virtlogd
        chroot $TREE /usr/sbin/libvirtd -d ${DCOS_LAB_TEST_LIBVIRTD_ARGS:-}"
    for _ in $(seq 1 60); do
        pid_of libvirtd >/dev/null && [ -S /run/libvirt/libvirt-sock ] && return 0
        sleep 0.5
    done
    log "the tree's libvirtd did not start; see $TREE/var/log/libvirt/"
    return 1
}

if [ "${1:-}" = "--start-daemon" ]; then
    start_tree_daemon
    exit
fi
if [ "${1:-}" = "--" ]; then
    shift
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "matrix.sh: run as root (it stops and starts libvirtd)" >&2
    exit 2
fi

bash scripts/setup-host.sh
if [ ! -x "$TREE/usr/sbin/libvirtd" ]; then
    log "building the $SUITE tree in $TREE (mmdebstrap, Debian packages)"
    rm -rf "$TREE.new"
    mkdir -p "$(dirname "$TREE")"
    mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        "$SUITE" "$TREE.new"
    mv "$TREE.new" "$TREE"
fi
# libvirt builds each domain a private /dev in a mount namespace; from inside this chroot that
# /dev comes out without the devices QEMU opens ("Could not open '/dev/urandom'"). That is the
# harness, not the stack (a real trixie host has no chroot): the tree's QEMUs run in the
# daemon's mount namespace instead, with the same devices.
if ! grep -q '^namespaces = \[\]' "$TREE/etc/libvirt/qemu.conf"; then
    printf '\n# scripts/matrix.sh: no per-domain mount namespace inside the chroot\nnamespaces = []\n' >> "$TREE/etc/libvirt/qemu.conf"
fi
# QEMU in the tree runs as the tree's libvirt-qemu, in the tree's kvm group, and /dev/kvm
# belongs to the host's kvm group: the GIDs must agree, or libvirt 11 finds KVM usable when it
# probes QEMU and unusable when it checks, and probes again every 2 s, for ever.
if [ -e /dev/kvm ]; then
    kvm_gid=$(stat -c %g /dev/kvm)
    if [ "$(chroot "$TREE" getent group kvm | cut -d: -f3)" != "$kvm_gid" ]; then
        chroot "$TREE" groupmod -o -g "$kvm_gid" kvm
    fi
fi

cargo build --quiet --all-targets
cargo test --all-targets --no-run --quiet 2>/dev/null
BIN="$PWD/target/debug/dcos-lab"
if [ -n "$("$BIN" list --json | python3 -c 'import json,sys; print(" ".join(l["lab"] for l in json.load(sys.stdin)))')" ]; then
    echo "matrix.sh: labs exist on this host's libvirt; \`dcos-lab down --all\` first (the run replaces the daemon)" >&2
    exit 2
fi

# Processes of the tree still running after its daemons stopped (a QEMU whose daemon died, its
# dnsmasq): their root is the tree. Nothing of the tree may outlive the run; each is named.
kill_tree_leftovers() {
    local p left=""
    for p in $(ls /proc | grep -E '^[0-9]+$'); do
        [ "$(readlink "/proc/$p/root" 2>/dev/null)" = "$TREE" ] && left+=" $p"
    done
    [ -z "$left" ] && return 0
    for p in $left; do
        log "left by the $SUITE stack: $p $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-100)"
    done
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
}

GOLDENS=""
restore_host() {
    local rc=$?
    log "stopping the $SUITE daemon, starting the host's again"
    stop_daemon libvirtd || true
    stop_daemon virtlogd || true
    kill_tree_leftovers
    if [ -n "$GOLDENS" ]; then rm -rf "$GOLDENS"; fi
    unhide_host_run || log "/run/libvirt is still the tree's: umount /run/libvirt"
    bash scripts/setup-host.sh >/dev/null 2>&1 || log "the host's libvirtd did not come back: run scripts/setup-host.sh"
    log "log: $LOG"
    exit "$rc"
}
trap restore_host EXIT
trap 'exit 130' INT TERM

log "stopping the host's libvirtd and virtlogd"
stop_daemon libvirtd
stop_daemon virtlogd
kill_tree_leftovers
unhide_host_run    # what a killed earlier run left: no daemon of the tree runs now
rm -rf "$RUNDIR"
start_tree_daemon

{
    echo "# scripts/matrix.sh on $(date -u +%FT%TZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
    echo "# tree: Debian $SUITE ($(cat "$TREE/etc/debian_version")); packages:"
    chroot "$TREE" dpkg-query -W -f '#   ${Package} ${Version}\n' libvirt-daemon qemu-system-x86 dnsmasq-base nftables
    ("$BIN" doctor || true) | sed 's/^/# doctor: /'
} | tee "$LOG"

# The tests restart libvirtd through this (tests/common: restart_libvirtd), so the daemon they
# start again is the tree's.
export DCOS_LAB_TEST_LIBVIRTD_START="$PWD/scripts/matrix.sh --start-daemon"
# As scripts/test.sh: the tests that share the suite's lab share its golden, made on this stack.
GOLDENS=$(mktemp -d /tmp/dltest-goldens.XXXXXX)
export DCOS_LAB_TEST_GOLDENS="$GOLDENS"
start=$(date +%s)
set +e
cargo test --all-targets -- --ignored "$@" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
set -e
echo "# system tier on $SUITE: exit $rc in $(( $(date +%s) - start )) s" | tee -a "$LOG"
exit "$rc"
