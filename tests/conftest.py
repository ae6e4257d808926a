"""Shared fixtures: tiny configs and a helper that runs the Snakemake workflow in a temp directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
from unlearnbench.infra import numerics  # noqa: E402  (standard library only)

# Every test, in-process or through Snakemake, runs the portable kernel paths (infra/numerics.py): set before
# torch or numpy is imported, so a test that judges a method's numbers gets the same bits on any CPU.
numerics.export("portable", 1)

import pytest  # noqa: E402
import yaml  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@pytest.fixture(autouse=True, scope="session")
def _portable_numerics():
    """Fails the run if torch or numpy were loaded before the variables above (a plugin, say)."""
    import numpy  # noqa: F401
    import torch  # noqa: F401

    numerics.check("portable")


# A digits setup small enough for CI: 8x8 images, a small CNN, a few epochs.
TINY_CONFIG = {
    "device": "cpu",
    "threads": 1,
    "datasets": {"tiny_digits": {"source": "digits", "image_size": 8, "channels": 1,
                                 "val_fraction": 0.1, "test_fraction": 0.2}},
    "models": {"tiny_cnn": {"arch": "smallcnn", "width": 8}},
    "training": {"tiny": {"optimizer": "sgd", "lr": 0.05, "epochs": 8, "batch_size": 64, "schedule": "cosine"}},
    # config.yaml tunes the baselines on the full digits cell (a ResNet-20 and 18 trials): tests that
    # use them run their untuned defaults; tests/test_tuning.py covers tuning on a tiny entry
    "methods": {m: {"tune": None} for m in ("finetune", "gradient_ascent", "random_labels")},
}


# One study over TINY_CONFIG for the reliability batteries: its table is TINY_TARGET.
TINY_STUDY = {"tiny": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "scenarios": ["class0"],
                       "methods": ["original", "retrain", "finetune"], "seeds": [0], "noise_floor": False}}
TINY_TARGET = "results/tables/tiny.csv"


def tiny_study_config() -> dict:
    """TINY_CONFIG with 3 training epochs, an untuned one-epoch finetune and TINY_STUDY."""
    import copy

    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["training"]["tiny"]["epochs"] = 3
    cfg["methods"] = {"finetune": {"method": "finetune", "epochs": 1, "tune": None}}  # config.yaml tunes it on digits
    cfg["studies"] = copy.deepcopy(TINY_STUDY)
    return cfg


def run_snakemake(workdir: Path, config: dict, targets: list[str], *extra: str, check: bool = True,
                  env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the repository's workflow in `workdir` with `config` layered over config.yaml (`env`: extra
    environment variables, e.g. UNLEARNBENCH_WARM=0 for jobs in their own processes)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "test_config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(cfg), "--cores", "2", *extra, "--", *targets]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture
def tiny_config() -> dict:
    import copy

    return copy.deepcopy(TINY_CONFIG)


def dry_run_jobs(dry_run: str) -> list[dict]:
    """The jobs of a `snakemake -n` listing: rule, input files, wildcards."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", dry_run):
        m = re.match(r"rule (\w+):", block)
        if not m:
            continue
        inp = re.search(r"^\s+input: (.*)$", block, re.M)
        wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        jobs.append({"rule": m.group(1), "input": inp.group(1).split(", ") if inp else [],
                     "wildcards": dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {}})
    return jobs
