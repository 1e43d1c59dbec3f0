#!/usr/bin/python3
"""NCCL bandwidth through trainrun, with and without binding.

  /usr/bin/python3 benchmarks/nccl_bench.py [--build build] [--gpus N]
      [--min-bytes 8] [--max-bytes 1G] [--iterations 20] [--warmup 5] [--json FILE]

Runs trainrun-nccl-check (gpu/nccl/, built with TRAINRUN_WITH_CUDA) as the `command`
of a `trainrun run` job with processCountPerNode = the number of GPUs, once with
"binding": "auto" (each rank bound to its GPU, cores, NUMA memory and NIC) and once with
"binding": "none" (every rank sees every GPU and may run anywhere). Prints both
nccl-tests-style tables, one after the other, then algorithm and bus bandwidth side by
side with the ratio. Metadata lines start with '#' and name the devices. A benchmark, not a test:
it fails only when a run fails (trainrun's exit code is passed on: 3 when there is no
GPU, 1 when a result was wrong).
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUN_LIMIT_S = 1800


def gpu_lines():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    p = subprocess.run([smi, "--query-gpu=index,name,pci.bus_id,driver_version,memory.total",
                        "--format=csv,noheader"], capture_output=True, text=True)
    if p.returncode != 0:
        return []
    return [line.strip() for line in p.stdout.splitlines() if line.strip()]


def run_one(args, trainrun, check, binding, tmp):
    table = os.path.join(tmp, f"table_{binding}.txt")
    results = os.path.join(tmp, f"results_{binding}.jsonl")
    job = {
        "experimentName": "nccl_bench",
        "command": [check, "--table-file", table, "--json", results,
                    "--min-bytes", args.min_bytes, "--max-bytes", args.max_bytes,
                    "--iterations", str(args.iterations), "--warmup", str(args.warmup)],
        "processCountPerNode": args.gpus,
        "binding": binding,
    }
    job_file = os.path.join(tmp, f"job_{binding}.json")
    with open(job_file, "w") as f:
        json.dump(job, f, indent=2)
    cmd = [trainrun, "run", job_file, "--history", os.path.join(tmp, "history"),
           "--workdir", os.path.join(tmp, "work"), "--console", "none"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=RUN_LIMIT_S)
    if p.returncode != 0 or not os.path.exists(table):
        sys.stderr.write(f"nccl_bench: binding {binding}: trainrun exited {p.returncode}\n")
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
        logs = os.path.join(tmp, "history", "nccl_bench")
        for dirpath, _, files in os.walk(logs):
            for name in sorted(files):
                if name.startswith("std_log_process_"):
                    with open(os.path.join(dirpath, name), errors="replace") as f:
                        tail = "".join(f.readlines()[-15:])
                        sys.stderr.write(f"--- {name} (last lines)\n{tail}")
        return p.returncode or 70, None, None
    with open(table) as f:
        text = f.read()
    with open(results) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return 0, text, records


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--gpus", type=int, help="ranks on this node (default: nvidia-smi's GPUs)")
    parser.add_argument("--min-bytes", default="8")
    parser.add_argument("--max-bytes", default="1G")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", help="also write both runs' JSON records here")
    args = parser.parse_args()
    trainrun = os.path.join(args.build, "launcher", "trainrun")
    check = os.path.join(args.build, "gpu", "nccl", "trainrun-nccl-check")
    for path in (trainrun, check):
        if not os.access(path, os.X_OK):
            sys.exit(f"nccl_bench: {path} is missing; build with the CUDA toolkit and NCCL "
                     f"(TRAINRUN_WITH_CUDA) first")
    gpus = gpu_lines()
    if args.gpus is None:
        args.gpus = max(1, len(gpus))

    print(f"# trainrun NCCL benchmark on {platform.node()}: {os.cpu_count()} CPUs, "
          f"{platform.platform()}")
    for line in gpus or ["no GPU seen by nvidia-smi"]:
        print(f"# device: {line}")
    print(f"# {args.gpus} rank(s) through `trainrun run`, binding auto then none; "
          f"{args.iterations} iterations after {args.warmup} warmup per size")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="nccl_bench.") as tmp:
        for binding in ("auto", "none"):
            rc, text, records = run_one(args, trainrun, check, binding, tmp)
            if rc != 0:
                return rc
            runs[binding] = records
            print(f"\n# binding: {binding}")
            sys.stdout.write(text)
            sys.stdout.flush()

    print("\n# GB/s, binding auto beside none; none/auto compares algbw (busbw is algbw times a "
          "factor that depends only on the op and the rank count)")
    print(f"{'op':<15} {'size (B)':>12} {'algbw auto':>11} {'algbw none':>11} "
          f"{'busbw auto':>11} {'busbw none':>11} {'none/auto':>10}")
    none_by_key = {(r["op"], r["bytes"]): r for r in runs["none"] if r["record"] == "result"}
    for r in runs["auto"]:
        if r["record"] != "result":
            continue
        other = none_by_key.get((r["op"], r["bytes"]))
        if other is None:
            continue
        ratio = f"{other['algbw_gbps'] / r['algbw_gbps']:.2f}x" if r["algbw_gbps"] > 0 else "-"
        print(f"{r['op']:<15} {r['bytes']:>12} {r['algbw_gbps']:>11.2f} "
              f"{other['algbw_gbps']:>11.2f} {r['busbw_gbps']:>11.2f} "
              f"{other['busbw_gbps']:>11.2f} {ratio:>10}")
    if args.gpus == 1:
        print("# one rank: NCCL moves nothing between GPUs, so busbw is 0 by definition; "
              "algbw is the local copy rate")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpus": gpus, "ranks": args.gpus, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
