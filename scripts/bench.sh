#!/usr/bin/env bash
# Benchmark of the `minimal` lab on this host, against a floor: scripts/floor.sh brings up the same
# lab from the same image, XML and seeds with plain virsh/qemu-img/ssh and nothing else. Floor and
# dcos-lab run alternately for N rounds (default 3) in one invocation; the table gives, per
# operation, the medians, the ranges and the ratio dcos-lab/floor. Also: a golden lab (`snapshot
# export` against `snapshot`, its size, `up --from` against cold `up`), warm `up` (no-op), the
# memory a snapshot saves, QEMU RSS per node, dcos-lab's peak RSS, and (with --image) the image
# build time and size. Record results in docs/benchmarks.md with the machine and accelerator.
#
# The labs are copies of labs/minimal.yaml whose public network is isolated (guests never forward
# off the host during a benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=0
ROUNDS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --image) IMAGE=1 ;;
        --rounds) ROUNDS=$2; shift ;;
        *) echo "usage: scripts/bench.sh [--image] [--rounds N]" >&2; exit 2 ;;
    esac
    shift
done

cargo build --release --quiet
BIN="$PWD/target/release/dcos-lab"
WORK=$(mktemp -d /tmp/dcos-lab-bench.XXXXXX)
chmod 711 "$WORK"
trap '"$BIN" down bench-minimal >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

isolated() {
    sed -e "s/^name: minimal/name: $1/" -e '/^  public:/,/^nodes:/ s/mode: nat/mode: isolated/' labs/minimal.yaml
}
isolated bench-minimal > "$WORK/bench-minimal.yaml"
isolated floor-minimal > "$WORK/floor-minimal.yaml"
LAB="$WORK/bench-minimal.yaml"

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

RESULTS="$WORK/results"
: > "$RESULTS"
peak=0
for round in $(seq 1 "$ROUNDS"); do
    read -r fu fs fr fd < <(bash scripts/floor.sh "$WORK/floor-minimal.yaml" "$BIN")
    echo "floor $round $fu $fs $fr $fd" >> "$RESULTS"
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
    echo "tool $round $up $snap $revert $down" >> "$RESULTS"
    echo "golden $round $up $from $snap $export $golden_mib $write_s" >> "$RESULTS"
    for r in $r1 $r2 $r3 $r4 $r5 $r6 $r7; do [ "$r" -gt "$peak" ] && peak=$r; done
    echo "round $round: floor up/snapshot/revert/down $fu $fs $fr $fd; dcos-lab $up $snap $revert $down" >&2
done

accel=$(grep -o "type=\"[a-z]*\"" <("$BIN" render "$LAB" --node boot) | head -1 | cut -d'"' -f2)
echo "dcos-lab benchmark: lab minimal (public network isolated), domain type $accel, $ROUNDS rounds"
echo "host: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, kernel $(uname -r)"
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
ops = ["up (cold, hardened, to SSH)", "snapshot", "revert (to SSH)", "down"]
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
printf '%-30s %s s\n' "up, warm (no-op)" "$warm"
printf '%-30s %s MiB\n' "snapshot memory state" "$snap_mib"
printf '%-30s %s\n' "QEMU RSS after up" "$qemu_rss"
printf '%-30s %s MiB\n' "dcos-lab peak RSS" "$((peak / 1024))"
if [ "$IMAGE" = 1 ]; then
    printf '%-30s %s s\n' "image build (cold cache)" "$image_s"
    printf '%-30s %s MiB\n' "image size on disk" "$image_mib"
fi
