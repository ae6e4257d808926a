"""A hostile method for tests/test_wall.py, registered through UNLEARNBENCH_METHOD_MODULES.

It declares forget-only access, then tries every route to undeclared data found against the
in-process hook (issue 22) and records what each route gave in its info (unlearn.json): a route
that raised or failed is "blocked: ...", anything else is "REACHED: ...". The facts it needs (paths,
a concurrent process's pid) come from the environment variable ROGUE_FACTS (JSON), as a method that
knows the layout would guess them."""

from __future__ import annotations

import ctypes
import gc
import json
import mmap
import os
import subprocess
import sys
import types

from unlearnbench.methods import Access, UnlearningMethod, register_method


def _try(fn) -> str:
    try:
        got = fn()
    except BaseException as e:  # noqa: BLE001  every refusal counts: AccessError, PermissionError, OSError
        return f"blocked: {type(e).__name__}: {str(e)[:80]}"
    return f"REACHED: {str(got)[:80]}"


def _libc_read(path: str) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.open(path.encode(), os.O_RDONLY)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "libc.open failed")
    data = os.read(fd, 64) + mmap.mmap(fd, 0, prot=mmap.PROT_READ)[:64]
    return len(data)


def _dir_fd_read(path: str) -> int:
    root = os.open("/", os.O_RDONLY)
    fd = os.open(os.path.abspath(path).lstrip("/"), os.O_RDONLY, dir_fd=root)
    return len(os.read(fd, 64))


def _hard_link(path: str, where: str) -> int:
    dest = os.path.join(where, "rogue-link")
    os.link(path, dest)
    with open(dest, "rb") as fh:
        return len(fh.read(64))


def _symlink(path: str, where: str) -> int:
    dest = os.path.join(where, "rogue-symlink")
    os.symlink(os.path.abspath(path), dest)
    with open(dest, "rb") as fh:
        return len(fh.read(64))


def _exit_code(rc: int) -> str:
    if rc != 0:  # 127 << 8: the shell never started
        raise OSError(f"system() returned {rc}")
    return "ran"


def _system(cmd: str) -> str:
    return _exit_code(ctypes.CDLL(None).system(cmd.encode()))


def _rebuild_retain(facts: dict) -> int:
    """The project's own data functions with the study's config: the retain set, rebuilt."""
    from unlearnbench.data import make_forget_request, make_split, prepare_dataset

    spec = facts["dataset"]
    d = prepare_dataset(spec, facts["data_root"])
    split = make_split(d["y"], d["is_test"], spec["val_fraction"], spec["test_fraction"], spec.get("split_seed", 0))
    req = make_forget_request(d["y"], split, {"type": "class", "classes": [0]}, num_classes=len(d["class_names"]))
    return len(req["retain"])


def _switch_off_hook() -> str:
    """Find the in-process audit hook's closure through the garbage collector and switch it off, so
    that every route below meets the OS wall alone."""
    n = 0
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and obj.__name__ == "hook" and obj.__closure__:
            for cell in obj.__closure__:
                if isinstance(cell.cell_contents, dict) and "active" in cell.cell_contents:
                    cell.cell_contents["active"] = False
                    n += 1
    return f"{n} hook(s) switched off"


def _warm_socket(facts: dict) -> str:
    """Ask the warm runner to run a script that copies the retain view out."""
    import socket

    from unlearnbench.infra import warm

    script = facts["steal_script"]  # written by the test: copies the retain view to tmp/rogue-warm-copy
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(warm.socket_path())
    req = json.dumps({"script": script, "cwd": os.getcwd(), "env": dict(os.environ), "argv": [script],
                      "path": sys.path}).encode()
    warm._send(s, req, [0, 1, 2])
    return s.recv(1).decode()


def _proc_mem(pid: int) -> int:
    with open(f"/proc/{pid}/mem", "rb") as fh:  # (reading its maps first is refused as well)
        fh.seek(0x400000)
        return len(fh.read(64))


def _from_frames(frame, n_retain: int) -> str:
    """The job's own frames (from `frame` up): any array of retain size, or a path to undeclared data."""
    found = []
    while frame is not None:
        for v in list(frame.f_locals.values()):
            shape = getattr(v, "shape", None) if not callable(v) else None
            if isinstance(shape, tuple) and len(shape) == 4 and shape[0] == n_retain:
                found.append("an array of retain size")
            if isinstance(v, str) and v.endswith(("data.npz", "split.json", "class0.json", "retain.npz")):
                found.append(v)
        frame = frame.f_back
    if not found:
        raise LookupError("nothing undeclared in any caller frame")
    return ", ".join(found)


def _descriptors() -> list[str]:
    out = []
    for fd in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            out.append(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            pass  # the listing's own descriptor
    return out


def _write(path: str) -> str:
    with open(path, "w") as fh:
        fh.write("leak")
    return path


@register_method("rogue")
class Rogue(UnlearningMethod):
    """Declares forget-only access, then tries to read the retain set and the gold model anyway."""

    supports = ("class", "random")

    def access(self):
        return Access(forget=True)

    def unlearn(self, model, data, ctx):
        import numpy as np
        import torch

        facts = json.loads(os.environ["ROGUE_FACTS"])
        retain, gold, tmp = facts["retain"], facts["gold"], facts["tmp"]
        undeclared = [retain, os.path.abspath(retain), facts["archive"], facts["split"], facts["request"]]
        r = {"in-process hook": _switch_off_hook()}  # from here on only the OS stands in the way
        for i, p in enumerate(undeclared):
            r[f"open {i}"] = _try(lambda p=p: len(open(p, "rb").read(64)))
        r["os.open"] = _try(lambda: len(os.read(os.open(retain, os.O_RDONLY), 64)))
        r["numpy.load"] = _try(lambda: np.load(retain)["x"].shape)
        r["numpy.fromfile"] = _try(lambda: np.fromfile(retain, dtype=np.uint8, count=64).size)
        r["pathlib"] = _try(lambda: len(__import__("pathlib").Path(retain).read_bytes()))
        r["/proc/self/cwd"] = _try(lambda: len(open(f"/proc/self/cwd/{retain}", "rb").read(64)))
        r["torch.from_file"] = _try(lambda: torch.from_file(retain, size=64, dtype=torch.uint8).numel())
        r["ctypes libc.open + read/mmap"] = _try(lambda: _libc_read(retain))
        r["os.open dir_fd=/"] = _try(lambda: _dir_fd_read(retain))
        r["hard link in /tmp"] = _try(lambda: _hard_link(retain, tmp))
        r["hard link in the private temp dir"] = _try(lambda: _hard_link(retain, os.environ.get("TMPDIR", tmp)))
        r["symlink"] = _try(lambda: _symlink(retain, os.environ.get("TMPDIR", tmp)))
        r["safetensors.safe_open gold"] = _try(lambda: len(__import__("safetensors").safe_open(gold, "pt").keys()))
        r["ctypes libc.system cp"] = _try(lambda: _system(f"cp {retain} {tmp}/rogue-system-copy"))
        r["subprocess"] = _try(lambda: subprocess.run(["cat", retain], capture_output=True).stdout[:10])
        r["os.system"] = _try(lambda: _exit_code(os.system(f"cp {retain} {tmp}/rogue-os-system-copy")))
        r["os.fork"] = _try(lambda: os.fork() or os._exit(0))
        r["load_digits + prepare_dataset/make_split/make_forget_request"] = _try(lambda: _rebuild_retain(facts))
        r["sklearn load_digits"] = _try(lambda: __import__("sklearn.datasets").datasets.load_digits().data.shape)
        r["warm runner socket"] = _try(lambda: _warm_socket(facts))
        r["/proc/<pid>/mem of another job"] = _try(lambda: _proc_mem(facts["holder_pid"]))
        r["/proc/<pid>/mem of its own job's parent"] = _try(lambda: _proc_mem(os.getppid()))
        r["write into results/"] = _try(lambda: _write("results/rogue-leak.txt"))
        r["write into /tmp"] = _try(lambda: _write(f"{tmp}/rogue-leak.txt"))
        caller = sys._getframe().f_back  # the job's frames, above this method
        r["caller frames"] = _try(lambda: _from_frames(caller, facts["n_retain"]))
        r["descriptors it inherited"] = "info: " + " ".join(_descriptors())
        n_retain = facts["n_retain"]
        r["gc: arrays of retain size"] = str(sum(1 for o in gc.get_objects() if isinstance(o, (np.ndarray, torch.Tensor))
                                                 and o.ndim == 4 and o.shape[0] == n_retain))
        ctx.info["routes"] = r
        return model
