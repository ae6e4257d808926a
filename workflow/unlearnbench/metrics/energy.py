"""Per-run energy scores: mean -HFE (the free-energy OOD score of Liu et al. 2020; higher = more
in-distribution) on forget, retain and retained-class test samples (CLUE's Fig. 4 statistic)."""

from __future__ import annotations

import numpy as np

from ..data import RequestData
from ..io import read_npz, write_json
from ..parts.energy import neg_free_energy


def energy_metrics(logits: np.ndarray, rd: RequestData, temperature: float = 1.0) -> dict[str, float]:

    score = neg_free_energy(logits, temperature)
    parts = {"forget": rd.forget, "retain": rd.retain, "test_retain": rd.test_retain}
    m = {f"neg_hfe_{k}": float(score[v].mean()) for k, v in parts.items()}
    m["neg_hfe_gap"] = m["neg_hfe_retain"] - m["neg_hfe_forget"]
    return m


def run_energy_scores(outputs: str, data: str, split: str, request: str, out_json: str) -> None:
    rd = RequestData.load(data, split, request)
    write_json(out_json, {"metrics": energy_metrics(read_npz(outputs)["logits"], rd)})
