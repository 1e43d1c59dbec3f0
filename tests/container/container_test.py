#!/usr/bin/env python3
"""Container tests: trainrun's images (docker/Dockerfile) built and run with podman.

    container_test.py image                 builds trainrun:runtime and trainrun:example
                                            (scripts/image.sh); CTest's fixture
    container_test.py example               the example job, history on a named volume,
                                            read back by `trainrun history` in a second
                                            container
    container_test.py pid1                  trainrun as PID 1 reaps the ranks' orphans
    container_test.py stop                  `podman stop` -> 143, Canceled, outputs uploaded
    container_test.py stop_ignoring_sigterm the same with a rank that ignores SIGTERM and
                                            podman's default 10 s stop timeout
    container_test.py mpi                   an Mpi job (mpi4py) inside the container
    container_test.py from_runtime          a user's image FROM trainrun:runtime runs its job
    container_test.py help_and_topology     `help` (the default command) and `topology`
    container_test.py runtime_is_slim       the runtime image: no compiler, no PyTorch;
                                            Open MPI, rclone, fuse3, git, Python

Exit 0 passed, 1 failed, 77 skipped (only when podman is not installed). Every test
uses its own container, volume and folders, named after this process, and removes them.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNTIME = os.environ.get("TRAINRUN_IMAGE_RUNTIME", "trainrun:runtime")
EXAMPLE = os.environ.get("TRAINRUN_IMAGE_EXAMPLE", "trainrun:example")
TAG = "ctest-" + uuid.uuid4().hex[:8]
CLEANUP = []  # callables, run last-in first-out


class Failed(Exception):
    pass


def check(condition, message, *details):
    if not condition:
        raise Failed(message + "".join("\n--- " + str(d) for d in details))


def podman(*args, timeout=300, check_rc=True):
    p = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check_rc and p.returncode != 0:
        raise Failed(f"podman {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def temp_dir(what):
    path = tempfile.mkdtemp(prefix=f"trainrun-{TAG}-{what}-")
    CLEANUP.append(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def container_name(what):
    name = f"trainrun-{TAG}-{what}"
    CLEANUP.append(lambda: podman("rm", "-f", "-t", "0", name, check_rc=False))
    return name


def write_job(folder, name, job, files):
    for file, text in files.items():
        with open(os.path.join(folder, file), "w") as f:
            f.write(text)
    with open(os.path.join(folder, name), "w") as f:
        json.dump({"sourceDirectory": ".", "experimentName": "ctest", **job}, f)


def record(history, run_id, experiment="ctest"):
    with open(os.path.join(history, experiment, run_id, "run.json")) as f:
        return json.load(f)


def trainrun(image, *args, mounts=(), name=None, timeout=300):
    """`podman run --rm` of IMAGE with trainrun ARGS; returns the finished process."""
    cmd = ["run", "--rm"] + (["--name", name] if name else [])
    for host, inside in mounts:
        cmd += ["-v", f"{host}:{inside}"]
    p = podman(*cmd, "-e", "TRAINRUN_HISTORY=/history", image, *args, timeout=timeout,
               check_rc=False)
    print(p.stdout + p.stderr)
    return p


# --- the fixture -----------------------------------------------------------------

def test_image():
    start = time.monotonic()
    p = subprocess.run([os.path.join(ROOT, "scripts", "image.sh")], cwd=ROOT)
    print(f"container.image: scripts/image.sh took {time.monotonic() - start:.0f} s")
    check(p.returncode == 0, f"scripts/image.sh exited {p.returncode}")


# --- the tests -------------------------------------------------------------------

def test_example():
    volume = f"trainrun-{TAG}-history"
    podman("volume", "create", volume)
    CLEANUP.append(lambda: podman("volume", "rm", "-f", volume, check_rc=False))
    run_id = f"{TAG}-example"
    p = trainrun(EXAMPLE, "run", "/app/examples/mnist-like/job.json", "--run-id", run_id,
                 mounts=[(volume, "/history")], timeout=600)
    check(p.returncode == 0, f"the example exited {p.returncode}")
    check("rank 1/2 epoch 4" in p.stdout, "rank 1 did not train 5 epochs", p.stdout)

    # The container is gone (--rm); a second one reads its history from the volume.
    show = trainrun(RUNTIME, "history", "show", run_id, "--json", mounts=[(volume, "/history")])
    check(show.returncode == 0, f"history show exited {show.returncode}", show.stderr)
    rec = json.loads(show.stdout)
    check(rec["status"] == "Completed" and rec["exitCode"] == 0, "not Completed 0", rec["status"])
    check(len(rec["ranks"]) == 2, "the record has not 2 ranks", rec["ranks"])
    files = trainrun(RUNTIME, "history", "files", run_id, mounts=[(volume, "/history")])
    for f in ("outputs/model.pt", "outputs/model.txt", "metrics/rank_1.jsonl",
              "user_logs/std_log_process_1.txt", "system_logs/trainrun_node_0.log"):
        check(f in files.stdout, f"{f} is not in history", files.stdout)
    logs = trainrun(RUNTIME, "history", "logs", run_id, "--rank", "1",
                    mounts=[(volume, "/history")])
    check("rank 1: weight checksum" in logs.stdout, "rank 1's log is not in history", logs.stdout)
    # The metrics module ships in the image (share/trainrun/python) and is on the path.
    metrics = trainrun(RUNTIME, "history", "metrics", run_id, "--json",
                       mounts=[(volume, "/history")])
    check(metrics.returncode == 0, f"history metrics exited {metrics.returncode}", metrics.stderr)
    loss = json.loads(metrics.stdout)["metrics"]["loss"]
    check(sorted(loss["ranks"]) == ["0", "1"] and loss["overall"]["steps"] == 5,
          "the example's loss is not in history for 2 ranks x 5 epochs", metrics.stdout)


ORPHANS_PY = r'''
import os, subprocess, sys, time

def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])  # state, parent

def orphaned_zombies():
    found = set()
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and stat(pid) == ("Z", 1):
                found.add(int(pid))
        except (OSError, ValueError, IndexError):
            pass
    return found

with open("/proc/1/comm") as f:
    pid1 = f.read().strip()
adopted = 0
for _ in range(5):
    # sh starts a sleep in the background and exits: the sleep is orphaned. The sleep
    # must not hold the pipe, or run() waits for it to exit and PID 1 may have reaped it
    # before it is looked at.
    out = subprocess.run(["sh", "-c", "sleep 2 </dev/null >/dev/null 2>&1 & echo $!"],
                         capture_output=True, text=True)
    try:
        adopted += stat(int(out.stdout))[1] == 1
    except OSError:
        pass
time.sleep(5)  # every orphan has exited: only PID 1 can have reaped it
left = orphaned_zombies()
time.sleep(0.5)
left &= orphaned_zombies()  # a zombie reaped a moment late is not one left behind
print(f"rank {os.environ['RANK']}: pid 1 is {pid1}, adopted {adopted}, zombies left {sorted(left)}",
      flush=True)
sys.exit(0 if pid1 == "trainrun" and adopted == 5 and not left else 1)
'''


def test_pid1():
    job, history = temp_dir("job"), temp_dir("history")
    write_job(job, "job.json", {"script": "orphans.py", "processCountPerNode": 2},
              {"orphans.py": ORPHANS_PY})
    run_id = f"{TAG}-pid1"
    # process-group isolation: no PID namespace of trainrun's own, so the orphans go
    # to the container's PID 1, trainrun.
    p = trainrun(RUNTIME, "run", "/job/job.json", "--run-id", run_id, "--isolation",
                 "process-group", mounts=[(job, "/job"), (history, "/history")])
    check(p.returncode == 0, f"trainrun exited {p.returncode}")
    for rank in (0, 1):
        check(f"rank {rank}: pid 1 is trainrun, adopted 5, zombies left []" in p.stdout,
              f"rank {rank} saw zombies or no orphans", p.stdout)
    with open(os.path.join(history, "ctest", run_id, "system_logs/trainrun_node_0.log")) as f:
        check("PID 1" in f.read(), "the system log does not say trainrun is PID 1")


STOP_PY = r'''
import os, signal, sys, time
if "--ignore-sigterm" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
rank = os.environ["RANK"]
os.makedirs("outputs", exist_ok=True)
with open(f"outputs/rank{rank}.txt", "w") as f:
    f.write(f"rank {rank} before the stop\n")
print(f"rank {rank} ready", flush=True)
time.sleep(3600)
'''


def stop_test(what, script_args):
    """Starts a 2-rank job detached, `podman stop`s it with podman's default timeout,
    and checks trainrun's exit code, the record and the outputs in history."""
    job, history = temp_dir("job"), temp_dir("history")
    write_job(job, "job.json", {"script": "stop.py", "arguments": script_args,
                                "processCountPerNode": 2}, {"stop.py": STOP_PY})
    run_id = f"{TAG}-{what}"
    name = container_name(what)
    podman("run", "-d", "--name", name, "-v", f"{job}:/job", "-v", f"{history}:/history",
           "-e", "TRAINRUN_HISTORY=/history", RUNTIME, "run", "/job/job.json", "--run-id", run_id)
    deadline = time.monotonic() + 120
    while True:
        out = podman("logs", name).stdout
        if "rank 0 ready" in out and "rank 1 ready" in out:
            break
        check(time.monotonic() < deadline, "the ranks did not start within 120 s", out)
        time.sleep(0.5)
    start = time.monotonic()
    podman("stop", name, timeout=120)  # podman's default timeout: 10 s, then SIGKILL
    stopped = time.monotonic() - start
    code = int(podman("wait", name).stdout.strip())
    logs = podman("logs", name)
    print(logs.stdout + logs.stderr)
    print(f"podman stop took {stopped:.1f} s; trainrun exited {code}")
    check(code == 143, f"trainrun exited {code}, not 143 (137: podman's SIGKILL)")
    rec = record(history, run_id)
    check(rec["status"] == "Canceled" and rec["exitCode"] == 143,
          f"run.json says {rec['status']} {rec.get('exitCode')}, not Canceled 143")
    for rank in (0, 1):
        path = os.path.join(history, "ctest", run_id, f"outputs/rank{rank}.txt")
        check(os.path.exists(path), f"outputs/rank{rank}.txt was not uploaded")
    check(os.path.exists(os.path.join(history, "ctest", run_id, "user_logs/std_log_process_1.txt")),
          "rank 1's log was not uploaded")


def test_stop():
    stop_test("stop", [])


def test_stop_ignoring_sigterm():
    stop_test("stop-ignoring-sigterm", ["--ignore-sigterm"])


MPI_PY = r'''
from mpi4py import MPI
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
total = comm.allreduce(rank + 1)
print(f"mpi rank {rank} of {size}: allreduce {total}", flush=True)
'''


def test_mpi():
    job, history = temp_dir("job"), temp_dir("history")
    write_job(job, "job.json", {"script": "mpi_hello.py", "communicator": "Mpi",
                                "processCountPerNode": 2}, {"mpi_hello.py": MPI_PY})
    run_id = f"{TAG}-mpi"
    p = trainrun(RUNTIME, "run", "/job/job.json", "--run-id", run_id,
                 mounts=[(job, "/job"), (history, "/history")])
    check(p.returncode == 0, f"trainrun exited {p.returncode}")
    for rank in (0, 1):
        check(f"mpi rank {rank} of 2: allreduce 3" in p.stdout, f"MPI rank {rank} is missing")
    rec = record(history, run_id)
    check(rec["status"] == "Completed", f"run.json says {rec['status']}")
    check(os.path.exists(os.path.join(history, "ctest", run_id, "system_logs/mpirun.log")),
          "mpirun's log was not uploaded")


def test_from_runtime():
    """A user's image built FROM the runtime image, as the README shows."""
    context = temp_dir("context")
    write_job(context, "job.json", {"script": "hello.py", "processCountPerNode": 2},
              {"hello.py": "import os\nprint(f\"hello from rank {os.environ['RANK']}\")\n",
               "Dockerfile": f"FROM {RUNTIME}\nCOPY . /app\nCMD [\"run\", \"/app/job.json\"]\n"})
    image = f"localhost/trainrun-{TAG}-user:latest"
    podman("build", "--pull=never", "-t", image, context, timeout=300)
    CLEANUP.append(lambda: podman("rmi", "-f", image, check_rc=False))
    p = podman("run", "--rm", image, check_rc=False)  # CMD: run /app/job.json
    print(p.stdout + p.stderr)
    check(p.returncode == 0, f"the user's image exited {p.returncode}")
    for rank in (0, 1):
        check(f"hello from rank {rank}" in p.stdout, f"rank {rank} did not run", p.stdout)


def test_help_and_topology():
    p = podman("run", "--rm", RUNTIME)  # the image's default command: help
    for word in ("Subcommands:", "run", "history", "topology"):
        check(word in p.stdout, f"help does not name {word}", p.stdout)
    p = podman("run", "--rm", RUNTIME, "topology")
    print(p.stdout + p.stderr)
    for word in ("NUMA nodes:", "binding auto:", "rank  GPU"):
        check(word in p.stdout, f"topology does not show {word}", p.stdout)


def test_runtime_is_slim():
    script = r'''
for c in cc gcc g++ c++ clang cmake; do
  if command -v "$c"; then echo "compiler $c in the runtime image"; exit 1; fi
done
if python3 -c 'import torch' 2>/dev/null; then echo "PyTorch in the runtime image"; exit 1; fi
for c in mpirun rclone fusermount3 git python3 trainrun; do
  command -v "$c" >/dev/null || { echo "$c is missing"; exit 1; }
done
python3 -c 'import mpi4py' || exit 1
echo slim
'''
    p = podman("run", "--rm", "--entrypoint", "sh", RUNTIME, "-c", script, check_rc=False)
    check(p.returncode == 0 and "slim" in p.stdout, "the runtime image is not as documented",
          p.stdout + p.stderr)
    for image in (RUNTIME, EXAMPLE):
        size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
        print(f"{image}: {size / 1e6:.0f} MB")
        if image == RUNTIME:
            check(size < 600e6, f"{image} is {size / 1e6:.0f} MB, more than 600 MB")


def main():
    tests = {n[len("test_"):]: f for n, f in globals().items() if n.startswith("test_")}
    if len(sys.argv) != 2 or sys.argv[1] not in tests:
        print(f"usage: {sys.argv[0]} {'|'.join(tests)}", file=sys.stderr)
        return 64
    if shutil.which("podman") is None:
        print("SKIPPED: podman is not installed (scripts/install-deps.sh installs it)")
        return 77
    start = time.monotonic()
    try:
        tests[sys.argv[1]]()
        print(f"PASSED {sys.argv[1]} in {time.monotonic() - start:.1f} s")
        return 0
    except (Failed, subprocess.TimeoutExpired) as e:
        print(f"FAILED {sys.argv[1]}: {e}")
        return 1
    finally:
        for undo in reversed(CLEANUP):
            undo()


if __name__ == "__main__":
    sys.exit(main())
