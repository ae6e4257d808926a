"""OMP pruning (Unlearn-Sparse): the mask's sparsity, exact rewinding, masks that stay enforced
through optimisers and direct parameter writes, and the prune_original stage on digits."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from helpers import stage_job
from unlearnbench.data import make_split, prepare_dataset, to_float
from unlearnbench.errors import UserError
from unlearnbench.io import save_checkpoint, write_json, write_npz
from unlearnbench.models import build_model
from unlearnbench.models.checkpoint import load_model, model_meta, new_model
from unlearnbench.parts.pruning import (apply_mask, enforce_mask, keep_state_at, load_mask, mask_sparsity,
                                        mask_violations, omp_mask, prunable, rewind, rewind_step, run_prune_original,
                                        sparsity_of, train_with_mask)
from unlearnbench.runtime import predict_logits, seed_everything
from unlearnbench.training import train

CPU = torch.device("cpu")


def tiny(seed=0, width=8):
    torch.manual_seed(seed)
    return build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=width)


def pruned_entries(model, mask):
    named = dict(model.named_parameters())
    return torch.cat([named[n].detach()[~m].flatten() for n, m in mask.items()])


def test_omp_reaches_the_sparsity_by_global_magnitude():
    model = tiny()
    mask = omp_mask(model, 0.9)
    convs = [n for n, _ in prunable(model)]
    assert sorted(mask) == sorted(convs) == ["net.body.0.weight", "net.body.4.weight"]  # conv weights only
    n = sum(m.numel() for m in mask.values())
    assert sum((~m).sum().item() for m in mask.values()) == round(0.9 * n)
    assert mask_sparsity(mask) == pytest.approx(round(0.9 * n) / n)
    named = dict(model.named_parameters())
    kept = torch.cat([named[k].detach().abs()[m] for k, m in mask.items()])
    pruned = torch.cat([named[k].detach().abs()[~m] for k, m in mask.items()])
    assert kept.min() >= pruned.max()  # one global threshold over both layers
    # the layers are pruned to different degrees (global, not per layer)
    dens = [m.float().mean().item() for m in mask.values()]
    assert abs(dens[0] - dens[1]) > 1e-3
    with_linear = omp_mask(model, 0.9, include_linear=True)
    assert "net.head.weight" in with_linear and "net.head.bias" not in with_linear


def test_rewind_restores_early_weights_exactly_at_surviving_positions():
    original, early = tiny(0), tiny(1)
    early.net.body[1].running_mean.fill_(0.25)  # buffers are rewound too
    mask = omp_mask(original, 0.95)
    model = copy.deepcopy(original)
    rewind(model, early.state_dict(), mask)
    m_state, e_state = model.state_dict(), early.state_dict()
    for k, v in m_state.items():
        if k in mask:
            assert torch.equal(v[mask[k]], e_state[k][mask[k]]), k
            assert (v[~mask[k]] == 0).all(), k
        else:
            assert torch.equal(v, e_state[k]), k
    n = sum(m.numel() for m in mask.values())
    assert sparsity_of(model, mask) == pytest.approx(round(0.95 * n) / n)  # random init has no exact zeros
    assert mask_violations(model, mask) == 0


@pytest.mark.parametrize("opt_name", ["sgd", "adam", "adamw"])
def test_enforced_mask_survives_optimiser_steps(opt_name):
    model = tiny()
    names = list(model.state_dict())
    mask = omp_mask(model, 0.8)
    params = list(model.parameters())
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-3, nesterov=True),
           "adam": lambda: torch.optim.Adam(params, lr=0.01, weight_decay=5e-3),
           "adamw": lambda: torch.optim.AdamW(params, lr=0.01, weight_decay=0.1)}[opt_name]()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    with enforce_mask(model, mask) as handle:
        for _ in range(5):
            x, y = torch.rand(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            for n, p in model.named_parameters():
                if n in mask:
                    assert (p.grad[~mask[n]] == 0).all()
            opt.step()
            assert (pruned_entries(model, mask) == 0).all()
        assert handle.active
    assert not handle.active
    assert list(model.state_dict()) == names  # no weight_orig / weight_mask reparametrisation
    for n, m in mask.items():  # surviving weights did train
        assert not torch.equal(model.state_dict()[n][m], before[n][m])
    assert all(len(mod._forward_pre_hooks) == 0 for mod in model.modules())  # hooks removed


def test_direct_noise_write_is_zeroed_before_the_next_forward():
    model = tiny().eval()
    mask = omp_mask(model, 0.9)
    seen = {}
    conv = model.net.body[0]
    conv.register_forward_hook(lambda mod, i, o: seen.__setitem__("w", mod.weight.detach().clone()))
    x = torch.rand(8, 1, 8, 8)
    handle = enforce_mask(model, mask)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # e.g. Fisher forgetting's noise
    assert (pruned_entries(model, mask) != 0).any()  # written...
    reference = copy.deepcopy(model)
    for mod in reference.modules():
        mod._forward_pre_hooks.clear()
    apply_mask(reference, mask)
    out = model(x)
    assert (seen["w"][~mask["net.body.0.weight"]] == 0).all()  # ...but the forward computed with zeros
    torch.testing.assert_close(out, reference(x), rtol=0, atol=0)
    # a parameter replaced outright is still re-zeroed (the pre-hook reads the module's attribute)
    conv.weight = torch.nn.Parameter(torch.randn_like(conv.weight))
    model(x)
    assert (conv.weight.detach()[~mask["net.body.0.weight"]] == 0).all()
    # autograd.grad sees masked gradients too
    g = torch.autograd.grad(model(x).sum(), [model.net.body[4].weight])[0]
    assert (g[~mask["net.body.4.weight"]] == 0).all() and (g[mask["net.body.4.weight"]] != 0).any()
    handle.remove()
    assert mask_violations(model, mask) == 0
    frozen = tiny()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with enforce_mask(frozen, mask):  # e.g. a frozen teacher copy
        with torch.no_grad():
            frozen.net.body[0].weight.add_(1.0)
        frozen(x)
        assert mask_violations(frozen, mask) == 0


def test_keep_state_at_captures_the_end_of_epoch_k():
    x, y = torch.rand(100, 1, 8, 8), torch.randint(0, 10, (100,))
    recipe = {"lr": 0.05, "epochs": 3, "batch_size": 32, "schedule": "constant"}
    seed_everything(0, 1)
    a = tiny()
    keep = keep_state_at(rewind_step(100, 32, 2))
    assert keep.step == 8  # ceil(100 / 32) = 4 steps per epoch
    train(a, x, y, recipe, 0, CPU, on_batch=keep)
    seed_everything(0, 1)
    b = tiny()
    train(b, x, y, {**recipe, "epochs": 2}, 0, CPU)
    for k, v in b.state_dict().items():
        assert torch.equal(keep.state[k], v), k
    with pytest.raises(UserError):
        keep_state_at(0)


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    """Data archive, split, a dense original and its epoch-2 state, as the workflow writes them."""
    root = tmp_path_factory.mktemp("prune")
    spec = {"source": "digits", "image_size": 8, "channels": 1}
    d = prepare_dataset(spec, "unused")
    split = make_split(d["y"], d["is_test"], 0.1, 0.2, seed=0)
    write_npz(root / "data.npz", **d)
    write_json(root / "split.json", {k: v.tolist() for k, v in split.items()})
    model_spec = {"arch": "smallcnn", "width": 16}
    recipe = {"lr": 0.05, "epochs": 8, "batch_size": 64}
    x, y = to_float(d["x"]), torch.from_numpy(d["y"])
    tr = torch.as_tensor(split["train"])
    seed_everything(0, 1)
    model = new_model(d, model_spec)
    keep = keep_state_at(rewind_step(len(tr), recipe["batch_size"], 2))
    train(model, x[tr], y[tr], recipe, 0, CPU, on_batch=keep)
    save_checkpoint(root / "original.safetensors", model.state_dict(), model_meta(d, model_spec, kind="original", seed=0))
    save_checkpoint(root / "early.safetensors", keep.state, model_meta(d, model_spec, kind="rewind", rewind_epoch=2, seed=0))
    return root, spec, model_spec, recipe, d, split


def test_prune_original_stage_on_digits(digits_files):
    root, spec, model_spec, recipe, d, split = digits_files
    outs = [str(root / n) for n in ("sparse.safetensors", "sparse.mask.safetensors", "sparse.json", "sparse.time.json")]
    run_prune_original(stage_job(0, **dict(zip(("ckpt", "mask", "info", "time"), outs))), str(root / "data.npz"),
                       str(root / "split.json"), str(root / "original.safetensors"), spec, model_spec, recipe,
                       {"sparsity": 0.95, "rewind_epoch": 2})
    model, meta = load_model(outs[0])
    mask, mmeta = load_mask(outs[1])
    assert mmeta["kind"] == "omp_mask" and meta["pruning"]["mask_file"] == "sparse.mask.safetensors"
    n = sum(m.numel() for m in mask.values())
    assert meta["sparsity"] == pytest.approx(0.95, abs=1 / n) and mask_sparsity(mask) == pytest.approx(0.95, abs=1 / n)
    assert mask_violations(model, mask) == 0 and sparsity_of(model, mask) >= 0.95 - 1 / n
    assert meta["pruning"]["rewind_epoch"] == 2 and meta["model_spec"] == model_spec
    info = json.loads((root / "sparse.json").read_text())
    assert "seconds" not in json.dumps(info)  # timings live in the sidecar only
    assert json.loads((root / "sparse.time.json").read_text())["seconds"] > 0
    x, y = to_float(d["x"]), torch.from_numpy(d["y"])
    te = torch.as_tensor(split["test"])
    dense, _ = load_model(str(root / "original.safetensors"))
    acc = {k: float((predict_logits(m, x[te], CPU).argmax(1) == y[te]).float().mean() * 100)
           for k, m in (("dense", dense), ("sparse", model))}
    print(f"digits test accuracy: dense {acc['dense']:.1f}, 95% sparse {acc['sparse']:.1f} "
          f"(val: rewound {info['val_acc_rewound']:.1f} -> sparse {info['val_acc_sparse']:.1f})")
    assert acc["dense"] > 90 and acc["sparse"] > 60, acc
    assert info["val_acc_sparse"] > info["val_acc_rewound"] + 10  # the sparse retrain did learn

    # the sparse gold model: trained from scratch on the retain set with the same mask
    retain = torch.as_tensor(split["train"][d["y"][split["train"]] != 0])
    seed_everything(1, 1)
    gold = new_model(d, model_spec)
    train_with_mask(gold, x[retain], y[retain], mask, recipe, 1, CPU)
    assert mask_violations(gold, mask) == 0
    assert sparsity_of(gold, mask) >= 0.95 - 1 / n


def test_bad_masks_and_files_are_one_line_errors(digits_files, tmp_path):
    root = digits_files[0]
    with pytest.raises(UserError) as e:
        load_mask(str(root / "original.safetensors"))  # a model, not a mask
    assert "\n" not in str(e.value) and "not a pruning mask" in str(e.value)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError) as e:
        load_mask(str(bad))
    assert "\n" not in str(e.value)
    other = build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=4)
    with pytest.raises(UserError) as e:
        enforce_mask(other, omp_mask(tiny(), 0.5))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError):
        omp_mask(tiny(), 1.0)


def test_replaying_training_to_the_rewind_epoch_gives_the_recorded_early_state(digits_files):
    """prune_original re-derives the rewind point by replaying the original's training for k epochs:
    on the CPU that is the state the original's own run had after k epochs, bit for bit."""
    root, spec, model_spec, recipe, d, split = digits_files
    from unlearnbench.io import load_checkpoint

    recorded, _ = load_checkpoint(root / "early.safetensors")
    x, y = to_float(d["x"]), torch.from_numpy(d["y"])
    tr = torch.as_tensor(split["train"])
    seed_everything(0, 1)
    replay = new_model(d, model_spec)
    train(replay, x[tr], y[tr], recipe, 0, CPU, stop_after=2)
    assert all(torch.equal(v, recorded[k]) for k, v in replay.state_dict().items())
    # and the surviving weights of the sparse model start from exactly these values (rewind)
    mask = omp_mask(load_model(str(root / "original.safetensors"))[0], 0.95)
    rewind(replay, recorded, mask)
    for n, p in replay.named_parameters():
        if n in mask:
            assert torch.equal(p.detach()[mask[n]], recorded[n][mask[n]]) and (p.detach()[~mask[n]] == 0).all()
