"""Relearn time (both definitions) and AIN, on tensors built here and the embedded digits data."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from unlearnbench.data import prepare_dataset, to_float
from unlearnbench.errors import UserError
from unlearnbench.models import build_model
from unlearnbench.metrics.cost import ain
from unlearnbench.metrics.relearn import measure_relearn, settings
from unlearnbench.runtime import predict_logits, seed_everything
from unlearnbench.training import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup():
    d = prepare_dataset({"source": "digits", "image_size": 8, "channels": 1}, "data", False)
    x, y = to_float(d["x"]), torch.from_numpy(d["y"]).long()
    tr = np.random.default_rng(0).permutation(len(y))[:1200]
    seed_everything(0, 1)
    model = build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=8,
                        mean=d["mean"].tolist(), std=d["std"].tolist())
    train(model, x[tr], y[tr], {"optimizer": "sgd", "lr": 0.05, "epochs": 8, "batch_size": 64}, 0, CPU)
    f = tr[y[tr].numpy() == 0]
    return model.eval(), x[tr], y[tr], x[f], y[f]


S = settings({"epochs_max": 15, "steps_max_epochs": 3})


def erase_class0(model):
    """A crude 'unlearned' model: the forget class can never win (head row pushed down)."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.net.head.bias[0] -= 100.0
    return m


def test_original_needs_no_relearning(setup):
    model, xt, yt, xf, yf = setup
    r = measure_relearn(model, model, xt, yt, xf, yf, S, 0, CPU)
    assert r["original_forget_acc"] > 80
    assert r["relearn_epochs"] == 0 and r["relearn_steps"] == 0
    assert r["relearn_epochs_reached"] == 1 and r["relearn_steps_reached"] == 1


def test_erased_model_relearns_on_a_copy(setup):
    model, xt, yt, xf, yf = setup
    erased = erase_class0(model)
    state = copy.deepcopy(erased.state_dict())
    r = measure_relearn(erased, model, xt, yt, xf, yf, S, 0, CPU)
    assert float((predict_logits(erased, xf, CPU).argmax(1) == yf).float().mean()) == 0.0
    for k, v in erased.state_dict().items():  # measured on a copy: nothing changed
        assert torch.equal(v, state[k]), k
    assert r["relearn_steps"] > 0 and r["steps_curve"][0][1] == 0.0
    if r["relearn_steps_reached"]:
        assert r["steps_curve"][-1][1] >= 0.95 * r["original_forget_acc"]
        assert all(a < 0.95 * r["original_forget_acc"] for _, a in r["steps_curve"][:-1])
    else:
        assert r["relearn_steps"] == r["steps_cap"]
    assert r["relearn_epochs"] >= 1
    assert len(r["epochs_curve"]) == r["relearn_epochs"] + 1
    # deterministic for a seed
    r2 = measure_relearn(erased, model, xt, yt, xf, yf, S, 0, CPU)
    assert r2["relearn_steps"] == r["relearn_steps"] and r2["relearn_epochs"] == r["relearn_epochs"]


def test_cap_is_reported_when_the_target_is_not_reached(setup):
    model, xt, yt, xf, yf = setup
    s = settings({"epochs_max": 2, "steps_max_epochs": 1, "lr": 1e-9, "optimizer": "sgd"})
    r = measure_relearn(erase_class0(model), model, xt, yt, xf, yf, s, 0, CPU)
    assert r["relearn_epochs"] == 2 and r["relearn_epochs_reached"] == 0
    assert r["relearn_steps"] == r["steps_cap"] == math.ceil(len(yt) / 256) and r["relearn_steps_reached"] == 0


def test_ain():
    assert ain(30, 10) == 3.0
    assert ain(0, 10) == 0.0
    assert math.isnan(ain(5, 0))


@pytest.mark.parametrize("bad", [{"nope": 1}, {"epochs_max": 0}, {"steps_threshold": 1.5}, {"eval_on": "val"}])
def test_bad_settings(bad):
    with pytest.raises(UserError):
        settings(bad)


def test_a_capped_relearn_time_is_a_lower_bound_in_every_table(tmp_path):
    """Not only AIN: the relearn time itself carries a censor code, so the table shows '≥ cap'."""
    import json

    from unlearnbench.metrics.cost import run_relearn_metrics
    from unlearnbench.report.tables import aggregate, display_frame

    own, gold = tmp_path / "own.json", tmp_path / "gold.json"
    own.write_text(json.dumps({"relearn_epochs": 100.0, "relearn_epochs_reached": 0.0, "relearn_steps": 40.0,
                                "relearn_steps_reached": 1.0}))
    gold.write_text(json.dumps({"relearn_epochs": 12.0, "relearn_epochs_reached": 1.0, "relearn_steps": 20.0,
                                "relearn_steps_reached": 1.0}))
    run_relearn_metrics(str(own), str(gold), str(tmp_path / "m.json"))
    m = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert m["relearn_epochs_censor"] == 1 and m["relearn_steps_censor"] == 0 and m["ain_epochs_censor"] == 1
    rec = {"dataset": "d", "model": "m", "scenario": "s", "method": "x", "method_name": "finetune", "access": "a", "seed": 0}
    tidy = aggregate([{**rec, "metrics": m}], [])
    wide, _ = display_frame(tidy, None, ["relearn_epochs", "relearn_steps"])
    assert wide.iloc[0]["RT (epochs)"].startswith("≥ 100") and not wide.iloc[0]["RT (steps)"].startswith("≥")
