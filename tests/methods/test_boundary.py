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


def test_boundary_expand_moves_forget_samples_out_and_prunes_the_shadow_neuron():
    out, orig, xf = _run({"method": "boundary_expand", "lr": 0.05, "epochs": 5, "batch_size": 8})
    assert out.head.weight.shape == orig.head.weight.shape and out.head.bias.shape == orig.head.bias.shape
    assert set(out.state_dict()) == set(orig.state_dict())
    out.load_state_dict(orig.state_dict())  # the checkpoint fits the original architecture ...
    out2, orig2, xf2 = _run({"method": "boundary_expand", "lr": 0.05, "epochs": 5, "batch_size": 8})
    with torch.no_grad():  # ... and training into the shadow neuron lowered the forget class's logit margin
        before = orig2(xf2)
        after = out2(xf2)
    margin = lambda z: z[:, 2] - z.masked_fill(torch.arange(4) == 2, -1e9).max(1).values
    assert margin(after).mean() < margin(before).mean() - 0.5
    assert (out2.head.weight[torch.arange(4) != 2] != orig2.head.weight[torch.arange(4) != 2]).any()


class _Linear2D(nn.Module):
    """Three classes on [0,1]^2 with known decision boundaries: scores a, b and 1 - a."""

    def forward(self, x):
        a, b = x.flatten(1).unbind(1)
        return torch.stack([a, b, 1 - a], 1)


def test_nearest_wrong_label_is_the_class_across_the_nearest_boundary():
    """Class-0 points near the boundary a = b get label 1; near a = 1 - a (a = 0.5) label 2."""
    m = _Linear2D().eval()
    x = torch.tensor([[0.60, 0.55], [0.90, 0.86], [0.53, 0.10], [0.56, 0.30]]).view(4, 1, 1, 2).requires_grad_(False)
    y = torch.zeros(4, dtype=torch.long)
    assert (m(x).argmax(1) == 0).all()
    lab = nearest_wrong_labels(m, x, y, 0.05, torch.device("cpu"))
    assert lab.tolist() == [1, 1, 2, 2]


def test_boundary_shrink_moves_forget_predictions_to_other_classes():
    out, orig, xf = _run({"method": "boundary_shrink", "lr": 0.05, "epochs": 10, "batch_size": 8})
    with torch.no_grad():
        assert (out(xf).argmax(1) == 2).float().mean() <= (orig(xf).argmax(1) == 2).float().mean()
        assert (out(xf).argmax(1) != 2).all()
