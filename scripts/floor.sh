#!/usr/bin/env bash
# The floor: the `minimal` lab brought up by a plain script, with no tool in the way. Same image,
# same rendered libvirt XML and NoCloud seeds (from `dcos-lab render`), fixed MAC→IP DHCP entries,
# everything in parallel; waits until every node answers SSH with its first boot (and hardening)
# done; takes an internal snapshot with memory of every node; reverts until SSH answers; saves
# every node's memory (`virsh managedsave`) and starts them again until SSH answers; adds one
# agent to the running lab (its disk, seed and domain, its DHCP and DNS hosts added to the running
# network with `virsh net-update`, its name appended to every other node's /etc/hosts, started
# until SSH answers) and removes it again; destroys everything. Prints one line of seconds:
# "up snapshot revert down suspend resume add".
#
# Usage: scripts/floor.sh LAB_FILE LAB_FILE_WITH_AGENT DCOS_LAB_BINARY
# LAB_FILE_WITH_AGENT is LAB_FILE with one more node, `agent`, at the end of its nodes.
# The lab file's name must not be a running lab's. Uses virsh, qemu-img, genisoimage, ssh.
set -euo pipefail
LAB_FILE=$1
PLUS_FILE=$2
BIN=$3
LAB=$(sed -n 's/^name: *//p' "$LAB_FILE" | head -1)
WORK=$(mktemp -d /tmp/dcos-lab-floor.XXXXXX)
chmod 711 "$WORK"
export DCOS_LAB_STATE_DIR="$WORK/state"
V="virsh -q -c qemu:///system"
NODES=$("$BIN" plan "$LAB_FILE" --offline --json | python3 -c 'import json,sys; print(" ".join(n["node"] for n in json.load(sys.stdin)["addresses"]["nodes"]))')
declare -A IP
while read -r n ip; do IP[$n]=$ip; done < <("$BIN" plan "$LAB_FILE" --offline --json | python3 -c '
import json,sys
for n in json.load(sys.stdin)["addresses"]["nodes"]:
    print(n["node"], n["nics"][0]["ipv4"])')

cleanup() {
    for n in $NODES agent; do
        $V destroy "dcos-lab-$LAB-$n" >/dev/null 2>&1 || true
        $V undefine "dcos-lab-$LAB-$n" --snapshots-metadata --managed-save >/dev/null 2>&1 || true
    done
    for k in private public; do
        $V net-destroy "dcos-lab-$LAB-$k" >/dev/null 2>&1 || true
        $V net-undefine "dcos-lab-$LAB-$k" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.2f}')"; }

# Everything rendered before the clock starts: it is the same work dcos-lab does in-process.
DISKS="$DCOS_LAB_STATE_DIR/labs/$LAB/disks"
mkdir -p "$DISKS" "$DCOS_LAB_STATE_DIR/labs/$LAB/console"
chmod 711 "$DCOS_LAB_STATE_DIR" "$DCOS_LAB_STATE_DIR/labs" "$DCOS_LAB_STATE_DIR/labs/$LAB"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/key"
BASE=$("$BIN" plan "$LAB_FILE" --offline --json | python3 -c 'import json,sys; print([a for a in json.load(sys.stdin)["actions"] if a["action"]=="create_disk"][0]["backing"])')
for k in private public; do "$BIN" render "$LAB_FILE" --network $k > "$WORK/net-$k.xml"; done
for n in $NODES; do
    "$BIN" render "$LAB_FILE" --node "$n" > "$WORK/dom-$n.xml"
    mkdir -p "$WORK/seed-$n"
    for part in user-data meta-data network-config; do
        "$BIN" render cloud-init "$LAB_FILE" "$n" --part $part --ssh-key "$WORK/key.pub" > "$WORK/seed-$n/$part"
    done
    # The image's fast first boot runs the seed's shell script (the same configuration).
    "$BIN" render cloud-init "$LAB_FILE" "$n" --part firstboot --ssh-key "$WORK/key.pub" > "$WORK/seed-$n/dcos-lab-firstboot.sh"
done
# The agent added later, rendered from the lab file with it.
"$BIN" render "$PLUS_FILE" --node agent > "$WORK/dom-agent.xml"
mkdir -p "$WORK/seed-agent"
for part in user-data meta-data network-config; do
    "$BIN" render cloud-init "$PLUS_FILE" agent --part $part --ssh-key "$WORK/key.pub" > "$WORK/seed-agent/$part"
done
"$BIN" render cloud-init "$PLUS_FILE" agent --part firstboot --ssh-key "$WORK/key.pub" > "$WORK/seed-agent/dcos-lab-firstboot.sh"
read -r AGENT_IP AGENT_MAC < <("$BIN" plan "$PLUS_FILE" --offline --json | python3 -c '
import json,sys
n = [n for n in json.load(sys.stdin)["addresses"]["nodes"] if n["node"] == "agent"][0]
print(n["nics"][0]["ipv4"], n["nics"][0]["mac"])')
SSH="ssh -q -i $WORK/key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2"
wait_ssh() {
    local ip=$1
    until $SSH "root@$ip" test -e /var/lib/dcos-lab/ready 2>/dev/null; do sleep 0.1; done
}

t=$(now)
for k in private public; do ( $V net-define "$WORK/net-$k.xml" >/dev/null && $V net-start "dcos-lab-$LAB-$k" >/dev/null ) & done
for n in $NODES; do
    (
        qemu-img create -q -f qcow2 -F qcow2 -b "$BASE" "$DISKS/$n.qcow2" 10G
        genisoimage -quiet -volid cidata -joliet -rock -output "$DISKS/$n-seed.img" \
            "$WORK/seed-$n/user-data" "$WORK/seed-$n/meta-data" "$WORK/seed-$n/network-config" \
            "$WORK/seed-$n/dcos-lab-firstboot.sh"
        $V define "$WORK/dom-$n.xml" >/dev/null
    ) &
done
wait
for n in $NODES; do ( $V start "dcos-lab-$LAB-$n" >/dev/null && wait_ssh "${IP[$n]}" ) & done
wait
up=$(since "$t")

t=$(now)
for n in $NODES; do $V suspend "dcos-lab-$LAB-$n" >/dev/null & done; wait
for n in $NODES; do
    $V snapshot-create-as "dcos-lab-$LAB-$n" floor --memspec snapshot=internal \
        --diskspec vda,snapshot=internal --diskspec vdb,snapshot=no >/dev/null &
done
wait
for n in $NODES; do $V resume "dcos-lab-$LAB-$n" >/dev/null & done; wait
snap=$(since "$t")

t=$(now)
for n in $NODES; do ( $V snapshot-revert "dcos-lab-$LAB-$n" floor --running >/dev/null && wait_ssh "${IP[$n]}" ) & done
wait
revert=$(since "$t")

# Suspend: every node's memory to disk (libvirt's managed save), all at once; resume: every node
# started again (restored from it), until SSH answers.
t=$(now)
for n in $NODES; do $V managedsave "dcos-lab-$LAB-$n" >/dev/null & done
wait
suspend=$(since "$t")
t=$(now)
for n in $NODES; do ( $V start "dcos-lab-$LAB-$n" >/dev/null && wait_ssh "${IP[$n]}" ) & done
wait
resume=$(since "$t")

# Add an agent to the running lab: its disk, seed and domain; its DHCP and DNS hosts into the
# running network (live and persistent); its name on every other node; started until SSH answers.
NET="dcos-lab-$LAB-private"
t=$(now)
(
    qemu-img create -q -f qcow2 -F qcow2 -b "$BASE" "$DISKS/agent.qcow2" 10G
    genisoimage -quiet -volid cidata -joliet -rock -output "$DISKS/agent-seed.img" \
        "$WORK/seed-agent/user-data" "$WORK/seed-agent/meta-data" "$WORK/seed-agent/network-config" \
        "$WORK/seed-agent/dcos-lab-firstboot.sh"
    $V define "$WORK/dom-agent.xml" >/dev/null
) &
(
    $V net-update "$NET" add ip-dhcp-host "<host mac='$AGENT_MAC' name='agent' ip='$AGENT_IP'/>" --live --config >/dev/null
    $V net-update "$NET" add dns-host "<host ip='$AGENT_IP'><hostname>agent.$LAB.dcos-lab</hostname><hostname>agent</hostname></host>" --live --config >/dev/null
) &
for n in $NODES; do $SSH "root@${IP[$n]}" "echo '$AGENT_IP agent.$LAB.dcos-lab agent.$LAB agent' >> /etc/hosts" & done
wait
$V start "dcos-lab-$LAB-agent" >/dev/null && wait_ssh "$AGENT_IP"
add=$(since "$t")
$V destroy "dcos-lab-$LAB-agent" >/dev/null
$V undefine "dcos-lab-$LAB-agent" >/dev/null

t=$(now)
for n in $NODES; do ( $V destroy "dcos-lab-$LAB-$n" >/dev/null; $V undefine "dcos-lab-$LAB-$n" --snapshots-metadata >/dev/null ) & done
wait
for k in private public; do ( $V net-destroy "dcos-lab-$LAB-$k" >/dev/null; $V net-undefine "dcos-lab-$LAB-$k" >/dev/null ) & done
wait
rm -rf "$DISKS"
down=$(since "$t")
echo "$up $snap $revert $down $suspend $resume $add"
