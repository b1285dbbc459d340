#!/usr/bin/env bash
# Benchmark of the `minimal` lab on this host: cold `up` (image cached), warm `up` (no-op),
# `snapshot`, `revert` (until every node answers over SSH), the memory a snapshot saves, `down`,
# QEMU RSS per node, peak RSS of dcos-lab itself, and (with --image) the image build time and size.
# Prints a table; record results in docs/benchmarks.md with the machine and accelerator.
#
# The lab is a copy of labs/minimal.yaml named bench-minimal whose public network is isolated
# (the benchmark never lets guests forward off the host).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=0
for a in "$@"; do
    case "$a" in
        --image) IMAGE=1 ;;
        *) echo "usage: scripts/bench.sh [--image]" >&2; exit 2 ;;
    esac
done

cargo build --release --quiet
BIN="$PWD/target/release/dcos-lab"
WORK=$(mktemp -d /tmp/dcos-lab-bench.XXXXXX)
chmod 711 "$WORK"
trap '"$BIN" down bench-minimal >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

sed -e 's/^name: minimal/name: bench-minimal/' -e '/^  public:/,/^nodes:/ s/mode: nat/mode: isolated/' \
    labs/minimal.yaml > "$WORK/bench-minimal.yaml"
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

declare -A ROWS
if [ "$IMAGE" = 1 ]; then
    CACHE="$WORK/cache"
    read -r t _ < <(DCOS_LAB_CACHE_DIR="$CACHE" measure "$BIN" image build debian-12)
    size=$(du -sm "$CACHE/images" | cut -f1)
    ROWS[image_build_s]=$t
    ROWS[image_size_mib]=$size
fi

"$BIN" image build debian-12 >/dev/null 2>&1
"$BIN" down bench-minimal >/dev/null 2>&1 || true

read -r cold rss_cold < <(measure "$BIN" up "$LAB")
read -r warm rss_warm < <(measure "$BIN" up "$LAB")
accel=$("$BIN" status bench-minimal --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["nodes"][0]["accel"])')
qemu_rss=""
for node in boot master public; do
    pid=$(pgrep -f "guest=dcos-lab-bench-minimal-$node," || true)
    rss=$([ -n "$pid" ] && ps -o rss= -p "$pid" | tr -d ' ' || echo 0)
    qemu_rss="$qemu_rss $node=$((rss / 1024))MiB"
done
read -r snap rss_snap < <(measure "$BIN" snapshot bench-minimal bench)
snap_mib=$("$BIN" snapshots bench-minimal --json | python3 -c 'import json,sys; print(sum(s["vm_state_bytes"] for s in json.load(sys.stdin)) // 2**20)')
read -r revert rss_revert < <(measure "$BIN" revert bench-minimal bench)
read -r down rss_down < <(measure "$BIN" down bench-minimal)
peak=$(printf '%s\n' "$rss_cold" "$rss_warm" "$rss_snap" "$rss_revert" "$rss_down" | sort -n | tail -1)

echo "dcos-lab benchmark: lab minimal (public network isolated), accelerator $accel"
echo "host: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -r)"
printf '%-28s %s\n' "operation" "value"
if [ "$IMAGE" = 1 ]; then
    printf '%-28s %s s\n' "image build (cold cache)" "${ROWS[image_build_s]}"
    printf '%-28s %s MiB\n' "image size on disk" "${ROWS[image_size_mib]}"
fi
printf '%-28s %s s\n' "up, cold (image cached)" "$cold"
printf '%-28s %s s\n' "up, warm (no-op)" "$warm"
printf '%-28s %s s\n' "snapshot" "$snap"
printf '%-28s %s MiB\n' "snapshot memory state" "$snap_mib"
printf '%-28s %s s (%s of cold up)\n' "revert, to SSH-ready" "$revert" "$(python3 -c "print(f'{$revert/$cold:.2f}')")"
printf '%-28s %s s\n' "down" "$down"
printf '%-28s %s\n' "QEMU RSS after up" "$qemu_rss"
printf '%-28s %s MiB\n' "dcos-lab peak RSS" "$((peak / 1024))"
