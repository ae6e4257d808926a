"""Stage functions: determinism of training on CPU and clean failures on bad checkpoints."""

import hashlib

import pytest

from unlearnbench.errors import UserError
from unlearnbench.pipeline import run_make_forget_request, run_make_split, run_predict, run_prepare_dataset, run_train, run_unlearn

DATASET = {"source": "digits", "image_size": 8, "channels": 1, "val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 0}
MODEL = {"arch": "smallcnn", "width": 8}
RECIPE = {"lr": 0.05, "epochs": 2, "batch_size": 64}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp("stages")
    run_prepare_dataset(DATASET, "unused", False, str(d / "data.npz"))
    run_make_split(str(d / "data.npz"), DATASET, str(d / "split.json"))
    run_make_forget_request(str(d / "data.npz"), str(d / "split.json"), {"type": "class", "classes": [1]}, str(d / "req.json"))
    return d


def _digest(path):
    """Hash of the checkpoint's tensors and metadata."""
    from unlearnbench.io import load_checkpoint

    state, meta = load_checkpoint(path)
    h = hashlib.sha256(repr(sorted(meta.items())).encode())
    for k in sorted(state):
        h.update(k.encode() + state[k].numpy().tobytes())
    return h.hexdigest()


def test_training_is_deterministic_on_cpu(prepared):
    d = prepared
    for tag in ("a", "b"):
        run_train(str(d / "data.npz"), str(d / "split.json"), None, DATASET, MODEL, RECIPE, 7, "cpu", 1,
                  str(d / f"{tag}.safetensors"), str(d / f"{tag}.csv"), str(d / f"{tag}.json"))
    assert _digest(d / "a.safetensors") == _digest(d / "b.safetensors")
    assert (d / "a.csv").read_text().split("\n")[1].split(",")[:3] == (d / "b.csv").read_text().split("\n")[1].split(",")[:3]
    run_train(str(d / "data.npz"), str(d / "split.json"), None, DATASET, MODEL, RECIPE, 8, "cpu", 1,
              str(d / "c.safetensors"), str(d / "c.csv"), str(d / "c.json"))
    assert _digest(d / "a.safetensors") != _digest(d / "c.safetensors")


def test_retrain_sees_no_forget_class(prepared):
    d = prepared
    run_train(str(d / "data.npz"), str(d / "split.json"), str(d / "req.json"), DATASET, MODEL, RECIPE, 0, "cpu", 1,
              str(d / "r.safetensors"), str(d / "r.csv"), str(d / "r.json"))
    import json

    info = json.loads((d / "r.json").read_text())
    req = json.loads((d / "req.json").read_text())
    assert info["kind"] == "retrain" and info["n_train"] == len(req["retain"])


def test_corrupt_checkpoint_fails_cleanly_and_writes_nothing(prepared):
    d = prepared
    bad = d / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt"):
        run_predict(str(bad), str(d / "data.npz"), "cpu", 1, str(d / "out.npz"))
    with pytest.raises(UserError, match="corrupt"):
        run_unlearn(str(d / "data.npz"), str(d / "split.json"), str(d / "req.json"), str(bad),
                    {"method": "finetune"}, 0, "cpu", 1, {}, str(d / "u.safetensors"), str(d / "u.json"))
    assert not any(p.name.startswith(("out", "u.", ".u.", ".out")) for p in d.iterdir())


def test_cuda_request_without_gpu_is_a_clear_error(prepared):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    d = prepared
    with pytest.raises(UserError, match="no CUDA GPU"):
        run_train(str(d / "data.npz"), str(d / "split.json"), None, DATASET, MODEL, RECIPE, 0, "cuda", 1,
                  str(d / "g.safetensors"), str(d / "g.csv"), str(d / "g.json"))
