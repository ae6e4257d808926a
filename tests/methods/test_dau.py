"""DAU (paper 003): Barlow Twins values, the sensitivity token, gradients from the attacker into the
defender through each token, attacker pretraining, the alpha schedule, forgetting on digits
(random 10 % and class-wise), the access contract and the attacker artefact's errors."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import make_setup, stage_job
from unlearnbench.errors import AccessError, UserError
from unlearnbench.io import read_json, save_checkpoint, write_npz
from unlearnbench.methods import Access, UnlearnData, create_method
from unlearnbench.models import build_model
from unlearnbench.models.checkpoint import model_meta
from unlearnbench.methods.dau.attacker import (attack_accuracy, build_attacker, defender_outputs, load_attacker, onehot,
                                         run_pretrain_attacker)
from unlearnbench.methods.dau.barlow_twins import barlow_twins, cross_correlation, pair_indices
from unlearnbench.runtime import predict_logits, seed_everything
from unlearnbench.training import train

CPU = torch.device("cpu")
# Small enough for one CPU core; everything else at the method's defaults.
FAST = {"pretrain_iterations": 300, "pretrain_batch_size": 32}


def test_dau_module_imports_without_torch():
    code = "import sys, unlearnbench.methods.dau; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- Barlow Twins
def test_barlow_twins_values():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 6, generator=g) @ torch.randn(6, 6, generator=g)  # correlated dimensions
    loss, parts = barlow_twins(z, z, lambd=5e-3)
    corr = torch.from_numpy(np.corrcoef(z.numpy(), rowvar=False)).float()
    off = (corr.pow(2).sum() - corr.diagonal().pow(2).sum()).item()
    assert parts["on_diag"] == pytest.approx(0.0, abs=1e-5)  # identical twins: C_ii = 1
    assert parts["off_diag"] == pytest.approx(off, rel=1e-4)
    assert loss.item() == pytest.approx(5e-3 * off, rel=1e-4)
    _, parts = barlow_twins(z, -z)
    assert parts["on_diag"] == pytest.approx(4 * 6, rel=1e-5)  # C_ii = -1
    # scale and shift per dimension do not matter (normalised per dimension)
    c1 = cross_correlation(z, z.flip(0))
    c2 = cross_correlation(3 * z + 7, 0.5 * z.flip(0) - 2)
    torch.testing.assert_close(c1, c2, rtol=1e-4, atol=1e-5)
    # class pairing picks validation samples of the forget sample's label
    yf, yv = torch.tensor([0, 1, 1, 2]), torch.tensor([1, 0, 1, 0, 3])
    idx = pair_indices(yf, yv, g)
    assert (yv[idx[:3]] == yf[:3]).all() and 0 <= idx[3] < 5  # label 2 absent: any sample


# --------------------------------------------------------------------------- attacker inputs and gradients
def _defender(seed=0):
    torch.manual_seed(seed)
    return build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=8).eval()


def test_sensitivity_is_the_mean_absolute_output_change_over_noisy_copies():
    hp = create_method({"method": "dau", "sens_copies": 4, "sens_sigma": 0.05}).hp
    model = _defender()
    x = torch.rand(5, 1, 8, 8)
    _, logits, p, sens = defender_outputs(model, x, hp, torch.Generator().manual_seed(3))
    noise = torch.randn((4, 5, 1, 8, 8), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        pn = torch.stack([F.softmax(model(x + 0.05 * noise[i]), 1) for i in range(4)])
        p_ref = F.softmax(model(x), 1)
    torch.testing.assert_close(p, p_ref)
    torch.testing.assert_close(sens, (pn - p_ref).abs().mean(0) / 0.05, rtol=1e-4, atol=1e-6)
    hp_norm = {**hp, "sens_reduce": "norm", "sens_scale": False}
    _, _, _, s2 = defender_outputs(model, x, hp_norm, torch.Generator().manual_seed(3))
    torch.testing.assert_close(s2[:, 0], (pn - p_ref).norm(dim=2).mean(0), rtol=1e-4, atol=1e-6)
    assert torch.equal(s2[:, 0:1].expand_as(s2), s2)  # the scalar sensitivity fills every class token


@pytest.mark.parametrize("token", ["softmax", "sensitivity"])
def test_attacker_loss_reaches_the_defender_through_each_token(token):
    hp = create_method({"method": "dau"}).hp
    model = _defender()
    attacker = build_attacker(10, hp).eval()
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    _, _, p, sens = defender_outputs(model, x, hp, torch.Generator().manual_seed(0))
    if token == "softmax":
        sens = sens.detach()
    else:
        p = p.detach()
    loss = F.binary_cross_entropy_with_logits(attacker(p, sens, onehot(y, 10)), torch.zeros(16))
    conv = model.net.body[0].weight
    before = conv.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    loss.backward()
    assert conv.grad is not None and conv.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(conv.detach(), before)  # the attacker's loss moved the first conv layer
    # both tokens detached: nothing reaches the defender
    model.zero_grad(set_to_none=True)
    _, _, p, sens = defender_outputs(model, x, hp, torch.Generator().manual_seed(0))
    attacker(p.detach(), sens.detach(), onehot(y, 10)).sum().backward()
    assert conv.grad is None


# --------------------------------------------------------------------------- artefact files
def write_inputs(root, model, data, idx_forget, idx_val, width):
    """Original checkpoint + forget/val data views, as the workflow writes them."""
    root.mkdir(parents=True, exist_ok=True)
    save_checkpoint(root / "original.safetensors", model.state_dict(),
                    model_meta(data, {"arch": "smallcnn", "width": width}, kind="original", seed=0))
    for name, idx in (("forget", idx_forget), ("val", idx_val)):
        write_npz(root / f"{name}.npz", x=data["x"][idx], y=data["y"][idx])
    return [str(root / n) for n in ("original.safetensors", "forget.npz", "val.npz")]


def pretrain(root, files, hp, seed=0):
    outs = [str(root / n) for n in ("attacker.safetensors", "attacker.json", "attacker.time.json")]
    run_pretrain_attacker(stage_job(seed, attacker=outs[0], info=outs[1], time=outs[2]), *files, hp)
    return outs[0], read_json(outs[1]), read_json(outs[2])


def test_pretrained_attacker_beats_chance_on_an_overfit_model(tmp_path):
    """Members (training samples of an overfit model) vs non-members, on held-out samples: over three
    seeds (model and attacker), the pooled held-out balanced accuracy's 95 % Wilson interval lies
    above chance (a margin over seeds, not one run's value)."""
    from unlearnbench.metrics.mia import wilson_interval

    st = make_setup(epochs=1)  # only for the digits archive
    data = st.rd.data
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data["y"]))
    members, non = order[:200], order[200:400]
    x, y = st.x, st.y
    m = torch.as_tensor(members)
    hp = create_method({"method": "dau", **FAST, "pretrain_holdout": 0.3}).hp
    xs = lambda idx: (x[torch.as_tensor(idx)], y[torch.as_tensor(idx)])
    correct, n, model = 0, 0, None
    for seed in (0, 1, 2):
        seed_everything(seed, 1)
        model = build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=8,
                            mean=data["mean"].tolist(), std=data["std"].tolist())
        train(model, x[m], y[m], {"lr": 0.05, "epochs": 60, "batch_size": 32, "weight_decay": 0.0}, seed, CPU)
        files = write_inputs(tmp_path / f"s{seed}", model.eval(), data, members, non, 8)
        path, info, timing = pretrain(tmp_path / f"s{seed}", files, hp, seed)
        print(f"seed {seed}: attacker held-out balanced accuracy {info['balanced_accuracy_holdout']:.1f} "
              f"(train {info['balanced_accuracy_train']:.1f}), pretraining {timing['seconds']:.1f}s")
        assert info["n_holdout_forget"] == 60 and info["n_holdout_val"] == 60
        assert "seconds" not in info and timing["seconds"] > 0
        correct += round(info["balanced_accuracy_holdout"] / 100 * 120)
        n += 120
    low, _ = wilson_interval(correct, n)
    assert low > 0.5, (correct, n, low)
    attacker, meta = load_attacker(path, 10, CPU, hp)
    assert meta["kind"] == "dau_attacker"
    assert attack_accuracy(attacker, model, xs(members), xs(non), hp, 0, CPU) > 50
    # deterministic: the same inputs and seed give the same attacker file (a short pretraining)
    short = {**hp, "pretrain_iterations": 20}
    runs = [pretrain(tmp_path / f"d{i}", write_inputs(tmp_path / f"d{i}", model, data, members, non, 8), short)
            for i in range(2)]
    assert runs[0][1] == runs[1][1] and open(runs[0][0], "rb").read() == open(runs[1][0], "rb").read()


def test_dau_keeps_an_enforced_pruning_mask(class_run):
    """The pipeline wraps every method in enforce_mask for sparse originals: DAU updates the same
    parameter objects in place, so the pruned weights stay exactly zero."""
    from unlearnbench.parts.pruning import enforce_mask, mask_violations, omp_mask

    st, _, ctx, _ = class_run
    model = copy.deepcopy(st.model)
    mask = omp_mask(model, 0.9)
    ids = [id(p) for p in model.parameters()]
    m = create_method({"method": "dau", **FAST, "iterations": 5, "lr": 0.03})
    with enforce_mask(model, mask):
        out = m.unlearn(model, st.data_for(m), st.context(0, ctx.artefacts))
        assert out is model and [id(p) for p in out.parameters()] == ids
        assert mask_violations(out, mask) == 0
    assert not torch.equal(out.net.head.weight, st.model.net.head.weight)  # it did train


# --------------------------------------------------------------------------- the game on digits
def _game(setup, tmp_path, hp_over, seed=0):
    rd = setup.rd
    hp = create_method({"method": "dau", **FAST, **hp_over}).hp
    files = write_inputs(tmp_path, setup.model, rd.data, rd.forget, rd.val, 16)
    path, info, timing = pretrain(tmp_path, files, hp)
    seed_everything(seed, 1)
    method = create_method({"method": "dau", **FAST, "report_attack": True, **hp_over})
    data = setup.data_for(method, seed)
    ctx = setup.context(seed, {"attacker": path})
    import time
    t0 = time.process_time()
    model = method.unlearn(copy.deepcopy(setup.model), data, ctx)
    return model, ctx, {"pretrain_s": timing["seconds"], "game_cpu_s": time.process_time() - t0}


def _conf(setup, model, idx):
    x, y = setup.rd.tensors(idx)
    return float(predict_logits(model, x, CPU).softmax(1).gather(1, y[:, None]).mean() * 100)


@pytest.fixture(scope="module")
def random_runs(tmp_path_factory):
    """Random 10 % forgetting with game seeds 0-2 on one original (its attacker is pretrained once per seed)."""
    st = make_setup(scenario={"type": "random", "fraction": 0.1, "seed": 0}, epochs=20)
    return st, [_game(st, tmp_path_factory.mktemp(f"dau_random{s}"), {"iterations": 100}, seed=s) for s in (0, 1, 2)]


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    st = make_setup(forget_classes=(0,), epochs=8)
    model, ctx, t = _game(st, tmp_path_factory.mktemp("dau_class"), {"iterations": 100, "lr": 0.02})
    return st, model, ctx, t


def test_dau_random_forgetting_moves_forget_towards_test(random_runs):
    """Over three game seeds (a margin, not one run's value): the forget accuracy moves towards the
    test accuracy by more than one forget sample on average, the members' confidence gap over
    validation samples shrinks, and retain / test accuracy stay within 5 points."""
    st, runs = random_runs
    rd = st.rd
    before = {k: st.accuracy(st.model, getattr(rd, k)) for k in ("forget", "retain", "test_retain")}
    after = {k: np.array([st.accuracy(m, getattr(rd, k)) for m, _, _ in runs]) for k in before}
    gap0 = _conf(st, st.model, rd.forget) - _conf(st, st.model, rd.val)
    gaps = np.array([_conf(st, m, rd.forget) - _conf(st, m, rd.val) for m, _, _ in runs])
    print(f"random 10%, seeds 0-2: forget {before['forget']:.1f} -> {after['forget'].round(1)}, test_retain "
          f"{before['test_retain']:.1f} -> {after['test_retain'].round(1)}; confidence gap forget-val {gap0:.1f} -> "
          f"{gaps.round(1)}; attacker balanced acc {[round(c.info['attack_acc_after'], 1) for _, c, _ in runs]}")
    one_sample = 100 / len(rd.forget)
    f0, t0 = before["forget"], before["test_retain"]
    assert f0 - t0 > 1.5  # the original remembers its training samples
    assert f0 - after["forget"].mean() > one_sample  # forget accuracy drops by more than one sample on average
    assert np.abs(after["forget"] - after["test_retain"]).mean() < abs(f0 - t0)  # ... towards test accuracy
    assert gaps.mean() < 0.75 * gap0  # members look less like members (confidence MIA signal)
    assert (after["retain"] > before["retain"] - 5).all() and (after["test_retain"] > t0 - 5).all()  # utility kept
    assert all(c.info["alpha"] == [0.9] * 100 and c.info["attacker_steps"] == 100 for _, c, _ in runs)


def test_dau_class_forgetting_drops_the_class_and_keeps_the_rest(class_run):
    st, model, ctx, t = class_run
    rd = st.rd
    acc = {k: (st.accuracy(st.model, getattr(rd, k)), st.accuracy(model, getattr(rd, k)))
           for k in ("forget", "test_forget", "retain", "test_retain")}
    print("class 0: " + ", ".join(f"{k} {a:.1f}->{b:.1f}" for k, (a, b) in acc.items())
          + f"; pretrain {t['pretrain_s']:.1f}s wall, game {t['game_cpu_s']:.1f}s cpu")
    assert acc["forget"][0] > 90 and acc["forget"][1] < 10 and acc["test_forget"][1] < 10
    assert acc["retain"][1] > acc["retain"][0] - 5 and acc["test_retain"][1] > acc["test_retain"][0] - 5


def test_class_wise_alpha_switches_off_after_30_iterations(class_run):
    _, _, ctx, _ = class_run
    assert ctx.info["alpha"] == [0.9] * 30 + [0.0] * 70
    assert ctx.info["attacker_steps"] == 30  # the attacker is not trained once alpha is 0
    rows = {r["iteration"]: r for r in ctx.info["log"]}
    assert rows[21]["fool"] != 0 and rows[31]["fool"] == 0 and rows[31]["attack_loss"] is None


def test_a_diverging_game_stops_at_its_last_finite_weights_only_when_asked(tmp_path):
    """The paper-exact rows do not clip: at a rate far too high the defender's loss becomes non-finite.
    Default: one error line. on_nonfinite last_finite: the game ends, the weights are those of the start
    of the previous iteration (finite), and the info says where it diverged."""
    st = make_setup(forget_classes=(0,), epochs=4)
    hp = {"iterations": 30, "lr_class": 1.0e4, "max_grad_norm": 0.0, "pretrain_iterations": 20}
    with pytest.raises(UserError, match="lower lr") as e:
        _game(st, tmp_path / "err", hp)
    assert "\n" not in str(e.value)
    model, ctx, _ = _game(st, tmp_path / "keep", {**hp, "on_nonfinite": "last_finite"})
    at, after = ctx.info["diverged_at"], ctx.info["stopped_after"]
    assert 2 <= at <= 30 and after == at - 2
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    assert len(ctx.info["alpha"]) == at  # the game ended at the diverging iteration


# --------------------------------------------------------------------------- contract and errors
def test_dau_access_and_artefact_keys():
    m = create_method({"method": "dau"})
    assert m.access() == Access(forget=True, retain="full", val=True)
    assert m.supports == frozenset({"class", "random"}) and m.needs() == ("attacker",)
    base = m.artefact_settings("attacker")
    for k, v in {"lr": 0.03, "alpha": 0.5, "iterations": 7, "attack_lr": 1e-2, "beta": 0.0, "fool_loss": "minimax"}.items():
        assert create_method({"method": "dau", k: v}).artefact_settings("attacker") == base, k  # reused
    for k, v in {"sens_sigma": 1.0, "pretrain_iterations": 10, "attack_layers": 2}.items():
        assert create_method({"method": "dau", k: v}).artefact_settings("attacker") != base, k


def test_dau_raises_access_error_outside_its_access(class_run, tmp_path):
    st, _, ctx, _ = class_run
    m = create_method({"method": "dau", **FAST, "iterations": 2})
    full = st.data_for(m)
    narrow = Access(forget=True, retain="full")  # no validation set
    data = UnlearnData(narrow, 10, [0], "class", sets={"forget": full.forget, "retain": full.retain})
    with pytest.raises(AccessError):
        m.unlearn(copy.deepcopy(st.model), data, st.context(0, {}))
    declared_not_given = UnlearnData(m.access(), 10, [0], "class", sets={"forget": full.forget, "retain": full.retain})
    with pytest.raises(AccessError):
        m.unlearn(copy.deepcopy(st.model), declared_not_given, st.context(0, {}))


def test_corrupt_or_foreign_attacker_file_is_one_user_error_line(class_run, tmp_path):
    st = class_run[0]
    m = create_method({"method": "dau", **FAST, "iterations": 2})
    data = st.data_for(m)
    bad = tmp_path / "attacker.safetensors"
    bad.write_bytes(b"\x00garbage, not a safetensors file")
    model_file = tmp_path / "model.safetensors"
    save_checkpoint(model_file, st.model.state_dict(), model_meta(st.rd.data, {"arch": "smallcnn", "width": 16}))
    for path in (bad, model_file, tmp_path / "missing.safetensors"):
        with pytest.raises(UserError) as e:
            m.unlearn(copy.deepcopy(st.model), data, st.context(0, {"attacker": str(path)}))
        assert "\n" not in str(e.value) and str(path) in str(e.value)
    # an attacker pretrained with other input settings is refused
    hp = m.hp
    other = create_method({"method": "dau", **FAST, "sens_sigma": 0.5}).hp
    files = write_inputs(tmp_path / "o", st.model, st.rd.data, st.rd.forget[:40], st.rd.val[:40], 16)
    path, _, _ = pretrain(tmp_path / "o", files, {**other, "pretrain_iterations": 2})
    with pytest.raises(UserError) as e:
        load_attacker(path, 10, CPU, hp)
    assert "sens_sigma" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError):
        load_attacker(path, 100, CPU)


@pytest.mark.parametrize("hp", [{"attack_hidden": 30}, {"alpha": 1.5}, {"fool_loss": "wasserstein"}, {"on_nonfinite": "skip"},
                                {"attack_batch_size": 1}, {"sens_sigma": 0}, {"bt_pairing": "nearest"}, {"nope": 1}])
def test_bad_hyperparameters_are_one_line_errors(hp):
    with pytest.raises(UserError) as e:
        create_method({"method": "dau", **hp})
    assert "\n" not in str(e.value)
