"""Lipschitz unlearning (JiT): the loss and its effect."""

import numpy as np
import torch
from torch import nn

from helpers import build_unlearn_data
from unlearnbench.methods import Context, create_method
from unlearnbench.methods.lipschitz import lipschitz_loss


def test_lipschitz_loss_of_linear_map_is_mean_gain_on_noise():
    torch.manual_seed(0)
    lin = nn.Linear(6, 3, bias=True)
    x = torch.rand(2, 6)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    loss = lipschitz_loss(lin, x, 4, 0.2, g1, torch.device("cpu"))
    noise = 0.2 * torch.randn((4, 2, 6), generator=g2)
    ratio = (noise @ lin.weight.T).norm(dim=2) / noise.norm(dim=2)  # f(x)-f(x+n) = -W n
    assert torch.allclose(loss, ratio.mean(), atol=1e-6)


def test_lipschitz_unlearning_reduces_local_sensitivity():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.rand(12, 1, 4, 4), torch.arange(12) % 3
    f = np.where(y.numpy() == 0)[0]
    m = create_method({"method": "lipschitz", "lr": 0.05, "epochs": 3, "n_copies": 8, "sigma": 0.1})
    data = build_unlearn_data(m.access(), x, y, f, np.where(y.numpy() != 0)[0], [], 3, [0], "class")
    measure = lambda: lipschitz_loss(model, x[f], 64, 0.1, torch.Generator().manual_seed(9), torch.device("cpu")).item()  # noqa: E731
    before = measure()
    m.unlearn(model, data, Context(torch.device("cpu"), 0, model, log=lambda s: None))
    assert measure() < before
