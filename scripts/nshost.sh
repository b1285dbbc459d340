#!/usr/bin/env bash
# Test hosts on one machine, for labs across hosts (docs/multihost.md). Each "host" is a network
# namespace with its own mount namespace, in which run its own virtlogd, libvirtd and Open vSwitch
# (userspace datapath: this kind of kernel has no openvswitch module), each with private runtime,
# state and configuration directories. The hosts share an underlay (veth pairs on one Linux bridge
# in the root namespace, 10.99.0.0/24) and an overlay: OVS bridge `dcoslab0` on every host, a
# full mesh of VXLAN tunnels between them. dcos-lab reaches a host's libvirt at
# qemu+unix:///system?socket=$ROOT/<name>/run/libvirt/libvirt-sock.
#
#   scripts/nshost.sh up NAME...     make the hosts (names: 1-8 lowercase letters/digits) and mesh them
#   scripts/nshost.sh uri NAME       print the host's libvirt URI
#   scripts/nshost.sh run NAME CMD.. run a command inside the host (its network and mounts)
#   scripts/nshost.sh down NAME...   stop every daemon of those hosts (by PID) and remove them
#
# Every object is named dltest-*: a leftover is plainly a test's.
set -euo pipefail
ROOT=${DCOS_LAB_NSHOST_ROOT:-/tmp/dltest-hosts}
UNDERLAY=dltest-ul

die() { echo "nshost: $*" >&2; exit 1; }
host_dir() { echo "$ROOT/$1"; }
pid_of() { cat "$(host_dir "$1")/run/$2.pid" 2>/dev/null; }
# Runs a command in the host's namespaces (entered through its libvirtd's).
in_host() {
    local name=$1; shift
    local pid; pid=$(pid_of "$name" libvirtd) || die "host $name is not up"
    nsenter --target "$pid" --net --mount -- "$@"
}

up_one() {
    local name=$1 index=$2 d; d=$(host_dir "$name")
    [[ $name =~ ^[a-z0-9]{1,8}$ ]] || die "host name '$name': 1-8 lowercase letters or digits"
    [ -e "$d" ] && die "host $name exists ($d): scripts/nshost.sh down $name"
    mkdir -p "$d"/{run/libvirt,run/openvswitch,lib,etc/libvirt,etc/openvswitch,cache,log}
    # The daemons' configuration, without this machine's definitions (domains, networks, pools):
    # a test host starts empty, whatever the machine's own libvirtd holds at that moment.
    cp -a /etc/libvirt/. "$d/etc/libvirt/"
    rm -rf "$d/etc/libvirt/qemu" "$d/etc/libvirt/storage"
    mkdir -p "$d/etc/libvirt/qemu"
    ovsdb-tool create "$d/etc/openvswitch/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    touch "$d/netns"
    unshare --net="$d/netns" true
    # The underlay: one leg in the root namespace's bridge, one inside, owned by OVS's brphy
    # (OVS's userspace tunnels must route their outer packets through one of its own bridges).
    # MTU 1600: VXLAN adds 50 bytes to the guests' 1500-byte frames (docs/multihost.md).
    ip link add "dltest-$name" mtu 1600 type veth peer name ul0 mtu 1600
    ip link set ul0 netns "$d/netns"
    ip link set "dltest-$name" master "$UNDERLAY" up
    # Mount points for the host's private directories (Open vSwitch's run directory exists only
    # once its own service has run).
    mkdir -p /run/openvswitch /etc/openvswitch
    nsenter --net="$d/netns" unshare --mount --propagation private -- sh -ec "
        mount --bind $d/run/libvirt /run/libvirt
        mount --bind $d/run/openvswitch /run/openvswitch
        mount --bind $d/lib /var/lib/libvirt
        mount --bind $d/etc/libvirt /etc/libvirt
        mount --bind $d/etc/openvswitch /etc/openvswitch
        mount --bind $d/cache /var/cache/libvirt
        mount --bind $d/log /var/log/libvirt
        ip link set lo up
        ovsdb-server --remote=punix:/run/openvswitch/db.sock --pidfile=$d/run/ovsdb-server.pid \
            --detach --log-file=$d/ovsdb-server.log
        ovs-vsctl --no-wait init
        ovs-vswitchd --pidfile=$d/run/ovs-vswitchd.pid --detach --log-file=$d/ovs-vswitchd.log
        ovs-vsctl add-br brphy -- set bridge brphy datapath_type=netdev -- add-port brphy ul0 \
            -- set interface brphy mtu_request=1600 -- set interface ul0 mtu_request=1600
        ip link set ul0 up
        ip addr add 10.99.0.$index/24 dev brphy
        ip link set brphy up
        ovs-vsctl add-br dcoslab0 -- set bridge dcoslab0 datapath_type=netdev
        ip link set dcoslab0 up
        virtlogd -d -p $d/run/virtlogd.pid
        libvirtd -d -p $d/run/libvirtd.pid
    " >"$d/start.log" 2>&1 || { cat "$d/start.log" >&2; die "host $name did not start"; }
    echo "$index" >"$d/index"
    for _ in $(seq 50); do
        virsh -c "$(uri "$name")" version >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "host $name: libvirtd does not answer at $(uri "$name")"
}

uri() { echo "qemu+unix:///system?socket=$(host_dir "$1")/run/libvirt/libvirt-sock"; }

mesh() {
    local a b
    for a in "$@"; do
        for b in "$@"; do
            [ "$a" = "$b" ] && continue
            in_host "$a" ovs-vsctl --may-exist add-port dcoslab0 "vx-$b" -- set interface "vx-$b" \
                type=vxlan "options:remote_ip=10.99.0.$(cat "$(host_dir "$b")/index")"
        done
    done
}

down_one() {
    local name=$1 d; d=$(host_dir "$name")
    [ -d "$d" ] || return 0
    local p pid ino
    # Whatever still runs in the host's network namespace (QEMU processes its libvirtd started
    # outlive the daemon) is stopped first, by PID.
    if ino=$(stat -L -c %i "$d/netns" 2>/dev/null); then
        for p in /proc/[0-9]*; do
            pid=${p#/proc/}
            [ "$pid" = $$ ] && continue
            case $(readlink "$p/exe" 2>/dev/null) in
                *qemu-system*) [ "$(stat -L -c %i "$p/ns/net" 2>/dev/null)" = "$ino" ] && kill -9 "$pid" 2>/dev/null ;;
            esac
        done
    fi
    for p in libvirtd virtlogd ovs-vswitchd ovsdb-server; do
        pid=$(pid_of "$name" "$p") || continue
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    umount "$d/netns" 2>/dev/null || true
    ip link del "dltest-$name" 2>/dev/null || true
    rm -rf "$d"
}

cmd=${1:-}; shift || true
case $cmd in
    up)
        [ $# -ge 1 ] || die "usage: nshost.sh up NAME..."
        command -v ovs-vswitchd >/dev/null || die "Open vSwitch is not installed (apt-get install openvswitch-switch)"
        mkdir -p "$ROOT"
        ip link show "$UNDERLAY" >/dev/null 2>&1 || {
            ip link add "$UNDERLAY" mtu 1600 type bridge
            ip link set "$UNDERLAY" up
        }
        i=$(( $(cat "$ROOT"/*/index 2>/dev/null | sort -n | tail -1 || echo 0) ))
        for n in "$@"; do i=$((i + 1)); up_one "$n" "$i"; done
        mesh $(ls "$ROOT")
        for n in "$@"; do echo "$n $(uri "$n")"; done
        ;;
    uri) uri "$1" ;;
    run) n=$1; shift; in_host "$n" "$@" ;;
    down)
        for n in "$@"; do down_one "$n"; done
        if [ -z "$(ls -A "$ROOT" 2>/dev/null)" ]; then
            ip link del "$UNDERLAY" 2>/dev/null || true
            rmdir "$ROOT" 2>/dev/null || true
        fi
        ;;
    *) die "usage: nshost.sh up|uri|run|down NAME..." ;;
esac
