"""CLUE (paper 000): losses against hand-computed values, the gradient mask, the access contract."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import build_unlearn_data
from unlearnbench.parts.energy import energy_loss, free_energy, neg_free_energy
from unlearnbench.errors import AccessError, UserError
from unlearnbench.methods import Access, Context, UnlearnData, create_method
from unlearnbench.methods.clue import corrupt, kd_loss
from unlearnbench.models import build_model
from unlearnbench.methods.clue.saliency import apply_mask_to_grads, compute_mask, mask_density, masked_step, save_mask

BASE = {"mask_mode": "top_layer", "mask_fraction": 0.1, "epochs": 2, "batch_size": 16, "lr": 1e-2,
        "temperature": 10.0, "lambda_energy": 1.0}


# --------------------------------------------------------------------------- losses
def test_energy_loss_paper_hand_values():
    z = torch.tensor([[0.0, math.log(2)], [math.log(3), 0.0]])
    assert energy_loss(z, 1.0).item() == pytest.approx((3 + 4) / 2)
    assert energy_loss(z, 2.0).item() == pytest.approx(((1 + math.sqrt(2)) + (math.sqrt(3) + 1)) / 2)


def test_energy_loss_logit_norm_variant():
    z = torch.tensor([[3.0, 4.0]])  # ||z|| = 5
    assert energy_loss(z, variant="logit_norm").item() == pytest.approx(math.exp(0.6) + math.exp(0.8))
    with pytest.raises(UserError):
        energy_loss(z, variant="nope")


def test_free_energy_is_minus_T_logsumexp():
    z = torch.tensor([[0.0, math.log(3)]])
    assert free_energy(z, 1.0).item() == pytest.approx(-math.log(4))
    assert neg_free_energy(z.numpy(), 2.0)[0] == pytest.approx(2 * math.log(1 + math.sqrt(3)))


def test_kd_loss_hand_values_both_directions():
    t = torch.tensor([[0.0, 0.0]])            # p_t = (1/2, 1/2)
    s = torch.tensor([[math.log(3), 0.0]])    # p_s = (3/4, 1/4)
    assert kd_loss(t, s).item() == pytest.approx(0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25))
    assert kd_loss(t, s, "student_teacher").item() == pytest.approx(0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5))
    assert kd_loss(s, s).item() == pytest.approx(0.0, abs=1e-7)


def test_corrupt_noise_kinds():
    x = torch.full((4, 1, 8, 8), 0.5)
    g = torch.Generator().manual_seed(0)
    hp = {"noise": "salt_pepper", "salt_prob": 0.2, "pepper_prob": 0.3, "clip_noisy": True}
    out = corrupt(x, hp, g)
    frac = torch.stack([(out == 1).float().mean(), (out == 0).float().mean()])
    assert torch.allclose(frac, torch.tensor([0.2, 0.3]), atol=0.08)
    assert set(out.unique().tolist()) <= {0.0, 0.5, 1.0}
    hp = {"noise": "gaussian", "noise_sigma": 0.5, "noise_sigma_max": None, "clip_noisy": False}
    d = corrupt(x, hp, g) - x
    assert d.std().item() == pytest.approx(0.5, rel=0.15)


# --------------------------------------------------------------------------- mask
def _linear():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3))


def test_saliency_mask_matches_hand_computation():
    m = _linear()
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    loss = nn.functional.cross_entropy(m(x), y)
    gw, gb = torch.autograd.grad(loss, [m[0].weight, m[0].bias])
    rw = (m[0].weight * gw).abs()
    tau = rw.median().item()
    s = {"mask_mode": "absolute", "mask_tau": tau, "mask_fraction": 0.1, "mask_reduce": "mean", "mask_batch_size": 3}
    mask = compute_mask(m, x, y, torch.device("cpu"), s)  # batches of 3, mean gradient of the whole set
    assert torch.equal(mask["0.weight"], rw > tau)
    assert torch.equal(mask["0.bias"], (m[0].bias * gb).abs() > tau)
    top = compute_mask(m, x, y, torch.device("cpu"), {**s, "mask_mode": "top_global", "mask_fraction": 0.2})
    assert sum(int(v.sum()) for v in top.values()) == round(0.2 * 15)
    lay = compute_mask(m, x, y, torch.device("cpu"), {**s, "mask_mode": "top_layer", "mask_fraction": 0.5})
    assert int(lay["0.weight"].sum()) == 6 and int(lay["0.bias"].sum()) == 2
    assert mask_density(lay) == pytest.approx(8 / 15)


def test_mask_zeroes_exactly_the_masked_gradients_and_updates():
    m = _linear()
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    mask = {"0.weight": torch.rand(3, 4) > 0.5, "0.bias": torch.tensor([True, False, True])}
    nn.functional.cross_entropy(m(x), y).backward()
    full = {n: p.grad.clone() for n, p in m.named_parameters()}
    apply_mask_to_grads(m, mask)
    for n, p in m.named_parameters():
        assert torch.equal(p.grad, full[n] * mask[n])
    # with momentum and weight decay, masked entries still never move (Eq. 7)
    opt = torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        masked_step(opt, m, mask)
    for n, p in m.named_parameters():
        assert torch.equal(p.detach()[~mask[n]], before[n][~mask[n]])
        assert (p.detach()[mask[n]] != before[n][mask[n]]).all()


# --------------------------------------------------------------------------- method
def _setup(tmp_path, **hp):
    torch.manual_seed(0)
    model = build_model("smallcnn", in_channels=1, num_classes=4, image_size=8, width=4)
    x = torch.rand(80, 1, 8, 8)
    y = torch.arange(80) % 4
    forget = np.where(y.numpy() == 1)[0]
    retain = np.where(y.numpy() != 1)[0]
    method = create_method({"method": "clue", **BASE, **hp})
    data = build_unlearn_data(method.access(), x, y, forget, retain, [], 4, [1], "class")
    art = {}
    if "mask" in method.needs():
        s = method.mask_settings()
        art["mask"] = str(tmp_path / "mask.safetensors")
        save_mask(art["mask"], compute_mask(model, x[forget], y[forget], torch.device("cpu"), s), {"settings": s})
    orig = build_model("smallcnn", in_channels=1, num_classes=4, image_size=8, width=4)
    orig.load_state_dict(model.state_dict())
    orig.eval()
    ctx = Context(torch.device("cpu"), 0, orig, art, log=lambda s: None)
    return method, model, data, ctx


def test_clue_never_receives_retain_data(tmp_path):
    for hp in ({}, {"use_mask": False}, {"kd": False}, {"energy": False}, {"soft_labels": "random"}, {"teacher": "refresh"}):
        method, model, data, ctx = _setup(tmp_path, **hp)
        assert method.access() == Access(forget=True)
        assert set(data._sets) == {"forget"}  # retain and val are never materialised
        with pytest.raises(AccessError):
            data.retain
        before = [p.detach().clone() for p in model.parameters()]
        method.unlearn(model, data, ctx)
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_clue_respects_first_mask_and_is_deterministic(tmp_path):
    method, model, data, ctx = _setup(tmp_path, epochs=1, mask_every_epoch=False)
    from unlearnbench.methods.clue.saliency import load_mask

    mask, _ = load_mask(ctx.artefacts["mask"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    method.unlearn(model, data, ctx)
    for n, p in model.named_parameters():
        assert torch.equal(p.detach()[~mask[n]], before[n][~mask[n]])
    assert ctx.info["mask_density_first"] == pytest.approx(mask_density(mask))
    method2, model2, data2, ctx2 = _setup(tmp_path, epochs=1, mask_every_epoch=False)
    method2.unlearn(model2, data2, ctx2)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def test_clue_needs_mask_only_with_mask():
    assert create_method({"method": "clue"}).needs() == ("mask",)
    assert create_method({"method": "clue", "use_mask": False}).needs() == ()


@pytest.mark.parametrize("bad", [{"energy_variant": "x"}, {"teacher": "x"}, {"noise": "x"}, {"kd": False, "energy": False},
                                 {"mask_mode": "x"}, {"mask_fraction": 0.0, "mask_mode": "top_global"}, {"lr": "fast"},
                                 {"noise_sigma": 1.0, "noise_sigma_max": 0.5}, {"unknown": 1}])
def test_clue_bad_hyperparameters_are_one_line_errors(bad):
    with pytest.raises(UserError) as e:
        create_method({"method": "clue", **bad})
    assert "\n" not in str(e.value)


def test_access_error_if_forced_to_read_retain():
    d = UnlearnData(Access(forget=True), 2, [0], "class", sets={"forget": (torch.zeros(1), torch.zeros(1))})
    with pytest.raises(AccessError):
        d.retain


def test_clue_divergence_returns_a_finite_model(tmp_path):
    method, model, data, ctx = _setup(tmp_path, use_mask=False, lr=50.0, temperature=0.05, lambda_energy=100.0, epochs=4)
    method.unlearn(model, data, ctx)
    assert "diverged_epoch" in ctx.info
    with torch.no_grad():
        assert torch.isfinite(model(data.forget[0])).all()
