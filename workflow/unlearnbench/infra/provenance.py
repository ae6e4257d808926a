"""Provenance of every artefact: which code, environment, machine and inputs made it.

Every job (cli.script_main) writes, after its stage succeeded, one sidecar next to its first output:
`<first output>.prov.json` with
- the rule, its wildcards and the hash of its params (the job's own config block, e.g. the method
  instance or the training recipe),
- the git commit of the checkout and whether the tree was dirty,
- the versions of Python, unlearnbench, torch, torchvision, timm, numpy, scikit-learn, snakemake,
- torch's backend facts (CUDA / cuDNN versions, device name, deterministic flags, threads) when the
  job imported torch, and the numerics mode with the kernel paths the job ran (numerics.facts),
- the host, and
- the SHA-256 of every input and output file (so that a changed input can be found without
  rerunning anything: `python -m unlearnbench audit results/`).
The sidecar holds no time or date: two runs of the same commit on the same machine write the same
bytes. Tables carry a provenance footer (commit, environment hash, date) in their rendered views.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__
from ..io import write_json
from .numerics import facts

PACKAGES = ("torch", "torchvision", "timm", "numpy", "scikit-learn", "snakemake", "safetensors", "pandas")
REPO = Path(__file__).resolve().parents[3]
SUFFIX = ".prov.json"


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    """{commit, dirty} of the checkout the library runs from (None outside a git checkout)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        # the benchmark records are results, not code: a bench that writes them leaves the code clean
        status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/out")
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


@lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:

    out = {"python": platform.python_version(), "unlearnbench": __version__}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def environment_hash(v: dict | None = None) -> str:
    return hashlib.sha256(json.dumps(v or versions(), sort_keys=True).encode()).hexdigest()[:12]


def backend() -> dict[str, Any]:
    """torch's backend facts, only if this process imported torch (never imports it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {"torch_imported": False}
    cuda = torch.cuda.is_available()
    return {
        "torch_imported": True, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark), "threads": torch.get_num_threads(),
    }


def params_hash(params: Any) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def record(rule: str, wildcards: dict, params: Any, inputs: list[str], outputs: list[str],
           mode: str | None = None, wall: dict | None = None) -> dict[str, Any]:

    return {"wall": wall,
        "rule": rule, "wildcards": dict(sorted(wildcards.items())), "params_hash": params_hash(params),
        "git": git_state(), "versions": versions(), "environment_hash": environment_hash(), "backend": backend(),
        "numerics": {"mode": mode, **facts()}, "host": socket.gethostname(),
        "inputs": {p: sha256(p) for p in sorted(set(inputs)) if os.path.isfile(p)},
        "outputs": {p: sha256(p) for p in sorted(set(outputs)) if os.path.isfile(p)},
    }


def sidecar_path(outputs: list[str]) -> Path | None:
    files = [p for p in outputs if not str(p).endswith(SUFFIX)]
    return Path(str(files[0]) + SUFFIX) if files else None


def write_job_provenance(smk: Any, wall: dict | None = None) -> None:
    """Called by script_main after a stage succeeded: the job's provenance sidecar."""

    outputs = [str(p) for p in smk.output]
    path = sidecar_path(outputs)
    if path is None:
        return
    params = {k: v for k, v in smk.params.items()} if hasattr(smk.params, "items") else list(smk.params)
    inputs = [str(p) for p in smk.input]
    wildcards = {k: str(v) for k, v in smk.wildcards.items()} if hasattr(smk.wildcards, "items") else {}
    write_json(path, record(smk.rule, wildcards, params, inputs, outputs, smk.config.get("numerics"), wall))


def footer() -> str:
    """One line for rendered tables: commit, environment hash, date (views only: not deterministic)."""

    g = git_state()
    commit = (g["commit"] or "unknown")[:10] + ("-dirty" if g["dirty"] else "")
    return (f"Provenance: commit {commit}, environment {environment_hash()} "
            f"(torch {versions()['torch']}, Python {versions()['python']}), host {socket.gethostname()}, "
            f"rendered {datetime.date.today().isoformat()}.")
