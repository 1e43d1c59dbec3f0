"""trainrun's stand-in for the `azureml` package (azureml.core.Run), so scripts that
log through Azure ML's Run API run unchanged under trainrun.

trainrun puts this folder on PYTHONPATH, after what the user set. When a real
azureml is installed anywhere else on sys.path (site-packages, say), this package
steps aside: it points `azureml.__path__` at the real package's folders and runs
the real __init__, so `import azureml.core` imports the real one. The stand-in is
used only when the real azureml is not importable.
"""
import os as _os
import sys as _sys

_here = _os.path.realpath(_os.path.dirname(_os.path.abspath(__file__)))
_real = []
for _entry in _sys.path:
    _candidate = _os.path.join(_entry or _os.getcwd(), "azureml")
    if _os.path.isdir(_candidate) and _os.path.realpath(_candidate) != _here \
            and _candidate not in _real:
        _real.append(_candidate)

TRAINRUN_COMPAT = not _real
if _real:
    __path__ = _real  # noqa: F821 (a package's search path)
    _init = _os.path.join(_real[0], "__init__.py")
    if _os.path.isfile(_init):
        with open(_init, "rb") as _f:
            exec(compile(_f.read(), _init, "exec"))
