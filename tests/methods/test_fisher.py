"""Fisher forgetting: exact diagonal Fisher, the noise rule of Golatkar et al.'s code, access."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from unlearnbench.errors import AccessError, UserError
from unlearnbench.methods import Access, Context, UnlearnData, create_method
from unlearnbench.parts.fisher_diag import diag_fisher
from unlearnbench.models import build_model

CPU = torch.device("cpu")


def small_model(seed=0):
    torch.manual_seed(seed)
    return build_model("smallcnn", in_channels=1, num_classes=4, image_size=6, width=2).eval()


def data(n=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 6, 6, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_diag_fisher_matches_a_per_sample_loop():
    model = small_model()
    x, _ = data()
    fast = diag_fisher(model, x, batch_size=5, device=CPU)
    slow = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for i in range(len(x)):
        prob = F.softmax(model(x[i : i + 1]), 1)[0].detach()
        for c in range(4):
            model.zero_grad()
            F.cross_entropy(model(x[i : i + 1]), torch.tensor([c])).backward()
            for k, p in model.named_parameters():
                slow[k] += prob[c] * p.grad.pow(2)
    for k in slow:
        torch.testing.assert_close(fast[k], slow[k] / len(x), rtol=1e-4, atol=1e-7)


def unlearn(hp, classes=(1,), seed=0, request_type="class"):
    m = create_method({"method": "fisher", **hp})
    x, y = data(16)
    keep = ~torch.isin(y, torch.tensor(classes))
    d = UnlearnData(m.access(), 4, list(classes), request_type, sets={"retain": (x[keep], y[keep])})
    model = small_model()
    ctx = Context(device=CPU, seed=seed, original=copy.deepcopy(model))
    return small_model(), m.unlearn(model, d, ctx), d, ctx


def test_fisher_reads_retain_only_and_perturbs_weights():
    assert create_method({"method": "fisher"}).access() == Access(retain="full")
    before, after, d, ctx = unlearn({"alpha": 1e-6})
    with pytest.raises(AccessError):
        d.forget
    diffs = [float((a - b).abs().max().detach()) for a, b in zip(after.parameters(), before.parameters())]
    assert all(v > 0 for v in diffs)
    # forget-class head rows: mean 0, std sqrt(1e-4 * 10)
    assert after.net.head.weight[1].abs().max() < 0.2
    assert after.net.head.bias[1].abs() < 0.2
    assert ctx.info["noise_std_mean"] > 0


def test_fisher_noise_scale_follows_alpha_and_is_seeded():
    before, a0, _, _ = unlearn({"alpha": 0.0, "zero_forget_rows": False})
    for p, q in zip(a0.parameters(), before.parameters()):
        torch.testing.assert_close(p, q)  # alpha 0: no noise
    _, a1, _, _ = unlearn({"alpha": 1e-6}, seed=3)
    _, a2, _, _ = unlearn({"alpha": 1e-6}, seed=3)
    _, big, _, _ = unlearn({"alpha": 1e-2}, seed=3)
    for p, q in zip(a1.parameters(), a2.parameters()):
        assert torch.equal(p, q)
    def dist(m):  # squared distance of the non-head parameters to the original
        return sum(float((p - q).pow(2).sum().detach()) for (k, p), (_, q) in zip(m.named_parameters(), before.named_parameters())
                   if "head" not in k)

    assert dist(big) > 100 * dist(a1)


def test_fisher_random_forgetting_keeps_head_rows():
    before, after, _, _ = unlearn({"alpha": 1e-8}, request_type="random")
    assert after.net.head.weight[1].abs().max() > 0.2 * before.net.head.weight[1].abs().max()


@pytest.mark.parametrize("hp", [{"alpha": -1.0}, {"batch_size": 0}, {"clamp": 0.0}, {"beta": 1}])
def test_bad_hyperparameters(hp):
    with pytest.raises(UserError):
        create_method({"method": "fisher", **hp})
