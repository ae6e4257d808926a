"""Warm job runner: rule scripts run in a fork of a process that has already imported torch.

Importing torch costs 2-3 s of CPU per process, more than many of the workflow's jobs compute. Every
rule script starts with `delegate()`: on Linux it hands the script to a per-user server that imported
the heavy third-party libraries once (torch, numpy, pandas, scikit-learn, matplotlib, safetensors) and
forks one child per job. The child takes over the job's cwd, environment, sys.path, argv and its
stdin/stdout/stderr (passed as file descriptors), drops every `unlearnbench` module so the package is
imported fresh from the job's checkout, and runs the script file exactly as `python script.py` would.
Its exit code is the job's. Nothing of a job is run in the server itself, and no torch operation
runs before a fork (forking after `import torch` is what DataLoader workers do).

- A killed job (SIGTERM / SIGKILL of the script process, e.g. by Snakemake or `scancel`) kills its
  child: the server watches the job's connection and kills the child when it closes.
- The server exits after `IDLE_S` seconds without jobs. It is keyed by the interpreter, the
  site-packages directory's mtime, this file's and the numerics variables (numerics.py: torch and
  numpy read them once, at import), so installing a package or changing the mode starts a new one.
- `UNLEARNBENCH_WARM_TRACE=FILE` appends each job's run time and the libraries it still had to
  import (candidates for PRELOAD) to FILE.
- The socket lives in a folder only we can enter: `$XDG_RUNTIME_DIR/unlearnbench-warm-UID` (when set),
  else `/tmp/unlearnbench-warm-UID`, made mode 0700. One that is not ours alone (another user made the
  predictable name first: they could answer in our server's place) is never used: the next one is, down
  to `~/.cache/unlearnbench/warm` (`$XDG_CACHE_HOME`), and stderr says why once. A starting server
  removes what dead servers left there (sockets no one listens on, lock files no one holds).
- A malformed request (a short or cut header, over `MAX_REQUEST` bytes, not JSON of the right shape,
  not three descriptors, nothing within `REQUEST_TIMEOUT_S`) ends its own handler only; the server
  keeps serving. Any error in a handler ends that handler alone.
- Off (the script runs in its own process, as before) when `UNLEARNBENCH_WARM=0`, inside any batch
  system's job (`BATCH_JOB_VARS`: Slurm, PBS/Torque, LSF, SGE/UGE, HTCondor, Flux; a job owns its
  allocation: the runner serves the local executor only), off Linux, with no private folder, or when
  anything in the hand-off fails before the job starts (the server acknowledges the fork; without
  that the script runs here).

    python -m unlearnbench.infra.warm status    # where the socket is and whether a server answers
    python -m unlearnbench.infra.warm stop      # stop this interpreter's server
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
import runpy
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import sysconfig
import time
import traceback

from .child import exit_code, flush_std
from .numerics import PORTABLE_ENV, THREAD_VARS

IDLE_S = 120.0
MAX_REQUEST = 16 << 20  # bytes; a real request (the job's environment, argv, sys.path) is a few kB
REQUEST_TIMEOUT_S = 30.0  # a client sends its request at once
TMP = "/tmp"  # where the predictable folder is made (tests point it elsewhere)
_CHILD = "UNLEARNBENCH_WARM_CHILD"
# inside a batch system's job the runner is off: set by Slurm, PBS/Torque, LSF, HTCondor and Flux
BATCH_JOB_VARS = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "_CONDOR_JOB_AD", "FLUX_JOB_ID")
# torch._inductor.config: torch.use_deterministic_algorithms (every job's seed_everything) imports it,
# and with it torch._dynamo: 1-4 s per job otherwise
PRELOAD = ("numpy", "torch", "torch.nn.functional", "torch._inductor.config", "safetensors.torch", "pandas", "sklearn.linear_model",
           "sklearn.svm", "sklearn.model_selection", "sklearn.metrics", "matplotlib.pyplot", "yaml", "tqdm", "snakemake.script")


def in_batch_job(env=os.environ) -> bool:
    """Inside a batch system's job (SGE/UGE: JOB_ID alone is too common a name; with SGE_TASK_ID or SGE_ROOT)."""
    return any(v in env for v in BATCH_JOB_VARS) or "JOB_ID" in env and ("SGE_TASK_ID" in env or "SGE_ROOT" in env)


def enabled() -> bool:
    return (sys.platform.startswith("linux") and os.environ.get("UNLEARNBENCH_WARM", "1") != "0"
            and not in_batch_job() and hasattr(socket, "send_fds"))


def socket_path() -> str:
    """Per user, interpreter and installed-package state; in a private folder (`run_dir`: OSError without one)."""

    site = sysconfig.get_paths()["purelib"]
    try:
        stamp = os.stat(site).st_mtime_ns
    except OSError:
        stamp = 0
    own = os.stat(__file__).st_mtime_ns  # a changed server starts anew
    # the libraries in the server read the kernel-path variables once, at import: one server per mode

    kernels = "|".join(f"{k}={os.environ.get(k)}" for k in (*PORTABLE_ENV, *THREAD_VARS))
    key = hashlib.sha256(f"{os.path.realpath(sys.executable)}|{sys.prefix}|{sys.version}|{site}|{stamp}|{own}|{kernels}".encode())
    return os.path.join(run_dir(), key.hexdigest()[:16] + ".sock")


def run_dir() -> str:
    """The first folder that is ours alone of $XDG_RUNTIME_DIR/unlearnbench-warm-UID, /tmp/unlearnbench-warm-UID
    and ~/.cache/unlearnbench/warm (made mode 0700); says once on stderr why an earlier one was passed over."""
    name = f"unlearnbench-warm-{os.getuid()}"
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "unlearnbench", "warm")
    why = []
    for d in [os.path.join(b, name) for b in (os.environ.get("XDG_RUNTIME_DIR"), TMP) if b] + [cache]:
        problem = _not_private(d)
        if problem is None:
            if why:
                _say_once(d, f"warm runner: {'; '.join(why)}: its sockets are in {d} instead")
            return d
        why.append(problem)
    raise OSError(f"warm runner off: no private folder ({'; '.join(why)})")


def _not_private(d: str) -> str | None:
    """Why `d` cannot hold the sockets (made here when absent), or None when it is a folder only we can enter."""
    if len(os.path.join(d, "0" * 16 + ".sock").encode()) > 90:  # AF_UNIX names are limited to ~107 bytes
        return f"{d} is too long a name for a socket"
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        st = os.lstat(d)
    except OSError as e:
        return f"{d}: {e.strerror}"
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return f"{d} is not ours alone (uid {st.st_uid}, mode {stat.filemode(st.st_mode)})"
    return None


def _say_once(d: str, msg: str) -> None:
    note = os.path.join(d, "fallback-reason")  # the last reason told: each new one is told once
    try:
        with open(note) as fh:
            if fh.read() == msg:
                return
    except OSError:
        pass
    print(msg, file=sys.stderr, flush=True)
    try:
        with open(note, "w") as fh:
            fh.write(msg)
    except OSError:
        pass


def _send(sock: socket.socket, data: bytes, fds: list[int] | None = None) -> None:
    msg = struct.pack("!Q", len(data)) + data
    if fds:
        n = socket.send_fds(sock, [msg], fds)
        msg = msg[n:]
    sock.sendall(msg)


def _fill(sock: socket.socket, buf: bytearray, n: int) -> bytearray:
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError("request cut short")
        buf += chunk
    return buf


def _recv_request(sock: socket.socket) -> tuple[dict, list[int]]:
    """The job's request and its three standard streams; ValueError or OSError for anything else."""
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
    buf = _fill(sock, bytearray(data), 8)
    (n,) = struct.unpack("!Q", buf[:8])
    if n > MAX_REQUEST:
        raise ValueError(f"a request of {n} bytes")
    req = json.loads(_fill(sock, buf, 8 + n)[8:8 + n])
    strings = lambda xs: isinstance(xs, list) and all(isinstance(x, str) for x in xs)  # noqa: E731
    if not (isinstance(req, dict) and isinstance(req.get("script"), str) and isinstance(req.get("cwd"), str)
            and isinstance(req.get("env"), dict) and strings(list(req["env"].values()))
            and strings(req.get("argv")) and strings(req.get("path")) and len(fds) == 3):
        raise ValueError("a malformed request")
    return req, list(fds)


# --- client (the rule script's process) -------------------------------------------------------------

def _connect(path: str) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return s
    except OSError:
        s.close()
        return None


def _lock(path: str):
    """An exclusive lock on the file `path`; retried when a starting server cleaned the file away meanwhile."""
    while True:
        fh = open(path, "a")
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino:
                return fh
        except FileNotFoundError:
            pass
        fh.close()


def _start_server(path: str, timeout: float = 120.0) -> socket.socket | None:
    """Start the server once (a lock file serialises concurrent jobs) and connect to it."""

    with _lock(path + ".lock"):
        s = _connect(path)
        if s is not None:
            return s
        pkg = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the folder holding unlearnbench
        env = {**os.environ, "PYTHONPATH": pkg + os.pathsep + os.environ.get("PYTHONPATH", "")}
        env.pop(_CHILD, None)
        server = subprocess.Popen([sys.executable, "-m", "unlearnbench.infra.warm", "serve", path], env=env, cwd="/",
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True, close_fds=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout and server.poll() is None:
            s = _connect(path)
            if s is not None:
                return s
            time.sleep(0.05)
    return None


def _std_fds() -> list[int]:
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


def delegate() -> None:
    """Run the calling rule script in a warm child and exit with its code; return to run it here
    instead (inside the child itself, or where the warm runner is off or unavailable)."""
    if os.environ.get(_CHILD) == "1" or not enabled():
        return
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c") else None  # the file Snakemake runs
    if not script or not os.path.isfile(script):  # (`__file__` is the rule's script path, set by its preamble)
        return
    try:
        path = socket_path()
    except OSError as e:  # no private folder at all: said on every job
        print(e, file=sys.stderr)
        return
    sock = None
    try:
        sock = _connect(path) or _start_server(path)
        if sock is None:
            return
        req = {"script": os.path.abspath(script), "cwd": os.getcwd(), "env": dict(os.environ),
               "argv": sys.argv, "path": sys.path}
        sys.stdout.flush()
        sys.stderr.flush()
        _send(sock, json.dumps(req).encode(), _std_fds())
        started = sock.recv(1)  # b"S" once the job's fork exists
    except OSError:
        started = b""
    if started != b"S":
        if sock is not None:
            sock.close()
        return  # the job never started (a server that cannot serve it): run the script here
    code = b""
    while len(code) < 4:
        try:
            chunk = sock.recv(4 - len(code))
        except InterruptedError:
            continue
        if not chunk:
            print("warm runner: the job's worker died without an exit code", file=sys.stderr)
            os._exit(1)
        code += chunk
    rc = struct.unpack("!i", code)[0]
    os._exit(rc if rc >= 0 else 128 - rc)  # killed by signal k: 128 + k, as a shell reports it


# --- server ----------------------------------------------------------------------------------------

def _run_job(req: dict, fds: list[int]) -> None:
    """In the forked child: become the job, run its script, exit with its code (never returns)."""

    code, before, t0 = 1, set(sys.modules), time.perf_counter()
    try:
        for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
            if fd > 2:
                os.close(fd)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        os.environ[_CHILD] = "1"
        sys.argv = list(req["argv"])
        sys.path[:] = list(req["path"])
        for name in [m for m in sys.modules if m == "unlearnbench" or m.startswith("unlearnbench.")]:
            del sys.modules[name]  # imported fresh from the job's own sys.path
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0 and "torch" in sys.modules:  # as a fresh process reads it
            sys.modules["torch"].set_num_threads(int(threads))
        try:
            runpy.run_path(req["script"], run_name="__main__")
            code = 0
        except SystemExit as e:
            code = exit_code(e)
        except BaseException:
            traceback.print_exc()
            code = 1
    except BaseException:  # becoming the job failed (its cwd is gone, say): the job's stderr says why
        traceback.print_exc()
    finally:
        flush_std()
        if os.environ.get("UNLEARNBENCH_WARM_TRACE"):  # maintainers: what jobs still import (PRELOAD candidates)
            try:
                new = sorted({".".join(m.split(".")[:2]) for m in set(sys.modules) - before
                              if m.split(".")[0] not in ("unlearnbench", "__main__")})
                with open(os.environ["UNLEARNBENCH_WARM_TRACE"], "a") as fh:
                    fh.write(json.dumps({"script": os.path.basename(req["script"]), "code": code, "new_modules": new,
                                         "seconds": round(time.perf_counter() - t0, 3)}) + "\n")
            except Exception:
                pass
        os._exit(code)


def _handle(conn: socket.socket, listener: socket.socket) -> None:
    """In a forked handler: fork the job, relay its exit code, kill it if the job's process goes away."""

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    conn.settimeout(REQUEST_TIMEOUT_S)
    req, fds = _recv_request(conn)  # anything malformed raises: this handler ends, unanswered
    conn.settimeout(None)
    pid = os.fork()
    if pid == 0:
        conn.close()
        listener.close()
        _run_job(req, fds)
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(b"S")
    except OSError:  # the job's process is already gone
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os._exit(0)
    poller = select.poll()
    poller.register(conn, select.POLLIN | select.POLLHUP | select.POLLERR)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # Python < 3.9 or a kernel before 5.3: poll every 50 ms instead
        pidfd = None
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            try:
                conn.sendall(struct.pack("!i", os.waitstatus_to_exitcode(status) if status else 0))
            except OSError:
                pass
            break
        events = poller.poll(None if pidfd is not None else 50)
        if any(fd == conn.fileno() for fd, _ in events):  # the job's process closed its end: it was killed
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
    os._exit(0)


def _clean(d: str, own: str) -> None:
    """Remove what dead servers left in `d` (a server of another key: a new package, mode or version of
    this file): sockets no one listens on, and lock files no one holds whose socket is gone."""
    for name in sorted(os.listdir(d)):  # x.sock before x.sock.lock
        p = os.path.join(d, name)
        if p.startswith(own) or ".sock" not in name:
            continue
        try:
            if name.endswith(".lock"):
                if not os.path.lexists(p[:-len(".lock")]):
                    with open(p, "a") as fh:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held (a job starts that server): kept
                        os.unlink(p)  # (a job waiting on it sees the file gone and retries: _lock)
                continue
            st = os.lstat(p)  # x.sock, or x.sock.PID: a server's name it has not taken over yet (in a minute)
            if stat.S_ISSOCK(st.st_mode) and (name.endswith(".sock") or time.time() - st.st_mtime > 60):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(1.0)
                    try:
                        s.connect(p)
                    except ConnectionRefusedError:  # no server: unless a new one took the name meanwhile
                        if os.lstat(p).st_ino == st.st_ino:
                            os.unlink(p)
        except OSError:
            pass


def serve(path: str, idle: float = IDLE_S) -> None:

    os.environ.setdefault("MPLBACKEND", "Agg")
    for mod in PRELOAD:
        try:
            importlib.import_module(mod)
        except Exception:  # a library that is not installed is imported by the job that needs it
            pass
    tmp = f"{path}.{os.getpid() % 100000}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(tmp)
    os.chmod(tmp, 0o600)
    listener.listen(64)
    os.replace(tmp, path)  # atomically take over the name
    ino = os.stat(path).st_ino
    _clean(os.path.dirname(path), path)
    listener.settimeout(1.0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    children: set[int] = set()
    last = time.monotonic()
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                conn = None
            except OSError:  # out of descriptors, say: serve on
                time.sleep(0.1)
                conn = None
            for pid in list(children):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    children.discard(pid)
            if conn is None:
                if children:
                    last = time.monotonic()
                elif time.monotonic() - last > idle:
                    break
                try:
                    if os.stat(path).st_ino != ino:
                        break  # another server took over the name
                except OSError:
                    break
                continue
            last = time.monotonic()
            try:
                pid = os.fork()
            except OSError:  # out of processes: that client runs its job itself
                conn.close()
                continue
            if pid == 0:  # the handler: whatever happens in it ends it alone, never the server
                try:
                    _handle(conn, listener)
                finally:
                    os._exit(0)
            conn.close()
            children.add(pid)
    finally:
        try:
            if os.stat(path).st_ino == ino:
                os.unlink(path)
        except OSError:
            pass


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "status"
    try:
        path = argv[1] if len(argv) > 1 else socket_path()
    except OSError as e:
        print(e, file=sys.stderr)
        return 1
    if cmd == "serve":
        serve(path, float(os.environ.get("UNLEARNBENCH_WARM_IDLE", IDLE_S)))
        return 0
    if cmd == "status":
        s = _connect(path)
        print(f"{path}: {'a server answers' if s else 'no server'}{'' if enabled() else ' (warm runner off here)'}")
        return 0
    if cmd == "stop":  # a server whose name is gone exits within a second (jobs it runs finish)
        try:
            os.unlink(path)
            print(f"stopped {path}")
        except FileNotFoundError:
            print("no server")
        return 0
    print("usage: python -m unlearnbench.infra.warm [status|stop|serve PATH]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
