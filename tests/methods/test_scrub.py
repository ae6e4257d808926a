"""SCRUB: max steps raise the forget KL, the full schedule forgets class 0 on digits and keeps the
retained classes, the thesis' single-pass setting runs, bad settings fail, access is enforced."""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import make_setup
from unlearnbench.errors import AccessError, UserError
from unlearnbench.methods import Access, UnlearnData, create_method
from unlearnbench.parts.losses import kd_kl
from unlearnbench.runtime import generator, predict_logits

CPU = torch.device("cpu")
# Digits are tiny (about 130 forget samples): the code's forget batch of 512 would be one step per
# epoch, so the digits setting uses small batches and a larger learning rate.
DIGITS = {"method": "scrub", "lr": 2e-3, "forget_batch_size": 16, "batch_size": 32}


@pytest.fixture(scope="module")
def setup():
    return make_setup()


def forget_kl(setup, model) -> float:
    x, _ = setup.rd.tensors(setup.rd.forget)
    return kd_kl(predict_logits(model, x, CPU), predict_logits(setup.model, x, CPU), 4.0).item()


def test_max_epoch_increases_forget_kl(setup):
    m = create_method({**DIGITS})
    data, ctx = setup.data_for(m), setup.context()
    student = copy.deepcopy(setup.model)
    assert forget_kl(setup, student) == pytest.approx(0.0, abs=1e-6)
    opt = torch.optim.SGD(student.parameters(), lr=2e-3, momentum=0.9)
    xf, _ = data.forget
    m.max_epoch(student, ctx.original, xf, opt, generator(0), CPU)
    kl1 = forget_kl(setup, student)
    m.max_epoch(student, ctx.original, xf, opt, generator(1), CPU)
    kl2 = forget_kl(setup, student)
    assert kl1 > 1e-3 and kl2 > kl1  # ascent: the divergence on the forget set grows step by step
    # the teacher (frozen original) is untouched
    for (k, v), (_, w) in zip(ctx.original.state_dict().items(), setup.model.state_dict().items()):
        assert torch.equal(v, w), k


def test_scrub_forgets_class_0_and_keeps_retained(setup):
    before_r = setup.accuracy(setup.model, setup.rd.test_retain)
    model, method, data = setup.run(DIGITS)
    f_train, f_test = setup.accuracy(model, setup.rd.forget), setup.accuracy(model, setup.rd.test_forget)
    r_test = setup.accuracy(model, setup.rd.test_retain)
    print(f"scrub digits: forget train {f_train:.1f} test {f_test:.1f}, retain test {before_r:.1f} -> {r_test:.1f}")
    assert f_train < 20 and f_test < 20
    assert r_test > before_r - 6
    assert len(method.access().views(0)) == 2


def test_thesis_single_pass_setting_runs(setup):
    spec = {"method": "scrub", "epochs": 1, "msteps": 1, "order": "min_first", "alpha": 1.0, "gamma": 1.0,
            "lr": 5e-5, "momentum": 0.0, "weight_decay": 0.0, "batch_size": 64, "forget_batch_size": 64}
    model, method, _ = setup.run(spec)
    # a single pass at the thesis' learning rate barely moves a digits model, but it moves it
    moved = sum((p - q).abs().sum().item() for p, q in zip(model.parameters(), setup.model.parameters()))
    assert moved > 0
    assert setup.accuracy(model, setup.rd.test_retain) > 85


def test_lr_schedule_and_checks():
    m = create_method({"method": "scrub", "lr": 1.0, "lr_decay_epochs": [1, 2], "lr_decay_rate": 0.5})
    assert [m.lr_at(e) for e in (1, 2, 3)] == [1.0, 0.5, 0.25]
    with pytest.raises(UserError, match="order"):
        create_method({"method": "scrub", "order": "sideways"})
    with pytest.raises(UserError, match="temperature"):
        create_method({"method": "scrub", "temperature": 0})
    with pytest.raises(UserError, match="lr_decay_epochs"):
        create_method({"method": "scrub", "lr_decay_epochs": [0]})


def test_access_forget_and_retain_enforced(setup):
    m = create_method(DIGITS)
    assert m.access().forget and m.access().retain == "full"
    full = setup.data_for(m)
    only_declared = UnlearnData(m.access(), 10, [0], "class", sets={"forget": full.forget, "retain": full.retain})
    with pytest.raises(AccessError):
        only_declared.val
    m.unlearn(copy.deepcopy(setup.model), only_declared, setup.context())  # reads nothing else
    no_forget = UnlearnData(Access(retain="full"), 10, [0], "class", sets={"retain": full.retain})
    with pytest.raises(AccessError, match="forget"):
        m.unlearn(copy.deepcopy(setup.model), no_forget, setup.context())
