#!/bin/sh
# dcos-lab fast first boot, early stage (dcos-lab-firstboot.service, before networking): mounts
# the NoCloud seed and sources the script dcos-lab wrote on it beside user-data, meta-data and
# network-config (dcos-lab-firstboot.sh: the same configuration; `dcos-lab render cloud-init LAB
# NODE --part firstboot` prints it), then marks the stage done.
#
# Every program started costs a quarter of a second or more this early under emulation: this
# shell reads the seed's script itself (`.`), and that script starts only mkdir, rm and chmod.
set -eu
seed=/run/dcos-lab/seed
dev=/dev/disk/by-label/cidata
[ -e "$dev" ] || dev=/dev/vdb
mkdir -p "$seed" /var/lib/dcos-lab
mountpoint -q "$seed" || mount -o ro "$dev" "$seed"
if [ ! -f "$seed/dcos-lab-firstboot.sh" ]; then
    echo "dcos-lab: the seed on $dev has no dcos-lab-firstboot.sh; this image's fast first boot needs a seed written by dcos-lab (or boot the node with firstboot: cloud-init)" >&2
    umount "$seed" || true
    exit 1
fi
. "$seed/dcos-lab-firstboot.sh"
umount "$seed" || true
echo done > /var/lib/dcos-lab/firstboot-early.done
