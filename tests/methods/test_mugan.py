"""MuGAN and zMuGAN (paper 002) end to end on the 8x8 digits through their stage functions:
per-class GANs from the training split, inversion generators from the original model only, the
filtered synthetic sets, and Alg. 8's impair/repair forgetting the class while keeping the rest."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from helpers import Setup, make_setup, stage_job
from unlearnbench.data import RequestData, make_forget_request
from unlearnbench.errors import AccessError, UserError
from unlearnbench.io import read_json, read_npz, save_checkpoint, write_json, write_npz
from unlearnbench.methods import create_method, get_method
from unlearnbench.parts.gan import GAN_KEYS, load_generator, run_train_gan
from unlearnbench.parts.kegnet import INVERSION_KEYS, load_inversion_generator, run_train_inversion
from unlearnbench.parts.synthetic import SAMPLE_KEYS, run_make_synthetic
from unlearnbench.runtime import predict_logits

CPU = torch.device("cpu")
# Small settings for the 8x8 digits: the GANs and inversion members train in seconds. zMuGAN keeps
# BatchNorm statistics frozen (bn_train False): updating them on inverted images costs ~20 points of RA.
GAN_HP = {"gan_z_dim": 16, "gan_g_width": 16, "gan_d_width": 16, "gan_epochs": 40, "gan_batch_size": 16,
          "gan_lr": 2e-3, "samples_per_class": 1000, "lr": 2e-3}
INV_HP = {"inv_members": 3, "inv_steps": 120, "inv_batch_size": 32, "inv_dec_layers": 1,
          "samples_per_class": 500, "lr": 1e-3, "bn_train": False}


@pytest.fixture(scope="module")
def setup() -> Setup:
    return make_setup(forget_classes=(0,))


@pytest.fixture(scope="module")
def files(setup, tmp_path_factory):
    d = tmp_path_factory.mktemp("mugan")
    write_npz(d / "data.npz", **setup.rd.data)
    write_json(d / "split.json", setup.rd.split)
    m = setup.model
    save_checkpoint(d / "original.safetensors", m.state_dict(), {
        "model_spec": {"arch": "smallcnn", "width": 16}, "in_channels": 1, "num_classes": 10, "image_size": 8,
        "mean": m.mean.flatten().tolist(), "std": m.std.flatten().tolist(), "kind": "original", "seed": 0})
    return d


@pytest.fixture(scope="module")
def gans(files):
    settings = create_method({"method": "mugan", **GAN_HP}).artefact_settings("synthetic_gan")
    paths = []
    for c in range(10):
        p = files / f"gan{c}.safetensors"
        run_train_gan(stage_job(0, generator=p, info=files / f"gan{c}.json", time=files / f"gan{c}.time.json"),
                      str(files / "data.npz"), str(files / "split.json"), c, settings)
        paths.append(str(p))
    out = files / "synthetic_gan.npz"
    run_make_synthetic(stage_job(0, synthetic=out, info=files / "synthetic_gan.json", time=files / "synthetic_gan.time.json",
                                 grid=files / "synthetic_gan.png"), str(files / "original.safetensors"), paths[::-1], "gan", settings)
    return paths, str(out)


@pytest.fixture(scope="module")
def inversion(files):
    settings = create_method({"method": "zmugan", **INV_HP}).artefact_settings("synthetic_inversion")
    paths = []
    for m in range(settings["inv_members"]):
        p = files / f"inv{m}.safetensors"
        run_train_inversion(stage_job(0, generator=p, info=files / f"inv{m}.json", time=files / f"inv{m}.time.json"),
                            str(files / "original.safetensors"), settings, m)
        paths.append(str(p))
    out = files / "synthetic_inversion.npz"
    run_make_synthetic(stage_job(0, synthetic=out, info=files / "synthetic_inversion.json",
                                 time=files / "synthetic_inversion.time.json", grid=files / "synthetic_inversion.png"),
                       str(files / "original.safetensors"), paths, "inversion", settings)
    return paths, str(out)


def forget_retain_acc(setup: Setup, model) -> tuple[float, float]:
    return setup.accuracy(model, setup.rd.test_forget), setup.accuracy(model, setup.rd.test_retain)


# --------------------------------------------------------------------------- generators
def test_gan_trains_and_its_samples_are_its_class(setup, files, gans):
    paths, _ = gans
    rates = []
    for c, p in enumerate(paths):
        info = read_json(files / f"gan{c}.json")
        log = info["log"]
        assert info["n_train"] == int((setup.rd.y[setup.rd.train] == c).sum())
        assert len(log) == GAN_HP["gan_epochs"]
        # the losses move away from the initial equilibrium (log 4 = 1.386, log 2 = 0.693)
        assert abs(log[-1]["g_loss"] - log[0]["g_loss"]) > 0.01 and log[-1]["d_real"] != log[0]["d_real"]
        g, meta = load_generator(p)
        assert meta["class"] == c and meta["arch"]["image_size"] == 8
        x = g(torch.randn(300, g.z_dim, generator=torch.Generator().manual_seed(c)))
        assert 0 <= x.min() and x.max() <= 1
        rates.append(float((predict_logits(setup.model, x.detach(), CPU).argmax(1) == c).float().mean()))
    # chance is 10 %: every class GAN is recognised far more often, most of them nearly always
    assert min(rates) > 0.3 and np.mean(rates) > 0.7, rates


def test_synthetic_gan_set_is_filtered_complete_and_deterministic(setup, files, gans):
    paths, out = gans
    z = read_npz(out)
    n = GAN_HP["samples_per_class"]
    assert z["x"].dtype == np.float32 and 0 <= z["x"].min() and z["x"].max() <= 1
    assert np.bincount(z["y"], minlength=10).tolist() == [n] * 10  # file order of the GANs does not matter
    pred = predict_logits(setup.model, torch.from_numpy(z["x"]), CPU).argmax(1).numpy()
    assert (pred == z["y"]).all()
    info = read_json(files / "synthetic_gan.json")
    assert [r["class"] for r in info["per_class"]] == list(range(10))
    assert all(0 < r["accept_rate"] <= 1 and r["drawn"] >= n for r in info["per_class"])
    assert (files / "synthetic_gan.png").read_bytes()[:4] == b"\x89PNG"
    settings = create_method({"method": "mugan", **GAN_HP}).artefact_settings("synthetic_gan")
    again = files / "again.npz"
    run_make_synthetic(stage_job(0, synthetic=again, info=files / "again.json", time=files / "again.time.json",
                                 grid=files / "again.png"), str(files / "original.safetensors"), paths, "gan", settings)
    assert again.read_bytes() == open(out, "rb").read()
    assert read_json(files / "again.json") == info


def test_inversion_ce_falls_from_the_model_alone(files, inversion):
    paths, _ = inversion
    weights = []
    for m, p in enumerate(paths):
        info = read_json(files / f"inv{m}.json")
        first, last = info["log"][0], info["log"][-1]
        assert first["cls"] > 1.5 and last["cls"] < 0.5 * first["cls"], (first, last)
        assert last["acc"] > 80
        g, meta = load_inversion_generator(p)
        assert meta["member"] == m and meta["original"]["kind"] == "original"
        weights.append(g.fc[0].weight)
    assert not torch.equal(weights[0], weights[1])  # each member has its own seed
    z = read_npz(files / "synthetic_inversion.npz")
    assert np.bincount(z["y"]).tolist() == [INV_HP["samples_per_class"]] * 10
    assert set(np.unique(z["source"])) == set(range(INV_HP["inv_members"]))


# --------------------------------------------------------------------------- unlearning
def test_mugan_forgets_the_class_and_keeps_the_rest(setup, gans):
    """Over three unlearning seeds on one synthetic set (a margin, not one run's value): the class is
    forgotten (mean forget accuracy below 10 %) and the retained classes lose less than 8 points."""
    _, out = gans
    f0, r0 = forget_retain_acc(setup, setup.model)
    accs = []
    for seed in (0, 1, 2):
        model, method, data = setup.run({"method": "mugan", **GAN_HP}, seed, {"synthetic_gan": out})
        accs.append(forget_retain_acc(setup, model))
        if seed == 0:
            first = model
    f1, r1 = np.mean(accs, axis=0)
    print(f"MuGAN digits, seeds 0-2: forget acc {f0:.1f} -> {[round(a[0], 1) for a in accs]}, retain acc {r0:.1f} -> "
          f"{[round(a[1], 1) for a in accs]}")
    assert f0 > 90 and f1 < 10, (f0, accs)
    assert r1 > r0 - 8, (r0, accs)
    model = first
    again, _, _ = setup.run({"method": "mugan", **GAN_HP}, 0, {"synthetic_gan": [out]})
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_mugan_forgets_several_classes_with_the_same_synthetic_set(setup, gans):
    _, out = gans
    split = {k: np.asarray(v) for k, v in setup.rd.split.items()}
    # not class 8: the original calls uniform noise "8", the impair target, so 8 needs a larger lr
    req = make_forget_request(setup.rd.y, split, {"type": "class", "classes": [3, 5]}, 10)
    rd = RequestData(setup.rd.data, setup.rd.split,
                     {**req, "forget": req["forget"].tolist(), "retain": req["retain"].tolist()})
    multi = Setup(rd, setup.model)
    f0, r0 = forget_retain_acc(multi, multi.model)
    model, _, _ = multi.run({"method": "mugan", **GAN_HP}, 0, {"synthetic_gan": out})
    f1, r1 = forget_retain_acc(multi, model)
    print(f"MuGAN digits classes 3+5: forget acc {f0:.1f} -> {f1:.1f}, retain acc {r0:.1f} -> {r1:.1f}")
    assert f1 < 10 and r1 > r0 - 10, (f0, f1, r0, r1)
    for c in (3, 5):
        idx = rd.test[rd.y[rd.test] == c]
        assert multi.accuracy(model, idx) < 15


def test_zmugan_forgets_the_class_without_any_data(setup, inversion):
    _, out = inversion
    f0, r0 = forget_retain_acc(setup, setup.model)
    model, method, data = setup.run({"method": "zmugan", **INV_HP}, 0, {"synthetic_inversion": out})
    f1, r1 = forget_retain_acc(setup, model)
    print(f"zMuGAN digits: forget acc {f0:.1f} -> {f1:.1f}, retain acc {r0:.1f} -> {r1:.1f}")
    assert f1 < 15, (f0, f1)
    assert r1 > 78, (r0, r1)  # inverted images are far from real digits: RA drops more than MuGAN's


def test_zmugan_thesis_sampling_keeps_every_sample_and_splits_by_prediction(setup, files, inversion):
    """sampling "thesis" (Alg. 5): inv_members x samples_per_member images, all kept, labelled by the
    original's argmax; D_f / D_r are the samples predicted as / not as the forget class."""
    paths, _ = inversion
    hp = {**INV_HP, "sampling": "thesis", "samples_per_member": 60}
    settings = create_method({"method": "zmugan", **hp}).artefact_settings("synthetic_inversion")
    out = files / "synthetic_thesis.npz"
    job = stage_job(0, synthetic=out, info=files / "thesis.json", time=files / "thesis.time.json",
                    grid=files / "thesis.png")
    run_make_synthetic(job, str(files / "original.safetensors"), paths, "inversion", settings)
    z = read_npz(out)
    assert len(z["y"]) == INV_HP["inv_members"] * 60
    assert np.array_equal(z["y"], predict_logits(setup.model, torch.from_numpy(z["x"]), CPU).argmax(1).numpy())
    ctx = setup.context(0, {"synthetic_inversion": str(out)})
    method = create_method({"method": "zmugan", **hp})
    method.unlearn(copy.deepcopy(setup.model), setup.data_for(method), ctx)
    assert ctx.info["n_forget"] == int((z["y"] == 0).sum())
    assert ctx.info["n_forget"] + ctx.info["n_retain"] == len(z["y"])


def test_zmugan_without_a_forget_sample_errors_or_repairs_only(setup, files, inversion):
    """A set with no sample of the forget class (Alg. 5 can draw none on a real model): one-line error
    by default; empty_forget "repair_only" runs the repair step alone and records the class."""
    z = read_npz(inversion[1])
    keep = z["y"] != 0
    out = files / "synthetic_no_forget.npz"
    write_npz(out, **{**z, "x": z["x"][keep], "y": z["y"][keep]})
    with pytest.raises(UserError, match="repair_only") as e:
        setup.run({"method": "zmugan", **INV_HP}, 0, {"synthetic_inversion": str(out)})
    assert "\n" not in str(e.value)
    ctx = setup.context(0, {"synthetic_inversion": str(out)})
    method = create_method({"method": "zmugan", **INV_HP, "empty_forget": "repair_only"})
    model = method.unlearn(copy.deepcopy(setup.model), setup.data_for(method), ctx)
    assert ctx.info["n_forget"] == 0 and ctx.info["n_retain"] == int(keep.sum())
    assert ctx.info["forget_classes_without_sample"] == [0]
    assert [(r["stage"], r["n"]) for r in ctx.info["log"]] == [("impair", 0), ("repair", int(keep.sum()))]
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, setup.model.state_dict()[k])]
    assert moved  # the repair step trained the model


@pytest.mark.parametrize("name", ["mugan", "zmugan"])
@pytest.mark.parametrize("bn_train", [True, False])
def test_bn_train_moves_the_running_statistics_only_when_on(setup, name, bn_train):
    """bn_train True (the thesis's model.train()): Alg. 8 updates BN running statistics; False: frozen."""
    from unlearnbench.methods.mugan import impair_repair

    x, y = setup.rd.tensors(setup.rd.test[:96])
    model, original = copy.deepcopy(setup.model), setup.context().original
    hp = create_method({"method": name, "bn_train": bn_train}).hp
    impair_repair(model, original, x[:32], x[32:], y[32:], hp, 0, CPU, log=lambda s: None)
    buffers = [k for k in model.state_dict() if "running_" in k]
    assert buffers
    moved = [k for k in buffers if not torch.equal(model.state_dict()[k], setup.model.state_dict()[k])]
    assert moved == (buffers if bn_train else [])


@pytest.mark.parametrize("mode", ["uniform", "uniform_normalized"])
def test_random_input_is_uniform_in_pixels_or_in_the_normalised_space(setup, mode):
    """The original's input u in Alg. 8: "uniform" is U[0,1) in pixels; "uniform_normalized" (the
    reference's torch.rand after Normalize) is U[0,1) after the model's own normalisation."""
    from unlearnbench.methods.mugan import impair_repair

    original = setup.context().original
    seen = []
    handle = original.net.body.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    x, y = setup.rd.tensors(setup.rd.test[:320])
    hp = create_method({"method": "mugan", "random_input": mode}).hp
    impair_repair(copy.deepcopy(setup.model), original, x[:256], x[256:], y[256:], hp, 0, CPU, log=lambda s: None)
    handle.remove()
    assert len(seen) == 2 * 256 // hp["forget_batch_size"]  # per impair batch: original(u), then original(x_f)
    z = torch.cat(seen[0::2])  # what the backbone saw: (u - mean) / std
    u = z * original.std + original.mean
    inside = z if mode == "uniform_normalized" else u
    assert inside.min() >= -1e-6 and inside.max() < 1 + 1e-6
    assert abs(inside.mean().item() - 0.5) < 0.01 and abs(inside.std().item() - 12 ** -0.5) < 0.01


@pytest.mark.parametrize("name,kind", [("mugan", "synthetic_gan"), ("zmugan", "synthetic_inversion")])
def test_methods_run_inside_their_access(setup, gans, inversion, name, kind):
    out = gans[1] if name == "mugan" else inversion[1]
    hp = GAN_HP if name == "mugan" else INV_HP
    method = create_method({"method": name, **hp})
    acc = method.access()
    assert not acc.forget and acc.retain is None and not acc.val
    assert acc.label == ("generator (no real data)" if name == "mugan" else "none (zero-shot)")
    data = setup.data_for(method, 0)
    for role in ("forget", "retain", "val"):
        with pytest.raises(AccessError):
            getattr(data, role)
    ctx = setup.context(0, {kind: out})
    method.unlearn(copy.deepcopy(setup.model), data, ctx)  # would raise AccessError on any real read
    assert ctx.info["n_forget"] == hp["samples_per_class"] and ctx.info["n_retain"] == 9 * hp["samples_per_class"]
    assert len(ctx.info["accept_rate"]) == 10
    assert [r["stage"] for r in ctx.info["log"]] == ["impair", "repair"]
    assert get_method(name).supports == frozenset({"class"})


def test_missing_corrupt_or_foreign_synthetic_file_is_one_line_error(setup, files, gans, inversion):
    corrupt = files / "corrupt.npz"
    corrupt.write_bytes(b"garbage")
    cases = [("mugan", "synthetic_gan", str(files / "nope.npz")), ("mugan", "synthetic_gan", str(corrupt)),
             ("mugan", "synthetic_gan", inversion[1]), ("zmugan", "synthetic_inversion", gans[1]),
             ("mugan", "synthetic_gan", [gans[1], gans[1]]), ("zmugan", "other_kind", inversion[1])]
    for name, kind, path in cases:
        with pytest.raises(UserError) as e:
            setup.run({"method": name}, 0, {kind: path})
        assert "\n" not in str(e.value), str(e.value)


def test_corrupt_generator_file_is_one_line_error(files, gans):
    paths, _ = gans
    bad = files / "bad_gan.safetensors"
    bad.write_bytes(b"\x00" * 100)
    settings = create_method({"method": "mugan", **GAN_HP}).artefact_settings("synthetic_gan")
    original = str(files / "original.safetensors")
    for gen_paths, kind in (([str(bad)] + paths[1:], "gan"), (paths[:9], "gan"), (paths[:1] + paths[:9], "gan"),
                            ([original], "gan"), (paths[:2], "inversion")):
        with pytest.raises(UserError) as e:
            run_make_synthetic(stage_job(0, synthetic=files / "x.npz", info=files / "x.json", time=files / "x.time.json",
                                         grid=files / "x.png"), original, gen_paths, kind, settings)
        assert "\n" not in str(e.value), str(e.value)


# --------------------------------------------------------------------------- declarations
def test_artefact_keys_are_the_generator_and_sampling_settings():
    from unlearnbench.methods import mugan, zmugan

    assert mugan.GAN_KEYS == GAN_KEYS and mugan.SAMPLE_KEYS == SAMPLE_KEYS and zmugan.INVERSION_KEYS == INVERSION_KEYS
    for name, kind in (("mugan", "synthetic_gan"), ("zmugan", "synthetic_inversion")):
        base = create_method({"method": name}).artefact_settings(kind)
        for k, v in {"lr": 0.5, "temperature": 2.0, "forget_batch_size": 8, "bn_train": False,
                     "random_input": "uniform_normalized"}.items():
            assert create_method({"method": name, k: v}).artefact_settings(kind) == base, k
        assert create_method({"method": name, "samples_per_class": 7}).artefact_settings(kind) != base
    assert create_method({"method": "mugan", "gan_epochs": 3}).artefact_settings("synthetic_gan")["gan_epochs"] == 3
    inv = create_method({"method": "zmugan", "inv_members": 2}).artefact_settings("synthetic_inversion")
    assert inv["inv_members"] == 2
    # sampling "thesis": its own keys replace the quota's (the default's key is unchanged, above)
    thesis = create_method({"method": "zmugan", "sampling": "thesis"}).artefact_settings("synthetic_inversion")
    assert thesis["sampling"] == "thesis" and thesis["samples_per_member"] == 1000
    assert not {"samples_per_class", "max_draw_factor", "min_fill"} & set(thesis)
    assert create_method({"method": "zmugan", "sampling": "thesis", "samples_per_class": 7}).artefact_settings(
        "synthetic_inversion") == thesis


@pytest.mark.parametrize("name,hp", [("mugan", {"samples_per_class": 0}), ("mugan", {"gan_beta1": 1.0}),
                                     ("mugan", {"random_input": "gauss"}), ("mugan", {"gan_lr": 0.0}),
                                     ("zmugan", {"inv_members": 0}), ("zmugan", {"inv_div_metric": "l3"}),
                                     ("zmugan", {"temperature": 0.0}), ("zmugan", {"max_draw_factor": 0.5}),
                                     ("zmugan", {"inv_output": "x"}), ("mugan", {"inv_steps": 3}),
                                     ("zmugan", {"sampling": "all"}), ("zmugan", {"samples_per_member": 0}),
                                     ("zmugan", {"empty_forget": "skip"}), ("mugan", {"empty_forget": "repair_only"}),
                                     ("mugan", {"sampling": "thesis"})])
def test_bad_hyperparameters_are_one_line_errors(name, hp):
    with pytest.raises(UserError) as e:
        create_method({"method": name, **hp})
    assert "\n" not in str(e.value)


def test_method_files_import_without_torch():
    import subprocess
    import sys

    code = "import sys, unlearnbench.methods.mugan, unlearnbench.methods.zmugan; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
