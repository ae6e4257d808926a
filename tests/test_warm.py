"""The warm job runner (unlearnbench/infra/warm.py): a rule script runs in a fork of a server that already
imported torch, with the job's cwd, environment, streams and exit code; killing the script kills its
fork; the package is imported fresh from the job's own sys.path; off, the script runs in-process.
(That whole builds give the same bytes warm and cold is checked by tests/test_reliability.py's kill
tests: their reference build runs every job in its own process.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the warm runner is Linux-only")

SCRIPT = """
import os, sys, time
sys.path.insert(0, {lib!r})
from unlearnbench.infra.warm import delegate
delegate()
import unlearnbench
print("child", os.environ.get("UNLEARNBENCH_WARM_CHILD"), "torch", "torch" in sys.modules, "cwd", os.getcwd(),
      "x", os.environ.get("X"), "pkg", unlearnbench.__file__, flush=True)
print("to stderr", file=sys.stderr)
open("pid.tmp", "w").write(str(os.getpid()))
os.replace("pid.tmp", "pid")
if os.environ.get("SLEEP"):
    time.sleep(float(os.environ["SLEEP"]))
sys.exit(int(os.environ.get("CODE", "0")))
"""


@pytest.fixture
def runner(tmp_path):
    """Run a script like Snakemake does (`python file.py`) against a private server directory."""
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(lib=str(REPO / "workflow")))
    work = tmp_path / "cwd"
    work.mkdir()
    run = tempfile.mkdtemp(prefix="ubw", dir="/tmp")  # short: AF_UNIX socket names are limited to ~107 bytes
    base = {**os.environ, "XDG_RUNTIME_DIR": run, "UNLEARNBENCH_WARM_IDLE": "20"}
    base.pop("SLURM_JOB_ID", None)

    def start(**env):
        return subprocess.Popen([sys.executable, str(script)], cwd=work, env={**base, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    yield start, work, base
    subprocess.run([sys.executable, "-m", "unlearnbench.infra.warm", "stop"], env={**base, "PYTHONPATH": str(REPO / "workflow")},
                   capture_output=True)
    shutil.rmtree(run, ignore_errors=True)


def test_the_script_runs_in_a_warm_fork_with_its_cwd_env_streams_and_exit_code(runner):
    start, work, _ = runner
    for code in ("0", "3"):
        p = start(X="hello", CODE=code)
        out, err = p.communicate(timeout=120)
        assert p.returncode == int(code), (out, err)
        assert f"child 1 torch True cwd {work} x hello" in out, out  # torch was imported before the fork
        assert f"pkg {REPO / 'workflow' / 'unlearnbench' / '__init__.py'}" in out
        assert "to stderr" in err
        assert int((work / "pid").read_text()) != p.pid  # another process did the work


def test_off_it_runs_in_its_own_process(runner):
    start, work, _ = runner
    p = start(UNLEARNBENCH_WARM="0", X="y")
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0 and "child None torch False" in out, out
    assert int((work / "pid").read_text()) == p.pid
    p = start(SLURM_JOB_ID="7")  # a Slurm job owns its allocation: never forked from a shared server
    out, _ = p.communicate(timeout=120)
    assert "child None" in out, out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killing_the_script_kills_its_fork(runner, sig):
    start, work, _ = runner
    p = start(SLEEP="60")
    t0 = time.time()
    while not (work / "pid").exists():
        assert time.time() - t0 < 120, "the job never started"
        time.sleep(0.05)
    child = int((work / "pid").read_text())
    p.send_signal(sig)
    p.wait(timeout=10)
    t0 = time.time()
    while _alive(child):
        assert time.time() - t0 < 5, "the fork outlived its job"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_seeding_sets_deterministic_mode_without_importing_the_compiler():
    """seed_everything turns on deterministic algorithms (warn-only) without torch.use_deterministic_algorithms'
    import of torch._inductor / torch._dynamo (1-4 s per job); once inductor is loaded the public call is used."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from unlearnbench.runtime import seed_everything; import torch\n"
            "seed_everything(0, 1)\n"
            "assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()\n"
            "assert 'torch._dynamo' not in sys.modules and 'torch._inductor.config' not in sys.modules\n"
            "import torch._inductor.config as ic; torch.use_deterministic_algorithms(False); seed_everything(0, 1)\n"
            "assert ic.deterministic and torch.are_deterministic_algorithms_enabled()\n" % str(REPO / "workflow"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_a_server_that_does_not_start_the_job_leaves_it_to_the_script(runner, monkeypatch):
    """A socket that accepts and hangs up (a broken or foreign server) is never trusted with the job:
    without the server's acknowledgement of the fork the script runs in its own process."""
    import socket
    import threading

    from unlearnbench.infra import warm

    start, work, base = runner
    monkeypatch.setenv("XDG_RUNTIME_DIR", base["XDG_RUNTIME_DIR"])
    path = warm.socket_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)

    def hang_up():
        for _ in range(2):
            conn, _ = srv.accept()
            conn.close()

    t = threading.Thread(target=hang_up, daemon=True)
    t.start()
    p = start(X="z")
    out, err = p.communicate(timeout=120)
    srv.close()
    os.unlink(path)
    assert p.returncode == 0 and "child None torch False" in out, (out, err)
