"""Bad Teacher: the incompetent teacher is a fresh random model of the same architecture, the method
forgets class 0 on digits while keeping the retained classes, and reads only forget + a retain subset."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from helpers import make_setup
from unlearnbench.errors import AccessError, UserError
from unlearnbench.methods import Access, UnlearnData, create_method
from unlearnbench.methods.bad_teacher import reinitialised_copy

# Digits: the paper's single epoch of batch 256 is 2 steps on ~470 samples; batch 32 at lr 1e-3 is
# the same epoch with enough steps.
DIGITS = {"method": "bad_teacher", "lr": 1e-3, "batch_size": 32}


@pytest.fixture(scope="module")
def setup():
    return make_setup()


def test_incompetent_teacher_is_random_not_the_original(setup):
    rng_state = torch.get_rng_state()
    bad = reinitialised_copy(setup.model, 123).eval()
    assert torch.equal(torch.get_rng_state(), rng_state)  # the global RNG is untouched
    for (name, p), q in zip(bad.named_parameters(), setup.model.parameters()):
        assert p.shape == q.shape and not torch.equal(p, q), name
    assert torch.equal(bad.mean, setup.model.mean) and torch.equal(bad.std, setup.model.std)
    acc_bad = setup.accuracy(bad, setup.rd.test)
    acc_orig = setup.accuracy(setup.model, setup.rd.test)
    print(f"incompetent teacher test accuracy {acc_bad:.1f} (original {acc_orig:.1f})")
    assert acc_bad < 25 and acc_orig > 90  # near chance (10 classes)
    again = reinitialised_copy(setup.model, 123)
    other = reinitialised_copy(setup.model, 124)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), bad.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(other.parameters(), bad.parameters()))


def test_bad_teacher_forgets_class_0_and_keeps_retained(setup):
    before_r = setup.accuracy(setup.model, setup.rd.test_retain)
    model, method, data = setup.run(DIGITS)
    f_train, f_test = setup.accuracy(model, setup.rd.forget), setup.accuracy(model, setup.rd.test_forget)
    r_test = setup.accuracy(model, setup.rd.test_retain)
    print(f"bad_teacher digits: forget train {f_train:.1f} test {f_test:.1f}, retain test {before_r:.1f} -> {r_test:.1f}")
    assert f_train < 20 and f_test < 20
    assert r_test > before_r - 6
    # the retain subset is 30 % of each retained class
    xr, yr = data.retain
    counts = np.bincount(yr.numpy(), minlength=10)
    full = np.bincount(setup.rd.y[setup.rd.retain], minlength=10)
    assert counts[0] == 0 and np.allclose(counts[1:], np.round(0.3 * full[1:]), atol=1)


@pytest.mark.parametrize("bn_train", [True, False])
def test_bn_train_moves_the_running_statistics_only_when_on(setup, bn_train):
    """bn_train True (the reference's student, in train mode): BN running statistics follow the
    unlearning batches; False: they stay the original's."""
    model, _, _ = setup.run({**DIGITS, "bn_train": bn_train})
    stats = [k for k in model.state_dict() if "running_" in k]
    moved = [k for k in stats if not torch.equal(model.state_dict()[k], setup.model.state_dict()[k])]
    assert stats and moved == (stats if bn_train else [])


def test_access_and_checks(setup):
    m = create_method(DIGITS)
    acc = m.access()
    assert acc.forget and acc.retain == "subset" and acc.fraction == 0.3
    assert acc.label == "forget+retain-subset (0.3)"
    assert create_method({"method": "bad_teacher", "retain_fraction": 1.0}).access().retain == "full"
    with pytest.raises(UserError, match="retain_fraction"):
        create_method({"method": "bad_teacher", "retain_fraction": 0.0})
    full = setup.data_for(m)
    only_declared = UnlearnData(acc, 10, [0], "class", sets={"forget": full.forget, "retain": full.retain})
    with pytest.raises(AccessError):
        only_declared.val
    m.unlearn(copy.deepcopy(setup.model), only_declared, setup.context())
    no_retain = UnlearnData(Access(forget=True), 10, [0], "class", sets={"forget": full.forget})
    with pytest.raises(AccessError, match="retain"):
        m.unlearn(copy.deepcopy(setup.model), no_retain, setup.context())
