#!/usr/bin/python3
"""scripts/check-layers.py passes a tree whose includes point down, and fails, naming
the file, on an upward include, on gpu/ or gpu/nccl/ reaching past base/, on
gpu/nccl/ used from outside, and on a cycle."""
import os
import subprocess
import sys
import tempfile

checker = sys.argv[1]


def run(files):
    with tempfile.TemporaryDirectory() as root:
        for path, text in files.items():
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(text)
        p = subprocess.run([sys.executable, checker, "--root", root], capture_output=True, text=True)
        return p.returncode, p.stdout + p.stderr


good = {
    "base/status.h": "#pragma once\n",
    "runtime/process/supervisor.h": '#include "base/status.h"\n',
    "runtime/process/supervisor.cc": '#include "runtime/process/supervisor.h"\n',
    "runtime/run/history.h": '#include "runtime/process/supervisor.h"\n',
    "gpu/topology.h": '#include "base/status.h"\n',
    "gpu/nccl/report.h": '#include "base/status.h"\n',
    "gpu/nccl/main.cc": '#include "gpu/nccl/report.h"\n',
    "launcher/main.cc": '#include "gpu/topology.h"\n#include "runtime/run/history.h"\n',
}
failures = []
rc, out = run(good)
if rc != 0:
    failures.append("a clean tree was refused: " + out)

cases = {
    "upward include": ("runtime/process/supervisor.cc", '#include "runtime/run/history.h"\n',
                       "runtime/process/supervisor.cc:1"),
    "gpu past base": ("gpu/topology.h", '#include "runtime/process/supervisor.h"\n',
                      "gpu/topology.h:1"),
    "gpu/nccl past base": ("gpu/nccl/report.h", '#include "gpu/topology.h"\n',
                           "gpu/nccl/report.h:1"),
    "launcher into gpu/nccl": ("launcher/main.cc", '#include "gpu/nccl/report.h"\n',
                               "launcher/main.cc:1"),
    "base up": ("base/status.h", '#include "gpu/topology.h"\n', "base/status.h:1"),
    "cycle": ("launcher/a.h", '#include "launcher/b.h"\n', "include cycle"),
}
for name, (path, text, expect) in cases.items():
    files = dict(good)
    files[path] = text
    if name == "cycle":
        files["launcher/b.h"] = '#include "launcher/c.h"\n'
        files["launcher/c.cc"] = '#include "launcher/a.h"\n'
        files["launcher/c.h"] = "#pragma once\n"
    rc, out = run(files)
    if rc == 0 or expect not in out:
        failures.append(f"{name}: exit {rc}, expected a failure naming '{expect}':\n{out}")

for f in failures:
    print("FAIL:", f)
print(f"{len(cases) + 1 - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
