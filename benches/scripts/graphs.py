"""Driver of graphs.sh (read that file first): Dockerfile graphs of file steps,
built cold (fresh root) and warm by the buildd daemon and the reference BuildKit,
solved without an export, as the table of issue 11 measures them."""

import os
import statistics
import sys
import time

import vs_buildkit as vs

SIZES = [int(s) for s in os.environ.get("SIZES", "100,1000,3000").split(",")]
SHAPES = os.environ.get("SHAPES", "chain,stages").split(",")
TOOLS = os.environ.get("TOOLS", "daemon,buildkit").split(",")


def chain(n):
    lines = ["FROM scratch"]
    for i in range(n):
        lines += [f"COPY <<EOF /f{i}", str(i), "EOF"]
    return "\n".join(lines) + "\n"


def stages(n):
    lines = []
    for i in range(n):
        lines += [f"FROM scratch AS s{i}", f"COPY <<EOF /f{i}", str(i), "EOF"]
    lines.append("FROM scratch")
    lines += [f"COPY --link --from=s{i} /f{i} /f{i}" for i in range(n)]
    return "\n".join(lines) + "\n"


TITLES = {
    "chain": ("chain of {n} COPY <<EOF steps", chain),
    "stages": ("{n} stages joined with COPY --link --from", stages),
}


class DaemonNoExport(vs.Daemon):
    def build(self, ctx, out):
        vs.run([f"{vs.BIN}/bctl", "--addr", f"unix://{self.sock}", "build", "--progress",
                "quiet", ctx], timeout=3600)
        return vs.status_mb(self.proc.pid, "VmHWM")


class BuildKitNoExport(vs.BuildKit):
    def build(self, ctx, out):
        vs.run([f"{vs.BK_DIR}/bin/buildctl", "--addr", f"unix://{vs.BK_DIR}/buildkitd.sock",
                "build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}",
                "--local", f"dockerfile={ctx}"], timeout=3600)
        return vs.status_mb(self.pid(), "VmHWM")


def main():
    tools = []
    if "daemon" in TOOLS:
        tools.append(DaemonNoExport())
    if "buildkit" in TOOLS and vs.REF:
        tools.append(BuildKitNoExport())
    rows = []
    for shape in SHAPES:
        title, make = TITLES[shape]
        for n in SIZES:
            ctx = f"{vs.WORK}/{shape}-{n}"
            os.makedirs(ctx, exist_ok=True)
            with open(f"{ctx}/Dockerfile", "w") as f:
                f.write(make(n))
            row = [title.format(n=n)]
            for tool in tools:
                cold, warm = [], []
                try:
                    for _ in range(vs.RUNS):
                        tool.fresh()
                        t0 = time.perf_counter()
                        tool.build(ctx, None)
                        cold.append(time.perf_counter() - t0)
                        t0 = time.perf_counter()
                        tool.build(ctx, None)
                        warm.append(time.perf_counter() - t0)
                    row.append(f"{statistics.median(cold):.2f} s / "
                               f"{statistics.median(warm):.2f} s")
                except RuntimeError as e:
                    # BuildKit fails past about 450 overlay layers: say so.
                    why = [l for l in str(e).splitlines() if "error" in l.lower()]
                    row.append(f"fails: {why[-1].strip() if why else 'exit != 0'}")
                vs.log(f"{row[0]}: {tool.name} {row[-1]}")
            rows.append(row)
        for tool in tools:
            tool.stop()
    head = ["graph"] + [f"{t.name} cold / warm" for t in tools]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    try:
        main()
    finally:
        vs.shutil.rmtree(vs.WORK, ignore_errors=True)
