"""Stage functions: determinism on CPU (byte-identical files), the data views, and clean failures."""

import hashlib
import json

import numpy as np
import pytest

from helpers import stage_job
from unlearnbench.errors import UserError
from unlearnbench.methods import create_method
from unlearnbench.pipeline import (run_data_view, run_evaluate, run_make_forget_request, run_make_split,
                                   run_prepare_dataset, run_train_original, run_train_retrain, run_unlearn)

DATASET = {"source": "digits", "image_size": 8, "channels": 1, "val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 0}
MODEL = {"arch": "smallcnn", "width": 8}
RECIPE = {"lr": 0.05, "epochs": 3, "batch_size": 64}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp("stages")
    run_prepare_dataset(stage_job(data=d / "data.npz"), DATASET, "unused", False)
    run_make_split(stage_job(split=d / "split.json"), str(d / "data.npz"), DATASET)
    run_make_forget_request(stage_job(request=d / "req.json", card=d / "card.json"), str(d / "data.npz"),
                            str(d / "split.json"), {"type": "class", "classes": [1]})
    return d


def _train(d, tag, seed=7, request=None):
    job = stage_job(seed, ckpt=d / f"{tag}.safetensors", log=d / f"{tag}.csv", info=d / f"{tag}.json",
                    time=d / f"{tag}.time.json", outputs=d / f"{tag}_out.npz")
    args = dict(data=str(d / "data.npz"), split=str(d / "split.json"), dataset_spec=DATASET, model_spec=MODEL, recipe=RECIPE)
    if request:
        run_train_retrain(job, request=str(request), replica=0, **args)
    else:
        run_train_original(job, **args)


def _evaluate(d, ckpt, tag, device="cpu"):
    job = stage_job(0, outputs=d / f"{tag}.npz", metrics=d / f"{tag}.json", mia=d / f"{tag}_mia.npz")
    job.device = device
    run_evaluate(job, ckpt=str(ckpt), retrain_outputs=str(d / "a_out.npz"), data=str(d / "data.npz"),
                 split=str(d / "split.json"), request=str(d / "req.json"), original=str(d / "a.safetensors"),
                 retrain=str(d / "a.safetensors"), unlearn_info=str(d / "nope.json"), access="x")


def _bytes(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_writes_byte_identical_files_on_cpu(prepared):
    d = prepared
    _train(d, "a")
    _train(d, "b")
    for ext in (".safetensors", ".csv", ".json", "_out.npz"):
        assert _bytes(d / f"a{ext}") == _bytes(d / f"b{ext}"), ext
    t = json.loads((d / "a.time.json").read_text())
    assert t["seconds"] > 0 and len(t["epoch_seconds"]) == RECIPE["epochs"] and t["torch_threads"] == 1
    _train(d, "c", seed=8)
    assert _bytes(d / "a.safetensors") != _bytes(d / "c.safetensors")


def test_retrain_never_learns_the_forget_class(prepared):
    d = prepared
    _train(d, "orig", seed=0)
    _train(d, "r", seed=0, request=d / "req.json")
    req = json.loads((d / "req.json").read_text())
    data = np.load(d / "data.npz")
    assert not np.isin(data["y"][req["retain"]], [1]).any()
    assert json.loads((d / "r.json").read_text())["n_train"] == len(req["retain"])
    test = np.asarray(json.loads((d / "split.json").read_text())["test"])
    test1 = test[data["y"][test] == 1]
    acc = {t: (np.load(d / f"{t}_out.npz")["logits"][test1].argmax(1) == 1).mean() * 100 for t in ("orig", "r")}
    assert acc["orig"] > 60 and acc["r"] == 0, acc


def test_data_views_are_the_declared_sets(prepared):
    d = prepared
    req = json.loads((d / "req.json").read_text())
    for view in ("forget", "retain", "val", "retain-k5-s0", "retain-k1000-s0"):
        run_data_view(stage_job(view=d / f"v_{view}.npz"), str(d / "data.npz"), str(d / "split.json"), str(d / "req.json"), view)
    v = np.load(d / "v_forget.npz")
    assert v["index"].tolist() == req["forget"] and (v["y"] == 1).all() and not v["covers_all"]
    sub = np.load(d / "v_retain-k5-s0.npz")
    assert np.bincount(sub["y"], minlength=10).tolist() == [5, 0] + [5] * 8 and not sub["covers_all"]
    assert set(sub["index"]) <= set(req["retain"])
    assert np.load(d / "v_retain-k1000-s0.npz")["covers_all"]  # more than any class holds: the whole retain set
    with pytest.raises(UserError, match="unknown data view"):
        run_data_view(stage_job(view=d / "x.npz"), str(d / "data.npz"), str(d / "split.json"), str(d / "req.json"), "everything")


def test_unlearn_labels_a_subset_that_covers_everything_as_all(prepared):
    d = prepared
    _train(d, "o2", seed=0)
    job = stage_job(0, **{k: d / f"u_{k}" for k in ("ckpt", "info", "time")})
    spec = {"method": "finetune", "epochs": 1}
    run_unlearn(job, create_method(spec), spec, original=str(d / "o2.safetensors"), card=str(d / "card.json"),
                views={"retain": str(d / "v_retain-k1000-s0.npz")}, artefacts={"noise": []})
    assert json.loads((d / "u_info").read_text())["access"] == "retain"
    with pytest.raises(UserError, match="its access declares"):
        run_unlearn(job, create_method({"method": "gradient_ascent"}), {"method": "gradient_ascent"},
                    original=str(d / "o2.safetensors"), card=str(d / "card.json"),
                    views={"retain": str(d / "v_retain-k1000-s0.npz")}, artefacts={})


def test_corrupt_checkpoint_fails_cleanly_and_writes_nothing(prepared):
    d = prepared
    bad = d / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt"):
        _evaluate(d, bad, "out")
    with pytest.raises(UserError, match="corrupt"):
        run_unlearn(stage_job(0, ckpt=d / "u.safetensors", info=d / "u.json", time=d / "u.time.json"),
                    create_method({"method": "finetune"}), {"method": "finetune"}, original=str(bad),
                    card=str(d / "card.json"), views={"retain": str(d / "v_retain.npz")}, artefacts={})
    assert not any(p.name.startswith(("out", "u.", ".u.", ".out")) for p in d.iterdir())


def test_cuda_request_without_gpu_is_a_clear_error(prepared):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(UserError, match="no CUDA GPU"):
        _evaluate(prepared, prepared / "a.safetensors", "g", device="cuda")
