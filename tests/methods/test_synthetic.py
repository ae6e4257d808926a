"""Generators and the filtered synthetic datasets of MuGAN / zMuGAN (parts/gan, parts/kegnet,
parts/synthetic), with stand-in classifiers: shapes and pixel range, the argmax filter, the cap on
draws, the PNG, determinism and the one-line errors for missing, corrupt or foreign files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unlearnbench.errors import UserError
from unlearnbench.io import save_checkpoint, write_npz
from unlearnbench.parts.gan import DCDiscriminator, DCGenerator, depth_for, load_generator
from unlearnbench.parts.kegnet import InversionGenerator, diversity_loss, load_inversion_generator
from unlearnbench.parts.synthetic import load_synthetic, make_synthetic, sample_filtered, save_grid_png, shares
from unlearnbench.runtime import generator

CPU = torch.device("cpu")


class Brightness(nn.Module):
    """Stand-in classifier: class = round(mean pixel * (K - 1)), as sharp logits."""

    def __init__(self, k: int = 10):
        super().__init__()
        self.k = k

    def forward(self, x):
        level = x.flatten(1).mean(1, keepdim=True) * (self.k - 1)
        return -(level - torch.arange(self.k, dtype=x.dtype)).abs() * 20


class LevelGenerator(nn.Module):
    """Stand-in class GAN: images of brightness c / (K-1) plus noise (so some draws miss class c)."""

    def __init__(self, c: int, k: int = 10, noise: float = 0.08, z_dim: int = 4):
        super().__init__()
        self.c, self.k, self.noise, self.z_dim = c, k, noise, z_dim

    def forward(self, z):
        level = self.c / (self.k - 1) + self.noise * z[:, :1]
        return level.view(-1, 1, 1, 1).expand(-1, 1, 8, 8).clamp(0, 1).contiguous()


@pytest.mark.parametrize("size,channels,k", [(8, 1, 1), (16, 3, 2), (28, 1, 2), (32, 3, 3)])
def test_generators_follow_the_image_size_and_give_pixels(size, channels, k):
    assert depth_for(size)[0] == k
    torch.manual_seed(0)
    g = DCGenerator(16, channels, size, width=8)
    x = g(torch.randn(5, 16))
    assert x.shape == (5, channels, size, size)
    assert 0 <= x.min() and x.max() <= 1 and x.std() > 0
    assert DCDiscriminator(channels, size, width=8)(x * 2 - 1).shape == (5,)
    inv = InversionGenerator(10, channels, size, noise_dim=10, width=16)
    for out in ("tanh", "standardize"):
        inv = InversionGenerator(10, channels, size, noise_dim=10, width=16, output=out)
        xi = inv(torch.eye(10)[torch.arange(6) % 10], torch.randn(6, 10))
        assert xi.shape == (6, channels, size, size) and 0 <= xi.min() and xi.max() <= 1 and xi.std() > 0


def test_unsupported_image_size_is_one_line_error():
    with pytest.raises(UserError) as e:
        DCGenerator(8, 1, 9)
    assert "image size 9" in str(e.value) and "\n" not in str(e.value)


def test_filter_keeps_only_samples_of_the_class():
    model = Brightness()
    gen = LevelGenerator(4, noise=0.1)
    draw = lambda n, g: gen(torch.randn(n, 4, generator=g))  # noqa: E731
    x, st = sample_filtered(draw, model, 4, 150, 10_000, 64, generator(0), CPU)
    assert x.shape == (150, 1, 8, 8)
    assert (model(x).argmax(1) == 4).all()
    # noise sd 0.1 on a level spacing of 1/9: about 60 % of the draws land on class 4
    rate = st["accepted"] / st["drawn"]
    assert 0.4 < rate < 0.8 and st["drawn"] >= 150 / 0.8
    # every rejected draw was another class: acceptance is exactly the class-4 rate of the stream
    xa = draw(st["drawn"], generator(0))
    assert (model(xa).argmax(1) == 4).sum().item() == st["accepted"]


def test_cap_on_draws_raises_naming_the_class():
    model = Brightness()
    never = lambda n, g: torch.zeros(n, 1, 8, 8)  # always class 0  # noqa: E731
    with pytest.raises(UserError) as e:
        sample_filtered(never, model, 3, 20, 200, 64, generator(0), CPU, " (GAN of class 3)")
    msg = str(e.value)
    assert "class 3" in msg and "0 of 20" in msg and "200 draws" in msg and "\n" not in msg


def test_make_synthetic_fills_every_class_records_rates_and_is_deterministic():
    model = Brightness()
    gens = [LevelGenerator(c, noise=0.05) for c in range(10)]
    s = {"samples_per_class": 40, "max_draw_factor": 20.0, "sample_batch": 32}
    a, info = make_synthetic(model, gens, "gan", 10, s, 0, CPU)
    b, _ = make_synthetic(model, gens, "gan", 10, s, 0, CPU)
    c, _ = make_synthetic(model, gens, "gan", 10, s, 1, CPU)
    assert a["x"].dtype == np.float32 and a["x"].shape == (400, 1, 8, 8)
    assert np.bincount(a["y"], minlength=10).tolist() == [40] * 10
    assert (model(torch.from_numpy(a["x"])).argmax(1).numpy() == a["y"]).all()
    assert np.array_equal(a["x"], b["x"]) and not np.array_equal(a["x"], c["x"])
    rates = [r["accept_rate"] for r in info["per_class"]]
    assert np.allclose(a["accept_rate"], rates)
    # the end classes (0 and 9) are one-sided and clipped, so they accept more than the middle ones
    assert min(rates) > 0.5 and rates[0] > rates[5]
    with pytest.raises(UserError) as e:  # a class the stand-in can never produce
        make_synthetic(model, gens[:9] + [LevelGenerator(2, noise=0.0)], "gan", 10, s, 0, CPU)
    assert "class 9" in str(e.value)


def test_min_fill_keeps_a_rarely_accepted_class_short_and_fails_below_it():
    """min_fill < 1: a class the model rarely accepts keeps what it got (recorded), one below fails."""
    model = Brightness()
    gens = [LevelGenerator(c, noise=0.05) for c in range(10)]
    gens[4] = LevelGenerator(4, noise=1.0)  # wide spread: class 4 accepts ~4 % of its draws
    s = {"samples_per_class": 40, "max_draw_factor": 10.0, "sample_batch": 16}
    with pytest.raises(UserError) as e:  # strict by default
        make_synthetic(model, gens, "gan", 10, s, 0, CPU)
    assert "class 4" in str(e.value)
    a, info = make_synthetic(model, gens, "gan", 10, {**s, "min_fill": 0.1}, 0, CPU)
    kept = np.bincount(a["y"], minlength=10)
    row = info["per_class"][4]
    assert 4 <= kept[4] < 40 and row["kept"] == kept[4] and row["short"] == 40 - kept[4]
    assert all(kept[c] == 40 and info["per_class"][c]["short"] == 0 for c in range(10) if c != 4)
    assert (model(torch.from_numpy(a["x"])).argmax(1).numpy() == a["y"]).all()  # the filter still holds
    with pytest.raises(UserError) as e:
        make_synthetic(model, gens, "gan", 10, {**s, "min_fill": 0.9}, 0, CPU)
    assert "class 4" in str(e.value) and "min_fill 0.9" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError):
        make_synthetic(model, gens, "gan", 10, {**s, "min_fill": -0.1}, 0, CPU)


def test_min_fill_zero_leaves_a_class_the_generators_never_make_empty():
    """min_fill 0: no floor; a class no draw lands on is left empty and recorded, the others fill."""
    model = Brightness()
    gens = [LevelGenerator(c, noise=0.05) for c in range(9)] + [LevelGenerator(2, noise=0.0)]  # never class 9
    s = {"samples_per_class": 40, "max_draw_factor": 5.0, "sample_batch": 16}
    with pytest.raises(UserError) as e:
        make_synthetic(model, gens, "gan", 10, {**s, "min_fill": 0.05}, 0, CPU)
    assert "class 9" in str(e.value) and "\n" not in str(e.value)
    a, info = make_synthetic(model, gens, "gan", 10, {**s, "min_fill": 0.0}, 0, CPU)
    assert np.bincount(a["y"], minlength=10).tolist() == [40] * 9 + [0]
    row = info["per_class"][9]
    assert row["kept"] == 0 and row["short"] == 40 and row["drawn"] == 200 and a["accept_rate"][9] == 0.0


def test_min_fill_zero_lets_an_ensemble_leave_a_class_empty():
    """The inversion ensemble with no member that makes class 9 (the real tier's seed 3): an error at any
    floor > 0, an empty recorded class at min_fill 0."""
    class Member(nn.Module):  # conditional stand-in: brightness of the conditioned class, 9 drawn as 8
        noise_dim = 2

        def forward(self, labels, z):
            return (labels.argmax(1).clamp(max=8).float() / 9).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).contiguous()

    s = {"samples_per_class": 10, "max_draw_factor": 2.0, "sample_batch": 8}
    with pytest.raises(UserError) as e:
        make_synthetic(Brightness(), [Member(), Member()], "inversion", 10, {**s, "min_fill": 0.1}, 0, CPU)
    assert "class 9" in str(e.value) and "min_fill 0.1" in str(e.value)
    a, info = make_synthetic(Brightness(), [Member(), Member()], "inversion", 10, {**s, "min_fill": 0.0}, 0, CPU)
    assert np.bincount(a["y"], minlength=10).tolist() == [10] * 9 + [0]
    assert info["per_class"][9]["kept"] == 0 and info["per_class"][9]["short"] == 10


def test_ensemble_shares_each_class_between_members():
    assert shares(10, 3) == [4, 3, 3] and sum(shares(7, 5)) == 7

    class Member(nn.Module):  # conditional stand-in: brightness of the conditioned class
        noise_dim = 2

        def forward(self, labels, z):
            return (labels.argmax(1).float() / 9).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).contiguous()

    a, info = make_synthetic(Brightness(), [Member(), Member(), Member()], "inversion", 10,
                             {"samples_per_class": 10, "max_draw_factor": 2.0, "sample_batch": 8}, 0, CPU)
    assert np.bincount(a["y"]).tolist() == [10] * 10
    assert np.bincount(a["source"][a["y"] == 5]).tolist() == [4, 3, 3]
    assert all(r["accept_rate"] == 1.0 for r in info["per_class"])


def test_thesis_sampling_keeps_every_draw_labelled_by_the_original():
    """zMuGAN sampling "thesis" (Alg. 5): members x samples_per_member images, none filtered, each
    labelled by the original's argmax; every member maps the same (noise, random label) draws."""

    class Member(nn.Module):  # conditioned brightness plus noise: some draws land on another class
        noise_dim = 3

        def forward(self, labels, z):
            level = labels.argmax(1).float() / 9 + 0.1 * z[:, 0]
            return level.view(-1, 1, 1, 1).expand(-1, 1, 8, 8).clamp(0, 1).contiguous()

    model, members = Brightness(), [Member(), Member(), Member()]
    s = {"sampling": "thesis", "samples_per_member": 70, "sample_batch": 32}
    a, info = make_synthetic(model, members, "inversion", 10, s, 0, CPU)
    assert a["x"].shape == (3 * 70, 1, 8, 8) and info["n"] == 210
    assert np.array_equal(a["y"], model(torch.from_numpy(a["x"])).argmax(1).numpy())
    assert np.bincount(a["source"]).tolist() == [70, 70, 70]
    assert np.array_equal(a["x"][:70], a["x"][70:140])  # shared draws (KegNet's sample_kegnet_data)
    drawn = [r["drawn"] for r in info["per_class"]]
    assert sum(drawn) == 210 and min(drawn) > 0  # random labels cover the classes
    assert 0 < a["accept_rate"].min() and a["accept_rate"].mean() < 1  # disagreeing draws are kept too
    b, _ = make_synthetic(model, members, "inversion", 10, s, 0, CPU)
    assert np.array_equal(a["x"], b["x"])
    with pytest.raises(UserError, match="thesis"):
        make_synthetic(model, members, "gan", 10, s, 0, CPU)


def test_diversity_loss_rewards_distinct_images():
    z = torch.randn(16, 10, generator=generator(0))
    same = torch.rand(1, 1, 8, 8).expand(16, 1, 8, 8)
    distinct = torch.rand(16, 1, 8, 8, generator=generator(1))
    assert diversity_loss(z, same).item() == pytest.approx(1.0)
    assert diversity_loss(z, distinct).item() < 0.95
    assert diversity_loss(z, distinct, "l1").item() < diversity_loss(z, distinct, "l2").item()


def test_png_has_a_row_per_class(tmp_path):
    import matplotlib.image as mpimg

    x = np.random.default_rng(0).random((60, 3, 16, 16), dtype=np.float32)
    y = np.repeat(np.arange(6), 10)
    path = tmp_path / "grid.png"
    save_grid_png(str(path), x, y, 6, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 100


def test_synthetic_and_generator_files_give_one_line_errors(tmp_path):
    errs = []
    missing = tmp_path / "missing.npz"
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip archive")
    foreign = tmp_path / "foreign.npz"
    write_npz(foreign, x=np.zeros((2, 1, 8, 8), np.float32), y=np.zeros(2, np.int64))
    good = tmp_path / "good.npz"
    write_npz(good, x=np.zeros((2, 1, 8, 8), np.float32), y=np.zeros(2, np.int64), source=np.zeros(2, np.int64),
              accept_rate=np.ones(1), kind=np.asarray("gan"), format=np.asarray("unlearnbench-synthetic-v1"))
    x, y, meta = load_synthetic(str(good), "gan")
    assert x.shape == (2, 1, 8, 8) and meta["kind"] == "gan"
    for path, kind in ((missing, None), (corrupt, None), (foreign, None), (good, "inversion")):
        with pytest.raises(UserError) as e:
            load_synthetic(str(path), kind)
        errs.append(str(e.value))
    ck_missing = tmp_path / "g.safetensors"
    ck_corrupt = tmp_path / "bad.safetensors"
    ck_corrupt.write_bytes(b"\x00" * 64)
    ck_foreign = tmp_path / "noise.safetensors"
    save_checkpoint(ck_foreign, {"noise": torch.zeros(2)}, {"kind": "unsir_noise"})
    ck_inv = tmp_path / "inv.safetensors"
    save_checkpoint(ck_inv, {"w": torch.zeros(2)}, {"kind": "inversion_generator", "arch": {
        "num_classes": 10, "channels": 1, "image_size": 8, "noise_dim": 10, "width": 16}})
    for loader in (load_generator, load_inversion_generator):
        for path in (ck_missing, ck_corrupt, ck_foreign):
            with pytest.raises(UserError) as e:
                loader(str(path))
            errs.append(str(e.value))
    with pytest.raises(UserError) as e:  # right kind, wrong weights
        load_inversion_generator(str(ck_inv))
    errs.append(str(e.value))
    for msg in errs:
        assert "\n" not in msg and ("missing" in msg or "tmp" in msg or str(tmp_path) in msg), msg


def test_inversion_leaves_the_original_untouched():
    from unlearnbench.models import build_model
    from unlearnbench.parts.kegnet import train_inversion

    torch.manual_seed(0)
    model = build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = {"inv_noise_dim": 10, "inv_width": 16, "inv_steps": 3, "inv_batch_size": 8, "inv_lr": 1e-2, "inv_alpha": 1.0,
         "inv_beta": 1.0, "inv_div_metric": "l2", "inv_dec_layers": 1, "inv_output": "tanh"}
    state, info = train_inversion(model, 10, 1, 8, s, 0, CPU)
    again, _ = train_inversion(model, 10, 1, 8, s, 0, CPU)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # weights and BN statistics
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, again[k]) for k, v in state.items()) and len(info["log"]) == 3
