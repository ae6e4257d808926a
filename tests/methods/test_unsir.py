"""UNSIR: error-maximising noise, its artefact identity, the zero-glance access contract and the
impair/repair behaviour on a small model trained on the embedded digits data."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import build_unlearn_data, stage_job
from unlearnbench.data import prepare_dataset, to_float
from unlearnbench.errors import AccessError, UserError
from unlearnbench.io import save_checkpoint
from unlearnbench.methods import Context, create_method
from unlearnbench.methods.unsir import learn_noise, noise_dataset, run_make_noise
from unlearnbench.models import build_model
from unlearnbench.runtime import predict_logits, seed_everything
from unlearnbench.training import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    d = prepare_dataset({"source": "digits", "image_size": 8, "channels": 1}, "data", False)
    x, y = to_float(d["x"]), torch.from_numpy(d["y"]).long()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    tr, te = order[:1300], order[1300:]
    return d, x, y, tr, te


@pytest.fixture(scope="module")
def trained(digits):
    d, x, y, tr, _ = digits
    seed_everything(0, 1)
    model = build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=8,
                        mean=d["mean"].tolist(), std=d["std"].tolist())
    train(model, x[tr], y[tr], {"optimizer": "sgd", "lr": 0.05, "epochs": 10, "batch_size": 64}, 0, CPU)
    return model.eval()


def acc(model, x, y):
    return float((predict_logits(model, x, CPU).argmax(1) == y).float().mean() * 100)


def write_noise(tmp_path, model, classes, hp, seed=0):
    """Per-class noise files as rule make_noise writes them; returns their paths."""
    d = tmp_path / "noise"
    meta = {"model_spec": {"arch": "smallcnn", "width": 8}, "in_channels": 1, "num_classes": 10, "image_size": 8,
            "mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()}
    ckpt = tmp_path / "original.safetensors"
    save_checkpoint(ckpt, model.state_dict(), meta)
    settings = create_method({"method": "unsir", **{k: hp[k] for k in hp}}).artefact_settings("noise")
    files = []
    for c in classes:
        out = d / f"class{c}.safetensors"
        run_make_noise(stage_job(seed, noise=out, info=d / f"class{c}.json", time=d / f"class{c}.time.json"),
                       str(ckpt), c, settings)
        files.append(str(out))
    return files


def test_noise_maximises_forget_class_error(trained):
    hp = create_method({"method": "unsir"}).hp
    before = copy.deepcopy(trained.state_dict())
    x, info = learn_noise(trained, 3, 10, 64, hp["noise_steps"], hp["noise_lr"], hp["noise_lambda"], 0, CPU, (1, 8, 8))
    assert x.shape == (64, 1, 8, 8)
    assert info["ce_after"] > info["ce_before"] + 1.0  # the optimisation raises CE of class 3
    with torch.no_grad():
        ce = F.cross_entropy(trained(x), torch.full((64,), 3)).item()
    assert ce == pytest.approx(info["ce_after"], rel=1e-4)
    # the original model is untouched: weights and BN running statistics
    for k, v in trained.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_noise_artefact_depends_only_on_model_class_and_noise_settings(trained):
    hp = create_method({"method": "unsir"}).hp
    args = (10, 32, 10, hp["noise_lr"], hp["noise_lambda"], 0, CPU, (1, 8, 8))
    a, _ = learn_noise(trained, 2, *args)
    b, _ = learn_noise(trained, 2, *args)
    c, _ = learn_noise(trained, 5, *args)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    base = create_method({"method": "unsir"}).artefact_settings("noise")
    for k, v in {"impair_lr": 0.5, "repair_lr": 0.5, "noise_copies": 3, "passes": "IRIR", "retain_per_class": 7}.items():
        assert create_method({"method": "unsir", k: v}).artefact_settings("noise") == base, k
    for k, v in {"noise_lr": 0.2, "noise_steps": 3, "noise_lambda": 0.0, "noise_batch": 8}.items():
        assert create_method({"method": "unsir", k: v}).artefact_settings("noise") != base, k


def test_noise_samples_carry_their_own_forget_class():
    noise = {1: torch.zeros(4, 1, 8, 8), 7: torch.ones(3, 1, 8, 8)}
    x, y = noise_dataset(noise, [1, 7], copies=5)
    assert len(y) == 5 * 4 + 5 * 3
    assert (y[x.flatten(1).mean(1) == 0] == 1).all() and (y[x.flatten(1).mean(1) == 1] == 7).all()
    assert set(y.tolist()) == {1, 7}


def test_access_contract_unsir_never_gets_forget_data(digits, trained, tmp_path):
    d, x, y, tr, _ = digits
    m = create_method({"method": "unsir", "retain_per_class": 20, "noise_batch": 32, "noise_copies": 2})
    acc_ = m.access()
    assert not acc_.forget and acc_.retain == "subset" and not acc_.val
    forget_idx = tr[np.isin(y[tr].numpy(), [0])]
    retain_idx = tr[~np.isin(y[tr].numpy(), [0])]
    data = build_unlearn_data(acc_, x, y, forget_idx, retain_idx, [], 10, [0], "class", seed=0)
    with pytest.raises(AccessError):
        data.forget
    xr, yr = data.retain
    assert 0 not in set(yr.tolist()) and np.bincount(yr.numpy()).max() <= 20
    manifest = write_noise(tmp_path, trained, [0], m.hp)
    ctx = Context(device=CPU, seed=0, original=copy.deepcopy(trained), artefacts={"noise": manifest})
    model = m.unlearn(copy.deepcopy(trained), data, ctx)  # would raise AccessError if it read D_f
    assert ctx.info["n_noise"] == 2 * 32 and ctx.info["n_retain"] == len(yr)


def test_unsir_forgets_class_keeps_retain_and_is_deterministic(digits, trained, tmp_path):
    """The paper's central claim at tiny scale: A_Df drops far below the original's, A_Dr stays near it."""
    d, x, y, tr, te = digits
    classes = [0, 1]
    m = create_method({"method": "unsir", "noise_copies": 2, "batch_size": 32})
    forget_idx = tr[np.isin(y[tr].numpy(), classes)]
    retain_idx = tr[~np.isin(y[tr].numpy(), classes)]
    data = build_unlearn_data(m.access(), x, y, forget_idx, retain_idx, [], 10, classes, "class", seed=0)
    manifest = write_noise(tmp_path, trained, classes, m.hp)
    te_f, te_r = te[np.isin(y[te].numpy(), classes)], te[~np.isin(y[te].numpy(), classes)]
    a_f0, a_r0 = acc(trained, x[te_f], y[te_f]), acc(trained, x[te_r], y[te_r])
    out = []
    for _ in range(2):
        seed_everything(0, 1)
        ctx = Context(device=CPU, seed=0, original=copy.deepcopy(trained), artefacts={"noise": manifest})
        out.append(m.unlearn(copy.deepcopy(trained), data, ctx))
    for k, v in out[0].state_dict().items():
        assert torch.equal(v, out[1].state_dict()[k]), k
    a_f, a_r = acc(out[0], x[te_f], y[te_f]), acc(out[0], x[te_r], y[te_r])
    print(f"A_Df {a_f0:.1f} -> {a_f:.1f}, A_Dr {a_r0:.1f} -> {a_r:.1f}")
    assert a_f0 > 85 and a_f < 0.3 * a_f0, (a_f0, a_f)
    assert a_r > a_r0 - 15, (a_r0, a_r)


def test_passes_prefix_is_the_intermediate_state(digits, trained, tmp_path):
    """passes "I" is the state after the first pass of "IR" (Table V's intermediate rows): run "IR"
    with a repair step too small to move the weights and compare."""
    d, x, y, tr, _ = digits
    base = {"method": "unsir", "noise_copies": 1, "noise_batch": 32, "retain_per_class": 10, "bn_train": False}
    forget_idx, retain_idx = tr[y[tr].numpy() == 4], tr[y[tr].numpy() != 4]
    manifest = write_noise(tmp_path, trained, [4], create_method(base).hp)
    res = {}
    for passes, repair_lr in (("I", 0.01), ("IR", 1e-12), ("IR", 0.01)):
        m = create_method({**base, "passes": passes, "repair_lr": repair_lr})
        data = build_unlearn_data(m.access(), x, y, forget_idx, retain_idx, [], 10, [4], "class", seed=0)
        ctx = Context(device=CPU, seed=0, original=trained, artefacts={"noise": manifest})
        res[passes, repair_lr] = m.unlearn(copy.deepcopy(trained), data, ctx).state_dict()
        assert [r["stage"] for r in ctx.info["log"]] == ["impair" if p == "I" else "repair" for p in passes]
    for k, v in res["I", 0.01].items():
        torch.testing.assert_close(v, res["IR", 1e-12][k], rtol=0, atol=1e-6)
    assert not torch.equal(res["I", 0.01]["net.head.weight"], res["IR", 0.01]["net.head.weight"])
    assert not torch.equal(res["I", 0.01]["net.head.weight"], trained.state_dict()["net.head.weight"])


@pytest.mark.parametrize("hp", [{"passes": "IX"}, {"passes": ""}, {"noise_copies": 0}, {"impair_lr": -1.0},
                                {"retain_per_class": 0}, {"noise_steps": -1}, {"nope": 1}])
def test_bad_hyperparameters_are_one_line_errors(hp):
    with pytest.raises(UserError) as e:
        create_method({"method": "unsir", **hp})
    assert "\n" not in str(e.value)


def test_unsir_rejects_random_forgetting():
    assert create_method({"method": "unsir"}).supports == frozenset({"class"})
