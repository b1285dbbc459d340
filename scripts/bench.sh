#!/usr/bin/env bash
# Benchmark of the `minimal` lab on this host, against a floor: scripts/floor.sh brings up the same
# lab from the same image, XML and seeds with plain virsh/qemu-img/ssh and nothing else. Floor and
# dcos-lab run alternately for N rounds (default 3) in one invocation (cold `up`, `snapshot`,
# `revert`, `suspend`, `resume`, an agent added to the running lab, `down`); the table gives, per
# operation, the medians, the ranges and the ratio dcos-lab/floor. Also: a golden lab (`snapshot
# export` against `snapshot`, its size, `up --from` against cold `up`), warm `up` (no-op), the
# memory a snapshot saves, QEMU RSS per node, dcos-lab's peak RSS, and (with --image) the image
# build time and size. With --plain-user (run as root), a plain user made for the run (adduser,
# in the libvirt and kvm groups) runs the same lab's cold `up`, `revert` and `up --from` in every
# round too, for the ratio plain user / root (docs/laptop.md); where no polkit lets the libvirt
# group into qemu:///system, libvirtd is restarted for the run with the socket opened to the
# group, and restarted as before at the end. Record results in docs/benchmarks.md with the
# machine and accelerator.
#
# The labs are copies of labs/minimal.yaml whose public network is isolated (guests never forward
# off the host during a benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=0
ROUNDS=3
PLAIN=0
while [ $# -gt 0 ]; do
    case "$1" in
        --image) IMAGE=1 ;;
        --rounds) ROUNDS=$2; shift ;;
        --plain-user) PLAIN=1 ;;
        *) echo "usage: scripts/bench.sh [--image] [--rounds N] [--plain-user]" >&2; exit 2 ;;
    esac
    shift
done

cargo build --release --quiet
BIN="$PWD/target/release/dcos-lab"
WORK=$(mktemp -d /tmp/dcos-lab-bench.XXXXXX)
chmod 711 "$WORK"
BENCH_USER=
SOCKET_CONF=
cleanup() {
    "$BIN" down bench-minimal >/dev/null 2>&1 || true
    if [ -n "$BENCH_USER" ]; then
        as_user "$BIN" down --all >/dev/null 2>&1 || true
        uid=$(id -u "$BENCH_USER")
        virsh -q pool-destroy "dcos-lab.user-$uid" >/dev/null 2>&1 || true
        virsh -q pool-undefine "dcos-lab.user-$uid" >/dev/null 2>&1 || true
        rm -rf "/var/lib/libvirt/dcos-lab/user-$uid"
        pkill -9 -u "$BENCH_USER" 2>/dev/null || true
        deluser --quiet --remove-home "$BENCH_USER" >/dev/null 2>&1 || true
    fi
    if [ -n "$SOCKET_CONF" ]; then
        restart_libvirtd
        rm -f "$SOCKET_CONF"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

as_user() {
    runuser -u "$BENCH_USER" -- env -i HOME="/home/$BENCH_USER" PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"
}

# Stops libvirtd by the PID in its pid file and starts it again with arguments "$@".
restart_libvirtd() {
    local pid
    pid=$(cat /run/libvirtd.pid)
    kill -TERM "$pid"
    while [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do sleep 0.2; done
    libvirtd -d "$@"
    for _ in $(seq 1 150); do virsh -c qemu:///system version >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "bench: libvirtd did not come back" >&2
    return 1
}

isolated() {
    sed -e "s/^name: minimal/name: $1/" -e '/^  public:/,/^nodes:/ s/mode: nat/mode: isolated/' labs/minimal.yaml
}
isolated bench-minimal > "$WORK/bench-minimal.yaml"
isolated floor-minimal > "$WORK/floor-minimal.yaml"
LAB="$WORK/bench-minimal.yaml"
# The same labs with one more agent at the end of their nodes: adding it to the running lab.
AGENT='  - name: agent\n    role: agent-private\n    memory: 1G\n    vcpus: 1\n    disk: 10G\n'
for l in bench-minimal floor-minimal; do
    { cat "$WORK/$l.yaml"; printf "$AGENT"; } > "$WORK/$l-plus.yaml"
done
PLUS="$WORK/bench-minimal-plus.yaml"

# Runs a command; prints "<seconds> <peak RSS KiB of the command>".
measure() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
dt = time.monotonic() - t
if r.returncode != 0:
    sys.exit(f"failed ({r.returncode}): {' '.join(sys.argv[1:])}")
print(f"{dt:.2f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
}

if [ "$IMAGE" = 1 ]; then
    CACHE="$WORK/cache"
    read -r image_s _ < <(DCOS_LAB_CACHE_DIR="$CACHE" measure "$BIN" image build debian-12)
    image_mib=$(du -sm "$CACHE/images" | cut -f1)
fi
"$BIN" image build debian-12 >/dev/null 2>&1
"$BIN" down bench-minimal >/dev/null 2>&1 || true

if [ "$PLAIN" = 1 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "bench: --plain-user makes a user: run as root" >&2; exit 2; }
    BENCH_USER=dltest-bench-$$
    adduser --disabled-password --gecos "" --quiet "$BENCH_USER"
    adduser --quiet "$BENCH_USER" libvirt
    adduser --quiet "$BENCH_USER" kvm
    if ! as_user virsh -c qemu:///system version >/dev/null 2>&1; then
        SOCKET_CONF=$(mktemp /tmp/dltest-bench-libvirtd.XXXXXX)
        printf 'unix_sock_group = "libvirt"\nunix_sock_rw_perms = "0770"\nauth_unix_rw = "none"\n' > "$SOCKET_CONF"
        restart_libvirtd --config "$SOCKET_CONF"
    fi
    # The user's own copies: the binary where it may run it, the image in its cache (root's
    # cold `up` finds its image built too), the lab file.
    install -m 755 -d "$WORK/bin" && install -m 755 "$BIN" "$WORK/bin/dcos-lab"
    UBIN="$WORK/bin/dcos-lab"
    image_dir=$("$BIN" image list --json | python3 -c 'import json,sys; print([i["dir"] for i in json.load(sys.stdin) if i["name"] == "debian-12"][0])')
    mkdir -p "/home/$BENCH_USER/.cache/dcos-lab/images"
    cp -a "$image_dir" "/home/$BENCH_USER/.cache/dcos-lab/images/"
    cp "$LAB" "/home/$BENCH_USER/bench-minimal.yaml"
    chown -R "$BENCH_USER:" "/home/$BENCH_USER"
    ULAB="/home/$BENCH_USER/bench-minimal.yaml"
fi

RESULTS="$WORK/results"
: > "$RESULTS"
peak=0
for round in $(seq 1 "$ROUNDS"); do
    read -r fu fs fr fd fsu fre fad < <(bash scripts/floor.sh "$WORK/floor-minimal.yaml" "$WORK/floor-minimal-plus.yaml" "$BIN")
    echo "floor $round $fu $fs $fr $fd $fsu $fre $fad" >> "$RESULTS"
    read -r up r1 < <(measure "$BIN" up "$LAB")
    read -r warm r2 < <(measure "$BIN" up "$LAB")
    qemu_rss=""
    for node in boot master public; do
        pid=$(pgrep -f "guest=dcos-lab-bench-minimal-$node," || true)
        rss=$([ -n "$pid" ] && ps -o rss= -p "$pid" | tr -d ' ' || echo 0)
        qemu_rss="$qemu_rss $node=$((rss / 1024))MiB"
    done
    read -r snap r3 < <(measure "$BIN" snapshot bench-minimal bench)
    snap_mib=$("$BIN" snapshots bench-minimal --json | python3 -c 'import json,sys; print(sum(s["vm_state_bytes"] for s in json.load(sys.stdin)) // 2**20)')
    read -r revert r4 < <(measure "$BIN" revert bench-minimal bench)
    read -r suspend r8 < <(measure "$BIN" suspend bench-minimal)
    read -r resume r9 < <(measure "$BIN" resume bench-minimal)
    # An agent added to the running lab (the lab file with one more node), then removed again.
    read -r add r10 < <(measure "$BIN" up "$PLUS")
    "$BIN" down bench-minimal --node agent >/dev/null
    # A golden of the lab at that snapshot, then the lab from it (page cache dropped first, so
    # the file and the overlays come from the disk as on a CI runner's first restore).
    rm -f "$WORK/bench.golden"
    read -r export r6 < <(measure "$BIN" snapshot export "$LAB" bench "$WORK/bench.golden")
    golden_mib=$(( $(stat -c %s "$WORK/bench.golden") / 1048576 ))
    # Writing a file of the golden's size on the same disk, the same way (no fsync, like tar):
    # export's target is 2 x snapshot plus this.
    read -r write_s _ < <(measure dd if="$WORK/bench.golden" of="$WORK/bench.copy" bs=4M)
    rm -f "$WORK/bench.copy"
    "$BIN" down bench-minimal >/dev/null
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    read -r from r7 < <(measure "$BIN" up "$LAB" --from "$WORK/bench.golden")
    read -r down r5 < <(measure "$BIN" down bench-minimal)
    echo "tool $round $up $snap $revert $down $suspend $resume $add" >> "$RESULTS"
    echo "golden $round $up $from $snap $export $golden_mib $write_s" >> "$RESULTS"
    for r in $r1 $r2 $r3 $r4 $r5 $r6 $r7 $r8 $r9 $r10; do [ "$r" -gt "$peak" ] && peak=$r; done
    echo "round $round: floor up/snapshot/revert/down/suspend/resume/add $fu $fs $fr $fd $fsu $fre $fad; dcos-lab $up $snap $revert $down $suspend $resume $add" >&2
    if [ "$PLAIN" = 1 ]; then
        read -r uup _ < <(measure runuser -u "$BENCH_USER" -- env -i HOME="/home/$BENCH_USER" PATH=/usr/bin:/bin:/usr/sbin:/sbin "$UBIN" up "$ULAB")
        as_user "$UBIN" snapshot "$ULAB" bench >/dev/null
        read -r urevert _ < <(measure runuser -u "$BENCH_USER" -- env -i HOME="/home/$BENCH_USER" PATH=/usr/bin:/bin:/usr/sbin:/sbin "$UBIN" revert "$ULAB" bench)
        rm -f "/home/$BENCH_USER/bench.golden"
        as_user "$UBIN" snapshot export "$ULAB" bench "/home/$BENCH_USER/bench.golden" >/dev/null
        as_user "$UBIN" down "$ULAB" >/dev/null
        sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
        read -r ufrom _ < <(measure runuser -u "$BENCH_USER" -- env -i HOME="/home/$BENCH_USER" PATH=/usr/bin:/bin:/usr/sbin:/sbin "$UBIN" up "$ULAB" --from "/home/$BENCH_USER/bench.golden")
        as_user "$UBIN" down "$ULAB" >/dev/null
        echo "plain $round $up $revert $from $uup $urevert $ufrom" >> "$RESULTS"
        echo "round $round: plain user up/revert/up --from $uup $urevert $ufrom (root $up $revert $from)" >&2
    fi
done

accel=$(grep -o "type=\"[a-z]*\"" <("$BIN" render "$LAB" --node boot) | head -1 | cut -d'"' -f2)
echo "dcos-lab benchmark: lab minimal (public network isolated), domain type $accel, $ROUNDS rounds"
echo "host: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, kernel $(uname -r)"
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
ops = ["up (cold, hardened, to SSH)", "snapshot", "revert (to SSH)", "down", "suspend", "resume (to SSH)", "add an agent (to SSH)"]
get = lambda who, i: [float(r[2 + i]) for r in rows if r[0] == who]
print(f"{'operation':<30} {'floor median [range]':>24} {'dcos-lab median [range]':>26} {'ratio':>6}")
for i, op in enumerate(ops):
    f, t = get("floor", i), get("tool", i)
    fm, tm = statistics.median(f), statistics.median(t)
    print(f"{op:<30} {fm:>8.2f} [{min(f):.2f}-{max(f):.2f}]{'':>6} {tm:>8.2f} [{min(t):.2f}-{max(t):.2f}]{'':>8} {tm/fm:>6.2f}")
PY
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.startswith("golden")]
up = [float(r[2]) for r in rows]
frm = [float(r[3]) for r in rows]
snap = [float(r[4]) for r in rows]
exp = [float(r[5]) for r in rows]
mib = [int(r[6]) for r in rows]
wr = [float(r[7]) for r in rows]
m = statistics.median
print(f"{'up --from (to SSH)':<30} {m(frm):>8.2f} s [{min(frm):.2f}-{max(frm):.2f}], {m(frm)/m(up):.2f} x cold up of the same lab")
print(f"{'snapshot export':<30} {m(exp):>8.2f} s [{min(exp):.2f}-{max(exp):.2f}], {m(exp)/m(snap):.2f} x snapshot; file {m(mib)} MiB")
print(f"{'  target 2 x snapshot + write':<30} {2 * m(snap) + m(wr):>8.2f} s (writing the file: {m(wr):.2f} s, {m(mib) / m(wr):.0f} MiB/s); export / target {m(exp) / (2 * m(snap) + m(wr)):.2f}")
PY
if [ "$PLAIN" = 1 ]; then
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.startswith("plain")]
m = statistics.median
for i, op in enumerate(["up (cold, to SSH)", "revert (to SSH)", "up --from (to SSH)"]):
    root = [float(r[2 + i]) for r in rows]
    user = [float(r[5 + i]) for r in rows]
    print(f"{'plain user: ' + op:<36} {m(user):>7.2f} s [{min(user):.2f}-{max(user):.2f}], root {m(root):.2f} s: {m(user)/m(root):.2f} x root")
PY
fi
printf '%-30s %s s\n' "up, warm (no-op)" "$warm"
printf '%-30s %s MiB\n' "snapshot memory state" "$snap_mib"
printf '%-30s %s\n' "QEMU RSS after up" "$qemu_rss"
printf '%-30s %s MiB\n' "dcos-lab peak RSS" "$((peak / 1024))"
if [ "$IMAGE" = 1 ]; then
    printf '%-30s %s s\n' "image build (cold cache)" "$image_s"
    printf '%-30s %s MiB\n' "image size on disk" "$image_mib"
fi
