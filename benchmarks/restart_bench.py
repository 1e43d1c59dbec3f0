#!/usr/bin/python3
"""In-place restart: time from a rank's failure to every rank running again.

  /usr/bin/python3 benchmarks/restart_bench.py [--build build] [--reps 5] [--ranks 2] [--json FILE]

One node, N ranks of benchmarks/bench_rank in `restart` mode: on the first attempt
rank N-1 exits 7 after 300 ms while the others wait for a signal; on the second every
rank writes the time it started and exits 0. Measured: the failing rank's time to the
last rank of attempt 2 started (CLOCK_REALTIME, written by the ranks themselves).

  trainrun  `trainrun run` with maxRestarts 1 and restarts.backoffSeconds 0 (and the
            default 1 s backoff in a second row); console off, file:// history
  torchrun  torchrun --standalone --max-restarts 1 --no_python (through
            torchrun_shim.py: Debian's torch 1.13 torchrun crashes on Python 3.11
            without it, pytorch issue 92319; the shim patches only Std.from_str)

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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3"
RUN_LIMIT_S = 120
FAIL_AFTER_MS = 300


def percentile(samples, q):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def read_time(path):
    with open(path) as f:
        return float(f.read())


def restart_seconds(out, ranks):
    failed = read_time(os.path.join(out, "failed"))
    started = [read_time(os.path.join(out, f"restart.{r}")) for r in range(ranks)]
    return max(started) - failed


def once(cmd, out, ranks, cwd):
    os.makedirs(out)
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=RUN_LIMIT_S, check=False)
    return restart_seconds(out, ranks)


def trainrun_cmd(build, tmp, out, ranks, rep, backoff):
    job = {
        "command": [os.path.join(build, "benchmarks/bench_rank"), "restart", out,
                    str(ranks - 1), str(FAIL_AFTER_MS), "7"],
        "sourceDirectory": os.path.join(tmp, "src"),
        "experimentName": "restart_bench",
        "runId": f"r{rep}-{backoff}".replace(".", "_"),
        "processCountPerNode": ranks,
        "maxRestarts": 1,
        "restarts": {"backoffSeconds": backoff, "backoffMaxSeconds": max(backoff, 1)},
    }
    path = os.path.join(tmp, f"job-{rep}-{backoff}.json")
    with open(path, "w") as f:
        json.dump(job, f)
    return [os.path.join(build, "launcher/trainrun"), "run", path, "--history",
            os.path.join(tmp, "history"), "--workdir", os.path.join(tmp, "work"),
            "--console", "none"]


def torchrun_cmd(build, out, ranks):
    return [PYTHON, os.path.join(HERE, "torchrun_shim.py"), "--standalone",
            "--nproc_per_node", str(ranks), "--max_restarts", "1", "--no_python",
            os.path.join(build, "benchmarks/bench_rank"), "restart", out, str(ranks - 1),
            str(FAIL_AFTER_MS), "7"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    build = os.path.abspath(args.build)
    tmp = tempfile.mkdtemp(prefix="restart_bench.")
    os.makedirs(os.path.join(tmp, "src"))
    rows = []
    try:
        series = {}
        for backoff in (0, 1):
            name = f"trainrun (backoff {backoff} s)"
            series[name] = [once(trainrun_cmd(build, tmp, os.path.join(tmp, f"t{backoff}-{r}"),
                                              args.ranks, r, backoff),
                                 os.path.join(tmp, f"t{backoff}-{r}"), args.ranks, tmp)
                            for r in range(args.reps)]
        have_torchrun = subprocess.run([PYTHON, "-c", "import torch.distributed.run"],
                                       stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL).returncode == 0
        if have_torchrun:
            series["torchrun --max-restarts 1"] = [
                once(torchrun_cmd(build, os.path.join(tmp, f"p{r}"), args.ranks),
                     os.path.join(tmp, f"p{r}"), args.ranks, tmp)
                for r in range(args.reps)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    peer = series.get("torchrun --max-restarts 1")
    peer_med = statistics.median(peer) if peer else None
    print(f"# in-place restart, 1 node x {args.ranks} ranks (benchmarks/bench_rank), "
          f"{os.cpu_count()} cores, {platform.node()}, {args.reps} repetitions")
    print(f"# rank {args.ranks - 1} exits 7 after {FAIL_AFTER_MS} ms; time from its exit to the "
          "last rank of attempt 2 started")
    print("# peer: torchrun --standalone --max-restarts 1 (torch 1.13 via benchmarks/torchrun_shim.py)")
    print(f"{'launcher':<32}{'median':>12}{'p99':>12}{'torchrun/us':>14}")
    for name, samples in series.items():
        med, p99 = statistics.median(samples), percentile(samples, 99)
        ratio = f"{peer_med / med:.1f}x" if peer_med and name != "torchrun --max-restarts 1" else ""
        print(f"{name:<32}{med * 1000:>9.1f} ms{p99 * 1000:>9.1f} ms{ratio:>14}")
        rows.append({"launcher": name, "median_s": med, "p99_s": p99, "samples_s": samples})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
