"""Small trained models on the embedded digits data, shared by the method tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from unlearnbench.data import make_forget_request, make_split, prepare_dataset, to_float
from unlearnbench.methods import Context, build_unlearn_data, create_method
from unlearnbench.models import build_model
from unlearnbench.runtime import predict_logits, seed_everything
from unlearnbench.training import train


@dataclass
class Setup:
    x: torch.Tensor
    y: torch.Tensor
    split: dict
    request: dict
    model: torch.nn.Module

    def accuracy(self, model, idx) -> float:
        logits = predict_logits(model, self.x[torch.as_tensor(idx)], torch.device("cpu"))
        return float((logits.argmax(1) == self.y[torch.as_tensor(idx)]).float().mean() * 100)

    def test_retain(self):
        t = np.asarray(self.split["test"])
        return t[~np.isin(self.y[t].numpy(), self.request["forget_classes"])]

    def run(self, spec: dict, seed: int = 0, artefacts: dict | None = None):
        """Run a method instance on a copy of the model; returns (model, method, data)."""
        seed_everything(seed, 1)
        method = create_method(spec)
        data = build_unlearn_data(method.access(), self.x, self.y, self.request["forget"], self.request["retain"],
                                  self.split["val"], 10, self.request["forget_classes"], self.request["type"],
                                  method.retain_per_class, seed)
        original = copy.deepcopy(self.model).eval()
        ctx = Context(device=torch.device("cpu"), seed=seed, original=original, artefacts=artefacts or {}, log=lambda s: None)
        return method.unlearn(copy.deepcopy(self.model), data, ctx), method, data


def make_setup(forget_classes=(0,), epochs: int = 8, seed: int = 0) -> Setup:
    d = prepare_dataset({"source": "digits", "image_size": 8, "channels": 1}, "unused")
    split = make_split(d["y"], d["is_test"], 0.1, 0.2, seed=0)
    req = make_forget_request(d["y"], split, {"type": "class", "classes": list(forget_classes)}, 10)
    x, y = to_float(d["x"]), torch.from_numpy(d["y"])
    seed_everything(seed, 1)
    model = build_model("smallcnn", in_channels=1, num_classes=10, image_size=8, width=16,
                        mean=d["mean"].tolist(), std=d["std"].tolist())
    tr = torch.as_tensor(split["train"])
    train(model, x[tr], y[tr], {"lr": 0.05, "epochs": epochs, "batch_size": 64}, seed, torch.device("cpu"))
    return Setup(x, y, split, req, model.eval())
