"""trainrun's metrics module: a rank logs metrics into the run's history.

    import trainrun
    trainrun.log("loss", 0.25, step=epoch)
    trainrun.log_metrics({"loss": 0.25, "accuracy": 0.91}, step=epoch)

Standard library only. trainrun puts this folder on each rank's PYTHONPATH and
sets TRAINRUN_METRICS_DIR; each process appends one JSON line per value to
$TRAINRUN_METRICS_DIR/rank_<RANK>.jsonl, written with a single write(2) on an
O_APPEND file, so a line is whole even when the rank is killed right after it and
the metrics logged before a crash stay in history. trainrun uploads the file with
the logs while the run runs (`trainrun history metrics RUN`).

A line: {"name": "loss", "value": 0.25, "step": 3, "time": 1700000000.123}
Non-finite values are written as the strings "NaN", "Infinity", "-Infinity";
values that are not numbers (a string) as strings; tags as {"tag": K, "value": V}.

Outside trainrun (no TRAINRUN_METRICS_DIR) the calls print nothing and do nothing
but warn once on stderr, so a script runs unchanged on a laptop.
"""
import json
import math
import os
import sys
import threading
import time

__all__ = ["log", "log_metrics", "log_list", "set_tag", "metrics_file", "rank"]

_lock = threading.Lock()
_fd = None
_warned = False
_next_step = {}  # metric name -> the step an unnumbered value gets


def rank():
    """This process's global rank: RANK, else the MPI launcher's variables, else 0."""
    for name in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def metrics_file():
    """Where this process's metrics go, or None outside trainrun."""
    directory = os.environ.get("TRAINRUN_METRICS_DIR")
    if not directory:
        return None
    return os.path.join(directory, "rank_%d.jsonl" % rank())


def _encode(value):
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        value = float(value)
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    try:  # numpy and torch scalars
        return _encode(value.item())
    except (AttributeError, TypeError, ValueError):
        return str(value)


def _write(record):
    global _fd, _warned
    line = (json.dumps(record, allow_nan=False) + "\n").encode("utf-8")
    with _lock:
        if _fd is None:
            path = metrics_file()
            if path is None:
                if not _warned:
                    _warned = True
                    sys.stderr.write("trainrun: TRAINRUN_METRICS_DIR is not set (not run by "
                                     "trainrun): metrics are not recorded\n")
                return
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.write(_fd, line)


def _step_for(name, step):
    with _lock:
        if step is None:
            step = _next_step.get(name, 0)
        step = int(step)
        _next_step[name] = max(_next_step.get(name, 0), step + 1)
        return step


def log(name, value, step=None):
    """Logs one value of metric `name`. `step` (an int) defaults to one past the last
    step this process logged for `name` (0 for the first)."""
    name = str(name)
    _write({"name": name, "value": _encode(value), "step": _step_for(name, step),
            "time": round(time.time(), 3)})


def log_metrics(values, step=None):
    """Logs each name: value of the dict `values` at `step` (as log() for each)."""
    for name, value in values.items():
        log(name, value, step)


def log_list(name, values):
    """Logs each value of `values` in order, at consecutive steps."""
    for value in values:
        log(name, value)


def set_tag(key, value=""):
    """Records a tag (a string) of the run; the last value of a key wins."""
    _write({"tag": str(key), "value": str(value), "time": round(time.time(), 3)})
