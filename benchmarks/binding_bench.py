#!/usr/bin/python3
"""What binding costs at launch: planning a node beside hwloc's own lstopo.

  /usr/bin/python3 benchmarks/binding_bench.py [--build build] [--reps 30] [--json FILE]

For each topology (this machine, and the XML fixtures of a 16-GPU DGX-2 and a 3-GPU
node with InfiniBand), the wall time of
  trainrun  `trainrun topology --json`: read the topology with hwloc (I/O devices
            included), ask NVML (dlopen), discover GPUs, plan every rank, print JSON
  lstopo    `lstopo-no-graphics --of xml`: hwloc's own tool reading the same
            topology (I/O devices included) and writing it out
Both are whole processes, so the difference is what trainrun's planning adds to a
launch. Numbers depend on the machine and what else runs; this never fails.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUN_LIMIT_S = 120


def run_timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True, timeout=RUN_LIMIT_S)
    return time.perf_counter() - start


def percentile(samples, q):
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    trainrun = os.path.join(args.build, "launcher", "trainrun")
    if not os.access(trainrun, os.X_OK):
        sys.exit(f"binding_bench: {trainrun} is missing; build first (cmake --build {args.build})")
    lstopo = shutil.which("lstopo-no-graphics")
    fixtures = os.path.join(ROOT, "tests", "fixtures", "topologies")
    topologies = [("this machine", None),
                  ("DGX-2 (XML)", os.path.join(fixtures, "nvidiaDGX2.xml")),
                  ("3-GPU + IB (XML)", os.path.join(fixtures, "24em64t-2n6c2t-pci.xml"))]

    print(f"# trainrun binding benchmark on {platform.node()}: {os.cpu_count()} CPUs, "
          f"{platform.platform()}")
    print(f"# peer: {lstopo or 'lstopo-no-graphics not found'}")
    print(f"# wall time per process (ms), {args.reps} repetitions; median (p99)")
    print(f"{'topology':<18}  {'trainrun':>15}  {'lstopo':>15}  {'lstopo/trainrun':>15}")
    rows = []
    for name, xml in topologies:
        plan = [trainrun, "topology", "--json"] + (["--topology-xml", xml] if xml else [])
        peer = [lstopo, "--of", "xml", "-"] + (["-i", xml] if xml else []) if lstopo else None
        row = {"topology": name}
        for label, cmd in (("trainrun", plan), ("lstopo", peer)):
            if cmd is None:
                continue
            run_timed(cmd)  # warm the page cache
            times = [run_timed(cmd) for _ in range(args.reps)]
            row[label] = {"median_ms": statistics.median(times) * 1000,
                          "p99_ms": percentile(times, 99) * 1000}
        line = f"{name:<18}  {row['trainrun']['median_ms']:>7.1f} ({row['trainrun']['p99_ms']:>5.1f})"
        if "lstopo" in row:
            ratio = row["lstopo"]["median_ms"] / row["trainrun"]["median_ms"]
            line += (f"  {row['lstopo']['median_ms']:>7.1f} ({row['lstopo']['p99_ms']:>5.1f})"
                     f"  {ratio:>14.2f}x")
        print(line)
        rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"host": platform.node(), "reps": args.reps, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
