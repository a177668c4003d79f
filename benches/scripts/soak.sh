#!/usr/bin/env bash
# Soak: CLIENTS `bctl build`s at once against one daemon, on overlapping graphs,
# round after round for DURATION seconds (0: one round).
#
#   CLIENTS=16 DURATION=600 bash benches/scripts/soak.sh
#   BIN=/path/to/dir bash benches/scripts/soak.sh     # buildd and bctl from there
#
# Every client's Dockerfile has the same steps (two RUNs in a stage FROM a busybox
# image made with `buildd import`, and a COPY --from of that stage) and one RUN of
# its own. A build arg changes the shared steps every round, so each round has new
# work: the daemon must run each shared step once for all clients (jobs are shared
# between concurrent builds, and cache hits execute nothing) and each client's own
# step once. `bctl info`'s executed-ops counter checks that after every round. The
# shared steps read nothing from the context: steps below a COPY from a context
# belong to that context (BuildKit's session-scoped local sources), so clients with
# contexts of their own would share nothing. Each bctl gets TIMEOUT seconds
# (default 300); one that takes longer counts as a hang.
#
# Prints `soak: B builds in M min, E errors, H hangs, shared steps executed once:
# yes/no` and exits non-zero on any error, hang or extra execution. Needs root,
# runc and busybox-static.
set -euo pipefail

cd "$(dirname "$0")/../.."
CLIENTS=${CLIENTS:-16}
DURATION=${DURATION:-600}
TIMEOUT=${TIMEOUT:-300}
if [ -z "${BIN:-}" ]; then
    cargo build -q -p buildd-daemon -p buildd-cli
    BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug
fi
[ "$(id -u)" = 0 ] || { echo "soak: needs root (RUN steps use runc)" >&2; exit 1; }
command -v runc >/dev/null || { echo "soak: missing runc" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "soak: missing /bin/busybox: apt-get install busybox-static" >&2; exit 1; }

WORK=$(mktemp -d "${SOAK_DIR:-/tmp}/soak.XXXXXX")
DAEMON_PID=
cleanup() {
    if [ -n "$DAEMON_PID" ]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The base image, imported before the daemon holds the root.
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/tmp"
chmod 1777 "$WORK/rootfs/tmp"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for a in sh cat echo sleep; do ln -s busybox "$WORK/rootfs/bin/$a"; done
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
"$BIN/buildd" --root "$WORK/root" import "$WORK/rootfs.tar" soak-base >/dev/null

ADDR=unix://$WORK/buildd.sock
"$BIN/buildd" --root "$WORK/root" --addr "$ADDR" --max-concurrent-builds "$CLIENTS" \
    >"$WORK/buildd.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 200); do [ -S "$WORK/buildd.sock" ] && break; sleep 0.05; done
[ -S "$WORK/buildd.sock" ] || { echo "soak: the daemon did not start:" >&2; cat "$WORK/buildd.log" >&2; exit 1; }
bctl() { "$BIN/bctl" --addr "$ADDR" "$@"; }
executed() { bctl info | awk -F: '/^Executed ops/ { gsub(/ /, "", $2); print $2 }'; }

# Ops a round executes: the two shared RUNs and the COPY once, each client's RUN
# once; the first round also the base image's source (a cache hit after that).
SHARED_OPS=3
for i in $(seq "$CLIENTS"); do
    mkdir -p "$WORK/ctx$i"
    cat >"$WORK/ctx$i/Dockerfile" <<EOF
FROM soak-base AS shared
ARG ROUND
RUN echo "round \$ROUND" >/round && sleep 1
RUN echo shared >>/round

FROM soak-base
COPY --from=shared /round /shared-round
RUN echo client $i >/log && cat /shared-round >>/log
EOF
done

builds=0 errors=0 hangs=0 once=yes round=0
start=$(date +%s)
while :; do
    round=$((round + 1))
    shared=$((SHARED_OPS + (round == 1 ? 1 : 0)))
    expected=$((shared + CLIENTS))
    before=$(executed)
    pids=()
    for i in $(seq "$CLIENTS"); do
        timeout "$TIMEOUT" "$BIN/bctl" --addr "$ADDR" build --progress plain \
            --build-arg "ROUND=$start-$round" "$WORK/ctx$i" \
            >"$WORK/r$round-c$i.log" 2>&1 &
        pids+=($!)
    done
    for i in $(seq "$CLIENTS"); do
        rc=0
        wait "${pids[$((i - 1))]}" || rc=$?
        case $rc in
            0) builds=$((builds + 1)) ;;
            124) hangs=$((hangs + 1)); echo "soak: round $round client $i: no answer in ${TIMEOUT}s" >&2 ;;
            *)
                errors=$((errors + 1))
                echo "soak: round $round client $i: exit $rc:" >&2
                tail -n 5 "$WORK/r$round-c$i.log" >&2
                ;;
        esac
    done
    ran=$(($(executed) - before))
    if [ "$ran" -ne "$expected" ]; then
        once=no
        echo "soak: round $round executed $ran ops, expected $expected ($shared shared + $CLIENTS own)" >&2
    fi
    elapsed=$(($(date +%s) - start))
    [ "$elapsed" -ge "$DURATION" ] && break
done

if ! kill -0 "$DAEMON_PID" 2>/dev/null || ! bctl info >/dev/null 2>&1; then
    echo "soak: the daemon stopped serving; its log:" >&2
    tail -n 20 "$WORK/buildd.log" >&2
    errors=$((errors + 1))
fi
minutes=$(awk -v s="$elapsed" 'BEGIN { printf "%.1f", s / 60 }')
echo "soak: $round rounds of $CLIENTS clients"
echo "soak: $builds builds in $minutes min, $errors errors, $hangs hangs, shared steps executed once: $once"
[ "$errors" -eq 0 ] && [ "$hangs" -eq 0 ] && [ "$once" = yes ]
