"""The cross-machine golden test: a tiny study built in portable mode gives, file for file, the SHA-256
digests committed in tests/golden/tiny_study.sha256 (checkpoints, logits, metrics, attack scores,
artefacts, the tuning result and the table's csv). CI runs it on whatever CPU its machine has, so
each green run on another CPU model is one more proof that portable mode gives the same bytes there
(README, "Numerics": the CPU models it has passed on).

After a change that is meant to change numbers, rewrite the digests and commit them:
    UNLEARNBENCH_GOLDEN_UPDATE=1 python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path

import pytest

from conftest import TINY_CONFIG, run_snakemake

pytestmark = pytest.mark.integration
DIGESTS = Path(__file__).parent / "golden" / "tiny_study.sha256"
TARGETS = ["results/tables/golden.csv", "results/tables/golden_random.csv", "results/tuning/golden_tune.json"]


def golden_config() -> dict:
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["numerics"] = "portable"
    cfg["training"]["tiny"]["epochs"] = 4
    cfg["scenarios"] = {"golden_c3": {"type": "class", "classes": [3]}, "golden_r10": {"type": "random", "fraction": 0.1, "seed": 0}}
    cfg["methods"].update({
        "g_ft": {"method": "finetune", "epochs": 1},
        "g_ga": {"method": "gradient_ascent", "optimizer": "adam", "lr": 1e-3, "epochs": 3},
        "g_unsir": {"method": "unsir", "noise_copies": 1, "batch_size": 32, "noise_steps": 5},  # noise artefact, Adam
        "g_clue": {"method": "clue", "epochs": 1, "mask_mode": "top_layer", "mask_fraction": 0.05},  # mask artefact
        "g_fisher": {"method": "fisher", "alpha": 1e-6, "max_samples": 64},
        "g_tuned": {"method": "random_labels", "epochs": 1},
    })
    cfg["tuning"] = {"golden_tune": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "scenario": "golden_c3",
                                     "seed": [100, 101, 102], "budget": 2, "methods": {"g_tuned": {"lr": [1e-3, 1e-2]}}}}
    common = {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "seeds": [0],
              "metrics": ["acc_forget", "acc_retain", "acc_test_retain", "mia_svc_efficacy"]}
    cfg["studies"] = {"golden": {**common, "scenarios": ["golden_c3"],
                                 "methods": ["original", "retrain", "g_ft", "g_ga", "g_unsir", "g_clue", "g_fisher"]},
                      "golden_random": {**common, "scenarios": ["golden_r10"],
                                        "methods": ["original", "retrain", "g_ft", "g_ga", "g_fisher"]}}
    return cfg


def digests(work: Path) -> dict[str, str]:
    from helpers import is_timing_file

    out = {}
    for p in sorted((work / "results").rglob("*")):
        rel = p.relative_to(work).as_posix()
        if p.is_file() and not is_timing_file(p) and not rel.endswith(".png") and not rel.startswith("results/logs/"):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_tiny_study_has_the_committed_digests(tmp_path):
    cfg = golden_config()
    assert all(m.get("method") != "clue" or "tune" not in m for m in cfg["methods"].values())
    run_snakemake(tmp_path, cfg, TARGETS)
    got = digests(tmp_path)
    if os.environ.get("UNLEARNBENCH_GOLDEN_UPDATE") == "1":
        DIGESTS.write_text("".join(f"{h}  {p}\n" for p, h in sorted(got.items())))
        pytest.skip(f"wrote {len(got)} digests to {DIGESTS}")
    want = dict(reversed(line.split("  ", 1)) for line in DIGESTS.read_text().splitlines() if line.strip())
    want = {p.strip(): h for p, h in want.items()}
    assert set(got) == set(want), f"files differ: {sorted(set(got) ^ set(want))[:10]}"
    differ = sorted(p for p in want if got[p] != want[p])
    # the first file in dependency order that differs names the stage whose kernel path changed
    order = ("results/data/", "results/models/", "results/artefacts/", "results/runs/", "results/tuning/", "results/tables/")
    first = sorted(differ, key=lambda p: next((i for i, o in enumerate(order) if p.startswith(o)), len(order)))[:5]
    assert not differ, f"{len(differ)} of {len(want)} files differ from the committed digests; first: {first}"
