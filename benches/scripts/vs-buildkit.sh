#!/usr/bin/env bash
# Side by side with the reference BuildKit: the data-path scenarios (a many-file
# context, one big incompressible file, four parallel RUN stages), cold / warm /
# one-change, through the buildd daemon and buildd's one-shot mode, against the
# reference buildkitd in ../shared/reference/buildkit and Buildah when installed.
# Prints medians, ratios to BuildKit, the machine's physical baselines (tar c|tar x,
# cp -a, cp -al, zstd -T0 -3|sha256sum) and each engine's peak RSS.
#
#   bash benches/scripts/vs-buildkit.sh                 # builds buildd and bctl (release) first
#   BIN=/path/to/dir RUNS=3 FILES=20000 BIG_MB=512 bash benches/scripts/vs-buildkit.sh
#   SCENARIOS=files,big,runs TOOLS=daemon,oneshot,buildkit,buildah MODES=cold,warm,change
#   COMPRESSION=gzip|zstd (the OCI export's layer compression, both engines)
#
# Timings are not tests: CI does not run this. Needs root, runc, docker-registry,
# skopeo, busybox-static, python3; port 127.0.0.1:5000 free or serving a registry
# (the reference buildkitd treats that address as a plain-HTTP registry).
set -euo pipefail

cd "$(dirname "$0")/../.."
REF=${BUILDKIT_REF:-$PWD/../shared/reference}
if [ -z "${BIN:-}" ]; then
    cargo build --release -q -p buildd-daemon -p buildd-cli
    BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
fi
[ "$(id -u)" = 0 ] || { echo "vs-buildkit: needs root" >&2; exit 1; }
for tool in runc docker-registry skopeo python3; do
    command -v "$tool" >/dev/null || { echo "vs-buildkit: missing $tool (apt-get install $tool)" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "vs-buildkit: missing /bin/busybox: apt-get install busybox-static" >&2; exit 1; }
if [ ! -x "$REF/buildkit/up" ]; then
    echo "vs-buildkit: no reference BuildKit at $REF/buildkit: buildd columns only" >&2
    REF=
fi

export BIN REF
exec python3 "$PWD/benches/scripts/vs_buildkit.py"
