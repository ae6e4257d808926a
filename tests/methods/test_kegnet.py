"""zMuGAN's KegNet inversion (parts/kegnet): the options that make it do what KegNet's code does
(snudatalab/KegNet src/kegnet/generator/{train.py,models.py,loss.py}; issue #21): the classifier in
train mode, the per-image standardised generator output and the l1 / l2 diversity distance."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from unlearnbench.errors import UserError
from unlearnbench.methods import create_method
from unlearnbench.models import build_model
from unlearnbench.parts.kegnet import (INVERSION_KEYS, InversionGenerator, build_inversion_generator, diversity_loss,
                                       inversion_classifier, inversion_settings, train_inversion)

CPU = torch.device("cpu")
SETTINGS = {"inv_noise_dim": 10, "inv_width": 16, "inv_steps": 3, "inv_batch_size": 8, "inv_lr": 1e-2, "inv_alpha": 1.0,
            "inv_beta": 1.0, "inv_div_metric": "l2", "inv_dec_layers": 1, "inv_output": "tanh"}


def test_kegnet_output_is_standardised_per_image_and_channel():
    """inv_output "kegnet" = KegNet's normalize_images: (t - mean_hw) / std_hw per image and channel
    (unbiased std, no epsilon) is what the classifier normalises back to; no clipping."""
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    torch.manual_seed(0)
    g = InversionGenerator(10, 3, 16, noise_dim=10, width=16, output="kegnet", mean=mean, std=std).eval()
    labels, z = torch.eye(10)[torch.arange(6) % 10], torch.randn(6, 10)
    x = g(labels, z)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    zn = ((x - m) / s).flatten(2)  # what the model's own normalisation feeds its backbone
    assert torch.allclose(zn.mean(2), torch.zeros(6, 3), atol=1e-5)
    assert torch.allclose(zn.std(2), torch.ones(6, 3), atol=1e-5)
    h = g.fc(torch.cat((z, labels), 1))  # the formula on the tanh output, written out
    t = g.conv(h.view(6, -1, 1, 1))
    want = (t - t.mean((2, 3), keepdim=True)) / t.flatten(2).std(2).view(6, 3, 1, 1)
    assert torch.allclose((x - m) / s, want, atol=1e-5)
    assert x.min() < 0 or x.max() > 1  # unclipped: a standardised image leaves the pixel range
    clipped = InversionGenerator(10, 3, 16, noise_dim=10, width=16, output="standardize", mean=mean, std=std).eval()
    clipped.load_state_dict(g.state_dict())
    xc = clipped(labels, z)
    assert 0 <= xc.min() and xc.max() <= 1 and not torch.allclose(xc, x)  # the earlier approximation
    again = build_inversion_generator(g.arch())  # the output kind is part of the recorded architecture
    again.load_state_dict(g.state_dict())
    assert torch.equal(again.eval()(labels, z), x)


def test_diversity_loss_is_the_l1_or_l2_formula():
    """exp(-mean_ij d_z(i,j) * d_x(i,j)), d_z the mean squared noise difference, d_x the mean absolute
    (l1, KegNet's code) or squared (l2, the thesis's Alg. 6) image difference over all ordered pairs."""
    z = torch.tensor([[0.0], [1.0]])
    x = torch.tensor([[0.0, 0.0], [1.0, 3.0]]).view(2, 1, 1, 2)
    # pairs (0,1) and (1,0): d_z = 1, d_x = (1 + 3) / 2 = 2 (l1) or (1 + 9) / 2 = 5 (l2); diagonal 0
    assert diversity_loss(z, x, "l1").item() == pytest.approx(math.exp(-(2 + 2) / 4))
    assert diversity_loss(z, x, "l2").item() == pytest.approx(math.exp(-(5 + 5) / 4))
    g = torch.Generator().manual_seed(0)
    z, x = torch.randn(4, 3, generator=g), torch.rand(4, 2, 2, 2, generator=g)
    for metric, dist in (("l1", lambda a, b: (a - b).abs().mean()), ("l2", lambda a, b: (a - b).pow(2).mean())):
        total = sum(((z[i] - z[j]).pow(2).mean() * dist(x[i].flatten(), x[j].flatten())) for i in range(4) for j in range(4))
        assert diversity_loss(z, x, metric).item() == pytest.approx(math.exp(-total.item() / 16), rel=1e-6)
    with pytest.raises(UserError, match="l1 or l2"):
        diversity_loss(z, x, "cosine")


def test_classifier_train_mode_uses_and_moves_batchnorm_statistics_on_a_copy():
    """inv_classifier_mode "train" (KegNet never calls classifier.eval()): the inversion's classifier
    is a train-mode copy whose BN running statistics move with the generated batches; "eval" uses
    the original itself in eval mode, statistics fixed. The caller's model is untouched either way."""
    torch.manual_seed(0)
    model = build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=8).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(16, 1, 8, 8)
    f = inversion_classifier(model, "train")
    assert f is not model and f.training and all(m.training for m in f.modules())
    with torch.no_grad():
        out_train = f(x)
    bn = [k for k in before if k.endswith("running_mean")]
    assert bn and all(not torch.equal(f.state_dict()[k], before[k]) for k in bn)  # statistics moved (on the copy)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()) and not model.training
    e = inversion_classifier(model, "eval")
    assert e is model and not e.training
    with torch.no_grad():
        out_eval = e(x)
    assert not torch.allclose(out_train, out_eval)  # batch statistics vs running statistics
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(UserError, match="inv_classifier_mode must be eval or train"):
        inversion_classifier(model, "frozen")

    class Recorder(nn.Module):  # what mode the classifier is in at each inversion step
        seen: list = []

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            Recorder.seen.append(self.training)
            return self.net(x)

    wrapped = Recorder(model).eval()
    states = {}
    for mode in ("eval", "train"):
        Recorder.seen = []
        states[mode], _ = train_inversion(wrapped, 10, 1, 8, {**SETTINGS, "inv_classifier_mode": mode}, 0, CPU)
        assert Recorder.seen == [mode == "train"] * SETTINGS["inv_steps"]
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # weights and BN statistics
        assert not wrapped.training and all(p.requires_grad for p in model.parameters())
    assert any(not torch.equal(v, states["train"][k]) for k, v in states["eval"].items())


def test_settings_without_the_new_key_mean_the_default():
    assert "inv_classifier_mode" in INVERSION_KEYS
    assert inversion_settings(SETTINGS)["inv_classifier_mode"] == "eval"  # earlier artefacts' settings
    torch.manual_seed(0)
    model = build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=8)
    a, _ = train_inversion(copy.deepcopy(model), 10, 1, 8, SETTINGS, 0, CPU)
    b, _ = train_inversion(copy.deepcopy(model), 10, 1, 8, {**SETTINGS, "inv_classifier_mode": "eval"}, 0, CPU)
    assert all(torch.equal(v, b[k]) for k, v in a.items())
    with pytest.raises(KeyError):
        inversion_settings({k: v for k, v in SETTINGS.items() if k != "inv_lr"})


def test_zmugan_declares_the_kegnet_options():
    d = create_method({"method": "zmugan"})
    assert (d.hp["inv_classifier_mode"], d.hp["inv_output"], d.hp["inv_div_metric"]) == ("eval", "tanh", "l2")
    exact = create_method({"method": "zmugan", "inv_classifier_mode": "train", "inv_output": "kegnet", "inv_div_metric": "l1"})
    s = exact.artefact_settings("kegnet")
    assert (s["inv_classifier_mode"], s["inv_output"], s["inv_div_metric"]) == ("train", "kegnet", "l1")
    assert "inv_classifier_mode" not in d.artefact_settings("kegnet")  # the default: earlier artefacts keep their keys
    assert exact.artefact_settings("synthetic_inversion")["inv_classifier_mode"] == "train"
    for key, bad in (("inv_classifier_mode", "frozen"), ("inv_output", "raw"), ("inv_div_metric", "cosine")):
        with pytest.raises(UserError, match=f"{key} must be one of") as e:
            create_method({"method": "zmugan", key: bad})
        assert "\n" not in str(e.value)
