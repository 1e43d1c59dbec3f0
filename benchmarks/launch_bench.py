#!/usr/bin/python3
"""Launch overhead and log throughput: trainrun beside a bare spawn, torchrun and mpirun.

  /usr/bin/python3 benchmarks/launch_bench.py [--build build] [--reps 15] [--json FILE]
      [--trainrun PATH] [--peers torchrun,mpirun] [--log-mib 0] [--python PYTHON]
--trainrun measures another trainrun binary (the portable one: build-portable/launcher/
trainrun) with the helpers of --build; --peers limits the peers; --log-mib 0 skips logs;
--python names the interpreter that runs torchrun (default /usr/bin/python3, Debian's).

Launch: the wall time of starting N ranks of /bin/true and waiting for them, for
  bare      benchmarks/bare_spawn: fork/exec N times and wait, nothing else
  trainrun  `trainrun run` of a job whose command is /bin/true (snapshot of an empty
            source, file:// history written and uploaded: a whole run)
  torchrun  torchrun --standalone --no_python /bin/true (through torchrun_shim.py:
            Debian's torch 1.13 torchrun crashes on Python 3.11 without it, pytorch
            issue 92319; the shim patches only Std.from_str)
  mpirun    Open MPI's mpirun -n N /bin/true
Peak RSS is the launcher's maximum resident set (with its descendants'), at the largest
N, as benchmarks/peak_rss reports it: every command runs through that small program,
since the figure a Python parent gets counts Python's own image before the exec.

Logs: one rank writing 200 MiB of 100-byte lines to stdout, into a file directly,
through trainrun (per-rank log file; console off, or on and sent to /dev/null), and
through torchrun's --redirects to per-rank files.

Numbers depend on the machine and what else runs; this prints them, it never fails.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3"


RUN_LIMIT_S = 60


class Hung(RuntimeError):
    pass


def run_timed(cmd, env=None, cwd=None, stdout=subprocess.DEVNULL):
    """Runs cmd; returns (seconds, peak RSS of the direct child in MiB). Raises Hung
    when it runs past RUN_LIMIT_S (it is killed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.PIPE, start_new_session=True)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.perf_counter() - start > RUN_LIMIT_S:
            os.killpg(proc.pid, 9)
            os.waitpid(proc.pid, 0)
            raise Hung(f"{' '.join(cmd)} did not finish in {RUN_LIMIT_S} s")
        time.sleep(0.0005)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{err[-2000:]}")
    # benchmarks/peak_rss's figure when cmd runs through it (see Bench.samples).
    peaks = [line.split()[1] for line in err.splitlines() if line.startswith("peak_rss_kib ")]
    return seconds, (int(peaks[-1]) if peaks else usage.ru_maxrss) / 1024.0


def percentile(samples, q):
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[index]


class Bench:
    def __init__(self, build, reps, trainrun=None):
        self.trainrun = os.path.abspath(trainrun or os.path.join(build, "launcher", "trainrun"))
        self.bare = os.path.join(build, "benchmarks", "bare_spawn")
        self.spew = os.path.join(build, "benchmarks", "spew")
        self.peak_rss = os.path.join(build, "benchmarks", "peak_rss")
        for path in (self.trainrun, self.bare, self.spew, self.peak_rss):
            if not os.access(path, os.X_OK):
                sys.exit(f"launch_bench: {path} is missing; build first (cmake --build {build})")
        self.reps = reps
        self.tmp = tempfile.mkdtemp(prefix="trainrun-bench-")
        os.makedirs(os.path.join(self.tmp, "src"))
        self.count = 0
        self.hangs = {}  # peer -> launches killed after RUN_LIMIT_S
        self.env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def trainrun_job(self, command, ranks, console="none"):
        self.count += 1
        job = os.path.join(self.tmp, f"job{self.count}.json")
        with open(job, "w") as f:
            json.dump({"command": command, "sourceDirectory": "src", "experimentName": "bench",
                       "runId": f"run{self.count}", "processCountPerNode": ranks}, f)
        return [self.trainrun, "run", job, "--history", os.path.join(self.tmp, "history"),
                "--workdir", os.path.join(self.tmp, "work"), "--console", console]

    def torchrun(self, ranks, program):
        return [PYTHON, os.path.join(HERE, "torchrun_shim.py"), "--standalone",
                f"--nproc_per_node={ranks}", "--no_python"] + program

    def samples(self, make_cmd, reps, stdout=subprocess.DEVNULL, name=""):
        """Times `reps` runs. A peer that hangs is killed, counted and left out of the
        statistics (Open MPI's mpirun sometimes never returns after many ranks that
        exit at once); trainrun hanging is an error."""
        times, rss = [], 0.0
        for _ in range(reps):
            try:
                # Through peak_rss, so that the peak RSS is the launcher's own and not
                # this Python's (benchmarks/peak_rss.cc says why); the same for every
                # launcher and the bare spawn, so the differences stand.
                seconds, peak = run_timed([self.peak_rss] + make_cmd(), env=self.env,
                                          cwd=self.tmp, stdout=stdout)
            except Hung:
                if name.startswith("trainrun"):
                    raise
                self.hangs[name] = self.hangs.get(name, 0) + 1
                continue
            times.append(seconds)
            rss = max(rss, peak)
        return times or [float("nan")], rss


def launch_table(bench, rank_counts, peers):
    print("# launch overhead: N ranks of /bin/true, wall time per launch (ms)")
    print(f"# {bench.reps} repetitions each; median (p99)")
    header = f"{'ranks':>5}  {'bare':>15}  {'trainrun':>15}  {'trainrun-bare':>13}"
    for peer in peers:
        header += f"  {peer:>15}  {peer + '/trainrun':>17}"
    print(header)
    rows = []
    rss = {}
    for n in rank_counts:
        row = {"ranks": n}
        cmds = {
            "bare": lambda: [bench.bare, str(n), "/bin/true"],
            "trainrun": lambda: bench.trainrun_job(["/bin/true"], n),
            "torchrun": lambda: bench.torchrun(n, ["/bin/true"]),
            "mpirun": lambda: ["mpirun", "--oversubscribe", "-n", str(n), "/bin/true"],
        }
        for name in ["bare", "trainrun"] + peers:
            times, peak = bench.samples(cmds[name], bench.reps, name=f"{name} at {n} ranks")
            row[name] = {"median_ms": statistics.median(times) * 1000,
                         "p99_ms": percentile(times, 99) * 1000}
            rss[name] = peak
        line = (f"{n:>5}  {row['bare']['median_ms']:>7.1f} ({row['bare']['p99_ms']:>5.1f})"
                f"  {row['trainrun']['median_ms']:>7.1f} ({row['trainrun']['p99_ms']:>5.1f})"
                f"  {row['trainrun']['median_ms'] - row['bare']['median_ms']:>13.1f}")
        for peer in peers:
            ratio = row[peer]["median_ms"] / row["trainrun"]["median_ms"]
            line += (f"  {row[peer]['median_ms']:>7.1f} ({row[peer]['p99_ms']:>5.1f})"
                     f"  {ratio:>16.1f}x")
        print(line)
        rows.append(row)
    for label, count in bench.hangs.items():
        print(f"# {label}: hung in {count} of {bench.reps} launches (killed after "
              f"{RUN_LIMIT_S} s); the median and p99 leave those out")
    print(f"# peak RSS of the launcher at {rank_counts[-1]} ranks (MiB): " +
          ", ".join(f"{k} {v:.1f}" for k, v in rss.items() if k != "bare"))
    last = rows[-1]
    print(f"# trainrun's overhead over the bare spawn at {last['ranks']} ranks (median): "
          f"{last['trainrun']['median_ms'] - last['bare']['median_ms']:.1f} ms")
    return {"launch": rows, "peak_rss_mib": rss}


def log_table(bench, mib, peers):
    print(f"\n# log throughput: one rank writing {mib} MiB of 100-byte lines to stdout")
    print(f"# {max(3, bench.reps // 3)} repetitions; median (p99) seconds, MiB/s of the median")
    reps = max(3, bench.reps // 3)
    out_file = os.path.join(bench.tmp, "direct.log")
    paths = {
        "direct to a file": (lambda: [bench.spew, str(mib)], open(out_file, "wb")),
        "trainrun, console off": (lambda: bench.trainrun_job([bench.spew, str(mib)], 1, "none"),
                                  subprocess.DEVNULL),
        "trainrun, console on": (lambda: bench.trainrun_job([bench.spew, str(mib)], 1, "all"),
                                 subprocess.DEVNULL),
    }
    if "torchrun" in peers:
        logdir = os.path.join(bench.tmp, "torchrun-logs")
        paths["torchrun --redirects 3"] = (
            lambda: [PYTHON, os.path.join(HERE, "torchrun_shim.py"), "--standalone",
                     "--nproc_per_node=1", "--redirects", "3", "--log_dir", logdir,
                     "--no_python", bench.spew, str(mib)],
            subprocess.DEVNULL)
    print(f"{'path':<24}  {'seconds':>15}  {'MiB/s':>8}  {'vs direct':>9}")
    rows = []
    direct = None
    for name, (make, stdout) in paths.items():
        times, _ = bench.samples(make, reps, stdout=stdout)
        median = statistics.median(times)
        direct = direct or median
        print(f"{name:<24}  {median:>7.3f} ({percentile(times, 99):>5.3f})  {mib / median:>8.0f}"
              f"  {median / direct:>8.2f}x")
        rows.append({"path": name, "median_s": median, "p99_s": percentile(times, 99),
                     "mib_per_s": mib / median})
    return {"logs": rows}


def main():
    global PYTHON  # --python: the interpreter the torchrun commands use
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--ranks", default="1,8,32")
    parser.add_argument("--log-mib", type=int, default=200)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--trainrun", help="the trainrun binary (default: BUILD/launcher/trainrun)")
    parser.add_argument("--peers", default="torchrun,mpirun", help="the peers to run, if found")
    parser.add_argument("--python", default=PYTHON,
                        help="the interpreter whose torch runs torchrun (a virtualenv's elsewhere)")
    args = parser.parse_args()
    PYTHON = args.python

    bench = Bench(args.build, args.reps, args.trainrun)
    wanted = args.peers.split(",") if args.peers else []
    peers = []
    if "torchrun" in wanted and shutil.which(PYTHON) and subprocess.run(
            [PYTHON, "-c", "import torch.distributed.run"], capture_output=True).returncode == 0:
        peers.append("torchrun")
    if "mpirun" in wanted and shutil.which("mpirun"):
        peers.append("mpirun")
    print(f"# trainrun launch benchmark on {platform.node()}: {os.cpu_count()} CPUs, "
          f"{platform.platform()}, load average {os.getloadavg()[0]:.1f}")
    # The line that reproduces these figures (README "Install" gives the one for the
    # portable binary at 8 ranks).
    print("# command: " + " ".join([sys.executable, os.path.relpath(os.path.abspath(__file__))] + sys.argv[1:]))
    print(f"# trainrun: {bench.trainrun} ({os.path.getsize(bench.trainrun) / 1e6:.1f} MB)")
    print(f"# peers: {', '.join(peers) or 'none found'}"
          + ("; torchrun runs through benchmarks/torchrun_shim.py (pytorch issue 92319)"
             if "torchrun" in peers else ""))
    try:
        results = launch_table(bench, [int(n) for n in args.ranks.split(",")], peers)
        if args.log_mib > 0:
            results.update(log_table(bench, args.log_mib, peers))
    finally:
        bench.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
