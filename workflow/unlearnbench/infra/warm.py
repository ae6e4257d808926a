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
- Off (the script runs in its own process, as before) when `UNLEARNBENCH_WARM=0`, under Slurm
  (`SLURM_JOB_ID`: a job owns its allocation), off Linux, or when anything in the hand-off fails
  before the job starts (the server acknowledges the fork; without that the script runs here).

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
import struct
import subprocess
import sys
import sysconfig
import time
import traceback

from .numerics import PORTABLE_ENV, THREAD_VARS

IDLE_S = 120.0
_CHILD = "UNLEARNBENCH_WARM_CHILD"
# torch._inductor.config: torch.use_deterministic_algorithms (every job's seed_everything) imports it,
# and with it torch._dynamo: 1-4 s per job otherwise
PRELOAD = ("numpy", "torch", "torch.nn.functional", "torch._inductor.config", "safetensors.torch", "pandas", "sklearn.linear_model",
           "sklearn.svm", "sklearn.model_selection", "sklearn.metrics", "matplotlib.pyplot", "yaml", "tqdm", "snakemake.script")


def enabled() -> bool:
    return (sys.platform.startswith("linux") and os.environ.get("UNLEARNBENCH_WARM", "1") != "0"
            and "SLURM_JOB_ID" not in os.environ and hasattr(socket, "send_fds"))


def socket_path() -> str:
    """Per user, interpreter and installed-package state; in a 0700 directory of the user's."""

    site = sysconfig.get_paths()["purelib"]
    try:
        stamp = os.stat(site).st_mtime_ns
    except OSError:
        stamp = 0
    own = os.stat(__file__).st_mtime_ns  # a changed server starts anew
    # the libraries in the server read the kernel-path variables once, at import: one server per mode

    kernels = "|".join(f"{k}={os.environ.get(k)}" for k in (*PORTABLE_ENV, *THREAD_VARS))
    key = hashlib.sha256(f"{os.path.realpath(sys.executable)}|{sys.prefix}|{sys.version}|{site}|{stamp}|{own}|{kernels}".encode())
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return os.path.join(base, f"unlearnbench-warm-{os.getuid()}", key.hexdigest()[:16] + ".sock")


def _private_dir(path: str) -> bool:
    d = os.path.dirname(path)
    os.makedirs(d, mode=0o700, exist_ok=True)
    st = os.stat(d)
    return st.st_uid == os.getuid() and st.st_mode & 0o077 == 0


def _send(sock: socket.socket, data: bytes, fds: list[int] | None = None) -> None:
    msg = struct.pack("!Q", len(data)) + data
    if fds:
        n = socket.send_fds(sock, [msg], fds)
        msg = msg[n:]
    sock.sendall(msg)


def _recv_request(sock: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
    if len(data) < 8:
        raise ConnectionError("short request")
    (n,) = struct.unpack("!Q", data[:8])
    body = data[8:]
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            raise ConnectionError("request cut short")
        body += chunk
    return json.loads(body), list(fds)


# --- client (the rule script's process) -------------------------------------------------------------

def _connect(path: str) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return s
    except OSError:
        s.close()
        return None


def _start_server(path: str, timeout: float = 120.0) -> socket.socket | None:
    """Start the server once (a lock file serialises concurrent jobs) and connect to it."""

    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
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
        if len(path.encode()) > 90 or not _private_dir(path):  # AF_UNIX names are limited to ~107 bytes
            return
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
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, (int, type(None))):
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
    finally:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
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
    try:
        req, fds = _recv_request(conn)
    except (OSError, ValueError):
        os._exit(1)
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
            conn.settimeout(None)
            last = time.monotonic()
            pid = os.fork()
            if pid == 0:
                _handle(conn, listener)
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
    path = argv[1] if len(argv) > 1 else socket_path()
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
