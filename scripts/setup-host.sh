#!/usr/bin/env bash
# Prepare a Debian/Ubuntu host for dcos-lab: packages, libvirt daemons, a reachable qemu:///system.
# Idempotent: safe to run again; it installs only what is missing and starts only what is not running.
set -euo pipefail

log() { printf 'setup-host: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

# qemu-system-x86 replaces a newer qemu-utils from backports; naming qemu-utils in the same
# install keeps qemu-img on the machine (see docs/testing.md).
PACKAGES=(
    qemu-system-x86 qemu-utils
    libvirt-daemon-system libvirt-clients libvirt-dev
    dnsmasq-base pkg-config
    # Images are built in mmdebstrap's unshare mode, as root or as a plain user (newuidmap and
    # newgidmap from uidmap map the user's subordinate ids).
    mmdebstrap e2fsprogs genisoimage uidmap
    iproute2 procps
    python3-yaml xz-utils
    # The clients the system tier drives the labs with: OpenSSH, and Ansible and a JUnit parser
    # from PyPI in a virtualenv the tests make.
    openssh-client python3-venv
    # The test hosts of labs across hosts (scripts/nshost.sh): Open vSwitch, their overlay.
    openvswitch-switch
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
# qemu-img can vanish when qemu-system-x86 pulls in its own qemu-utils; reinstall it if so.
if ! command -v qemu-img >/dev/null 2>&1; then
    missing+=(qemu-utils)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # One command on purpose: qemu-utils must be in the same transaction as qemu-system-x86, and at
    # the same version (a newer qemu-utils from backports "Breaks" the distribution's QEMU).
    qemu_ver=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
    pkgs=()
    for p in "${PACKAGES[@]}"; do
        if [ "$p" = qemu-utils ] && [ -n "$qemu_ver" ] && [ "$qemu_ver" != "(none)" ]; then
            pkgs+=("qemu-utils=$qemu_ver")
        else
            pkgs+=("$p")
        fi
    done
    $SUDO apt-get install -y -qq --no-install-recommends --allow-downgrades "${pkgs[@]}" >/dev/null
else
    log "packages already installed"
fi

# When KVM is to be used, QEMU (user libvirt-qemu, group kvm) must be able to open /dev/kvm.
if [ -e /dev/kvm ] && getent group kvm >/dev/null; then
    $SUDO chgrp kvm /dev/kvm 2>/dev/null || true
    $SUDO chmod 660 /dev/kvm 2>/dev/null || true
fi

# A plain user's labs (docs/laptop.md). The nodes' names from the host (<node>.<lab>) live in a
# block of /etc/hosts that `up` adds and `down` removes, as the user: the libvirt group may
# write the file (its members command libvirtd, root's power, already: this gives them nothing
# new). The user who runs this joins the group (in effect at their next login).
if getent group libvirt >/dev/null; then
    $SUDO chgrp libvirt /etc/hosts
    $SUDO chmod g+w /etc/hosts
    who=${SUDO_USER:-$(id -un)}
    if [ "$who" != root ] && ! id -nG "$who" | tr ' ' '\n' | grep -qx libvirt; then
        log "adding $who to the libvirt group (log in again for it to take effect)"
        $SUDO adduser --quiet "$who" libvirt
    fi
fi

libvirt_answers() {
    virsh -c qemu:///system version >/dev/null 2>&1
}

# libvirtd starts QEMU with its output going to virtlogd: without one, no domain starts. Where
# nothing supervises them, one may be gone while libvirtd answers (a stopped stack, a matrix
# run). `-r D,R,S`: a zombie of an old one is not a daemon.
if [ ! -d /run/systemd/system ] && ! pgrep -x -r D,R,S virtlogd >/dev/null; then
    log "starting virtlogd by hand"
    $SUDO mkdir -p /run/libvirt
    $SUDO virtlogd -d
fi

if ! libvirt_answers; then
    if [ -d /run/systemd/system ]; then
        log "starting libvirtd through systemd"
        $SUDO systemctl start virtlogd.socket libvirtd.socket libvirtd.service || true
    fi
fi

if ! libvirt_answers; then
    log "starting virtlogd and libvirtd by hand (nothing supervises them here)"
    $SUDO mkdir -p /run/libvirt
    pgrep -x -r D,R,S virtlogd >/dev/null || $SUDO virtlogd -d
    pgrep -x -r D,R,S libvirtd >/dev/null || $SUDO libvirtd -d
fi

for _ in $(seq 1 60); do
    if libvirt_answers; then
        log "qemu:///system answers: $(virsh -c qemu:///system version 2>/dev/null | grep -i 'running hypervisor' || true)"
        exit 0
    fi
    sleep 0.5
done
log "libvirtd did not answer on qemu:///system within 30 s; see /var/log/libvirt/libvirtd.log"
exit 1
