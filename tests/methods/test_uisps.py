"""UISPS (paper 004): Fisher importance, the selection rule of Eq. 12, masked updates (Eq. 15, and
SPS around another method), the zero-glance access contract and forgetting on digits."""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import make_setup, stage_job
from unlearnbench.data import view_indices
from unlearnbench.errors import AccessError, UserError
from unlearnbench.io import load_checkpoint, read_json, save_checkpoint, write_npz
from unlearnbench.methods import UnlearnData, create_method
from unlearnbench.parts.inversion import run_invert_class
from unlearnbench.methods.uisps.suppression import (load_importance, mask_summary, normalise, restrict_updates,
                                            run_importance, select_parameters)
from unlearnbench.runtime import seed_everything

CPU = torch.device("cpu")
LR = 0.01  # digits SmallCNN (the paper's 0.002 is its ResNet18 value)


# --------------------------------------------------------------------------- selection rule (Eqs 11-12)
def test_selection_rule_on_a_hand_made_importance():
    g = {"a": torch.tensor([0.0, 0.5, 1.0]), "b": torch.tensor([[0.2, 0.1]])}
    r = {"a": torch.tensor([0.0, 1.0, 0.3]), "b": torch.tensor([[0.9, 0.1]])}
    # both already span [0, 1]: suppressed iff r > 1.5 g; the tie 0 == 1.5 * 0 trains
    want = {"a": [False, True, False], "b": [[True, False]]}
    got = select_parameters(g, r, 1.5)
    assert {k: v.tolist() for k, v in got.items()} == want
    # Eq. 11 min-max over all of theta makes the rule invariant to scale and offset of either importance
    g2 = {k: 7 * v + 3 for k, v in g.items()}
    r2 = {k: 1e-6 * v + 1e-3 for k, v in r.items()}
    assert {k: v.tolist() for k, v in select_parameters(g2, r2, 1.5).items()} == want
    assert {k: v.tolist() for k, v in select_parameters(g, r, 0.0).items()} == {"a": [False, True, True], "b": [[True, True]]}
    # larger alpha freezes fewer entries (Tables X-XI)
    fr = [mask_summary(select_parameters(g, r, a))["frozen_fraction"] for a in (0.5, 1.0, 1.5, 3.0, 10.0)]
    assert fr == sorted(fr, reverse=True) and fr[-1] == 0.0


def test_normalisation_scopes():
    imp = {"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([5.0, 9.0])}
    glob, layer = normalise(imp, "global"), normalise(imp, "layer")
    assert glob["a"].tolist() == [0.0, 0.25] and glob["b"].tolist() == [0.5, 1.0]
    assert layer["a"].tolist() == [0.0, 1.0] and layer["b"].tolist() == [0.0, 1.0]
    assert normalise({"a": torch.ones(3)})["a"].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(UserError):
        select_parameters({"a": torch.ones(2)}, {"b": torch.ones(2)}, 1.5)


# --------------------------------------------------------------------------- restricting updates
def test_restrict_updates_freezes_entries_under_adam_with_weight_decay():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    frozen = {n: torch.rand(p.shape) < 0.5 for n, p in model.named_parameters()}
    before = copy.deepcopy(dict(model.named_parameters()))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    with restrict_updates(model, frozen):
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            for n, p in model.named_parameters():  # gradients of frozen entries are zeroed
                assert (p.grad[frozen[n]] == 0).all()
            opt.step()
    for n, p in model.named_parameters():
        assert torch.equal(p[frozen[n]], before[n][frozen[n]]), n
        assert not torch.equal(p[~frozen[n]], before[n][~frozen[n]]), n  # the rest trained
    w = model[0].weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()  # hooks are gone after the block: frozen entries move again
    assert not torch.equal(model[0].weight[frozen["0.weight"]], w[frozen["0.weight"]])


# --------------------------------------------------------------------------- digits fixtures
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A digits SmallCNN forgetting class 0, its checkpoint, the inversion and importance artefacts."""
    tmp = tmp_path_factory.mktemp("uisps")
    S = make_setup((0,))
    meta = {"model_spec": {"arch": "smallcnn", "width": 16}, "in_channels": 1, "num_classes": 10, "image_size": 8,
            "mean": S.model.mean.flatten().tolist(), "std": S.model.std.flatten().tolist()}
    ckpt = str(tmp / "original.safetensors")
    save_checkpoint(ckpt, S.model.state_dict(), meta)
    m = create_method({"method": "uisps", "inv_iters": 300})  # converged on 8 px digits (test_inversion)
    inv = str(tmp / "inv0.npz")
    run_invert_class(stage_job(0, samples=inv, info=tmp / "inv0.json", time=tmp / "inv0.time.json", grid=tmp / "inv0.png"),
                     ckpt, 0, m.artefact_settings("inversion"))
    view = m.importance_view(0)
    assert view == "retain-p0.1-s0"
    idx = view_indices(view, S.rd)
    write_npz(tmp / "view.npz", x=S.rd.data["x"][idx], y=S.rd.y[idx])
    imp = [str(tmp / f"imp{i}.safetensors") for i in (1, 2)]
    for i, path in enumerate(imp):
        run_importance(stage_job(0, importance=path, info=tmp / f"imp{i}.json", time=tmp / f"imp{i}.time.json"),
                       ckpt, [inv], str(tmp / "view.npz"), m.artefact_settings("importance"))
    return S, tmp, ckpt, {"inversion": [inv], "importance": imp[0]}, imp


def retain_only(S, method, seed=0):
    """UnlearnData holding only the retain set the access declares (no forget samples exist in it)."""
    acc = method.access()
    assert not acc.forget and acc.retain is not None
    x, y = S.rd.tensors(view_indices(acc.views(seed)["retain"], S.rd))
    return UnlearnData(acc, 10, [0], "class", sets={"retain": (x, y)})


def run(S, spec, artefacts, seed=0):
    seed_everything(seed, 1)
    m = create_method({"method": "uisps", **spec})
    data = retain_only(S, m, seed)
    ctx = S.context(seed, artefacts)
    return m.unlearn(copy.deepcopy(S.model), data, ctx), ctx


def test_importance_is_reproducible_and_fits_the_model(world):
    S, tmp, _, arts, imp = world
    a, b = load_checkpoint(imp[0]), load_checkpoint(imp[1])
    assert open(imp[0], "rb").read() == open(imp[1], "rb").read()
    assert all(torch.equal(v, b[0][k]) for k, v in a[0].items())
    g, r, meta = load_importance(imp[0], S.model)
    assert set(g) == {n for n, _ in S.model.named_parameters()}
    assert meta["n_forget"] == 32 and 0 < meta["n_retain"] < len(S.rd.retain)
    assert all((v >= 0).all() for v in g.values()) and sum(float(v.sum()) for v in r.values()) > 0
    fr = read_json(tmp / "imp0.json")["frozen_fraction_by_alpha"]
    assert fr["0.5"] >= fr["1.5"] >= fr["3.0"] and 0 < fr["1.5"] < 1


def test_uisps_forgets_keeps_retain_and_freezes_the_selected_entries(world):
    S, _, _, arts, imp = world
    tf, tr = S.rd.test_forget, S.rd.test_retain
    a_f0, a_r0 = S.accuracy(S.model, tf), S.accuracy(S.model, tr)
    model, ctx = run(S, {"lr": LR}, arts)
    a_f, a_r = S.accuracy(model, tf), S.accuracy(model, tr)
    print(f"A_Df {a_f0:.1f} -> {a_f:.1f}, A_Dr {a_r0:.1f} -> {a_r:.1f}, frozen {ctx.info['frozen_fraction']:.2f}")
    assert a_f0 > 90 and a_f < 10, (a_f0, a_f)
    assert a_r > a_r0 - 8, (a_r0, a_r)
    # Eq. 15: the suppressed entries keep the original's values, the others moved
    g, r, _ = load_importance(imp[0])
    frozen = select_parameters(g, r, 1.5)
    orig = dict(S.model.named_parameters())
    for n, p in model.named_parameters():
        assert torch.equal(p[frozen[n]], orig[n][frozen[n]]), n
    assert any(not torch.equal(p, orig[n]) for n, p in model.named_parameters())
    assert ctx.info["n_synthetic"] == 32 and 0 < ctx.info["frozen_fraction"] < 1
    # deterministic
    again, _ = run(S, {"lr": LR}, arts)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())


def test_suppression_protects_retain_accuracy(world):
    """Table II's SPS ablation at tiny scale: without suppression the same epoch costs far more A_Dr."""
    S, _, _, arts, _ = world
    tr = S.rd.test_retain
    with_sps, _ = run(S, {"lr": LR}, arts)
    without, _ = run(S, {"lr": LR, "suppress": False}, {"inversion": arts["inversion"]})
    assert S.accuracy(with_sps, tr) > S.accuracy(without, tr) + 10


def test_zero_glance_access_never_reads_the_forget_set(world):
    S, _, _, arts, _ = world
    for spec in ({}, {"retain_fraction": 0.5}):
        m = create_method({"method": "uisps", **spec})
        data = retain_only(S, m)
        with pytest.raises(AccessError):
            data.forget
        assert 0 not in set(data.retain[1].tolist())
    assert create_method({"method": "uisps", "retain_fraction": 0.5}).access().fraction == 0.5
    model, ctx = run(S, {"lr": LR, "retain_fraction": 0.5}, arts)  # AccessError if it touched D_f
    assert ctx.info["n_retain"] < 0.6 * len(S.rd.retain)


def test_artefact_identity_and_needs():
    base = create_method({"method": "uisps"})
    inv, imp = base.artefact_settings("inversion"), base.artefact_settings("importance")
    for k, v in {"alpha": 3.0, "lr": 0.1, "relabel": "uniform", "suppress": False, "norm_scope": "layer",
                 "retain_fraction": 0.5}.items():
        m = create_method({"method": "uisps", k: v})
        assert m.artefact_settings("inversion") == inv and m.artefact_settings("importance") == imp, k
    for k, v in {"inv_lambda2": 0.0, "inv_samples": 8}.items():
        m = create_method({"method": "uisps", k: v})
        assert m.artefact_settings("inversion") != inv and m.artefact_settings("importance") != imp, k
    m = create_method({"method": "uisps", "fisher_kind": "true"})
    assert m.artefact_settings("inversion") == inv and m.artefact_settings("importance") != imp
    small = create_method({"method": "uisps", "retain_fraction": 0.05})  # D'_r inside the readable retain part
    assert small.artefact_settings("importance")["fisher_retain_fraction"] == 0.05
    assert base.needs() == ("inversion", "importance")
    assert create_method({"method": "uisps", "suppress": False}).needs() == ("inversion",)
    assert create_method({"method": "uisps", "suppress": False, "relabel": "none"}).needs() == ()
    assert base.supports == frozenset({"class"})


@pytest.mark.parametrize("relabel", ["random_model_hard", "uniform", "random_retain", "none"])
def test_relabel_ablations_run_and_forget(world, relabel):
    S, _, _, arts, _ = world
    model, ctx = run(S, {"lr": LR, "relabel": relabel}, arts)
    assert S.accuracy(model, S.rd.test_forget) < 50
    assert ("n_synthetic" in ctx.info) == (relabel != "none")


def test_random_model_relabelling_is_seeded():
    from unlearnbench.methods.uisps import random_model_like

    S = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 10))
    a, b, c = (random_model_like(S, s, CPU) for s in (1, 1, 2))
    for (n, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q) and not torch.equal(p, r), n
    assert not torch.equal(a[0].weight, S[0].weight) and not a.training


def test_sps_restricts_another_method(world):
    """Table VIII: SPS wrapped around a different method's unlearning (here fine-tuning)."""
    S, _, _, arts, _ = world
    g, r, _ = load_importance(arts["importance"], S.model)
    frozen = select_parameters(g, r, 1.5)
    seed_everything(0, 1)
    ft = create_method({"method": "finetune"})
    data = S.data_for(ft, 0)
    model = copy.deepcopy(S.model)
    with restrict_updates(model, frozen):
        model = ft.unlearn(model, data, S.context(0))
    orig = dict(S.model.named_parameters())
    for n, p in model.named_parameters():
        assert torch.equal(p[frozen[n]], orig[n][frozen[n]]), n
    assert any(not torch.equal(p, orig[n]) for n, p in model.named_parameters())


def test_corrupt_artefacts_are_one_user_error(world, tmp_path):
    S, _, ckpt, arts, _ = world
    bad_npz, bad_st = tmp_path / "bad.npz", tmp_path / "bad.safetensors"
    bad_npz.write_bytes(b"garbage")
    bad_st.write_bytes(b"garbage")
    cases = [{"inversion": [str(bad_npz)], "importance": arts["importance"]},
             {"inversion": arts["inversion"], "importance": str(bad_st)},
             {"inversion": arts["inversion"], "importance": ckpt},            # a model, not an importance file
             {"inversion": arts["inversion"], "importance": str(tmp_path / "missing.safetensors")},
             {"inversion": arts["inversion"]}]                                # artefact not given
    for artefacts in cases:
        with pytest.raises(UserError) as e:
            run(S, {"lr": LR}, artefacts)
        assert "\n" not in str(e.value), str(e.value)
    with pytest.raises(UserError):
        create_method({"method": "uisps", "alpha": -1})
    with pytest.raises(UserError):
        create_method({"method": "uisps", "retain_fraction": 1.5})


# --------------------------------------------------------------------------- wrappers (methods/sps.py)
def test_sps_wrapper_declares_the_union_and_shares_uisps_artefacts():
    sps = create_method({"method": "sps", "base": "bad_teacher", "lr": 1e-3})
    assert sps.base.name == "bad_teacher" and sps.hp["lr"] == sps.base.hp["lr"] == 1e-3 and sps.hp["sps_alpha"] == 1.5
    assert create_method({"method": "sps"}).hp["lr"] == 1e-4  # lr None: the base's default
    assert sps.needs() == ("inversion", "importance")
    acc = sps.access()  # the base's (forget + 30 % retain); D'_r (10 %) lies inside it
    assert acc.forget and acc.retain == "subset" and acc.fraction == 0.3
    uisps = create_method({"method": "uisps"})
    for kind in ("inversion", "importance"):  # same settings -> the same artefact files
        assert sps.artefact_settings(kind) == uisps.artefact_settings(kind), kind
    assert sps.supports == frozenset({"class"})
    # a base without retain data: D'_r joins the access (the importance artefact reads it)
    ga = create_method({"method": "sps", "base": "gradient_ascent"})
    assert ga.access().retain == "subset" and ga.access().fraction == 0.1 and ga.access().forget
    # a base reading a smaller retain fraction caps D'_r (nested seeded subsets)
    small = create_method({"method": "sps", "base": "bad_teacher", "retain_fraction": 0.05})
    assert small.artefact_settings("importance")["fisher_retain_fraction"] == 0.05
    assert small.importance_view(3) == "retain-p0.05-s3"
    # the base's own artefacts are delegated
    su = create_method({"method": "sps", "base": "unsir", "noise_steps": 5})
    assert su.needs() == ("inversion", "importance", "noise") and su.artefact_settings("noise")["noise_steps"] == 5
    for bad in ({"base": "uisps"}, {"base": "original"}, {"base": "sps"}, {"base": "nope"}, {"base": "bad_teacher", "lr": -1},
                {"base": "bad_teacher", "no_such_key": 1}, {"sps_alpha": -1}):
        with pytest.raises(UserError) as e:
            create_method({"method": "sps", **bad})
        assert "\n" not in str(e.value)


def test_sps_wrapper_freezes_the_selected_entries_of_the_base_method(world):
    """Table VIII: TTM (bad_teacher) + SPS: the entries Eq. 12 selects keep the original's values,
    the rest moves, and the run reads only the wrapper's declared sets."""
    S, _, _, arts, _ = world
    spec = {"method": "sps", "base": "bad_teacher", "lr": 1e-2}
    seed_everything(0, 1)
    m = create_method(spec)
    data = S.data_for(m, 0)
    ctx = S.context(0, arts)
    model = m.unlearn(copy.deepcopy(S.model), data, ctx)
    g, r, _ = load_importance(arts["importance"], S.model)
    frozen = select_parameters(g, r, 1.5)
    orig = dict(S.model.named_parameters())
    for n, p in model.named_parameters():
        assert torch.equal(p[frozen[n]], orig[n][frozen[n]]), n
    assert any(not torch.equal(p, orig[n]) for n, p in model.named_parameters())
    assert 0 < ctx.info["frozen_fraction"] < 1 and ctx.info["sps_base"] == "bad_teacher"
    assert S.accuracy(model, S.rd.test_forget) < 10  # the base still forgets under SPS
    # without the wrapper the same base moves the frozen entries too, and loses far more retain accuracy
    seed_everything(0, 1)
    plain = create_method({"method": "bad_teacher", "lr": 1e-2})
    free = plain.unlearn(copy.deepcopy(S.model), S.data_for(plain, 0), S.context(0))
    assert any(not torch.equal(p[frozen[n]], orig[n][frozen[n]]) for n, p in free.named_parameters())
    tr = S.rd.test_retain
    print(f"TTM A_Dr {S.accuracy(free, tr):.1f}, TTM + SPS A_Dr {S.accuracy(model, tr):.1f}")
    assert S.accuracy(model, tr) > S.accuracy(free, tr) + 20
    with pytest.raises(UserError):
        m.unlearn(copy.deepcopy(S.model), data, S.context(0, {"inversion": arts["inversion"]}))


def test_partial_retain_hands_the_base_only_a_fraction_of_each_class(world):
    S, _, _, _, _ = world
    pr = create_method({"method": "partial_retain", "base": "finetune", "data_fraction": 0.4, "epochs": 1, "lr": 0.05})
    acc = pr.access()
    assert acc.retain == "subset" and acc.fraction == pytest.approx(0.4) and not acc.forget
    assert pr.needs() == () and pr.hp["lr"] == 0.05
    bt = create_method({"method": "partial_retain", "base": "bad_teacher", "data_fraction": 0.5})
    assert bt.access().forget and bt.access().fraction == pytest.approx(0.15)  # 0.5 of the base's 0.3
    un = create_method({"method": "partial_retain", "base": "unsir", "data_fraction": 0.6, "retain_per_class": 20})
    assert un.needs() == ("noise",) and un.access().fraction == pytest.approx(0.6)
    data = S.data_for(pr, 0)
    with pytest.raises(AccessError):
        data.forget
    n_full = len(S.rd.retain)
    seed_everything(0, 1)
    ctx = S.context(0)
    model = pr.unlearn(copy.deepcopy(S.model), data, ctx)
    assert 0.35 * n_full < ctx.info["n_retain_given"] < 0.45 * n_full
    assert not torch.equal(next(model.parameters()), next(S.model.parameters()))
    # a per-class base gets at most k samples of each class, drawn from the subset
    sub = un.base_data(S.data_for(un, 0), S.context(0))
    counts = torch.bincount(sub.retain[1], minlength=10)
    assert counts[0] == 0 and counts.max() == 20
    for bad in ({"base": "gradient_ascent"}, {"data_fraction": 1.0}, {"base": "finetune", "data_fraction": 0.0}):
        with pytest.raises(UserError):
            create_method({"method": "partial_retain", **bad})
