"""torchrun with the one-function fix it needs on Debian 12.

Debian's torch 1.13 torchrun crashes at launch on Python 3.11 (pytorch issue 92319):
Std.from_str returns None for "0" because Python 3.11 no longer iterates the zero
member of an IntFlag. This shim replaces that one function and then runs torchrun's
own main() unchanged. Usage: python3 torchrun_shim.py [torchrun arguments...]
"""
import re
import sys

from torch.distributed.elastic.multiprocessing import api


def _from_str(vm):
    if re.fullmatch(r"[0-7]", vm):
        return api.Std(int(vm))
    return {int(i): api.Std(int(v)) for i, v in (m.split(":") for m in vm.split(","))}


api.Std.from_str = staticmethod(_from_str)

from torch.distributed.run import main  # noqa: E402  (after the patch)

if __name__ == "__main__":
    sys.argv[0] = "torchrun"
    sys.exit(main())
