#!/usr/bin/env bash
# Regenerates the expected files of tests/parity/cases/* with the reference
# BuildKit (../shared/reference), which a user's clone does not have: the tests
# themselves never need BuildKit. Needs the reference buildkitd running
# (../shared/reference/buildkit/up) and the busybox base at 127.0.0.1:5000
# (see README.md). Usage: generate.sh [CASE...] (default: every case).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
diffbuild="$here/../../../shared/reference/diffbuild"
[ -x "$diffbuild" ] || { echo "generate: $diffbuild is missing" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    mapfile -t cases < <(ls "$here/cases")
fi

# Each case without its expected files, plus the bare base for its listing.
mkdir -p "$work/cases/base-only"
printf 'FROM @BASE@\n' >"$work/cases/base-only/Dockerfile"
for c in "${cases[@]}"; do
    mkdir -p "$work/cases/$c"
    (cd "$here/cases/$c" && tar --exclude=expected-fs.txt --exclude=expected-config.json \
        --exclude=context-modes.txt -cf - .) | tar -xf - -C "$work/cases/$c"
    if [ -f "$here/cases/$c/context-modes.txt" ]; then
        while read -r mode path; do
            [ -n "$path" ] && chmod "$mode" "$work/cases/$c/$path"
        done <"$here/cases/$c/context-modes.txt"
    fi
done
"$diffbuild" --cases "$work/cases" --cand buildkit --keep >"$work/log" 2>&1 || true
run="$(sed -n 's/.*work dir: \([^ ]*\) (kept).*/\1/p' "$work/log")"
[ -d "$run" ] || { cat "$work/log" >&2; exit 1; }
trap 'rm -rf "$work" "$run"' EXIT

python3 - "$here/cases" "$run/cases" "$work/cases" "${cases[@]}" <<'PY'
import json, os, stat, sys
dest, built, ctx, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
FIELDS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts",
          "Volumes", "StopSignal", "Healthcheck", "OnBuild", "Shell"]
RUNTIME = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
def listing(path):
    out = {}
    for line in open(path):
        p, _, attrs = line.rstrip("\n").partition("\t")
        out[p] = attrs
    return out
def runtime(p):
    return p in RUNTIME or p == "/run/secrets" or p.startswith("/run/secrets/") or \
        any(p.startswith(d + "/") for d in ("/proc", "/sys", "/dev"))
base = listing(os.path.join(built, "base-only", "ref.fs.txt"))
for name in names:
    case = os.path.join(built, name)
    if not os.path.exists(os.path.join(case, "ref.fs.txt")):
        log = os.path.join(case, "ref.log")
        tail = open(log).read()[-2000:] if os.path.exists(log) else "(no log)"
        sys.exit(f"generate: BuildKit did not build {name}:\n{tail}")
    fs = listing(os.path.join(case, "ref.fs.txt"))
    scratch = [l for l in open(os.path.join(ctx, name, "Dockerfile"))
               if l.strip().lower().startswith("from ")][-1].split()[1].lower() == "scratch"
    against = {} if scratch else base
    lines = []
    for p in sorted(set(fs) | set(against)):
        if runtime(p):
            continue
        if p not in fs:
            lines.append(f"- {p}")
        elif against.get(p) != fs[p]:
            lines.append(f"+ {p}\t{fs[p]}")
    with open(os.path.join(dest, name, "expected-fs.txt"), "w") as f:
        f.write("".join(l + "\n" for l in lines))
    config = json.load(open(os.path.join(case, "ref.config.json"))).get("config", {})
    kept = {k: config[k] for k in FIELDS if config.get(k) not in (None, [], {}, "")}
    with open(os.path.join(dest, name, "expected-config.json"), "w") as f:
        json.dump(kept, f, indent=1, sort_keys=True)
        f.write("\n")
    modes = []
    root = os.path.join(ctx, name)
    for d, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            full = os.path.join(d, n)
            rel = os.path.relpath(full, root)
            if not os.path.islink(full):
                modes.append(f"{stat.S_IMODE(os.lstat(full).st_mode):o} {rel}")
    with open(os.path.join(dest, name, "context-modes.txt"), "w") as f:
        f.write("".join(m + "\n" for m in sorted(modes, key=lambda m: m.split(" ", 1)[1])))
    print(f"generate: {name}: {len(lines)} filesystem changes, config {sorted(kept)}")
PY
