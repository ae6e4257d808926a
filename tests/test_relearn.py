"""Relearn time (both definitions) and AIN, on tensors built here and the embedded digits data."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import torch

from unlearnbench.data import prepare_dataset, to_float
from unlearnbench.errors import UserError
from unlearnbench.models import build_model
from unlearnbench.metrics.cost import ain
from unlearnbench.metrics.relearn import DEFAULTS, gold_spec, measure_relearn, recorded, settings
from unlearnbench.runtime import predict_logits, seed_everything
from unlearnbench.training import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup():
    d = prepare_dataset({"source": "digits", "image_size": 8, "channels": 1}, "data", False)
    x, y = to_float(d["x"]), torch.from_numpy(d["y"]).long()
    tr = np.random.default_rng(0).permutation(len(y))[:1200]
    seed_everything(0, 1)
    model = build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=8,
                        mean=d["mean"].tolist(), std=d["std"].tolist())
    train(model, x[tr], y[tr], {"optimizer": "sgd", "lr": 0.05, "epochs": 8, "batch_size": 64}, 0, CPU)
    f = tr[y[tr].numpy() == 0]
    return model.eval(), x[tr], y[tr], x[f], y[f]


S = settings({"epochs_max": 15, "steps_max_epochs": 3})


def erase_class0(model):
    """A crude 'unlearned' model: the forget class can never win (head row pushed down)."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.net.head.bias[0] -= 100.0
    return m


def test_original_needs_no_relearning(setup):
    model, xt, yt, xf, yf = setup
    r = measure_relearn(model, model, xt, yt, xf, yf, S, 0, CPU)
    assert r["original_forget_acc"] > 80
    assert r["relearn_epochs"] == 0 and r["relearn_steps"] == 0
    assert r["relearn_epochs_reached"] == 1 and r["relearn_steps_reached"] == 1


def test_erased_model_relearns_on_a_copy(setup):
    model, xt, yt, xf, yf = setup
    erased = erase_class0(model)
    state = copy.deepcopy(erased.state_dict())
    r = measure_relearn(erased, model, xt, yt, xf, yf, S, 0, CPU)
    assert float((predict_logits(erased, xf, CPU).argmax(1) == yf).float().mean()) == 0.0
    for k, v in erased.state_dict().items():  # measured on a copy: nothing changed
        assert torch.equal(v, state[k]), k
    assert r["relearn_steps"] > 0 and r["steps_curve"][0][1] == 0.0
    if r["relearn_steps_reached"]:
        assert r["steps_curve"][-1][1] >= 0.95 * r["original_forget_acc"]
        assert all(a < 0.95 * r["original_forget_acc"] for _, a in r["steps_curve"][:-1])
    else:
        assert r["relearn_steps"] == r["steps_cap"]
    assert r["relearn_epochs"] >= 1
    assert len(r["epochs_curve"]) == r["relearn_epochs"] + 1
    # deterministic for a seed
    r2 = measure_relearn(erased, model, xt, yt, xf, yf, S, 0, CPU)
    assert r2["relearn_steps"] == r["relearn_steps"] and r2["relearn_epochs"] == r["relearn_epochs"]


def test_cap_is_reported_when_the_target_is_not_reached(setup):
    model, xt, yt, xf, yf = setup
    s = settings({"epochs_max": 2, "steps_max_epochs": 1, "lr": 1e-9, "optimizer": "sgd"})
    r = measure_relearn(erase_class0(model), model, xt, yt, xf, yf, s, 0, CPU)
    assert r["relearn_epochs"] == 2 and r["relearn_epochs_reached"] == 0
    assert r["relearn_steps"] == r["steps_cap"] == math.ceil(len(yt) / 256) and r["relearn_steps_reached"] == 0


def test_ain():
    assert ain(30, 10) == 3.0
    assert ain(0, 10) == 0.0
    assert math.isnan(ain(5, 0))


@pytest.mark.parametrize("bad", [{"nope": 1}, {"epochs_max": 0}, {"steps_threshold": 1.5}, {"eval_on": "val"},
                                 {"steps_check_at_start": "no"}, {"gold": "scratch"}, {"gold": {"epochs": 15}},
                                 {"gold": {"epochs": 0, "retain_fraction": 0.95}},
                                 {"gold": {"epochs": 15, "retain_fraction": 1.5}}, {"definitions": []},
                                 {"definitions": ["epochs", "epochs"]}, {"definitions": ["time"]}, {"definitions": "steps"}])
def test_bad_settings(bad):
    with pytest.raises(UserError):
        settings(bad)


def test_a_capped_relearn_time_is_a_lower_bound_in_every_table(tmp_path):
    """Not only AIN: the relearn time itself carries a censor code, so the table shows '≥ cap'."""
    import json

    from unlearnbench.metrics.cost import run_relearn_metrics
    from unlearnbench.report.tables import aggregate, display_frame

    own, gold = tmp_path / "own.json", tmp_path / "gold.json"
    own.write_text(json.dumps({"relearn_epochs": 100.0, "relearn_epochs_reached": 0.0, "relearn_steps": 40.0,
                                "relearn_steps_reached": 1.0}))
    gold.write_text(json.dumps({"relearn_epochs": 12.0, "relearn_epochs_reached": 1.0, "relearn_steps": 20.0,
                                "relearn_steps_reached": 1.0}))
    run_relearn_metrics(str(own), str(gold), str(tmp_path / "m.json"))
    m = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert m["relearn_epochs_censor"] == 1 and m["relearn_steps_censor"] == 0 and m["ain_epochs_censor"] == 1
    rec = {"dataset": "d", "model": "m", "scenario": "s", "method": "x", "method_name": "finetune", "access": "a", "seed": 0}
    tidy = aggregate([{**rec, "metrics": m}], [])
    wide, _ = display_frame(tidy, None, ["relearn_epochs", "relearn_steps"])
    assert wide.iloc[0]["RT (epochs)"].startswith("≥ 100") and not wide.iloc[0]["RT (steps)"].startswith("≥")


def test_one_definition_measures_that_one_with_the_same_value(setup, tmp_path):
    """definitions [steps]: only the step definition runs, with the value both-definitions gives (its own
    generator), and relearn_metrics writes its metrics only; the order given does not matter."""
    import json

    from unlearnbench.metrics.cost import run_relearn_metrics

    model, xt, yt, xf, yf = setup
    erased = erase_class0(model)
    both = measure_relearn(erased, model, xt, yt, xf, yf, S, 0, CPU)
    one = measure_relearn(erased, model, xt, yt, xf, yf, settings({**S, "definitions": ["steps"]}), 0, CPU)
    assert "relearn_epochs" not in one and "epochs_curve" not in one
    assert one["relearn_steps"] == both["relearn_steps"] and one["steps_curve"] == both["steps_curve"]
    assert settings({"definitions": ["steps", "epochs"]})["definitions"] == ["epochs", "steps"]
    assert recorded(settings({"definitions": ["steps"]})) == {**DEFAULTS, "definitions": ["steps"]}
    for name, r in (("own", one), ("gold", measure_relearn(model, model, xt, yt, xf, yf,
                                                           settings({**S, "definitions": ["steps"]}), 0, CPU))):
        (tmp_path / f"{name}.json").write_text(json.dumps({k: v for k, v in r.items() if "curve" not in k}))
    run_relearn_metrics(str(tmp_path / "own.json"), str(tmp_path / "gold.json"), str(tmp_path / "m.json"))
    m = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert sorted(m) == ["ain_steps", "ain_steps_censor", "relearn_steps", "relearn_steps_censor", "relearn_steps_reached"]


# --------------------------------------------------------------------------- reference-code options (issue #21)
def test_the_reference_order_never_counts_zero_steps(setup):
    """`steps_check_at_start: false` (the reference's relearn_time: a step, then the check): the original
    model, already at the threshold, needs 1 step, not 0 (so its AIN is not 0); a model below the
    threshold gets the same count as with the default order (same seed, same batches)."""
    model, xt, yt, xf, yf = setup
    ref = settings({"epochs_max": 15, "steps_max_epochs": 3, "steps_check_at_start": False})
    r = measure_relearn(model, model, xt, yt, xf, yf, ref, 0, CPU)
    assert r["relearn_steps"] >= 1 and r["relearn_steps"] == r["steps_curve"][-1][0]
    assert r["steps_curve"][0] == (0, r["original_forget_acc"])  # recorded, but it stopped nothing
    if r["relearn_steps_reached"]:
        assert r["steps_curve"][-1][1] >= 0.95 * r["original_forget_acc"]
    assert measure_relearn(model, model, xt, yt, xf, yf, S, 0, CPU)["relearn_steps"] == 0  # the default: 0
    erased = erase_class0(model)
    assert (measure_relearn(erased, model, xt, yt, xf, yf, ref, 0, CPU)["relearn_steps"]
            == measure_relearn(erased, model, xt, yt, xf, yf, S, 0, CPU)["relearn_steps"] >= 1)


def test_default_settings_record_what_they_recorded_before_the_options():
    assert recorded(settings({})) == DEFAULTS and recorded(settings({"epochs_max": 5})) == {**DEFAULTS, "epochs_max": 5}
    s = settings({"steps_check_at_start": False, "gold": {"epochs": 15, "retain_fraction": 0.95}})
    assert recorded(s) == {**DEFAULTS, "steps_check_at_start": False, "gold": {"epochs": 15, "retain_fraction": 0.95}}
    assert gold_spec(settings({})) is None
    assert gold_spec(s) == {"epochs": 15, "retain_fraction": 0.95}  # the MuGAN code's gold


@pytest.fixture(scope="module")
def stage_files(tmp_path_factory):
    """data / split / class-1 request files of 8-px digits, as the workflow writes them."""
    from helpers import stage_job
    from unlearnbench.pipeline import run_make_forget_request, run_make_split, run_prepare_dataset

    d = tmp_path_factory.mktemp("relearn_stages")
    spec = {"source": "digits", "image_size": 8, "channels": 1, "val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 0}
    run_prepare_dataset(stage_job(data=d / "data.npz"), spec, "unused", False)
    run_make_split(stage_job(split=d / "split.json"), str(d / "data.npz"), spec)
    for name, sc in (("req", {"type": "class", "classes": [1]}), ("rand", {"type": "random", "fraction": 0.1, "seed": 0})):
        run_make_forget_request(stage_job(request=d / f"{name}.json", card=d / f"{name}.card.json"), str(d / "data.npz"),
                                str(d / "split.json"), sc)
    return d, spec


@pytest.mark.parametrize("eval_on,part", [("forget_train", None), ("forget_test", "test"), ("forget_val", "val")])
def test_held_out_modes_measure_only_held_out_samples_of_the_forget_class(stage_files, monkeypatch, eval_on, part):
    """The relearn stage measures accuracy (and its threshold) on the forget training samples by
    default; `forget_test` / `forget_val`: on the test / validation samples of the forgotten class
    only, never a training sample. Relearning itself always trains on the whole training split."""
    import json

    from helpers import stage_job
    from unlearnbench.metrics import relearn

    d, _ = stage_files
    seen = {}
    monkeypatch.setattr(relearn, "load_model", lambda path, dev: (path, {}))
    monkeypatch.setattr(relearn, "measure_relearn", lambda model, orig, xt, yt, xf, yf, s, seed, dev: seen.update(
        xt=xt, yt=yt, xf=xf, yf=yf) or {"relearn_epochs": 0.0, "relearn_epochs_reached": 1.0, "relearn_steps": 0.0,
                                         "relearn_steps_reached": 1.0, "original_forget_acc": 1.0})
    relearn.run_relearn_measure(stage_job(0, raw=d / f"{eval_on}.json"), "m", "o", str(d / "data.npz"), str(d / "split.json"),
                                str(d / "req.json"), {"eval_on": eval_on})
    split, req = json.loads((d / "split.json").read_text()), json.loads((d / "req.json").read_text())
    y = np.load(d / "data.npz")["y"]
    want = np.asarray(req["forget"]) if part is None else np.asarray([i for i in split[part] if y[i] == 1])
    assert len(want) > 0 and (seen["yf"].numpy() == 1).all()
    assert torch.equal(seen["xf"], to_float(np.load(d / "data.npz")["x"][want]))
    if part is not None:
        assert not np.isin(want, split["train"]).any()
    assert len(seen["yt"]) == len(split["train"])  # relearning trains on D_c = the training split
    rec = json.loads((d / f"{eval_on}.json").read_text())["settings"]
    assert rec["eval_on"] == eval_on and "gold" not in rec and "steps_check_at_start" not in rec
    if part is not None:  # held-out modes need the forgotten classes: a random request is refused
        with pytest.raises(UserError, match=f"eval_on {eval_on}"):
            relearn.run_relearn_measure(stage_job(0, raw=d / "x.json"), "m", "o", str(d / "data.npz"), str(d / "split.json"),
                                        str(d / "rand.json"), {"eval_on": eval_on})


def test_eval_max_samples_measures_a_seeded_subset_the_same_for_every_model_of_a_seed(stage_files, monkeypatch):
    """eval_max_samples N: the relearn accuracy is measured on N of the forget samples, drawn by the run's
    seed: the same subset for every model of that seed (so an AIN divides like by like), another for
    another seed; recorded beside the result; left out, every sample as before."""
    import json

    from helpers import stage_job
    from unlearnbench.metrics import relearn

    d, _ = stage_files
    seen = []
    monkeypatch.setattr(relearn, "load_model", lambda path, dev: (path, {}))
    monkeypatch.setattr(relearn, "measure_relearn", lambda model, orig, xt, yt, xf, yf, s, seed, dev: seen.append(
        xf) or {"relearn_epochs": 0.0, "relearn_epochs_reached": 1.0, "original_forget_acc": 1.0})
    files = [str(d / "data.npz"), str(d / "split.json"), str(d / "req.json")]
    n_forget = len(json.loads((d / "req.json").read_text())["forget"])
    for seed, ckpt in ((0, "unlearned"), (0, "retrain"), (1, "unlearned"), (0, "all")):
        user = {"definitions": ["epochs"], **({} if ckpt == "all" else {"eval_max_samples": 10})}
        relearn.run_relearn_measure(stage_job(seed, raw=d / f"sub{seed}{ckpt}.json"), ckpt, "o", *files, user)
    assert [len(x) for x in seen] == [10, 10, 10, n_forget] and n_forget > 10
    assert torch.equal(seen[0], seen[1]) and not torch.equal(seen[0], seen[2])
    assert json.loads((d / "sub0unlearned.json").read_text())["settings"]["eval_max_samples"] == 10
    assert "eval_max_samples" not in json.loads((d / "sub0all.json").read_text())["settings"]
    for bad in (0, 2.5, True, "10"):
        with pytest.raises(UserError, match="eval_max_samples"):
            settings({"eval_max_samples": bad})


def test_the_reference_gold_model_has_the_asked_recipe(stage_files):
    """gold {epochs, retain_fraction}: the original's recipe for `epochs` epochs, from scratch, on a seeded
    random `retain_fraction` of the retain set (never a forget sample); the same files for the same seed."""
    import csv
    import json

    from helpers import stage_job
    from unlearnbench.io import checkpoint_meta
    from unlearnbench.pipeline import gold_subset, run_train_relearn_gold

    d, spec = stage_files
    recipe = {"optimizer": "adam", "lr": 1e-3, "epochs": 7, "batch_size": 64}

    def gold(tag, seed=0):
        job = stage_job(seed, ckpt=d / f"{tag}.safetensors", log=d / f"{tag}.csv", info=d / f"{tag}.json",
                        time=d / f"{tag}.time.json", outputs=d / f"{tag}_out.npz")
        run_train_relearn_gold(job, data=str(d / "data.npz"), split=str(d / "split.json"), request=str(d / "req.json"),
                               dataset_spec=spec, model_spec={"arch": "smallcnn", "width": 4}, recipe=recipe,
                               gold={"epochs": 2, "retain_fraction": 0.5})

    gold("g")
    retain = np.asarray(json.loads((d / "req.json").read_text())["retain"])
    info, meta = json.loads((d / "g.json").read_text()), checkpoint_meta(str(d / "g.safetensors"))
    assert info["kind"] == "relearn_gold" and info["n_train"] == round(0.5 * len(retain))
    assert meta["recipe"] == {**recipe, "epochs": 2} and meta["retain_fraction"] == 0.5
    with open(d / "g.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2  # one log row per epoch: the gold's epochs, not the recipe's 7
    sub = gold_subset(retain, 0.95, 3)
    assert len(sub) == round(0.95 * len(retain)) and np.isin(sub, retain).all() and len(np.unique(sub)) == len(sub)
    assert np.array_equal(sub, gold_subset(retain, 0.95, 3)) and not np.array_equal(sub, gold_subset(retain, 0.95, 4))
    gold("g2")
    assert (d / "g.safetensors").read_bytes() == (d / "g2.safetensors").read_bytes()


@pytest.mark.integration
def test_a_relearn_variant_divides_by_its_own_gold_and_leaves_the_default_alone(tmp_path):
    """extras [relearn, relearn.<v>, mia_thesis]: the default AIN still divides by the retrained run's relearn
    time; variant v's by its reference-style gold model's (one per seed and scenario, rule
    train_relearn_gold), each file named after its settings; mia_thesis runs once per run."""
    from conftest import TINY_CONFIG, dry_run_jobs, run_snakemake

    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["methods"] = {"finetune": {"method": "finetune", "epochs": 1, "tune": None}}
    cfg["relearn_variants"] = {"ref": {"eval_on": "forget_test", "steps_check_at_start": False,
                                       "gold": {"epochs": 15, "retain_fraction": 0.95}}}
    cfg["studies"] = {"t": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "scenarios": ["class0"],
                            "methods": ["original", "retrain", "finetune"], "seeds": [0], "noise_floor": False,
                            "metrics": ["ain_steps", "mia_thesis"], "extras": ["relearn", "relearn.ref", "mia_thesis"]}}
    jobs = dry_run_jobs(run_snakemake(tmp_path, cfg, ["results/tables/t.csv"], "-n").stdout)
    count = lambda rule: sum(j["rule"] == rule for j in jobs)
    assert count("train_relearn_gold") == 1 and count("relearn_gold") == 1 and count("mia_thesis") == 3
    assert count("relearn_measure") == 6 and count("relearn_metrics") == 6
    metrics = {(j["wildcards"]["method"], j["wildcards"]["rvariant"]): j["input"] for j in jobs if j["rule"] == "relearn_metrics"}
    run = "results/runs/tiny_digits/tiny_cnn/tiny/s0/class0"
    assert metrics[("finetune", "")] == [f"{run}/finetune/relearn_raw.json", f"{run}/retrain/relearn_raw.json"]
    own, gold = metrics[("finetune", ".ref")]
    assert own == f"{run}/finetune/relearn.ref_raw.json"
    assert re.fullmatch(r"results/models/tiny_digits/tiny_cnn/tiny/s0/relearn_gold-[0-9a-f]{10}_class0/relearn\.ref_raw\.json", gold)
