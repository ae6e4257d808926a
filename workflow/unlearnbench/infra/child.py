"""What a forked child does on its way out (the warm runner's job forks, the OS wall's stage fork):
its exit code as the interpreter would give it, and its streams flushed before `os._exit`."""

from __future__ import annotations

import sys


def exit_code(e: SystemExit) -> int:
    """`sys.exit(x)`'s code: x for an integer, 0 for None, 1 (with x printed) for anything else."""
    if isinstance(e.code, int):
        return e.code
    if e.code is not None:
        print(e.code, file=sys.stderr)
    return 0 if e.code is None else 1


def flush_std() -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:  # a closed or broken stream: nothing more to say
            pass
