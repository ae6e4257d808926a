"""The warm runner (unlearnbench/infra/warm.py) against a hostile user: malformed requests end their own
handler and the server serves on; a socket folder another user made first is passed over for a private
one (and stderr says why, once); a starting server cleans what dead ones left; it is off inside any
batch system's job."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO
from unlearnbench.infra import warm

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the warm runner is Linux-only")

# a rule script as Snakemake runs it; TEST_TMP stands in for /tmp (the predictable folder's home)
SCRIPT = """
import os, sys
sys.path.insert(0, {lib!r})
from unlearnbench.infra import warm
warm.TMP = os.environ["TEST_TMP"]
warm.delegate()
print("child", os.environ.get("UNLEARNBENCH_WARM_CHILD"), flush=True)
sys.exit(int(os.environ.get("CODE", "0")))
"""


@pytest.fixture
def box(tmp_path, monkeypatch):
    """A private stand-in for /tmp and ~/.cache (short: AF_UNIX names are limited), in this process
    and in the jobs `run` starts; every server started in it is stopped afterwards."""
    root = Path(tempfile.mkdtemp(prefix="ubw", dir="/tmp"))
    tmp, cache = root / "t", root / "c"
    tmp.mkdir()
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(lib=str(REPO / "workflow")))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    for k in warm.BATCH_JOB_VARS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("TEST_TMP", str(tmp))
    monkeypatch.setenv("UNLEARNBENCH_WARM_IDLE", "20")
    monkeypatch.setattr(warm, "TMP", str(tmp))
    own = tmp / f"unlearnbench-warm-{os.getuid()}"

    def run(**env):
        return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env={**os.environ, **env},
                              capture_output=True, text=True, timeout=180)

    yield run, own, cache / "unlearnbench" / "warm"
    for sock in root.rglob("*.sock"):
        sock.unlink()  # its server exits within a second
    shutil.rmtree(root, ignore_errors=True)


def _server_pid(path: str) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        return struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]


def _answer(path: str, data: bytes, fds: list[int] | None = None, end: bool = True) -> bytes:
    """Send `data` (with `fds`) as a request, then end it (unless a job runs: that is its kill); what
    the server answers before it hangs up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(path)
        if fds:
            socket.send_fds(s, [data[:1]], fds)
            data = data[1:]
        s.sendall(data)
        if end:
            s.shutdown(socket.SHUT_WR)
        got = b""
        try:
            while chunk := s.recv(16):
                got += chunk
        except ConnectionResetError:  # it hung up with our bytes unread
            pass
        return got


def _req(**over) -> dict:
    return {"script": "/nonexistent.py", "cwd": "/", "env": {}, "argv": ["x"], "path": [], **over}


def _framed(obj) -> bytes:
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return struct.pack("!Q", len(body)) + body


def test_malformed_requests_end_their_handler_and_the_server_serves_on(box):
    run, _, _ = box
    out = run()
    assert out.returncode == 0 and "child 1" in out.stdout, out
    path = warm.socket_path()
    pid = _server_pid(path)
    std = [0, 1, 2]
    attacks = {
        "garbage": (b"garbage", None),
        "a header of 2**40 bytes": (struct.pack("!Q", 1 << 40) + b"{}", std),
        "a header over MAX_REQUEST": (struct.pack("!Q", warm.MAX_REQUEST + 1) + b"{}", std),
        "a cut body": (struct.pack("!Q", 100) + b"{}", std),
        "not JSON": (_framed(b"not json at all"), std),
        "not UTF-8": (_framed(b"\xff\xfe\xfd"), std),
        "nesting past the recursion limit": (_framed(b"[" * 200_000), std),
        "a list": (_framed([1, 2]), std),
        "a number as script": (_framed(_req(script=1)), std),
        "env values not strings": (_framed(_req(env={"A": 1})), std),
        "argv not a list": (_framed(_req(argv="x")), std),
        "no descriptors": (_framed(_req()), None),
        "one descriptor": (_framed(_req()), [1]),
    }
    for what, (data, fds) in attacks.items():
        assert _answer(path, data, fds) == b"", what  # never started
    # well formed, but the job cannot become itself (its cwd is gone): its stderr says why, its code is 1
    r, w = os.pipe()
    try:
        got = _answer(path, _framed(_req(cwd="/nonexistent-cwd")), [0, w, w], end=False)
        os.close(w)
        err = os.read(r, 1 << 16).decode()
    finally:
        os.close(r)
    assert got[:1] == b"S" and struct.unpack("!i", got[1:5])[0] == 1 and "FileNotFoundError" in err, (got, err)
    out = run(CODE="3")
    assert out.returncode == 3 and "child 1" in out.stdout, out
    assert _server_pid(path) == pid  # the same server throughout


@pytest.mark.parametrize("kind", ["mode 0777", "another user's", "a symlink"])
def test_a_folder_another_user_made_first_is_passed_over(box, kind, capsys):
    run, own, cache = box
    if kind == "a symlink":
        target = own.parent / "elsewhere"
        target.mkdir(mode=0o700)
        own.symlink_to(target)
    else:
        own.mkdir(mode=0o700)
        os.chmod(own, 0o777) if kind == "mode 0777" else os.chown(own, 65534, 65534)
    assert warm.run_dir() == str(cache)
    err = capsys.readouterr().err
    assert f"{own} is not ours alone" in err and f"sockets are in {cache} instead" in err, err
    assert warm.run_dir() == str(cache) and capsys.readouterr().err == ""  # said once
    assert (cache.stat().st_mode & 0o777, cache.stat().st_uid) == (0o700, os.getuid())
    assert not list(own.iterdir())
    if kind == "another user's":  # a real job: runs warm, its server's socket in the private folder
        (cache / "fallback-reason").unlink()  # (so that the job, too, says why)
        out = run()
        assert out.returncode == 0 and "child 1" in out.stdout and f"{own} is not ours alone" in out.stderr, out
        assert os.path.exists(warm.socket_path()) and warm.socket_path().startswith(str(cache))
        out = run()
        assert "child 1" in out.stdout and "not ours alone" not in out.stderr, out


def test_xdg_runtime_dir_then_tmp_then_cache_and_off_without_any(box, monkeypatch, capsys):
    _, own, cache = box
    xdg = own.parent / "xdg"
    (xdg / own.name).mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    assert warm.run_dir() == str(xdg / own.name)  # a private XDG_RUNTIME_DIR comes first
    os.chown(xdg / own.name, 65534, 65534)
    assert warm.run_dir() == str(own) and "not ours alone" in capsys.readouterr().err
    own.chmod(0o755)
    assert warm.run_dir() == str(cache)
    cache.chmod(0o750)
    with pytest.raises(OSError, match="no private folder"):
        warm.socket_path()
    monkeypatch.setenv("XDG_CACHE_HOME", "/" + "x" * 100)  # too long a socket name: passed over, made nowhere
    with pytest.raises(OSError, match="too long a name"):
        warm.run_dir()


def test_a_starting_server_removes_what_dead_servers_left(box):
    run, own, _ = box
    own.mkdir(mode=0o700)

    def dead_socket(p: Path) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(p))  # bound, never listening, closed: what a SIGKILLed server leaves

    for name in ("a" * 16 + ".sock", "e" * 16 + ".sock.123", "f" * 16 + ".sock.456"):
        dead_socket(own / name)
    os.utime(own / ("e" * 16 + ".sock.123"), (time.time() - 120,) * 2)  # an old one a server never took over
    dead_socket(Path(warm.socket_path()))  # this key's own dead server: replaced
    for name in ("a", "b", "c", "d"):
        (own / (name * 16 + ".sock.lock")).write_text("")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(own / ("d" * 16 + ".sock")))
    live.listen(1)
    held = open(own / ("c" * 16 + ".sock.lock"))
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        out = run()
    finally:
        live.close()
        held.close()
    assert out.returncode == 0 and "child 1" in out.stdout, out
    left = {p.name[0] + p.name[16:] for p in own.iterdir() if not p.name.startswith(Path(warm.socket_path()).name)}
    assert left == {"c.sock.lock", "d.sock", "d.sock.lock", "f.sock.456"}, left  # held, live, young


@pytest.mark.parametrize("env", [{"SLURM_JOB_ID": "1"}, {"PBS_JOBID": "1.pbs"}, {"LSB_JOBID": "1"},
                                 {"JOB_ID": "1", "SGE_TASK_ID": "undefined"}, {"JOB_ID": "1", "SGE_ROOT": "/sge"},
                                 {"_CONDOR_JOB_AD": "/var/condor/.job.ad"}, {"FLUX_JOB_ID": "f1"}],
                         ids=["slurm", "pbs", "lsf", "sge-task", "sge-root", "htcondor", "flux"])
def test_off_inside_any_batch_systems_job(box, monkeypatch, env):
    monkeypatch.delenv("UNLEARNBENCH_WARM", raising=False)
    for k in ("JOB_ID", "SGE_TASK_ID", "SGE_ROOT"):
        monkeypatch.delenv(k, raising=False)
    assert warm.enabled()
    monkeypatch.setenv("JOB_ID", "1")  # alone, too common a name to mean a job
    assert warm.enabled()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert not warm.enabled()
    if "PBS_JOBID" in env:  # and the script runs in its own process
        run, own, _ = box
        out = run()
        assert out.returncode == 0 and "child None" in out.stdout and not own.exists(), out
