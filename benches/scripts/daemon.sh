#!/usr/bin/env bash
# The daemon path end to end, measured from `bctl` start to exit:
#  - a fully cached rebuild of a 20-step Dockerfile with a 1,000-file context
#    (goal: under 40 ms), median of RUNS;
#  - a cold upload of a 20,000-file context (files/s and MB/s of the transfer step).
#
#   bash benches/scripts/daemon.sh          # builds buildd and bctl in release mode first
#   BIN=/path/to/dir bash benches/scripts/daemon.sh
#
# Needs root, runc and busybox-static (the steps RUN in a busybox rootfs).
set -euo pipefail

cd "$(dirname "$0")/../.."
RUNS=${RUNS:-20}
if [ -z "${BIN:-}" ]; then
    cargo build --release -q -p buildd-daemon -p buildd-cli
    BIN=$PWD/target/release
fi
[ -x /bin/busybox ] || { echo "missing /bin/busybox: apt-get install busybox-static" >&2; exit 1; }

# BENCH_DIR=/dev/shm measures without the disk (ext4 inode allocation dominates
# file creation on a disk that saw much churn).
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/daemon-bench.XXXXXX")
DAEMON_PID=
cleanup() {
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

ADDR=unix://$WORK/buildd.sock
"$BIN/buildd" --root "$WORK/root" --addr "$ADDR" >"$WORK/buildd.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do [ -S "$WORK/buildd.sock" ] && break; sleep 0.05; done
bctl() { "$BIN/bctl" --addr "$ADDR" "$@"; }
sleep 1
echo "idle daemon: $(awk '/VmRSS/ {printf "%.1f MB RSS", $2 / 1024}' "/proc/$DAEMON_PID/status")"

# --- 20 steps, 1,000 files --------------------------------------------------------
CTX=$WORK/ctx20
mkdir -p "$CTX/rootfs/bin" "$CTX/src"
cp /bin/busybox "$CTX/rootfs/bin/busybox"
for a in sh echo cat ls; do ln -s busybox "$CTX/rootfs/bin/$a"; done
for i in $(seq 1000); do echo "file $i" >"$CTX/src/f$i.txt"; done
{
    echo "FROM scratch"
    echo "COPY rootfs/ /"
    for i in $(seq 9); do echo "RUN echo step $i > /step$i"; done
    echo "COPY src/ /src/"
    for i in $(seq 9); do echo "ENV STEP$i=$i"; done
} >"$CTX/Dockerfile"
bctl build --progress quiet "$CTX" >/dev/null

python3 - "$BIN/bctl" "$ADDR" "$CTX" "$RUNS" <<'EOF'
import statistics, subprocess, sys, time
bctl, addr, ctx, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    subprocess.run([bctl, "--addr", addr, "build", "--progress", "quiet", ctx],
                   check=True, stdout=subprocess.DEVNULL)
    times.append((time.perf_counter() - t0) * 1000)
print(f"cached rebuild, 20 steps, 1,000 files (bctl start to exit): "
      f"median {statistics.median(times):.1f} ms, min {min(times):.1f} ms ({runs} runs)")
EOF

# --- cold upload of 20,000 files ----------------------------------------------------
BIG=$WORK/ctx20k
mkdir -p "$BIG"
python3 - "$BIG" <<'EOF'
import os, sys
root = sys.argv[1]
for d in range(200):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/d{d}/f{f}.bin", "wb") as fh:
            fh.write(os.urandom(1024))
EOF
printf 'FROM scratch\nCOPY . /ctx\n' >"$BIG/Dockerfile"
T0=$(date +%s.%N)
bctl build --progress plain "$BIG" 2>"$WORK/big.log" >/dev/null
T1=$(date +%s.%N)
python3 - "$WORK/big.log" "$T0" "$T1" <<'EOF'
import re, sys
log = open(sys.argv[1]).read()
wall = float(sys.argv[3]) - float(sys.argv[2])
m = re.search(r"transferring context: (\d+) files?, ([\d.]+)([KMG]?i?B)", log)
step = re.search(r"\[internal\] transferring context.* ([\d.]+)s done", log)
if m:
    files = int(m.group(1))
    secs = float(step.group(1)) if step else wall
    print(f"cold upload: {files} files in {secs:.2f} s (transfer step) = {files / secs:,.0f} files/s; "
          f"whole build {wall:.2f} s")
else:
    print(f"cold upload: whole build {wall:.2f} s (transfer line not found)")
EOF
echo "daemon peak: $(awk '/VmHWM/ {printf "%.1f MB RSS", $2 / 1024}' "/proc/$DAEMON_PID/status")"
