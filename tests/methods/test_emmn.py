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


def test_reference_noise_mode_moves_bn_statistics_and_accumulates_gradients(setup):
    """noise_mode "reference": the noise is learned on the model itself in train mode, so each noise
    step moves its BN running statistics and leaves its gradient in the parameters' .grad."""
    model = copy.deepcopy(setup.model)
    before = copy.deepcopy(model.state_dict())
    learn_class_noise(model, 0, True, 4, 5, 0.1, 0.1, 0, CPU, SHAPE, reference=True)
    after = model.state_dict()
    stats = [k for k in after if "running_" in k]
    assert stats and all(not torch.equal(after[k], before[k]) for k in stats)
    assert all(int(after[k]) == int(before[k]) + 5 for k in after if k.endswith("num_batches_tracked"))  # 5 steps
    assert all(torch.equal(p, before[k]) for k, p in model.named_parameters())  # weights untouched ...
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())  # ... gradients left


@pytest.mark.parametrize("mode", ["frozen", "reference"])
def test_first_unlearning_step_carries_the_noise_gradients_only_in_reference_mode(setup, mode):
    """The reference never zeroes the model's gradients between noise learning and its first Adam step:
    in mode "reference" the first step's gradient is the sum of every noise step's gradient and the
    first batch's; in "frozen" it is the first batch's alone."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    spec = {"method": "emmn", "noise_batch": 2, "max_steps": 3, "min_steps": 2, "noise_copies": 1, "passes": "I",
            "batch_size": 4, "noise_mode": mode, "bn_train": True}
    model, method = copy.deepcopy(setup.model), create_method(spec)
    params = list(model.parameters())
    grads, first = [[] for _ in params], []
    hooks = [p.register_hook(lambda g, i=i: grads[i].append(g.detach().clone())) for i, p in enumerate(params)]

    def on_step(opt, args, kwargs):
        if not first and opt.param_groups[0]["params"][0] is params[0]:  # the unlearning optimiser, not the noise's
            first.append([p.grad.clone() for p in params])
            first.append(len(grads[0]))

    hooks.append(register_optimizer_step_pre_hook(on_step))
    try:
        method.unlearn(model, UnlearnData(method.access(), 10, [0], "class", sets={}), setup.context())
    finally:
        for h in hooks:
            h.remove()
    step_grads, n_backward = first
    assert n_backward == (3 + 9 * 2 + 1 if mode == "reference" else 1)  # max steps + 9 x min steps + batch 1
    for i, g in enumerate(step_grads):
        assert torch.allclose(g, torch.stack(grads[i][:n_backward]).sum(0), atol=1e-6)
    if mode == "reference":
        assert not torch.allclose(step_grads[-1], grads[-1][n_backward - 1])  # the noise's share is not negligible


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
    with pytest.raises(UserError, match="noise_mode must be one of frozen, reference"):
        create_method({"method": "emmn", "noise_mode": "train"})
