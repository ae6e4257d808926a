"""Figure kinds on tiny synthetic inputs: Grad-CAM and attention rollout (figures/_saliency.py), the
saliency_maps kind (UNSIR Fig. 5, CLUE Table 6) drawn from checkpoints, an archive, a split and a
request written here, and cost_bars' method selection and split time bars (UNSIR Fig. 6)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from unlearnbench.errors import UserError
from unlearnbench.io import write_figure, write_json, write_npz
from unlearnbench.models import build_model
from unlearnbench.models.checkpoint import model_meta, save_model
from unlearnbench.report.figures import cost_bars, saliency_maps
from unlearnbench.report.figures._saliency import attention_modules, attention_rollout, grad_cam, last_conv_block

VIT = {"arch": "vit", "patch_size": 4, "embed_dim": 16, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0}


def _model(spec, channels=1, size=8, classes=4, seed=0):
    torch.manual_seed(seed)
    args = {k: v for k, v in spec.items() if k != "arch"}
    return build_model(spec["arch"], in_channels=channels, num_classes=classes, image_size=size, **args).eval()


# ----------------------------------------------------------------------------- Grad-CAM
def test_grad_cam_is_the_gradient_weighted_activation_of_the_last_conv_block():
    model = _model({"arch": "smallcnn", "width": 4})
    x = torch.rand(3, 1, 8, 8)
    target = torch.tensor([0, 1, 2])
    cam, logits, name = grad_cam(model, x, target)
    assert not any(p.grad is not None for p in model.parameters())  # no .grad left on the weights (autograd.grad)
    # by hand: the body up to its last ReLU (8 px -> max-pool -> 4x4), the gradient of the class score
    body = model.net.body
    assert isinstance(dict(model.named_modules())[name], nn.ReLU) and name == "net.body.6"
    a = body[:7]((x - model.mean) / model.std)
    a.retain_grad()
    out = model.net.head(body[7:](a))
    out.gather(1, target.view(-1, 1)).sum().backward()
    want = torch.relu((a.grad.mean((2, 3), keepdim=True) * a).sum(1)).detach()
    assert cam.shape == (3, 4, 4) and torch.allclose(cam, want, atol=1e-6)
    assert torch.allclose(logits, model(x).detach(), atol=1e-6)


def test_grad_cam_points_at_the_evidence():
    # a 1x1 conv that copies the image, global pooling and a head whose class 1 counts brightness:
    # the class-1 map is the image itself, peaking on the bright square
    net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[4].weight.copy_(torch.tensor([[-1.0], [1.0]]))
    x = torch.zeros(1, 1, 6, 6)
    x[0, 0, 1:3, 3:5] = 1.0
    cam, _, name = grad_cam(net, x, torch.tensor([1]))
    assert name == "1" and torch.equal(cam[0] > 0, x[0, 0] > 0)
    cam0, _, _ = grad_cam(net, x, torch.tensor([0]))  # class 0's evidence is negative everywhere
    assert float(cam0.max()) == 0.0


def test_last_conv_block_of_a_resnet_vgg_and_the_min_size():
    x = torch.rand(1, 3, 8, 8)
    res = _model({"arch": "resnet20", "width": 4}, channels=3)  # stages at 8, 4 and 2 px
    assert last_conv_block(res, x)[0::2] == ("net.layers.8", (2, 2))  # the last residual block, not its stage
    assert last_conv_block(res, x, min_size=4)[0::2] == ("net.layers.5", (4, 4))
    vgg = _model({"arch": "vgg16_bn", "width_mult": 0.125}, channels=3, size=16)
    name, mod, size = last_conv_block(vgg, torch.rand(1, 3, 16, 16))
    assert isinstance(mod, nn.ReLU) and size == (1, 1)  # after the in-place ReLU, not the pooling
    with pytest.raises(UserError, match="no convolutional feature map of at least 32x32"):
        last_conv_block(vgg, torch.rand(1, 3, 16, 16), min_size=32)
    with pytest.raises(UserError, match="use attention rollout"):
        grad_cam(_model(VIT, channels=3), x, torch.tensor([0]))


# ----------------------------------------------------------------------------- attention rollout
def test_attention_rollout_matches_the_definition_and_restores_the_model():
    model = _model(VIT, channels=3)
    x = torch.rand(2, 3, 8, 8)
    attns = attention_modules(model)
    fused = [a.fused_attn for a in attns]
    maps, logits, what = attention_rollout(model, x)
    assert [a.fused_attn for a in attns] == fused and "2 blocks" in what
    assert torch.allclose(logits, model(x).detach(), atol=1e-5)
    # by hand: each block's softmax(QK^T / sqrt(d)) from its own qkv projection
    vit = model.net.vit
    h = vit.patch_embed((x - model.mean) / model.std)
    h = vit._pos_embed(h)
    h = vit.norm_pre(h)
    roll = torch.eye(h.shape[1]).expand(2, -1, -1)
    with torch.no_grad():
        for blk in vit.blocks:
            a = blk.attn
            qkv = a.qkv(blk.norm1(h)).reshape(2, h.shape[1], 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)
            att = ((qkv[0] * a.scale) @ qkv[1].transpose(-2, -1)).softmax(-1).mean(1)
            att = (att + torch.eye(h.shape[1])) / 2
            roll = (att / att.sum(-1, keepdim=True)) @ roll
            h = blk(h)
    assert maps.shape == (2, 2, 2) and torch.allclose(maps, roll[:, 0, 1:].reshape(2, 2, 2), atol=1e-5)
    assert bool((maps > 0).all()) and float(maps.sum((1, 2)).max()) < 1.0  # the class token keeps a share


# ----------------------------------------------------------------------------- the saliency_maps kind
def _files(tmp_path, spec, channels=1, size=8, classes=4, methods=("original", "retrain", "unlearn"), forget=(1,)):
    rng = np.random.default_rng(0)
    n = 40
    y = np.arange(n) % classes
    x = rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    data = {"x": x, "y": y, "is_test": np.arange(n) >= 20, "mean": np.full(channels, 0.5), "std": np.full(channels, 0.25),
            "class_names": np.asarray([str(c) for c in range(classes)])}
    write_npz(tmp_path / "data.npz", **data)
    write_json(tmp_path / "split.json", {"train": list(range(16)), "val": list(range(16, 20)), "test": list(range(20, n))})
    train = np.arange(16)
    write_json(tmp_path / "request.json", {"type": "class", "forget_classes": list(forget),
                                           "forget": train[np.isin(y[train], forget)].tolist(),
                                           "retain": train[~np.isin(y[train], forget)].tolist()})
    runs = []
    for i, m in enumerate(methods):
        model = _model(spec, channels, size, classes, seed=i)
        save_model(tmp_path / f"{m}.safetensors", model, model_meta(data, spec))
        runs.append({"dataset": "d", "model": "m", "training": "t", "scenario": "s", "seed": 0, "method": m,
                     "files": {"checkpoint": str(tmp_path / f"{m}.safetensors"), "data": str(tmp_path / "data.npz"),
                               "split": str(tmp_path / "split.json"), "request": str(tmp_path / "request.json")}})
    return runs, y


def test_saliency_maps_grad_cam_rows_of_forget_and_retained_images(tmp_path):
    runs, y = _files(tmp_path, {"arch": "smallcnn", "width": 4}, forget=(1, 2))
    fig, df = saliency_maps.draw(runs, [], {"n_forget": 2, "n_retain": 3, "min_size": 2}, "cpu", 1)
    write_figure(tmp_path / "fig.png", fig)
    assert (tmp_path / "fig.png").stat().st_size > 0
    images = df.drop_duplicates("index")
    assert list(images["role"]) == ["forget", "forget", "retain", "retain", "retain"]
    assert list(images["label"]) == [1, 2, 0, 3, 0]  # classes taken in turn
    assert all(int(y[i]) == lab for i, lab in zip(images["index"], images["label"]))
    assert set(df["index"]) <= set(range(20, 40))  # test images only
    assert list(dict.fromkeys(df["method"])) == ["original", "retrain", "unlearn"]
    assert len(df) == 5 * 3 * 16  # images x methods x cells of the 4x4 map
    per_map = df.groupby(["index", "method"])
    assert ((per_map["drawn"].max() == 1.0) | (per_map["value"].max() == 0.0)).all()  # each map to its maximum
    assert df["p_label"].between(0, 1).all()
    # the same images and maps on one scale per row: a map's largest drawn value is its share of the row's
    _, rows = saliency_maps.draw(runs, [], {"n_forget": 2, "n_retain": 3, "min_size": 2, "normalize": "row"}, "cpu", 1)
    assert list(rows["value"]) == list(df["value"])
    assert math.isclose(rows.groupby("index")["drawn"].max().min(), 1.0) or rows["value"].max() == 0.0


def test_saliency_maps_attention_of_a_vit_on_named_classes(tmp_path):
    runs, _ = _files(tmp_path, VIT, channels=3, forget=(2,), methods=("original", "clue"))
    fig, df = saliency_maps.draw(runs, [], {"classes": [0, 2, 3], "per_class": 2, "methods": ["clue", "original"]}, "cpu", 1)
    images = df.drop_duplicates("index")
    assert list(images["label"]) == [0, 0, 2, 2, 3, 3] and list(images["role"]) == ["retain"] * 2 + ["forget"] * 2 + ["retain"] * 2
    assert list(dict.fromkeys(df["method"])) == ["clue", "original"]
    assert len(df) == 6 * 2 * 4  # 2x2 patch grid
    text = fig.get_supxlabel().replace("\n", " ")
    assert "attention rollout over 2 blocks" in text
    with pytest.raises(UserError, match="use attention rollout"):
        saliency_maps.draw(runs, [], {"map": "gradcam"}, "cpu", 1)
    with pytest.raises(UserError, match="method 'retrain' has no run"):
        saliency_maps.draw(runs, [], {"methods": ["original", "retrain"]}, "cpu", 1)


# ----------------------------------------------------------------------------- cost_bars
def _cost(tmp_path):
    rows = []
    for method, name, step, arts in (("original", "original", math.nan, math.nan), ("retrain", "retrain", 20.0, 0.0),
                                     ("retrain_indep", "retrain", 21.0, 0.0), ("fisher", "fisher", 8.0, 0.0),
                                     ("unsir", "unsir", 1.0, 0.5)):
        for metric, v in (("time_s", step + arts), ("time_step_s", step), ("time_artefacts_s", arts),
                          ("peak_mem_mb", 90.0), ("speedup", 20.0 / (step + arts))):
            rows.append({"study": "t2", "dataset": "digits", "model": "r18", "scenario": "c0", "method": method,
                         "method_name": name, "access": "x", "metric": metric, "n": 3, "mean": v, "std": 0.1 * v,
                         "ci_low": v, "ci_high": v})
    path = tmp_path / "t2.cost.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return [str(tmp_path / "t2.csv"), str(path)]


def test_cost_bars_selects_methods_and_stacks_artefacts_on_the_step(tmp_path):
    tables = _cost(tmp_path)
    fig, df = cost_bars.draw([], tables, {"methods": ["retrain", "fisher", "unsir"], "metrics": ["time_s"], "split": True,
                                          "highlight": "unsir"}, "cpu", 1)
    assert list(dict.fromkeys(df["method"])) == ["retrain", "fisher", "unsir"]
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["retrain", "fisher", "unsir"]
    heights = [p.get_height() for p in ax.patches]  # the steps, then the artefacts stacked on them
    assert heights == [20.0, 8.0, 1.0, 0.0, 0.0, 0.5]
    assert ax.patches[5].get_y() == 1.0 and ax.get_yscale() == "log"
    # the default: every row but the original, time and memory
    fig, df = cost_bars.draw([], tables, {}, "cpu", 1)
    assert len(fig.axes) == 2 and "original" not in set(df["method"])
    with pytest.raises(UserError, match="method 'neggrad' is in none"):
        cost_bars.draw([], tables, {"methods": ["neggrad"]}, "cpu", 1)
