"""UISPS data-free inversion (paper 004, Eqs 1-5): the BN-statistics loss of Eq. 2, the inversion of a
digits class from the original model alone, its stage files and their loading."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from helpers import make_setup, stage_job
from unlearnbench.errors import UserError
from unlearnbench.io import read_json, read_npz, save_checkpoint, write_npz
from unlearnbench.parts.inversion import (INVERSION_DEFAULTS, batch_statistics, bn_statistics_loss, entropy,
                                          invert_class, load_inversion, run_invert_class)

CPU = torch.device("cpu")


def _match_running_stats(model: nn.Module, x: torch.Tensor) -> None:
    """Set every BN layer's running statistics to those of the batch entering it (eval mode, in order)."""
    model.eval()
    for bn in [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]:
        seen = {}
        h = bn.register_forward_pre_hook(lambda m, inp: seen.setdefault("x", inp[0].detach()))
        with torch.no_grad():
            model(x)
        h.remove()
        mu, var = batch_statistics(seen["x"])
        bn.running_mean.copy_(mu)
        bn.running_var.copy_(var)


@pytest.fixture(scope="module")
def hand_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 5 * 5, 6), nn.BatchNorm1d(6))
    x = torch.rand(7, 2, 5, 5)
    _match_running_stats(model, x)
    return model, x


def test_bn_loss_is_zero_when_batch_statistics_equal_running_statistics(hand_model):
    model, x = hand_model
    assert bn_statistics_loss(model, x).item() == 0.0
    assert bn_statistics_loss(model, torch.rand(7, 2, 5, 5)).item() > 0.01  # another batch differs


def test_bn_loss_is_a_sum_of_plain_l2_norms(hand_model):
    """Eq. 2: ||mu - E mu||_2 + ||var - E var||_2 per layer (not squared), summed over layers."""
    model, x = copy.deepcopy(hand_model[0]), hand_model[1]
    last = model[8]
    last.running_mean += torch.tensor([3.0, 4.0, 0, 0, 0, 0])    # ||.|| = 5
    last.running_var += torch.tensor([0, 0, 6.0, 8.0, 0, 0])     # ||.|| = 10
    assert bn_statistics_loss(model, x).item() == pytest.approx(15.0, abs=1e-5)
    state = copy.deepcopy(model.state_dict())
    bn_statistics_loss(model, x)  # eval mode: running statistics untouched
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_entropy_matches_definition():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(entropy(logits), torch.tensor([float(np.log(4.0)), 0.0]), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def digits():
    return make_setup((0,))


SETTINGS = {**INVERSION_DEFAULTS, "inv_iters": 300}


def test_inversion_lowers_its_loss_and_hits_the_class(digits):
    model = digits.model
    before = copy.deepcopy(model.state_dict())
    x, info = invert_class(model, 3, 10, (1, 8, 8), SETTINGS, 0, CPU)
    assert x.shape == (32, 1, 8, 8) and x.min() >= 0 and x.max() <= 1
    assert info["loss_final"]["total"] < 0.2 * info["loss_first"]["total"]
    assert info["loss_final"]["ce"] < info["loss_first"]["ce"]
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert (pred == 3).float().mean().item() >= 0.9, info
    assert info["pred_as_class"] == pytest.approx((pred == 3).float().mean().item() * 100)
    for k, v in model.state_dict().items():  # weights and BN running statistics untouched
        assert torch.equal(v, before[k]), k
    assert all(p.requires_grad is False for p in digits.context().original.parameters())
    x2, _ = invert_class(model, 3, 10, (1, 8, 8), SETTINGS, 0, CPU)
    x3, _ = invert_class(model, 3, 10, (1, 8, 8), SETTINGS, 1, CPU)
    assert torch.equal(x, x2) and not torch.equal(x, x3)


def test_entropy_sign_moves_the_subset_towards_the_boundary(digits):
    s = {**SETTINGS, "inv_lambda2": 1.0, "inv_entropy_fraction": 0.5}
    _, up = invert_class(digits.model, 5, 10, (1, 8, 8), {**s, "inv_entropy_sign": "maximise"}, 0, CPU)
    _, down = invert_class(digits.model, 5, 10, (1, 8, 8), {**s, "inv_entropy_sign": "minimise"}, 0, CPU)
    assert up["mean_entropy_subset"] > up["mean_entropy_rest"]          # low-confidence subset
    assert up["mean_entropy_subset"] > 2 * down["mean_entropy_subset"]
    assert up["pred_as_class"] >= 90                                   # still recognised as the class


def test_sigmoid_parametrisation_also_inverts(digits):
    x, info = invert_class(digits.model, 7, 10, (1, 8, 8), {**SETTINGS, "inv_param": "sigmoid"}, 0, CPU)
    assert info["pred_as_class"] >= 90 and 0 <= x.min() and x.max() <= 1


def _ckpt(tmp_path, model):
    meta = {"model_spec": {"arch": "smallcnn", "width": 16}, "in_channels": 1, "num_classes": 10, "image_size": 8,
            "mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()}
    path = tmp_path / "original.safetensors"
    save_checkpoint(path, model.state_dict(), meta)
    return str(path)


def test_stage_files_are_deterministic_and_loadable(digits, tmp_path):
    ckpt = _ckpt(tmp_path, digits.model)
    outs = []
    for run in ("a", "b"):
        d = tmp_path / run
        files = [str(d / n) for n in ("inv.npz", "inv.json", "inv.time.json", "inv.png")]
        run_invert_class(stage_job(0, **dict(zip(("samples", "info", "time", "grid"), files))), ckpt, 2, {**SETTINGS, "inv_iters": 50})
        outs.append(files)
    for i in (0, 1, 3):  # npz, info and figure are byte-identical; the timing sidecar is not compared
        assert open(outs[0][i], "rb").read() == open(outs[1][i], "rb").read(), outs[0][i]
    z = read_npz(outs[0][0])
    assert z["x"].dtype == np.float32 and z["x"].shape == (32, 1, 8, 8) and (z["y"] == 2).all() and int(z["cls"]) == 2
    assert open(outs[0][3], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    info = read_json(outs[0][1])
    assert {"loss_first", "loss_final", "pred_as_class", "mean_confidence", "settings"} <= set(info)
    assert "seconds" in read_json(outs[0][2]) and "seconds" not in info
    syn = load_inversion([outs[0][0]], (1, 8, 8))
    assert list(syn) == [2] and torch.equal(syn[2], torch.from_numpy(z["x"]))


def test_corrupt_or_foreign_inversion_file_is_one_user_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip archive")
    foreign = tmp_path / "foreign.npz"
    write_npz(foreign, noise=np.zeros((2, 1, 8, 8), np.float32))
    wrong = tmp_path / "wrong.npz"
    write_npz(wrong, x=np.full((2, 1, 8, 8), 2.0, np.float32), y=np.zeros(2, np.int64), cls=np.asarray(0))
    for path in (bad, foreign, wrong, tmp_path / "missing.npz"):
        with pytest.raises(UserError) as e:
            load_inversion([str(path)], (1, 8, 8))
        assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_bad_settings_and_bn_free_models_fail_with_one_line(digits):
    with pytest.raises(UserError):
        invert_class(digits.model, 0, 10, (1, 8, 8), {**SETTINGS, "inv_entropy_sign": "up"}, 0, CPU)
    with pytest.raises(UserError):
        invert_class(digits.model, 12, 10, (1, 8, 8), SETTINGS, 0, CPU)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(UserError) as e:
        invert_class(plain, 0, 10, (1, 8, 8), SETTINGS, 0, CPU)
    assert "inv_lambda1" in str(e.value)
    _, info = invert_class(plain, 0, 10, (1, 8, 8), {**SETTINGS, "inv_lambda1": 0.0, "inv_iters": 20}, 0, CPU)
    assert info["loss_final"]["bn"] == 0.0
