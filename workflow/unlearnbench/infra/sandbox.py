"""The unlearn job's file sandbox: while a method runs, opening any file under the protected roots
(the workflow's results/ and the data root) that is not one of the job's declared inputs or
outputs raises AccessError, and so does starting a subprocess. Together with the job loading only
its declared data views, this makes the access contract a property of the process, not an honour
rule: the archive, the split, the forget request and other views are on disk but cannot be read.

Implemented with a CPython audit hook (PEP 578): it sees every `open()` (builtins, io, os) and
cannot be removed once installed; the hook's state lives in a closure, not in a module global.
It gives a readable AccessError, but code in the process can get around it (ctypes, native
libraries, the garbage collector): the OS wall (wall.py) is what holds.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import AccessError

_BLOCKED_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "pty.spawn")


def _resolve(p: str | os.PathLike) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(p)))


@contextmanager
def restrict_files(allowed: list[str], outputs: list[str], protected: list[str]) -> Iterator[None]:
    """Within the block, reading protected files other than `allowed` (and writing anywhere in
    protected roots except next to `outputs`) raises AccessError."""
    roots = [_resolve(p) for p in protected if p]
    if not roots:
        yield
        return
    readable = {_resolve(p) for p in allowed} | {_resolve(p) for p in outputs}
    out_dirs = {str(Path(_resolve(p)).parent) for p in outputs}
    state = {"active": True}

    def inside(path: str) -> bool:
        return any(path == r or path.startswith(r + os.sep) for r in roots)

    def hook(event: str, args: tuple) -> None:
        if not state["active"]:
            return
        if event == "open":
            target = args[0]
            if isinstance(target, int) or target is None:
                return
            path = _resolve(target)
            if not inside(path) or path in readable:
                return
            if str(Path(path).parent) in out_dirs and Path(path).name.startswith("."):
                return  # the job's own temporary output files
            raise AccessError(f"unlearning tried to open {target}, which is not among the job's declared inputs")
        elif event.startswith(_BLOCKED_EVENTS):
            raise AccessError(f"unlearning tried to start a process ({event}); methods run in-process only")

    sys.addaudithook(hook)
    try:
        yield
    finally:
        state["active"] = False
