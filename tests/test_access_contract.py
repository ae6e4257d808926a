"""The data-access contract is a property of the unlearn job, not an honour rule: a rogue method
that declares forget-only access tries every route to the retain data (AccessError, the caller's
variables, the files on disk at known paths, other processes, the garbage collector) and fails."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import stage_job
from unlearnbench.errors import AccessError
from unlearnbench.methods import Access, UnlearningMethod, create_method, register_method
from unlearnbench.pipeline import (run_data_view, run_make_forget_request, run_make_split, run_prepare_dataset,
                                   run_train_original, run_unlearn)

DATASET = {"source": "digits", "image_size": 8, "channels": 1, "val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 0}
ROUTES = {}
ALIVE_BEFORE = []  # retain-sized tensors other tests of this worker left alive


@register_method("_rogue")
class Rogue(UnlearningMethod):
    """Declares forget-only access, then tries to read the retain set anyway."""

    def access(self):
        return Access(forget=True)

    def unlearn(self, model, data, ctx):
        import torch

        xf, _ = data.forget
        n_retain = ctx.info["n_retain_expected"]
        # 1. the declared interface
        try:
            data.retain
            ROUTES["interface"] = "read"
        except AccessError:
            ROUTES["interface"] = "blocked"
        # 2. the caller's variables: any array or tensor of retain size, or a path to undeclared data
        found = []
        frame = sys._getframe().f_back
        while frame is not None and not frame.f_code.co_name.startswith("test_"):  # the job's frames
            for v in frame.f_locals.values():
                shape = getattr(v, "shape", None)
                if shape is not None and len(shape) == 4 and shape[0] == n_retain:
                    found.append("array")
                if isinstance(v, str) and v.endswith(("data.npz", "split.json", "class0.json", "retain.npz")):
                    found.append(v)
            frame = frame.f_back
        ROUTES["locals"] = found
        # 3. files on disk at known paths
        opened = {}
        for rel in ctx.info["paths"]:
            try:
                with open(rel, "rb") as fh:
                    fh.read(10)
                opened[rel] = "read"
            except AccessError:
                opened[rel] = "blocked"
        try:
            np.load(ctx.info["paths"][0])
            opened["np.load"] = "read"
        except AccessError:
            opened["np.load"] = "blocked"
        ROUTES["files"] = opened
        # 4. another process
        try:
            subprocess.run(["cat", ctx.info["paths"][0]], capture_output=True)
            ROUTES["process"] = "read"
        except AccessError:
            ROUTES["process"] = "blocked"
        # 5. live objects reachable through the garbage collector
        # (arrays another test of this worker left alive are not the job's: only new ones count)
        before = {id(o) for o in ALIVE_BEFORE}
        ROUTES["gc"] = sum(1 for o in gc.get_objects() if id(o) not in before
                           and isinstance(o, (np.ndarray, torch.Tensor)) and o.ndim == 4 and o.shape[0] == n_retain)
        return model


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    r = root / "results"
    data, split, req, card = r / "data/data.npz", r / "data/split.json", r / "data/forget/class0.json", r / "data/forget/class0.card.json"
    run_prepare_dataset(stage_job(data=data), DATASET, "unused", False)
    run_make_split(stage_job(split=split), str(data), DATASET)
    run_make_forget_request(stage_job(request=req, card=card), str(data), str(split), {"type": "class", "classes": [0]})
    for view in ("forget", "retain"):
        run_data_view(stage_job(view=r / f"data/access/{view}.npz"), str(data), str(split), str(req), view)
    ckpt = r / "models/original.safetensors"
    run_train_original(stage_job(0, ckpt=ckpt, log=r / "models/o.csv", info=r / "models/o.json",
                                 time=r / "models/o.time.json", outputs=r / "models/o.outputs.npz"),
                       data=str(data), split=str(split), dataset_spec=DATASET, model_spec={"arch": "smallcnn", "width": 4},
                       recipe={"epochs": 1, "batch_size": 64})
    return root, r, data, split, req, card, ckpt


def test_a_rogue_method_cannot_reach_undeclared_data(job, monkeypatch):
    root, r, data, split, req, card, ckpt = job
    monkeypatch.chdir(root)
    n_retain = len(json.loads(req.read_text())["retain"])
    paths = [str(data.relative_to(root)), str(split.relative_to(root)), str(req.relative_to(root)),
             "results/data/access/retain.npz", str(data)]  # relative and absolute
    from unlearnbench.methods import Context
    import torch

    gc.collect()
    ALIVE_BEFORE[:] = [o for o in gc.get_objects()  # held, so their ids stay theirs
                       if isinstance(o, (np.ndarray, torch.Tensor)) and o.ndim == 4 and o.shape[0] == n_retain]

    class SpyContext(Context):  # hands the rogue the facts it needs to try (sizes, paths)
        def __init__(self, **kw):
            super().__init__(**kw)
            self.info.update(n_retain_expected=n_retain, paths=paths)

    monkeypatch.setattr("unlearnbench.pipeline.Context", SpyContext)  # the Context run_unlearn builds
    out = r / "runs/rogue"
    run_unlearn(stage_job(0, ckpt=out / "model.safetensors", info=out / "unlearn.json", time=out / "model.time.json"),
                create_method({"method": "_rogue"}), {"method": "_rogue"}, original=str(ckpt.relative_to(root)),
                card=str(card.relative_to(root)), views={"forget": "results/data/access/forget.npz"}, artefacts={},
                protected=["results"])
    assert ROUTES["interface"] == "blocked"
    assert ROUTES["locals"] == [], ROUTES["locals"]
    assert set(ROUTES["files"].values()) == {"blocked"}, ROUTES["files"]
    assert ROUTES["process"] == "blocked"
    assert ROUTES["gc"] == 0
    # the job itself finished and wrote its outputs (the sandbox only guards the method's run)
    assert (out / "model.safetensors").exists() and json.loads((out / "unlearn.json").read_text())["access"] == "forget"


def test_subset_views_are_capped_or_labelled_all(job, monkeypatch):
    root, r, data, split, req, card, ckpt = job
    run_data_view(stage_job(view=r / "data/access/retain-k3-s0.npz"), str(data), str(split), str(req), "retain-k3-s0")
    v = np.load(r / "data/access/retain-k3-s0.npz")
    assert np.bincount(v["y"], minlength=10).tolist() == [0] + [3] * 9 and not v["covers_all"]


def test_a_job_whose_wall_could_not_go_up_says_declared_not_enforced(job, monkeypatch):
    """Where the kernel offers no Landlock or seccomp (wall.py), the access column says so."""
    root, r, data, split, req, card, ckpt = job
    monkeypatch.chdir(root)
    from unlearnbench.infra import wall

    monkeypatch.setattr(wall, "_STATE", {"enforced": False, "why": "no Landlock (kernel 5.10)"})
    out = r / "runs/not_enforced"
    spec = {"method": "gradient_ascent", "epochs": 1}
    run_unlearn(stage_job(0, ckpt=out / "model.safetensors", info=out / "unlearn.json", time=out / "model.time.json"),
                create_method(spec), spec, original=str(ckpt.relative_to(root)), card=str(card.relative_to(root)),
                views={"forget": "results/data/access/forget.npz"}, artefacts={}, protected=["results"])
    assert json.loads((out / "unlearn.json").read_text())["access"] == "forget (declared, not enforced)"
