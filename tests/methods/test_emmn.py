"""EMMN: the maximising noise raises the original's CE on the forget class, the minimising noise
lowers it on retained classes, the model is untouched by noise learning, the method forgets class 0
on digits with no data at all (at a cost to the retained classes, as the thesis reports)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from helpers import make_setup
from unlearnbench.errors import AccessError, UserError
from unlearnbench.methods import UnlearnData, create_method
from unlearnbench.methods.emmn import learn_class_noise

CPU = torch.device("cpu")
SHAPE = (1, 8, 8)
# Digits setting: a larger noise batch with fewer copies and the paper's impair-repair schedule.
DIGITS = {"method": "emmn", "noise_batch": 32, "noise_copies": 4, "batch_size": 32,
          "passes": "IR", "impair_lr": 5e-4, "repair_lr": 5e-4}


@pytest.fixture(scope="module")
def setup():
    return make_setup()


def ce(model, x, c):
    with torch.no_grad():
        return F.cross_entropy(model(x), torch.full((len(x),), c)).item()


def test_maximising_noise_raises_forget_ce_minimising_lowers_retain_ce(setup):
    model = copy.deepcopy(setup.model).eval()
    before = copy.deepcopy(model.state_dict())
    hp = create_method({"method": "emmn"}).hp
    xmax, info = learn_class_noise(model, 0, True, 16, hp["max_steps"], hp["noise_lr"], hp["noise_lambda"], 0, CPU, SHAPE)
    assert info["ce_after"] > info["ce_before"] + 1.0
    assert ce(model, xmax, 0) == pytest.approx(info["ce_after"], rel=1e-4)
    for c in (1, 5, 9):
        xmin, info = learn_class_noise(model, c, False, 16, hp["min_steps"], hp["noise_lr"], hp["min_lambda"], 0, CPU, SHAPE)
        assert info["ce_after"] < 0.05 * info["ce_before"] and info["ce_after"] < 0.5, (c, info)
        assert info["pred_as_class"] == 100.0
    for k, v in model.state_dict().items():  # weights and BN running statistics untouched
        assert torch.equal(v, before[k]), k
    a, _ = learn_class_noise(model, 3, True, 4, 5, 0.1, 0.1, 7, CPU, SHAPE)
    b, _ = learn_class_noise(model, 3, True, 4, 5, 0.1, 0.1, 7, CPU, SHAPE)
    assert torch.equal(a, b)  # deterministic for a seed


def test_emmn_forgets_class_0_zero_shot(setup):
    before_r = setup.accuracy(setup.model, setup.rd.test_retain)
    model, method, data = setup.run(DIGITS)
    f_train, f_test = setup.accuracy(model, setup.rd.forget), setup.accuracy(model, setup.rd.test_forget)
    r_test = setup.accuracy(model, setup.rd.test_retain)
    print(f"emmn digits: forget train {f_train:.1f} test {f_test:.1f}, retain test {before_r:.1f} -> {r_test:.1f}")
    assert f_train < 40 and f_test < 40
    assert r_test > 65  # EMMN costs utility (thesis Tables 3-6); it must not collapse


def test_zero_shot_access_and_checks(setup):
    m = create_method(DIGITS)
    assert m.access().label == "none (zero-shot)" and m.access().views(0) == {}
    nothing = UnlearnData(m.access(), 10, [0], "class", sets={})
    for role in ("forget", "retain", "val"):
        with pytest.raises(AccessError):
            getattr(nothing, role)
    m2 = create_method({**DIGITS, "noise_copies": 1, "passes": "I"})
    m2.unlearn(copy.deepcopy(setup.model), nothing, setup.context())  # would raise if it read any set
    no_shape = setup.context()
    no_shape.input_shape = None
    with pytest.raises(UserError, match="image size"):
        m2.unlearn(copy.deepcopy(setup.model), nothing, no_shape)
    with pytest.raises(UserError, match="passes"):
        create_method({"method": "emmn", "passes": "IX"})
