"""Small trained models on the embedded digits data, shared by the method tests."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from dataclasses import dataclass

import numpy as np
import torch

from unlearnbench.data import RequestData, make_forget_request, make_split, prepare_dataset, to_float, view_indices
from unlearnbench.methods import Context, create_method
from unlearnbench.models import build_model
from unlearnbench.runtime import Job, predict_logits, seed_everything
from unlearnbench.training import train


def stage_job(seed: int = 0, **out) -> Job:
    """The job context a rule script passes to a stage function (CPU, one thread; outputs by name)."""
    return Job(seed=seed, device="cpu", threads=1, out={k: str(v) for k, v in out.items()})


def unlearn_data(access, rd: RequestData, seed: int):
    """The `UnlearnData` an access declares, built in memory from a RequestData (the workflow builds
    the same sets from rule data_view's files)."""
    from unlearnbench.methods import UnlearnData

    sets = {role: rd.tensors(view_indices(view, rd)) for role, view in access.views(seed).items()}
    return UnlearnData(access, rd.num_classes, rd.forget_classes, rd.request["type"], sets=sets)


@dataclass
class Setup:
    rd: RequestData
    model: torch.nn.Module

    @property
    def x(self) -> torch.Tensor:
        return to_float(self.rd.data["x"])

    @property
    def y(self) -> torch.Tensor:
        return torch.from_numpy(self.rd.y)

    @property
    def split(self) -> dict:
        return self.rd.split

    @property
    def request(self) -> dict:
        return self.rd.request

    def accuracy(self, model, idx) -> float:
        x, y = self.rd.tensors(np.asarray(idx))
        logits = predict_logits(model, x, torch.device("cpu"))
        return float((logits.argmax(1) == y).float().mean() * 100)

    def test_retain(self):
        return self.rd.test_retain

    def data_for(self, method, seed: int = 0):
        return unlearn_data(method.access(), self.rd, seed)

    def context(self, seed: int = 0, artefacts: dict | None = None) -> Context:
        original = copy.deepcopy(self.model).eval()
        for p in original.parameters():
            p.requires_grad_(False)
        return Context(device=torch.device("cpu"), seed=seed, original=original, artefacts=artefacts or {},
                       log=lambda s: None, input_shape=tuple(self.rd.data["x"].shape[1:]))

    def run(self, spec: dict, seed: int = 0, artefacts: dict | None = None):
        """Run a method instance on a copy of the model; returns (model, method, data)."""
        seed_everything(seed, 1)
        method = create_method(spec)
        data = self.data_for(method, seed)
        return method.unlearn(copy.deepcopy(self.model), data, self.context(seed, artefacts)), method, data


def make_setup(forget_classes=(0,), epochs: int = 8, seed: int = 0, scenario: dict | None = None) -> Setup:
    """SmallCNN (width 16) trained on 8x8 grey digits; forget request: `forget_classes` or `scenario`."""
    d = prepare_dataset({"source": "digits", "image_size": 8, "channels": 1}, "unused")
    split = make_split(d["y"], d["is_test"], 0.1, 0.2, seed=0)
    scenario = scenario or {"type": "class", "classes": list(forget_classes)}
    req = make_forget_request(d["y"], split, scenario, 10)
    x, y = to_float(d["x"]), torch.from_numpy(d["y"])
    seed_everything(seed, 1)
    model = build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=16,
                        mean=d["mean"].tolist(), std=d["std"].tolist())
    tr = torch.as_tensor(split["train"])
    train(model, x[tr], y[tr], {"lr": 0.05, "epochs": epochs, "batch_size": 64}, seed, torch.device("cpu"))
    return Setup(RequestData(d, {k: v.tolist() for k, v in split.items()},
                             {**req, "forget": req["forget"].tolist(), "retain": req["retain"].tolist()}), model.eval())


def build_unlearn_data(access, x, y, forget, retain, val, num_classes, forget_classes, request_type, seed=0):
    """UnlearnData of `access` from in-memory tensors and index lists (as the data_view rule slices)."""
    from unlearnbench.data import view_indices
    from unlearnbench.methods import UnlearnData

    y_np = y.numpy() if hasattr(y, "numpy") else np.asarray(y)
    rd = RequestData({"x": None, "y": y_np, "class_names": np.arange(num_classes).astype(str)},
                     {"val": list(np.asarray(val, dtype=np.int64))},
                     {"forget": list(np.asarray(forget, dtype=np.int64)), "retain": list(np.asarray(retain, dtype=np.int64)),
                      "forget_classes": list(forget_classes), "type": request_type})
    sets = {}
    for role, view in access.views(seed).items():
        idx = torch.as_tensor(view_indices(view, rd), dtype=torch.long)
        sets[role] = (x[idx], y[idx])
    return UnlearnData(access, num_classes, forget_classes, request_type, sets=sets)


def is_timing_file(path: str | os.PathLike) -> bool:
    """Files that hold wall times, memory or provenance (when, where, by whom) or views rendered from
    them: the only outputs that differ between two CPU runs of the same config and seed."""
    name = Path(path).name
    return (name.endswith((".time.json", ".cost.csv", ".md", ".tex", ".html", ".prov.json")) or name == "cost.json"
            or Path(path).parent.name in ("logs", "benchmarks"))
