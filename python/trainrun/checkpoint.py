"""Checkpoints for scripts run by trainrun (README "Checkpoints"). Standard library only.

trainrun uploads the top-level entries ("units": a file or a directory) of the folder
in TRAINRUN_CHECKPOINT_DIR once they are complete, and restores them there before the
ranks start. A unit is complete when the script says so (commit(), or the saving()
context) or after the job's quiet period. Names starting with '.' are never uploaded.

    import torch
    from trainrun import checkpoint

    start = 0
    last = checkpoint.latest()               # restored by trainrun, or None
    if last:
        state = torch.load(last)
        start = state["epoch"] + 1
    for epoch in range(start, epochs):
        ...
        with checkpoint.saving(f"epoch-{epoch}.pt") as path:
            torch.save({"epoch": epoch, "model": model.state_dict()}, path)
"""

import contextlib
import os
import pathlib
import shutil

# Where the script's signals go, relative to the checkpoint folder
# (runtime/run/checkpoint_sync.h kCheckpointCommitDir).
COMMIT_DIR = ".trainrun/commit"


def directory():
    """The checkpoint folder: $TRAINRUN_CHECKPOINT_DIR, else ./checkpoints."""
    return pathlib.Path(os.environ.get("TRAINRUN_CHECKPOINT_DIR", "checkpoints"))


def _unit(name):
    parts = pathlib.PurePosixPath(str(name)).parts
    if not parts or parts[0] in (".", "..", "/") or parts[0].startswith("."):
        raise ValueError(f"{name!r} is not a checkpoint name inside the folder")
    return parts[0]


def commit(name):
    """Tells trainrun that the unit `name` (a file or directory in the folder, or a
    path inside one) is complete: it is uploaded within about a second."""
    unit = _unit(name)
    marks = directory() / COMMIT_DIR
    marks.mkdir(parents=True, exist_ok=True)
    temp = marks / f".{unit}.{os.getpid()}"
    temp.write_text("")
    os.replace(temp, marks / unit)


@contextlib.contextmanager
def saving(name):
    """Yields a hidden temporary path to write the checkpoint `name` to (a file, or a
    directory the caller creates); on success renames it to `name` and commits it, so
    that no partial checkpoint ever has its final name. On an exception the temporary
    is removed."""
    unit = _unit(name)
    if unit != str(pathlib.PurePosixPath(str(name))):
        raise ValueError(f"{name!r}: saving() takes a top-level name")
    folder = directory()
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{unit}.tmp-{os.getpid()}"
    try:
        yield temp
        final = folder / unit
        if temp.is_dir() and final.is_dir():
            shutil.rmtree(final)
        os.replace(temp, final)
    except BaseException:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        elif temp.exists():
            temp.unlink()
        raise
    commit(unit)


def latest():
    """The newest unit in the folder (by modification time), or None."""
    folder = directory()
    if not folder.is_dir():
        return None
    units = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return max(units, key=lambda p: p.stat().st_mtime, default=None)
