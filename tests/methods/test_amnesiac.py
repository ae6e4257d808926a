"""Amnesiac unlearning: the update log recorded during training undoes exactly the logged updates,
round-trips through safetensors, refuses a foreign model, and unlearning drops the forget accuracy;
the relabelling form (the thesis' "Amnesiac" runs) forgets class 0 on digits."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import make_setup
from unlearnbench.data import to_float
from unlearnbench.errors import AccessError, UserError
from unlearnbench.methods import Access, UnlearnData, create_method
from unlearnbench.models import build_model
from unlearnbench.methods.amnesiac.update_log import UpdateLog, flat_state
from unlearnbench.runtime import generator, iterate_batches, seed_everything
from unlearnbench.training import DEFAULT_RECIPE, lr_factor, make_optimizer, train

CPU = torch.device("cpu")


def train_recorded(model, x, y, recipe, seed, on_batch):
    """training.train's loop (no augmentation) with the one change the recorder needs: the hook
    gets the batch indices, on_batch(model, step, idx)."""
    recipe = {**DEFAULT_RECIPE, **recipe}
    model.train()
    opt = make_optimizer(model.parameters(), recipe["optimizer"], recipe["lr"], recipe["momentum"], recipe["weight_decay"])
    gen = generator(seed)
    n, bs = len(y), recipe["batch_size"]
    step = 0
    for epoch in range(recipe["epochs"]):
        for i, idx in enumerate(iterate_batches(n, bs, gen)):
            for g in opt.param_groups:
                g["lr"] = recipe["lr"] * lr_factor(recipe, epoch + i / math.ceil(n / bs))
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            on_batch(model, step, idx)
    model.eval()


def small_model(d, width):
    seed_everything(0, 1)
    return build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=width,
                       mean=d["mean"].tolist(), std=d["std"].tolist())


@pytest.fixture(scope="module")
def setup():
    return make_setup()


@pytest.fixture(scope="module")
def recorded(setup, tmp_path_factory):
    """The digits original retrained with the recorder (same recipe as make_setup) and its log."""
    d = setup.rd.data
    tr = setup.rd.train
    x, y = to_float(d["x"][tr]), torch.from_numpy(d["y"][tr].astype(np.int64))
    model = small_model(d, 16)
    log = UpdateLog(y, classes=[0], num_classes=10, sample_ids=tr)
    log.start(model)
    train_recorded(model, x, y, {"lr": 0.05, "epochs": 8, "batch_size": 64}, 0, log.on_batch)
    path = tmp_path_factory.mktemp("amnesiac") / "update_log.safetensors"
    log.save(path, model)
    return model, log, str(path)


def test_undo_equals_model_minus_sum_of_recorded_deltas(setup):
    d = setup.rd.data
    idx = setup.rd.train[:240]
    x, y = to_float(d["x"][idx]), torch.from_numpy(d["y"][idx].astype(np.int64))
    model = small_model(d, 4)
    theta0 = flat_state(model).clone()
    log = UpdateLog(y, classes=[0], num_classes=10, sample_ids=idx)
    log.start(model)
    own = []  # the test's own bookkeeping: (delta, batch has class 0)

    def hook(m, step, bidx):
        before = own[-1][2] if own else theta0
        after = flat_state(m).clone()
        own.append((after - before, bool((y[bidx] == 0).any()), after))
        log.on_batch(m, step, bidx)

    train_recorded(model, x, y, {"lr": 0.05, "epochs": 2, "batch_size": 16}, 0, hook)
    with_0 = [dl for dl, has0, _ in own if has0]
    assert 0 < len(with_0) < len(own)  # batches of 16: some lack class 0 and are not recorded
    assert len(log.steps) == len(with_0) and log.n_steps == len(own)
    expected = flat_state(model) - torch.stack(with_0).sum(0)
    undone = copy.deepcopy(model)
    info = log.undo(undone, [0])
    assert torch.equal(flat_state(undone), expected)
    assert info["steps_undone"] == len(with_0)
    # logging every class undoes every step: back to the initialisation (up to float rounding)
    model2 = small_model(d, 4)
    log_all = UpdateLog(y, classes=range(10), num_classes=10)
    log_all.start(model2)
    train_recorded(model2, x, y, {"lr": 0.05, "epochs": 2, "batch_size": 16}, 0, log_all.on_batch)
    log_all.undo(model2, list(range(10)))
    assert torch.allclose(flat_state(model2), theta0, atol=1e-5)


def test_log_round_trip_and_guards(recorded, setup, tmp_path):
    model, log, path = recorded
    loaded = UpdateLog.load(path)
    assert loaded.steps == log.steps and loaded.classes == [0]
    assert torch.equal(loaded.delta_matrix(), torch.stack(log.deltas))
    assert all(torch.equal(a, b) for a, b in zip(loaded.batch_ids, log.batch_ids))
    assert set(torch.cat(loaded.batch_ids).tolist()) <= set(setup.rd.train.tolist())
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    log.undo(a, [0]), loaded.undo(b, [0])
    assert torch.equal(flat_state(a), flat_state(b))
    # the loop copy reproduces training.train exactly: the recorded model is make_setup's original
    assert torch.equal(flat_state(model), flat_state(setup.model))
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.parameters())[0].add_(1e-3)
    with pytest.raises(UserError, match="different model"):
        loaded.undo(other, [0])  # not the model the log was recorded for
    with pytest.raises(UserError, match="watched classes"):
        loaded.undo(copy.deepcopy(model), [3])
    fresh = UpdateLog(torch.zeros(4, dtype=torch.long), [0], 10)
    with pytest.raises(UserError, match="start"):
        fresh.on_batch(model, 1, torch.arange(2))
    fresh.start(model)
    with pytest.raises(UserError, match="batch indices"):  # a hook caller without the batch indices
        fresh.on_batch(model, 1)
    trained = copy.deepcopy(model)  # training.train passes them: every batch holds class 0 here
    train(trained, torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), {"epochs": 1, "batch_size": 2}, 0, CPU,
          on_batch=fresh.on_batch)
    assert fresh.steps == [1, 2] and sorted(torch.cat(fresh.batch_ids).tolist()) == [0, 1, 2, 3]
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError, match="corrupt"):
        UpdateLog.load(tmp_path / "bad.safetensors")


def test_amnesiac_unlearning_drops_forget_accuracy(recorded, setup):
    model, log, path = recorded
    acc = lambda m, idx: setup.accuracy(m, idx)
    before = {k: acc(model, getattr(setup.rd, k)) for k in ("forget", "test_forget", "test_retain")}
    ctx = setup.context(0, {"update_log": path})
    # undo only (no data read at all)
    m0 = create_method({"method": "amnesiac", "repair_steps": 0})
    assert m0.access().label == "update log (no data)"
    out0 = m0.unlearn(copy.deepcopy(model), UnlearnData(m0.access(), 10, [0], "class", sets={}), ctx)
    undo_only = {k: acc(out0, getattr(setup.rd, k)) for k in ("forget", "test_forget", "test_retain")}
    # undo + repair on the retain set (the undo rewinds nearly every step, so the repair is a short
    # retraining: 200 steps here)
    m = create_method({"method": "amnesiac", "repair_steps": 200})
    ctx = setup.context(0, {"update_log": path})
    out = m.unlearn(copy.deepcopy(model), setup.data_for(m), ctx)
    after = {k: acc(out, getattr(setup.rd, k)) for k in ("forget", "test_forget", "test_retain")}
    print(f"amnesiac digits: steps undone {ctx.info['steps_undone']}/{ctx.info['steps_total']}; "
          f"before {before}; undo only {undo_only}; undo + {m.hp['repair_steps']} repair steps {after}")
    assert before["test_forget"] > 90
    assert undo_only["test_forget"] < 50 and after["test_forget"] < 10 and after["forget"] < 10
    assert after["test_retain"] > 85
    with pytest.raises(AccessError):
        UnlearnData(m0.access(), 10, [0], "class", sets={}).retain
    with pytest.raises(AccessError, match="retain"):  # repair needs the retain set it declares
        m.unlearn(copy.deepcopy(model), UnlearnData(Access(), 10, [0], "class", sets={}), setup.context(0, {"update_log": path}))
    assert m.artefact_settings("update_log") == {"log_classes": [], "log_buffers": False}
    assert create_method({"method": "amnesiac", "repair_steps": 5, "lr": 0.1}).artefact_settings("update_log") == \
        m.artefact_settings("update_log")  # repair settings do not key the log
    with pytest.raises(UserError, match="log_classes"):
        create_method({"method": "amnesiac", "log_classes": [-1]})


RELABEL = {"method": "amnesiac_relabel", "lr": 1e-3}  # digits: 3 epochs are only ~30 steps at 1e-4


def test_amnesiac_relabel_forgets_class_0(setup):
    before_r = setup.accuracy(setup.model, setup.rd.test_retain)
    model, method, data = setup.run(RELABEL)
    f_train, f_test = setup.accuracy(model, setup.rd.forget), setup.accuracy(model, setup.rd.test_forget)
    r_test = setup.accuracy(model, setup.rd.test_retain)
    print(f"amnesiac_relabel digits: forget train {f_train:.1f} test {f_test:.1f}, retain test {before_r:.1f} -> {r_test:.1f}")
    assert f_train < 10 and f_test < 10 and r_test > before_r - 5
    # random labels of a class request come from the retained classes only
    gen = generator(0)
    labels = method.random_labels(torch.zeros(500, dtype=torch.long), data, gen)
    assert set(labels.tolist()) == set(range(1, 10))


def test_amnesiac_relabel_access(setup):
    m = create_method(RELABEL)
    assert m.access().label == "forget+retain"
    assert create_method({**RELABEL, "use_retain": False}).access().label == "forget"
    full = setup.data_for(m)
    only_forget = UnlearnData(Access(forget=True), 10, [0], "class", sets={"forget": full.forget})
    with pytest.raises(AccessError, match="retain"):
        m.unlearn(copy.deepcopy(setup.model), only_forget, setup.context())
    seq = create_method({**RELABEL, "mode": "sequential", "epochs": 1, "batch_size": 64})
    seq.unlearn(copy.deepcopy(setup.model), setup.data_for(seq), setup.context())
    with pytest.raises(UserError, match="mode"):
        create_method({**RELABEL, "mode": "interleaved"})
