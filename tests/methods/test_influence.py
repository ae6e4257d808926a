"""Influence unlearning (forget-only, WoodFisher/Woodbury inverse)."""

import numpy as np
import torch

from helpers import build_unlearn_data
from unlearnbench.methods import Context, create_method
from unlearnbench.methods.influence import woodbury_inverse_vp
from unlearnbench.models import build_model


def test_woodbury_matches_explicit_inverse():
    torch.manual_seed(0)
    G, v = torch.randn(5, 12, dtype=torch.float64), torch.randn(12, dtype=torch.float64)
    F = 0.3 * torch.eye(12, dtype=torch.float64) + G.T @ G / 5
    assert torch.allclose(woodbury_inverse_vp(G, v, 0.3), torch.linalg.solve(F, v), atol=1e-10)


def test_influence_step_raises_forget_loss():
    torch.manual_seed(0)
    model = build_model("smallcnn", in_channels=1, num_classes=3, image_size=8, width=4)
    x, y = torch.rand(30, 1, 8, 8), torch.arange(30) % 3
    m = create_method({"method": "influence", "alpha": 0.01, "num_samples": 6})
    f = np.where(y.numpy() == 0)[0]
    data = build_unlearn_data(m.access(), x, y, f, np.where(y.numpy() != 0)[0], [], 3, [0], "class")
    ce = lambda: torch.nn.functional.cross_entropy(model(x[f]), y[f]).item()  # noqa: E731
    model.eval()
    before = ce()
    ctx = Context(torch.device("cpu"), 0, model, log=lambda s: None)
    m.unlearn(model, data, ctx)
    assert ce() > before and ctx.info["n_fisher"] == 6
