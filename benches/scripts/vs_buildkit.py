"""Driver of vs-buildkit.sh (read that file first): builds the scenarios with each
engine, cold / warm / one-change, and prints medians, ratios and peak RSS."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ["BIN"]
REF = os.environ.get("REF", "")
RUNS = int(os.environ.get("RUNS", "3"))
FILES = int(os.environ.get("FILES", "20000"))
BIG_MB = int(os.environ.get("BIG_MB", "512"))
COMPRESSION = os.environ.get("COMPRESSION", "gzip")
SCENARIOS = os.environ.get("SCENARIOS", "files,big,runs").split(",")
MODES = os.environ.get("MODES", "cold,warm,change").split(",")
TOOLS = os.environ.get("TOOLS", "daemon,oneshot,buildkit,buildah").split(",")
REGISTRY = "127.0.0.1:5000"
BK_DIR = os.environ.get("BUILDKIT_REF_DIR", "/tmp/buildkit-ref")

WORK = tempfile.mkdtemp(prefix="vs-buildkit.", dir=os.environ.get("BENCH_DIR", "/var/tmp"))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(cmd, timeout=kw.pop("timeout", 900), **kw)
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace")[-2000:] if p.stderr else ""
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{err}")
    return p


def status_mb(pid, field):
    """A memory field of a live process's /proc status (VmHWM: peak RSS), in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_hwm(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def wait_socket(path, proc=None, what="daemon"):
    for _ in range(300):
        if os.path.exists(path):
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


def umount_under(root):
    """Unmounts whatever a stopped engine left mounted below root, deepest first."""
    with open("/proc/self/mountinfo") as f:
        points = [l.split()[4] for l in f if l.split()[4].startswith(root.rstrip("/") + "/")]
    for p in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", p], stderr=subprocess.DEVNULL)


class Daemon:
    name = "buildd daemon"

    def __init__(self):
        self.proc = None
        self.root = f"{WORK}/daemon-root"
        self.sock = f"{WORK}/buildd.sock"

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None

    def fresh(self):
        self.stop()
        umount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = subprocess.Popen(
            [f"{BIN}/buildd", "--root", self.root, "--addr", f"unix://{self.sock}"],
            stdout=subprocess.DEVNULL, stderr=open(f"{WORK}/buildd.log", "ab"))
        wait_socket(self.sock, self.proc, "buildd")

    def pid(self):
        return self.proc.pid

    def build(self, ctx, out):
        run([f"{BIN}/bctl", "--addr", f"unix://{self.sock}", "build", "--progress", "quiet",
             "-o", f"type=oci,dest={out},compression={COMPRESSION}", ctx])
        return status_mb(self.proc.pid, "VmHWM")


class OneShot:
    name = "buildd one-shot"

    def __init__(self):
        self.root = f"{WORK}/oneshot-root"

    def fresh(self):
        umount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def stop(self):
        pass

    def pid(self):
        return None

    def build(self, ctx, out):
        rss = f"{WORK}/oneshot.rss"
        run(["/usr/bin/time", "-f", "%M", "-o", rss, f"{BIN}/buildd", "--root", self.root,
             "build", "--progress", "quiet",
             "-o", f"type=oci,dest={out},compression={COMPRESSION}", ctx])
        with open(rss) as f:
            return int(f.read().split()[-1]) / 1024


class BuildKit:
    name = "buildkit"

    def __init__(self):
        self.up = f"{REF}/buildkit/up"
        self.down = f"{REF}/buildkit/down"

    def stop(self):
        run([self.down])
        umount_under(f"{BK_DIR}/state")

    def fresh(self):
        self.stop()
        shutil.rmtree(f"{BK_DIR}/state", ignore_errors=True)
        run([self.up])

    def pid(self):
        with open(f"{BK_DIR}/buildkitd.pid") as f:
            return int(f.read())

    def build(self, ctx, out):
        opt = f"type=oci,dest={out}"
        if COMPRESSION != "gzip":
            opt += f",compression={COMPRESSION},force-compression=true"
        run([f"{BK_DIR}/bin/buildctl", "--addr", f"unix://{BK_DIR}/buildkitd.sock", "build",
             "--frontend", "dockerfile.v0", "--local", f"context={ctx}",
             "--local", f"dockerfile={ctx}", "--output", opt])
        return status_mb(self.pid(), "VmHWM")


class Buildah:
    name = "buildah"

    def __init__(self):
        self.state = f"{WORK}/buildah"

    def args(self):
        return ["buildah", "--root", f"{self.state}/root", "--runroot", f"{self.state}/run",
                "--storage-driver", "overlay"]

    def stop(self):
        subprocess.run(self.args() + ["rm", "-a"], capture_output=True)
        subprocess.run(self.args() + ["rmi", "-a", "-f"], capture_output=True)
        umount_under(self.state)

    def fresh(self):
        self.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    def pid(self):
        return None

    def build(self, ctx, out):
        rss = f"{WORK}/buildah.rss"
        run(["/usr/bin/time", "-f", "%M", "-o", rss] + self.args() +
            ["bud", "-q", "--layers", "--tls-verify=false", "--isolation", "oci",
             "--runtime", "runc", "-t", "bench", ctx])
        with open(rss) as f:
            peak = int(f.read().split()[-1]) / 1024
        run(self.args() + ["push", "-q", "bench", f"oci-archive:{out}"])
        return peak


# --- contexts ------------------------------------------------------------------------

def make_files_ctx():
    ctx = f"{WORK}/files"
    for i in range(FILES):
        d = f"{ctx}/d{i // 100}"
        if i % 100 == 0:
            os.makedirs(d, exist_ok=True)
        with open(f"{d}/f{i % 100}.bin", "wb") as fh:
            fh.write(os.urandom(1024))
    with open(f"{ctx}/Dockerfile", "w") as fh:
        fh.write("FROM scratch\nCOPY . /ctx\n")
    return ctx


def change_files_ctx(ctx, _):
    with open(f"{ctx}/d0/f0.bin", "wb") as fh:
        fh.write(os.urandom(1024))


def make_big_ctx():
    ctx = f"{WORK}/big"
    os.makedirs(ctx)
    with open(f"{ctx}/big.bin", "wb") as fh:
        for _ in range(BIG_MB):
            fh.write(os.urandom(1 << 20))
    with open(f"{ctx}/Dockerfile", "w") as fh:
        fh.write("FROM scratch\nCOPY big.bin /big.bin\n")
    return ctx


def change_big_ctx(ctx, n):
    fd = os.open(f"{ctx}/big.bin", os.O_WRONLY)
    try:
        os.pwrite(fd, os.urandom(4096), ((n * 7 + 3) % BIG_MB) << 20)
    finally:
        os.close(fd)


def make_runs_ctx():
    ctx = f"{WORK}/runs"
    os.makedirs(ctx)
    stages = "".join(
        f"FROM {REGISTRY}/vsbk-busybox:latest AS s{i}\nRUN sleep 2 && echo {i} > /out\n\n"
        for i in range(4))
    joined = "FROM scratch\n" + "".join(f"COPY --from=s{i} /out /out{i}\n" for i in range(4))
    with open(f"{ctx}/Dockerfile", "w") as fh:
        fh.write(stages + joined)
    return ctx


def ensure_registry():
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=1)
        return None
    except Exception:
        pass
    with open(f"{WORK}/registry.yml", "w") as fh:
        fh.write(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {WORK}/registry\n"
                 f"http:\n  addr: {REGISTRY}\nlog:\n  level: error\n")
    proc = subprocess.Popen(["docker-registry", "serve", f"{WORK}/registry.yml"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=1)
            return proc
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"docker-registry did not start on {REGISTRY}")


def push_base_image():
    rootfs = f"{WORK}/base/rootfs"
    os.makedirs(f"{rootfs}/bin")
    os.makedirs(f"{rootfs}/tmp")
    os.chmod(f"{rootfs}/tmp", 0o1777)
    shutil.copy("/bin/busybox", f"{rootfs}/bin/busybox")
    for applet in ["sh", "sleep", "echo", "cat"]:
        os.symlink("busybox", f"{rootfs}/bin/{applet}")
    with open(f"{WORK}/base/Dockerfile", "w") as fh:
        fh.write("FROM scratch\nCOPY rootfs/ /\nCMD [\"sh\"]\n")
    run([f"{BIN}/buildd", "--root", f"{WORK}/base-root", "build", "--progress", "quiet",
         "-o", f"type=oci,dest={WORK}/base.tar,name=latest", f"{WORK}/base"])
    run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci-archive:{WORK}/base.tar",
         f"docker://{REGISTRY}/vsbk-busybox:latest"])
    shutil.rmtree(f"{WORK}/base-root", ignore_errors=True)


# --- measurement ---------------------------------------------------------------------

def timed(tool, ctx, out):
    if os.path.exists(out):
        os.unlink(out)
    subprocess.run(["sync"])
    t0 = time.perf_counter()
    peak = tool.build(ctx, out)
    return time.perf_counter() - t0, peak


def measure(tool, mode, ctx, change):
    """Median seconds of RUNS builds in this mode, and the peak RSS seen."""
    out = f"{WORK}/out.tar"
    times, peak = [], 0.0
    if mode != "cold":
        tool.fresh()
        tool.build(ctx, out)
    for n in range(RUNS):
        if mode == "cold":
            tool.fresh()
        elif mode == "change":
            change(ctx, n)
        pid = tool.pid()
        if pid:
            reset_hwm(pid)
        secs, rss = timed(tool, ctx, out)
        times.append(secs)
        peak = max(peak, rss)
    return statistics.median(times), peak


def median_of(cmd_fn):
    times = []
    for _ in range(RUNS):
        prep = cmd_fn()
        subprocess.run(["sync"])
        t0 = time.perf_counter()
        run(["bash", "-c", prep], stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def baselines(files_ctx, big_ctx):
    rows = []
    dst = f"{WORK}/copy"

    def fresh_dst(cmd):
        def prep():
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(dst)
            return cmd
        return prep

    if files_ctx:
        rows.append((f"{FILES} files: tar c | tar x",
                     median_of(fresh_dst(f"tar -C {files_ctx} -cf - . | tar -C {dst} -xf -"))))
        rows.append((f"{FILES} files: cp -a",
                     median_of(fresh_dst(f"cp -a {files_ctx}/. {dst}/"))))
        rows.append((f"{FILES} files: cp -al",
                     median_of(fresh_dst(f"cp -al {files_ctx}/. {dst}/"))))
    if big_ctx:
        rows.append((f"{BIG_MB} MiB: cat | sha256sum",
                     median_of(lambda: f"cat {big_ctx}/big.bin | sha256sum")))
        rows.append((f"{BIG_MB} MiB: zstd -T0 -3 | sha256sum",
                     median_of(lambda: f"zstd -q -T0 -3 -c {big_ctx}/big.bin | sha256sum")))
    shutil.rmtree(dst, ignore_errors=True)
    return rows


def main():
    tools = []
    for t in TOOLS:
        if t == "daemon":
            tools.append(Daemon())
        elif t == "oneshot":
            tools.append(OneShot())
        elif t == "buildkit" and REF:
            tools.append(BuildKit())
        elif t == "buildah":
            if shutil.which("buildah"):
                tools.append(Buildah())
            else:
                log("vs-buildkit: buildah not installed: no buildah column")
    registry = None
    try:
        contexts = {}
        log(f"vs-buildkit: work dir {WORK}; making contexts")
        if "files" in SCENARIOS:
            contexts["files"] = (f"{FILES} files x 1 KiB, COPY . /ctx", make_files_ctx(),
                                 change_files_ctx, MODES)
        if "big" in SCENARIOS:
            contexts["big"] = (f"{BIG_MB} MiB incompressible, COPY, {COMPRESSION} OCI export",
                               make_big_ctx(), change_big_ctx, MODES)
        if "runs" in SCENARIOS:
            registry = ensure_registry()
            push_base_image()
            contexts["runs"] = ("4 stages RUN sleep 2, joined", make_runs_ctx(), None, ["cold"])

        idle = {}
        for tool in tools:
            if isinstance(tool, (Daemon, BuildKit)):
                tool.fresh()
                time.sleep(2)
                idle[tool.name] = status_mb(tool.pid(), "VmRSS")

        results, peaks = {}, {}
        for key, (title, ctx, change, modes) in contexts.items():
            for mode in modes:
                for tool in tools:
                    log(f"vs-buildkit: {key} {mode} {tool.name}")
                    secs, peak = measure(tool, mode, ctx, change)
                    results[(key, mode, tool.name)] = secs
                    peaks[(key, tool.name)] = max(peaks.get((key, tool.name), 0.0), peak)
        base = baselines(contexts.get("files", (None, None))[1],
                         contexts.get("big", (None, None))[1])
    finally:
        for tool in tools:
            try:
                tool.stop()
            except Exception as e:
                log(f"vs-buildkit: stopping {tool.name}: {e}")
        if registry is not None:
            registry.terminate()
            registry.wait()
        umount_under(WORK)
        shutil.rmtree(WORK, ignore_errors=True)

    names = [t.name for t in tools]
    bk = "buildkit" if "buildkit" in names else None
    head = f"{'scenario (median of ' + str(RUNS) + ', s)':<58}" + "".join(f"{n:>17}" for n in names)
    if bk:
        head += "".join(f"{n.split()[-1] + '/bk':>12}" for n in names if n != bk)
    print(head)
    for key, (title, _, _, modes) in contexts.items():
        for mode in modes:
            row = f"{title + ', ' + mode:<58}"
            row += "".join(f"{results[(key, mode, n)]:>17.2f}" for n in names)
            if bk:
                b = results[(key, mode, bk)]
                row += "".join(f"{results[(key, mode, n)] / b:>11.2f}x" for n in names if n != bk)
            print(row)
    print()
    print(f"{'peak RSS (MB)':<58}" + "".join(f"{n:>17}" for n in names))
    if idle:
        print(f"{'idle':<58}" + "".join(
            f"{idle[n]:>17.1f}" if n in idle else f"{'-':>17}" for n in names))
    for key, (title, _, _, _) in contexts.items():
        print(f"{title:<58}" + "".join(f"{peaks[(key, n)]:>17.1f}" for n in names))
    print()
    print(f"physical baselines (median of {RUNS}, s)")
    for label, secs in base:
        print(f"  {label:<56}{secs:>8.2f}")


if __name__ == "__main__":
    main()
