"""The OS wall around a job that runs method code (rules unlearn, time_unlearn and the artefact
stages): the kernel, not Python, keeps the method from data it did not declare.

`walled(reads, hidden)` forks the job. The child restricts itself, irreversibly, and runs the stage
with its outputs redirected to a private folder; the parent, which never runs method code, waits and
moves the outputs into place only when the child succeeded. In the child:
- Landlock (`landlock` on PyPI, kernel ≥ 5.13): it may read its declared inputs, the Python
  installation and the system libraries, minus `hidden` (results/, the data root, the embedded
  dataset's package data, Debian's datasets); write only its private folder; execute nothing.
  Landlock also stops it from tracing or reading the memory of any process outside its own domain.
- seccomp (`pyseccomp` over the system's libseccomp): no socket, no new process (fork, vfork, clone
  without CLONE_THREAD, exec), no ptrace or process_vm_readv, no namespaces, mounts or BPF.
- The process is non-dumpable (every job is: `no_dump()`).
Where the kernel or the libraries offer no such mechanism the job still runs, and says which parts of
the wall were missing (`state()`: provenance, unlearn.json and the table's access column).
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import json
import os
import shutil
import sys
import sysconfig
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from .child import exit_code, flush_std

_STATE: dict[str, Any] = {"enforced": None, "why": "not a walled job"}  # None: no wall was tried

PR_SET_DUMPABLE = 4
CLONE_THREAD = 0x00010000
# system calls a method never needs: processes, sockets, other processes' memory, kernel surfaces
_DENIED = ("execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv", "process_vm_writev", "socket",
           "socketpair", "connect", "bind", "listen", "accept", "accept4", "kcmp", "pidfd_getfd", "unshare", "setns",
           "mount", "open_tree", "move_mount", "fsopen", "pivot_root", "chroot", "bpf", "userfaultfd", "perf_event_open",
           "keyctl", "add_key", "request_key", "io_uring_setup", "name_to_handle_at", "open_by_handle_at")
# system files the libraries read (thread counts, CPU features, locale, the dynamic loader's cache)
_SYSTEM_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32", "/usr/local/lib", "/etc",
                "/sys/devices/system/cpu", "/sys/devices/system/node", "/sys/fs/cgroup", "/usr/share/zoneinfo",
                "/usr/share/locale", "/usr/share/fonts", "/usr/share/matplotlib")
_SYSTEM_FILES = ("/proc/driver/nvidia", "/sys/bus/pci/devices", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/dev/null", "/dev/zero", "/dev/urandom",
                 "/dev/random", "/proc/sys/kernel/osrelease", "/proc/sys/vm/overcommit_memory")
# data that ships inside a package: the embedded dataset (scikit-learn's digits) and Debian's data sets
PACKAGE_DATA = (("sklearn", "datasets/data"), ("sklearn", "datasets/images"))
SYSTEM_DATA = ("/usr/share/datasets",)


def state() -> dict[str, Any]:
    """What the current process runs under: {"enforced": True/False (None: no wall tried), "landlock_abi",
    "seccomp", "why" (what was missing)}."""
    return dict(_STATE)


def support() -> dict[str, Any]:
    """What this machine offers, without entering the wall: {"landlock_abi": int (0: none), "seccomp": bool,
    "why": what is missing}."""
    missing, abi = [], 0
    try:
        import landlock

        ctypes.set_errno(0)
        abi = int(landlock.landlock_abi_version())
    except (ImportError, OSError, AttributeError) as e:
        missing.append(f"Landlock ({_reason(e)})")
    try:
        import pyseccomp  # noqa: F401
    except (ImportError, OSError, RuntimeError) as e:
        missing.append(f"seccomp ({_reason(e)})")
    return {"landlock_abi": abi, "seccomp": not any(m.startswith("seccomp") for m in missing),
            **({"why": "no " + " and no ".join(missing)} if missing else {})}


def no_dump() -> None:
    """Make this process non-dumpable: no core file, and its /proc/<pid>/mem only for privileged tracers."""
    try:
        _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _real(p: str | os.PathLike) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(p)))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def hidden_data(extra: list[str]) -> list[str]:
    """Folders no walled job may read unless declared: `extra` (results/, the data root), the embedded
    dataset's package data and the system's data sets."""
    out = [_real(p) for p in extra if p]
    for pkg, sub in PACKAGE_DATA:
        spec = importlib.util.find_spec(pkg)
        if spec and spec.submodule_search_locations:
            out += [_real(os.path.join(loc, sub)) for loc in spec.submodule_search_locations]
    return out + [_real(p) for p in SYSTEM_DATA]


def python_dirs() -> list[str]:
    """The Python installation, its site-packages and this package's source tree."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             *(sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")),
             str(Path(__file__).resolve().parents[2])}  # workflow/: the library and its scripts
    paths |= {p for p in sys.path if p and os.path.isabs(p) and ("site-packages" in p or p.endswith(".zip"))}
    return sorted({_real(p) for p in paths if p and os.path.exists(p)})


def _expand(root: str, hidden: list[str], listed: list[str]) -> list[str]:
    """`root` as a list of paths that together cover it except every hidden folder below it; the
    folders split on the way go to `listed` (their names may be listed, for imports)."""
    inner = [h for h in hidden if _under(h, root)]
    if not inner:
        return [root]
    if any(h == root for h in inner) or not os.path.isdir(root):
        return []
    listed.append(root)
    out = []
    for entry in os.scandir(root):
        out += _expand(_real(entry.path), inner, listed) if not entry.is_symlink() else []
    return out


def _readable(reads: list[str], hidden: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(folders, files, listed folders) to grant read access to: the declared inputs as given (they
    may lie in a hidden folder: that is what declaring means), the system's and Python's folders
    minus hidden ones, and the folders split around them (names only)."""
    dirs, listed, files = [], [], [p for p in _SYSTEM_FILES if os.path.exists(p)]
    files.append(f"/proc/{os.getpid()}")  # its own /proc entry (a folder)
    for p in reads:
        (dirs if os.path.isdir(p) else files).append(_real(p))
    for root in [*python_dirs(), *_SYSTEM_DIRS]:
        r = _real(root)
        if os.path.exists(r) and not any(_under(r, h) for h in hidden):
            dirs += _expand(r, hidden, listed)
    return sorted(set(dirs)), sorted(set(files)), sorted(set(listed))


def _landlock(reads: list[str], writable: str, hidden: list[str]) -> int:
    """Apply the file-system wall; returns the Landlock ABI used (raises OSError when unavailable)."""
    try:
        import landlock
        from landlock import FSAccess
    except ImportError as e:
        raise OSError(f"the landlock package is not installed ({e})") from None

    dirs, files, listed = _readable(reads, hidden)
    ctypes.set_errno(0)  # the wrapper reads errno after every call
    abi = landlock.landlock_abi_version()
    rs = landlock.Ruleset()  # handles every access right this kernel knows: all denied unless granted
    file_read = FSAccess.READ_FILE
    dir_read = FSAccess.READ_FILE | FSAccess.READ_DIR
    for p in listed:
        ctypes.set_errno(0)
        rs.allow(p, rules=FSAccess.READ_DIR)
    for p in dirs + files:  # a folder's entries may be files (a folder split around a hidden one)
        ctypes.set_errno(0)
        rs.allow(p, rules=dir_read if os.path.isdir(p) else file_read)
    write = (FSAccess.all() & ~FSAccess.EXECUTE) & ~(FSAccess.REFER if abi >= 2 else 0)
    ctypes.set_errno(0)
    rs.allow(writable, rules=write)
    for dev in ["/dev/null", *_gpu_devices()]:  # (GPU nodes: untested, no GPU machine was lent)
        ctypes.set_errno(0)
        rs.allow(dev, rules=FSAccess.READ_FILE | FSAccess.WRITE_FILE | (FSAccess.IOCTL_DEV if abi >= 5 else 0))
    ctypes.set_errno(0)
    rs.apply()
    os.close(rs._fd)  # the ruleset itself is no longer needed
    return abi


def _gpu_devices() -> list[str]:
    """CUDA's device nodes, where there are any: a job on the GPU opens them after the wall is up."""
    return [os.path.join("/dev", n) for n in sorted(os.listdir("/dev")) if n.startswith(("nvidia", "dri"))]


def _seccomp() -> None:
    try:
        import pyseccomp as sc
    except ImportError as e:
        raise OSError(f"the pyseccomp package is not installed ({e})") from None

    f = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in _DENIED:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (OSError, ValueError, RuntimeError):
            pass  # a call this architecture does not have
    f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))  # a process, not a thread
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags are out of reach: glibc then falls back to clone
    f.load()


def enter(reads: list[str], writable: str, hidden: list[str]) -> dict[str, Any]:
    """Restrict this process for the rest of its life (see the module docstring); returns state()."""
    t0 = time.perf_counter()
    no_dump()
    missing, abi = [], 0
    try:
        import pyseccomp  # noqa: F401  it finds libseccomp through ldconfig: before the wall stops processes
    except (ImportError, OSError, RuntimeError):
        pass
    try:
        abi = _landlock(reads, writable, hidden)
    except (ImportError, OSError, AttributeError) as e:
        missing.append(f"Landlock ({_reason(e)})")
    try:
        _seccomp()
    except (ImportError, OSError, AttributeError, RuntimeError) as e:
        missing.append(f"seccomp ({_reason(e)})")
    _STATE.clear()
    _STATE.update({"enforced": not missing, "landlock_abi": abi, "seccomp": not any(m.startswith("seccomp") for m in missing),
                   "setup_seconds": round(time.perf_counter() - t0, 4)})
    if missing:
        _STATE["why"] = "no " + " and no ".join(missing)
    return state()


def _reason(e: BaseException) -> str:
    return str(getattr(e, "reason", None) or e).splitlines()[0][:160]


def walled(reads: list[str], hidden: list[str], outputs: dict[str, str], run: Callable[[dict[str, str]], None]) -> int:
    """Run `run(private_outputs)` in a walled child (module docstring); on success move its outputs
    to `outputs` and return 0, else return the child's exit code (its error went to stderr). The
    child's wall state is `state()` in the parent too. `UNLEARNBENCH_WALL=0` (to measure what the wall
    costs, or to debug a method): `run(outputs)` here, recorded as not enforced."""
    if os.environ.get("UNLEARNBENCH_WALL", "1") == "0":
        _STATE.clear()
        _STATE.update({"enforced": False, "landlock_abi": 0, "seccomp": False, "why": "switched off (UNLEARNBENCH_WALL=0)"})
        run(outputs)
        return 0
    private = tempfile.mkdtemp(prefix="unlearnbench-wall-")  # 0700, outside results/
    os.makedirs(os.path.join(private, "tmp"))
    redirected = {k: os.path.join(private, "out", k, os.path.basename(v)) for k, v in outputs.items()}
    for p in redirected.values():
        os.makedirs(os.path.dirname(p), exist_ok=True)
    status_file = os.path.join(private, "wall.json")
    flush_std()
    pid = os.fork()
    if pid == 0:  # the child: wall up, then the stage; never returns
        code = 1
        try:
            os.environ["TMPDIR"] = tempfile.tempdir = os.path.join(private, "tmp")
            os.environ["JOBLIB_MULTIPROCESSING"] = "0"  # no semaphores to probe: methods run in this process
            st = enter(reads, private, hidden)
            Path(status_file).write_text(json.dumps(st))
            run(redirected)
            code = 0
        except SystemExit as e:
            code = exit_code(e)
        except BaseException:
            traceback.print_exc()
        finally:
            flush_std()
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if os.path.exists(status_file):
            _STATE.clear()
            _STATE.update(json.loads(Path(status_file).read_text()))
        if code == 0:
            for k, dest in outputs.items():
                if os.path.lexists(redirected[k]):
                    _commit(redirected[k], dest)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return code if code >= 0 else 128 - code


def _commit(src: str, dest: str) -> None:
    """Move src to dest atomically (a copy beside dest, then a rename, when they are on other disks)."""
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    try:
        os.replace(src, dest)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    tmp = os.path.join(os.path.dirname(os.path.abspath(dest)), f".{os.path.basename(dest)}.wall-{os.getpid()}")
    (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, tmp)
    if os.path.isdir(dest) and not os.path.islink(dest):
        shutil.rmtree(dest)
    os.replace(tmp, dest)
