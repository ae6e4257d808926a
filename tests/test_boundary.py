"""Boundary Shrinking / Expanding baselines (forget-only)."""

import numpy as np
import torch
from torch import nn

from helpers import build_unlearn_data
from unlearnbench.methods import Context, create_method
from unlearnbench.methods.boundary_expand import expand_head, prune_head
from unlearnbench.methods.boundary_shrink import nearest_wrong_labels
from unlearnbench.models import build_model


def _model():
    torch.manual_seed(0)
    return build_model("smallcnn", in_channels=1, num_classes=4, image_size=8, width=4)


def _run(spec):
    model = _model()
    orig = _model().eval()
    x, y = torch.rand(40, 1, 8, 8), torch.arange(40) % 4
    m = create_method(spec)
    f, r = np.where(y.numpy() == 2)[0], np.where(y.numpy() != 2)[0]
    data = build_unlearn_data(m.access(), x, y, f, r, [], 4, [2], "class")
    out = m.unlearn(model, data, Context(torch.device("cpu"), 0, orig, log=lambda s: None))
    return out, orig, x[f]


def test_expand_then_prune_restores_head_shape_and_rows():
    m = _model()
    w0 = m.head.weight.detach().clone()
    expand_head(m)
    assert m.head.out_features == 5 and torch.equal(m.head.weight[:4].detach(), w0)
    assert m(torch.rand(2, 1, 8, 8)).shape == (2, 5)
    prune_head(m)
    assert m.head.out_features == 4 and torch.equal(m.head.weight.detach(), w0)


def test_boundary_expand_shadow_neuron_gone_after_unlearning():
    out, orig, xf = _run({"method": "boundary_expand", "lr": 0.05, "epochs": 5, "batch_size": 8})
    assert out.head.weight.shape == orig.head.weight.shape and out.head.bias.shape == orig.head.bias.shape
    assert set(out.state_dict()) == set(orig.state_dict())
    assert all(out.state_dict()[k].shape == v.shape for k, v in orig.state_dict().items())
    assert out(xf).shape[1] == 4
    out.load_state_dict(orig.state_dict())  # the checkpoint fits the original architecture


def test_nearest_wrong_label_is_never_the_true_label_and_is_fgsm_argmax():
    m = _model().eval()
    x, y = torch.rand(30, 1, 8, 8), torch.arange(30) % 4
    lab = nearest_wrong_labels(m, x, y, 0.1, torch.device("cpu"), batch_size=7)
    assert (lab != y).all()
    xa = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(nn.functional.cross_entropy(m(xa), y), xa)
    with torch.no_grad():
        logits = m((x + 0.1 * g.sign()).clamp(0, 1))
    logits[torch.arange(30), y] = -float("inf")
    # per-batch FGSM (mean loss per batch) has the same sign as the whole-set gradient
    assert torch.equal(lab, logits.argmax(1))


def test_boundary_shrink_moves_forget_predictions_to_other_classes():
    out, orig, xf = _run({"method": "boundary_shrink", "lr": 0.05, "epochs": 10, "batch_size": 8})
    with torch.no_grad():
        assert (out(xf).argmax(1) == 2).float().mean() <= (orig(xf).argmax(1) == 2).float().mean()
        assert (out(xf).argmax(1) != 2).all()
