#!/usr/bin/env bash
# Dockerfile graphs of file steps (issue 11's table): a chain of N `COPY <<EOF`
# steps and N stages joined with `COPY --link --from`, each built cold (fresh
# root) then warm, by the buildd daemon and the reference BuildKit in
# ../shared/reference/buildkit when present. Solved without an export. Prints a
# Markdown table of medians.
#
#   bash benches/scripts/graphs.sh                     # builds buildd and bctl (release) first
#   BIN=/path/to/dir RUNS=3 SIZES=100,1000,3000 SHAPES=chain,stages TOOLS=daemon,buildkit \
#       bash benches/scripts/graphs.sh
#
# Timings are not tests: CI does not run this. Needs root and python3.
# On ext4, inodes freed in the last ~30 s are skipped when allocating new ones
# (`recently_deleted` in the kernel's profile): a cold run right after removing
# a root of 10,000 layers takes 2-4x as long. Wait between such runs by hand.
set -euo pipefail

cd "$(dirname "$0")/../.."
REF=${BUILDKIT_REF:-$PWD/../shared/reference}
if [ -z "${BIN:-}" ]; then
    cargo build --release -q -p buildd-daemon -p buildd-cli
    BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
fi
[ "$(id -u)" = 0 ] || { echo "graphs: needs root" >&2; exit 1; }
if [ ! -x "$REF/buildkit/up" ]; then
    echo "graphs: no reference BuildKit at $REF/buildkit: buildd columns only" >&2
    REF=
fi
export BIN REF RUNS=${RUNS:-1}
exec python3 "$PWD/benches/scripts/graphs.py"
