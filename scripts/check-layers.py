#!/usr/bin/python3
"""Keeps the include graph pointing one way (docs/architecture.md).

    scripts/check-layers.py [--root DIR] [--summary]

Fails (exit 1), naming the file and line, when
  - a file includes a header of a layer above its own, or one it may not use
    (gpu/ and gpu/nccl/ use base/ only; nothing below the launcher uses gpu/, and
    nothing outside gpu/nccl/ uses it);
  - the include graph between units has a cycle. A unit is a header with its .cc
    files: x.h, x.cc and x_part.cc when there is no x_part.h.
--summary prints, per folder, its files, lines and the layers it may include.
Tests, benchmarks and docker/ may include anything and are not checked.
"""
import argparse
import os
import re
import sys

# Bottom to top. A folder may include its own layer and those before it, except
# where `ALLOWED` narrows it.
LAYERS = [
    ("base", "base"),
    ("gpu", "gpu"),
    ("nccl", "gpu/nccl"),
    ("report", "runtime/report"),
    ("process", "runtime/process"),
    ("store", "runtime/store"),
    ("run", "runtime/run"),
    ("cluster", "runtime/cluster"),
    ("mpi", "runtime/mpi"),
    ("launcher", "launcher"),
]
ALLOWED = {
    "base": {"base"},
    "gpu": {"base", "gpu"},
    "nccl": {"base", "nccl"},
}
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    for name, folder in LAYERS:
        if path.startswith(folder + "/") and "/" not in path[len(folder) + 1:]:
            return name
    return None


def may_include(layer):
    if layer in ALLOWED:
        return ALLOWED[layer]
    # gpu/ is the launcher's alone; gpu/nccl/ (a program of its own) is nobody else's.
    return {name for name, _ in LAYERS[: RANK[layer] + 1]
            if (name != "gpu" or layer == "launcher") and name != "nccl"}


def sources(root):
    for _, folder in LAYERS:
        full = os.path.join(root, folder)
        if not os.path.isdir(full):
            continue
        for name in sorted(os.listdir(full)):
            if name.endswith((".h", ".cc")):
                yield folder + "/" + name


def unit_of(path, headers):
    stem, ext = os.path.splitext(path)
    if ext == ".h" or stem + ".h" in headers:
        return stem
    # head_session_rsh.cc belongs to head_session.h: the longest stem with a header.
    parts = stem.split("_")
    for n in range(len(parts) - 1, 0, -1):
        candidate = "_".join(parts[:n])
        if candidate + ".h" in headers:
            return candidate
    return stem


def find_cycles(graph):
    """Tarjan's strongly connected components with more than one unit."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    root = os.path.abspath(args.root)

    files = list(sources(root))
    headers = {f for f in files if f.endswith(".h")}
    errors = []
    graph = {}
    lines_per_folder = {}
    for path in files:
        layer = layer_of(path)
        folder = os.path.dirname(path)
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            text = f.read().splitlines()
        count = lines_per_folder.setdefault(folder, [0, 0])
        count[0] += 1
        count[1] += len(text)
        unit = unit_of(path, headers)
        graph.setdefault(unit, set())
        for number, line in enumerate(text, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = m.group(1)
            target_layer = layer_of(target)
            if target_layer is None:
                continue  # a system or third-party header, or tests/
            if target_layer not in may_include(layer):
                errors.append(
                    f"{path}:{number}: {layer}/ may not include {target} ({target_layer}/); "
                    f"{layer}/ may include {', '.join(sorted(may_include(layer), key=RANK.get))}")
            target_unit = unit_of(target, headers)
            if target_unit != unit:
                graph[unit].add(target_unit)

    for cycle in find_cycles(graph):
        errors.append("include cycle between units: " + " <-> ".join(cycle))

    if args.summary:
        print(f"{'folder':<18} {'files':>5} {'lines':>7}  may include")
        for name, folder in LAYERS:
            files_lines = lines_per_folder.get(folder, [0, 0])
            allowed = ", ".join(sorted(may_include(name), key=RANK.get))
            print(f"{folder + '/':<18} {files_lines[0]:>5} {files_lines[1]:>7}  {allowed}")

    for e in errors:
        print("check-layers: " + e, file=sys.stderr)
    if errors:
        print(f"check-layers: {len(errors)} problem(s); see docs/architecture.md", file=sys.stderr)
        return 1
    if not args.summary:
        print(f"check-layers: {len(files)} files, includes point down, no cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
