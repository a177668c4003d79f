#!/usr/bin/env bash
# Crash campaign: SIGKILLs the daemon at a random moment of a build (context sync,
# COPY, RUN, export or index writes), restarts it, builds again and checks that
#   (a) the output's /ctx equals the context,
#   (b) after a clean stop, `buildd debug fsck` finds the root clean,
#   (c) nothing of the killed build is left: no RUN process, no process naming the
#       root, no mount under the root.
# One line per round, then `crash campaign: N rounds, F failures`; exits 1 on any
# failure. Needs root, runc and busybox-static; uses only a unix socket.
#
# Env: BIN (dir holding buildd and bctl; default target/debug, built unless
# BUILD=0), ROUNDS (30), SEED (random delays; printed), MAX_DELAY_MS (longest
# wait before the kill; default: the baseline build's duration plus half a
# second, so kills also land in export and index writes), KEEP=1 keeps the work
# directory.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug}
ROUNDS=${ROUNDS:-30}
SEED=${SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$SEED

die() {
    echo "crash campaign: $*" >&2
    exit 2
}

[ "$(id -u)" = 0 ] || die "must run as root (buildd keeps file ownership in layers)"
command -v runc >/dev/null || die "runc is not installed"
[ -x /bin/busybox ] || die "/bin/busybox (busybox-static) is not installed"

if [ "${BUILD:-1}" != 0 ]; then
    profile=()
    [ "$(basename "$BIN")" = release ] && profile=(--release)
    echo "crash campaign: building buildd and bctl (${profile[*]:-debug})"
    cargo build -q "${profile[@]}" -p buildd-daemon --bin buildd -p buildd-cli --bin bctl
fi
for bin in buildd bctl; do
    [ -x "$BIN/$bin" ] || die "no $bin in $BIN"
done
BUILDD=$(realpath "$BIN/buildd")
BCTL=$(realpath "$BIN/bctl")

WORK=$(mktemp -d /tmp/crash-campaign.XXXXXX)
ROOT=$WORK/root
SOCK=$WORK/buildd.sock
CTX=$WORK/ctx
OUT=$WORK/out
# In every RUN's command line, so its processes can be found after a kill.
MARKER=crash-campaign-run-$$-$SEED
daemon_pid=
bctl_pid=

# Pids of processes left from our builds: RUN shells (they carry the marker) and
# anything naming the root (runc, slirp4netns); never this script or pgrep.
leftover_pids() {
    { pgrep -f -- "$MARKER" || true; pgrep -f -- "$ROOT/" || true; } | sort -u | grep -vx "$$" || true
}

# Mount points under the root, deepest first.
mounts_under_root() {
    awk -v root="$ROOT/" 'index($5, root) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

start_daemon() {
    "$BUILDD" --root "$ROOT" --addr "unix://$SOCK" >>"$WORK/daemon.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 1 300); do
        if "$BCTL" --addr "unix://$SOCK" info >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$daemon_pid" 2>/dev/null; then
            wait "$daemon_pid" || true
            daemon_pid=
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# SIGTERM, then SIGKILL if it has not stopped within 30 s; returns its status.
stop_daemon() {
    [ -n "$daemon_pid" ] || return 0
    local pid=$daemon_pid status=0
    daemon_pid=
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "crash campaign: daemon ignored SIGTERM for 30 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" || status=$?
    return "$status"
}

# Kills what our builds left and unmounts what they mounted, so that the next
# round (and the work directory's removal) starts from nothing.
clear_leftovers() {
    local pid mnt
    for pid in $(leftover_pids); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    for mnt in $(mounts_under_root); do
        umount -l "$mnt" 2>/dev/null || true
    done
}

cleanup() {
    set +e
    if [ -n "$bctl_pid" ]; then
        # timeout passes SIGTERM on to bctl.
        kill -TERM "$bctl_pid" 2>/dev/null
        wait "$bctl_pid" 2>/dev/null
    fi
    stop_daemon 2>/dev/null
    clear_leftovers
    if [ "${KEEP:-0}" = 1 ]; then
        echo "crash campaign: kept $WORK"
    elif [ -n "$(mounts_under_root)" ]; then
        echo "crash campaign: mounts remain under $ROOT; not removing $WORK" >&2
    else
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The base image: busybox-static in a rootfs, as the tests make it.
mkdir -p "$WORK/rootfs/bin" "$CTX"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for applet in sh cat echo ls mkdir sleep wc; do
    ln -s busybox "$WORK/rootfs/bin/$applet"
done
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
"$BUILDD" --root "$ROOT" import "$WORK/rootfs.tar" crash-busybox >/dev/null

# A context of a few hundred files, a symlink and an empty directory.
for d in $(seq -w 0 9); do
    mkdir -p "$CTX/files/d$d"
    for f in $(seq -w 0 29); do
        head -c $((RANDOM % 16384)) /dev/urandom >"$CTX/files/d$d/f$f"
    done
done
ln -s files/d0/f00 "$CTX/link"
mkdir -p "$CTX/empty/dir"
cat >"$CTX/Dockerfile" <<EOF
FROM crash-busybox
ARG ROUND
COPY . /ctx
RUN : $MARKER; mkdir -p /gen && i=0 && while [ \$i -lt 200 ]; do echo "round \$ROUND file \$i" > /gen/f\$i; i=\$((i+1)); done
RUN : $MARKER; sleep 1; echo "round \$ROUND" > /gen/slept
RUN : $MARKER; cat /ctx/round.txt > /gen/round && ls /ctx/files | wc -l > /gen/dirs
EOF

# ROUND LOG [WRAPPER...]; exec'ed, so that in the background `$!` is the build's
# own pid. Builds that must finish run under `timeout`, so a hang ends the round.
build() {
    local round=$1 log=$2
    shift 2
    exec "$@" "$BCTL" --addr "unix://$SOCK" build --progress plain --build-arg "ROUND=$round" \
        -o "type=local,dest=$OUT" -o "type=oci,dest=$OUT.tar" "$CTX" >"$log" 2>&1
}
BOUNDED=(timeout --kill-after=10 300)

# (a), plus what the RUN steps wrote for this round and an OCI archive that lists
# its index.
check_output() { # ROUND
    diff -r "$CTX" "$OUT/ctx" >"$WORK/diff.log" 2>&1 ||
        { echo "output /ctx differs from the context: $(head -3 "$WORK/diff.log" | tr '\n' ' ')"; return; }
    [ "$(cat "$OUT/gen/round" 2>/dev/null)" = "$1" ] ||
        echo "output /gen/round is '$(cat "$OUT/gen/round" 2>/dev/null)', not $1"
    # Not grep -q: with pipefail, tar dying of SIGPIPE would fail the check.
    tar -tf "$OUT.tar" 2>/dev/null | grep -x index.json >/dev/null ||
        echo "OCI output $OUT.tar has no index.json"
}

# Where a build was when it was killed, from bctl's plain progress: the name of the
# last step it reported (`#N [i/n] COPY ...`) and whether that step had finished.
step_at_kill() { # LOG
    local n name
    n=$(grep -oE '^#[0-9]+ ' "$1" | tail -1 || true)
    [ -n "$n" ] || { echo "before any step"; return; }
    name=$(grep -m1 "^$n" "$1" | cut -d' ' -f2- | cut -c1-40)
    if grep -qE "^$n(DONE|CACHED)" "$1"; then echo "after $name"; else echo "in $name"; fi
}

# Baseline builds, no kill: prove the script and the build work before any crash,
# and time a build like a round's (one context file changed) so kills can land
# anywhere in it.
start_daemon || die "daemon did not start: $(tail -5 "$WORK/daemon.log")"
for round in 0 -1; do
    echo "$round" >"$CTX/round.txt"
    rm -rf "$OUT"
    started=$(date +%s%N)
    (build "$round" "$WORK/baseline.log" "${BOUNDED[@]}") ||
        die "baseline build failed: $(tail -5 "$WORK/baseline.log")"
    baseline_ms=$((($(date +%s%N) - started) / 1000000))
    problem=$(check_output "$round")
    [ -z "$problem" ] || die "baseline build: $problem"
done
stop_daemon || die "daemon exited with status $? on SIGTERM"
MAX_DELAY_MS=${MAX_DELAY_MS:-$((baseline_ms + 500))}
echo "crash campaign: seed $SEED, baseline build ${baseline_ms} ms, kills within 0-${MAX_DELAY_MS} ms, work dir $WORK"

failures=0
for round in $(seq 1 "$ROUNDS"); do
    problems=()
    echo "$round" >"$CTX/round.txt"
    rm -rf "$OUT" "$OUT.tar"
    if ! start_daemon; then
        echo "round $round: FAIL: daemon did not start: $(tail -3 "$WORK/daemon.log" | tr '\n' ' ')"
        failures=$((failures + 1))
        continue
    fi

    # Bounded too, in case bctl never notices the daemon is gone.
    (build "$round" "$WORK/killed.log" timeout --kill-after=5 120) &
    bctl_pid=$!
    delay_ms=$(( (RANDOM * 32768 + RANDOM) % (MAX_DELAY_MS + 1) ))
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    step=$(step_at_kill "$WORK/killed.log")
    kill -KILL "$daemon_pid"
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=
    bctl_status=0
    wait "$bctl_pid" || bctl_status=$?
    bctl_pid=
    when="killed at ${delay_ms} ms, $step"
    [ "$bctl_status" = 0 ] && when="killed at ${delay_ms} ms, after the build finished"
    # What outlived the daemon (recovery at restart must deal with it), by name.
    alive=$(leftover_pids | paste -sd, -)
    left_after_kill="none alive after the kill"
    if [ -n "$alive" ]; then
        names=$( (ps -o comm= -p "$alive" || true) | sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }')
        left_after_kill="alive after the kill: ${names:-(exited meanwhile)}"
    fi

    rm -rf "$OUT" "$OUT.tar"
    if ! start_daemon; then
        problems+=("daemon did not restart after the kill: $(tail -3 "$WORK/daemon.log" | tr '\n' ' ')")
    elif ! (build "$round" "$WORK/rebuild.log" "${BOUNDED[@]}"); then
        problems+=("build after restart failed: $(grep -m1 ERROR "$WORK/rebuild.log" || tail -1 "$WORK/rebuild.log")")
    else
        problem=$(check_output "$round")
        [ -z "$problem" ] || problems+=("$problem")
    fi

    stop_status=0
    stop_daemon || stop_status=$?
    [ "$stop_status" = 0 ] || problems+=("daemon exited with status $stop_status on SIGTERM")
    fsck_status=0
    "$BUILDD" --root "$ROOT" debug fsck >"$WORK/fsck.log" 2>&1 || fsck_status=$?
    if [ "$fsck_status" != 0 ]; then
        problems+=("fsck exit $fsck_status: $( (grep -E '^(problem|ERROR)' "$WORK/fsck.log" || tail -1 "$WORK/fsck.log") | head -3 | tr '\n' ' ')")
    fi
    # Leftovers fsck noted are not failures of their own; (c) checks what matters.
    notes=$(grep -c '^note:' "$WORK/fsck.log" || true)

    leftover=$(leftover_pids | paste -sd, -)
    [ -z "$leftover" ] || problems+=("processes left from the killed build: $( (ps -o pid=,args= -p "$leftover" || true) | cut -c1-80 | tr '\n' ';')")
    mounts=$(mounts_under_root | tr '\n' ' ')
    [ -z "$mounts" ] || problems+=("mounts left under the root: $mounts")

    if ((${#problems[@]})); then
        failures=$((failures + 1))
        echo "round $round: FAIL: $when; $left_after_kill; fsck notes: $notes"
        printf '    %s\n' "${problems[@]}"
        # Independent rounds: what this one left must not fail the next.
        clear_leftovers
    else
        echo "round $round: ok: $when; $left_after_kill; fsck notes: $notes"
    fi
done

echo "crash campaign: $ROUNDS rounds, $failures failures"
[ "$failures" = 0 ]
