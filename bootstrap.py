#!/usr/bin/env python3
"""Set up a local environment and run unlearnbench. Needs only Python >= 3.11.

    python3.11 bootstrap.py table1      # build results/tables/table1.csv (digits, CPU)
    python3.11 bootstrap.py test        # run the test suite
    python3.11 bootstrap.py run TARGET…  # any Snakemake target, e.g. results/tables/unsir_table1.csv
    python3.11 bootstrap.py bench       # the table1 benchmark (benchmarks/bench_table1.py)

The first call creates .venv/ and installs the pinned requirements.txt (torch and torchvision
from PyPI: a few GB); later calls reuse it until requirements.txt or pyproject.toml change.
Extra arguments are passed on to snakemake / pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".unlearnbench-deps"


def log(msg: str) -> None:
    print(f"[bootstrap] {msg}", flush=True)


def deps_hash() -> str:
    h = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def ensure_env() -> None:
    if sys.version_info < (3, 11):
        sys.exit("bootstrap.py needs Python >= 3.11 (run it with python3.11)")
    if not (BIN / "python").exists():
        log(f"creating virtual environment {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == deps_hash():
        return
    log("installing pinned dependencies from requirements.txt (first run downloads torch: a few GB)")
    # An empty constraint file: site-wide pip constraints must not override the pinned torch pair.
    env = {**os.environ, "PIP_CONSTRAINT": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + ["-r", str(ROOT / "requirements.txt")], check=True, env=env)
    subprocess.run(pip + ["--no-deps", "-e", str(ROOT)], check=True, env=env)
    STAMP.write_text(deps_hash())
    log("environment ready")


def run(cmd: list[str]) -> int:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}
    log(" ".join(cmd))
    return subprocess.call(cmd, cwd=ROOT, env=env)


def snakemake(targets: list[str]) -> int:
    return run([str(BIN / "snakemake"), "--workflow-profile", "workflow/profiles/default", *targets])


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in ("table1", "test", "run", "bench"):
        print(f"unknown command {cmd!r}; use table1, test, run or bench", file=sys.stderr)
        return 2
    ensure_env()
    if cmd == "table1":
        return snakemake(["results/tables/table1.csv", *rest])
    if cmd == "run":
        return snakemake(rest)
    if cmd == "bench":
        return run([str(BIN / "python"), "benchmarks/bench_table1.py", *rest])
    return run([str(BIN / "python"), "-m", "pytest", "-q", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
