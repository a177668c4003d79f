#!/usr/bin/env bash
# Side-by-side: buildd and Buildah build the same Dockerfiles FROM a busybox image in a
# local Distribution registry, cold (empty state) and warm (same state again), and
# measure container start overhead per RUN. Prints one table.
#
#   bash benches/scripts/vs-buildah.sh            # builds buildd in release mode first
#   BUILDD=/path/to/buildd bash benches/scripts/vs-buildah.sh
#
# Needs root, runc, buildah, docker-registry, skopeo and busybox-static (Debian).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$PWD
RUNS=${RUNS:-3}
RUN_STEPS=${RUN_STEPS:-20}

for tool in buildah docker-registry skopeo runc; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install $tool" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "missing /bin/busybox: apt-get install busybox-static" >&2; exit 1; }

if [ -z "${BUILDD:-}" ]; then
    cargo build --release -q -p buildd-daemon --bin buildd
    BUILDD=$REPO/target/release/buildd
fi

WORK=$(mktemp -d /tmp/vs-buildah.XXXXXX)
REG_PID=
cleanup() {
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
    buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" rm -a >/dev/null 2>&1 || true
    umount -R "$WORK/buildah/root/overlay" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- a registry on a free loopback port -------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
cat >"$WORK/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REG
log:
  level: error
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 50); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

# --- the busybox base image, pushed to it -----------------------------------------
mkdir -p "$WORK/base/rootfs/bin" "$WORK/base/rootfs/tmp" "$WORK/base/rootfs/etc"
cp /bin/busybox "$WORK/base/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ -e "$WORK/base/rootfs/bin/$applet" ] || ln -s busybox "$WORK/base/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$WORK/base/rootfs/etc/passwd"
echo 'root:x:0:' >"$WORK/base/rootfs/etc/group"
printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["sh"]\n' >"$WORK/base/Dockerfile"
"$BUILDD" --root "$WORK/base-root" build --progress quiet \
    -o "type=oci,dest=$WORK/base.tar,name=latest" "$WORK/base" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci-archive:$WORK/base.tar" "docker://$REG/busybox:latest"

# --- the Dockerfiles ---------------------------------------------------------------
mkdir -p "$WORK/four/files"
for i in $(seq 100); do head -c 4096 /dev/urandom >"$WORK/four/files/f$i"; done
cat >"$WORK/four/Dockerfile" <<EOF
FROM $REG/busybox:latest
RUN echo hello
RUN sleep 1
COPY . /ctx
RUN ls /ctx
EOF
# Container start overhead: N RUN steps minus one RUN step, per extra step (the pull,
# the export and the process start are in both and cancel out).
mkdir -p "$WORK/runs" "$WORK/one"
{
    echo "FROM $REG/busybox:latest"
    for i in $(seq "$RUN_STEPS"); do echo "RUN echo $i"; done
} >"$WORK/runs/Dockerfile"
printf 'FROM %s/busybox:latest\nRUN echo 1\n' "$REG" >"$WORK/one/Dockerfile"

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{($2 - $1):.2f}')" 2>/dev/null || echo "?"; }

buildd_build() { # state-dir ctx
    "$BUILDD" --root "$1" build --progress quiet "$2" >/dev/null 2>"$WORK/buildd.err" ||
        { cat "$WORK/buildd.err" >&2; exit 1; }
}
buildah_build() { # state-dir ctx
    buildah --root "$1/root" --runroot "$1/run" --storage-driver overlay bud -q --layers \
        --tls-verify=false --isolation oci --runtime runc -t bench "$2" >/dev/null 2>"$WORK/buildah.err" ||
        { cat "$WORK/buildah.err" >&2; exit 1; }
}
wipe() {
    buildah --root "$1/root" --runroot "$1/run" rm -a >/dev/null 2>&1 || true
    buildah --root "$1/root" --runroot "$1/run" rmi -a -f >/dev/null 2>&1 || true
    umount -R "$1/root/overlay" 2>/dev/null || true
    rm -rf "$1"
}

# median of RUNS measurements of "$@"
measure() {
    local kind=$1 tool=$2 ctx=$3 times=() state
    for _ in $(seq "$RUNS"); do
        state=$WORK/state-$tool
        wipe "$state"
        [ "$kind" = warm ] && "${tool}_build" "$state" "$ctx"
        local t0 t1
        t0=$(now)
        "${tool}_build" "$state" "$ctx"
        t1=$(now)
        times+=("$(elapsed "$t0" "$t1")")
    done
    wipe "$WORK/state-$tool"
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p"
}

printf '%-44s %10s %10s\n' "scenario (median of $RUNS, seconds)" buildd buildah
for kind in cold warm; do
    printf '%-44s %10s %10s\n' "4-step Dockerfile, $kind" \
        "$(measure "$kind" buildd "$WORK/four")" "$(measure "$kind" buildah "$WORK/four")"
done
d_one=$(measure cold buildd "$WORK/one")
b_one=$(measure cold buildah "$WORK/one")
d_runs=$(measure cold buildd "$WORK/runs")
b_runs=$(measure cold buildah "$WORK/runs")
printf '%-44s %10s %10s\n' "1 x RUN, cold" "$d_one" "$b_one"
printf '%-44s %10s %10s\n' "$RUN_STEPS x RUN, cold" "$d_runs" "$b_runs"
per_run() { python3 -c "print(f'{($2 - $1) / ($RUN_STEPS - 1) * 1000:.0f} ms')"; }
printf '%-44s %10s %10s\n' "per extra RUN (container start + commit)" \
    "$(per_run "$d_one" "$d_runs")" "$(per_run "$b_one" "$b_runs")"
