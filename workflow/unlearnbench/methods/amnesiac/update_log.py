"""Amnesiac unlearning's training-time log (Graves et al., "Amnesiac Machine Learning", AAAI 2021).

While the original model trains, the data owner records for every optimiser step whose batch holds a
sample of a watched class (`classes`) the parameter update delta = theta_after - theta_before, the
step number, the per-class sample counts of the batch and the batch's sample ids. Unlearning a class
subtracts the deltas of every recorded batch that contained it. Storing every delta would cost
(steps x parameters) floats, hence the class filter; the snapshot of the previous step's parameters
(one model's worth of memory) is what makes each delta exact.

Usage with `training.train` (whose hook runs after each optimiser step):
    log = UpdateLog(labels=y_train, classes=[3], num_classes=10, sample_ids=train_idx)
    log.start(model)                    # before the first step
    train(model, x_train, y_train, recipe, seed, dev, on_batch=log.on_batch)
    log.save(path, model)               # safetensors, with a fingerprint of the final weights
`training.train` calls `on_batch(model, step, idx)` with the batch's indices into x_train. In the
workflow the log is the artefact of rule record_update_log (`run_record_update_log` below), which
replays the original's training with the recorder and checks the replay bit for bit.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from ...data import to_float
from ...errors import UserError
from ...io import load_checkpoint, read_json, read_npz, save_checkpoint, write_json
from ...models.checkpoint import new_model
from ...runtime import Job, measure
from ...training import train

KIND = "amnesiac_update_log"


def _tracked(model: nn.Module, buffers: bool) -> list[tuple[str, torch.Tensor]]:
    """Parameters (and floating-point buffers, e.g. BN running statistics, if `buffers`) in a fixed order."""
    out = [(n, p) for n, p in model.named_parameters()]
    if buffers:
        out += [(n, b) for n, b in model.named_buffers() if b.is_floating_point()]
    return out


def flat_state(model: nn.Module, buffers: bool = False) -> torch.Tensor:
    """The tracked tensors of `model` as one float32 vector (on the model's device)."""
    return torch.cat([t.detach().reshape(-1).float() for _, t in _tracked(model, buffers)])


def write_flat(model: nn.Module, flat: torch.Tensor, buffers: bool = False) -> None:
    """Copy a vector made by `flat_state` back into the model's tensors (in place)."""
    i = 0
    with torch.no_grad():
        for _, t in _tracked(model, buffers):
            n = t.numel()
            t.copy_(flat[i:i + n].view_as(t).to(t.dtype))
            i += n
    if i != len(flat):
        raise UserError(f"update log has {len(flat)} values, the model {i}: the log belongs to another architecture")


def fingerprint(flat: torch.Tensor) -> str:
    """sha256 of a flat float32 state (identifies the model a log was recorded for)."""
    return hashlib.sha256(flat.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()


class UpdateLog:
    """Recorder (and, once loaded, reader) of per-step parameter updates for Amnesiac unlearning."""

    def __init__(self, labels: Any, classes: Iterable[int], num_classes: int, sample_ids: Any = None,
                 buffers: bool = False):
        self.labels = torch.as_tensor(labels, dtype=torch.long).cpu()
        self.classes = sorted({int(c) for c in classes})
        self.num_classes = int(num_classes)
        if not self.classes or min(self.classes) < 0 or max(self.classes) >= self.num_classes:
            raise UserError(f"update log: classes {self.classes} must be a non-empty subset of 0..{self.num_classes - 1}")
        self.sample_ids = (torch.as_tensor(sample_ids, dtype=torch.long).cpu() if sample_ids is not None
                           else torch.arange(len(self.labels)))
        if len(self.sample_ids) != len(self.labels):
            raise UserError("update log: sample_ids and labels differ in length")
        self.buffers = bool(buffers)
        self.deltas: list[torch.Tensor] = []
        self.steps: list[int] = []
        self.class_counts: list[torch.Tensor] = []
        self.batch_ids: list[torch.Tensor] = []
        self.n_steps = 0
        self.names: list[str] = []
        self.shapes: list[list[int]] = []
        self._prev: torch.Tensor | None = None
        self._watch = torch.zeros(self.num_classes, dtype=torch.bool)
        self._watch[self.classes] = True

    # ------------------------------------------------------------------ recording
    def start(self, model: nn.Module) -> None:
        """Snapshot the parameters before the first optimiser step."""
        tracked = _tracked(model, self.buffers)
        self.names = [n for n, _ in tracked]
        self.shapes = [list(t.shape) for _, t in tracked]
        self._prev = flat_state(model, self.buffers)

    def on_batch(self, model: nn.Module, step: int, idx: Any = None) -> None:
        """The `on_batch` hook: called after optimiser step `step` on the batch `idx` (indices into
        the training tensors). Records the step if its batch holds a watched class."""
        if self._prev is None:
            raise UserError("UpdateLog.on_batch before UpdateLog.start(model): call start before training")
        if idx is None:
            raise UserError("UpdateLog needs the batch indices: training.train must call on_batch(model, step, idx)")
        now = flat_state(model, self.buffers)
        idx = torch.as_tensor(idx).long().cpu()
        counts = torch.bincount(self.labels[idx], minlength=self.num_classes)
        if bool((counts[self._watch] > 0).any()):
            self.deltas.append((now - self._prev).cpu())
            self.steps.append(int(step))
            self.class_counts.append(counts.to(torch.int32))
            self.batch_ids.append(self.sample_ids[idx])
        self._prev = now
        self.n_steps = max(self.n_steps, int(step))

    def save(self, path: str | Path, model: nn.Module, meta: dict | None = None) -> dict:
        """Write the log (safetensors) with the fingerprint of `model`, the trained model it belongs to."""

        if self._prev is None:
            raise UserError("UpdateLog.save before any recording")
        final = flat_state(model, self.buffers)
        if not torch.equal(final, self._prev):
            raise UserError("UpdateLog.save: the model changed after the last recorded step")
        k, p = len(self.steps), len(final)
        lengths = torch.tensor([len(b) for b in self.batch_ids], dtype=torch.long)
        tensors = {
            "delta": torch.stack(self.deltas) if k else torch.zeros(0, p),
            "steps": torch.tensor(self.steps, dtype=torch.long),
            "class_counts": torch.stack(self.class_counts) if k else torch.zeros(0, self.num_classes, dtype=torch.int32),
            "batch_ids": torch.cat(self.batch_ids) if k else torch.zeros(0, dtype=torch.long),
            "batch_offsets": torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]),
        }
        info = {"kind": KIND, "classes": self.classes, "num_classes": self.num_classes, "buffers": self.buffers,
                "names": self.names, "shapes": self.shapes, "n_steps": self.n_steps, "n_recorded": k,
                "fingerprint": fingerprint(final), **(meta or {})}
        save_checkpoint(path, tensors, info)
        return info

    # ------------------------------------------------------------------ reading
    @classmethod
    def load(cls, path: str | Path) -> "UpdateLog":

        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != KIND or "delta" not in tensors:
            raise UserError(f"{path} is not an Amnesiac update log (kind {meta.get('kind')!r}); "
                            "record it while training the original (parts.update_log.UpdateLog)")
        log = cls(torch.zeros(0), meta["classes"], meta["num_classes"], buffers=meta["buffers"])
        log.names, log.shapes, log.n_steps = meta["names"], meta["shapes"], meta["n_steps"]
        log.deltas = list(tensors["delta"])
        log.steps = tensors["steps"].tolist()
        log.class_counts = list(tensors["class_counts"])
        off = tensors["batch_offsets"].tolist()
        log.batch_ids = [tensors["batch_ids"][off[i]:off[i + 1]] for i in range(len(off) - 1)]
        log.meta = meta
        log._delta_matrix = tensors["delta"]
        return log

    def delta_matrix(self) -> torch.Tensor:
        m = getattr(self, "_delta_matrix", None)
        if m is None or len(m) != len(self.deltas):
            p = sum(int(torch.Size(s).numel()) for s in self.shapes)
            m = torch.stack(self.deltas) if self.deltas else torch.zeros(0, p)
        return m

    def selection(self, forget_classes: Iterable[int]) -> torch.Tensor:
        """Boolean mask of the recorded steps whose batch held a sample of any forget class."""
        fc = [int(c) for c in forget_classes]
        missing = sorted(set(fc) - set(self.classes))
        if missing:
            raise UserError(f"the update log watched classes {self.classes}, not {missing}: "
                            "record a log that watches every class to be forgotten")
        if not self.class_counts:
            return torch.zeros(0, dtype=torch.bool)
        return (torch.stack(self.class_counts)[:, fc] > 0).any(1)

    def undo(self, model: nn.Module, forget_classes: Iterable[int]) -> dict:
        """theta <- theta - sum of the deltas of every recorded batch that held a forget class (in place)."""
        flat = flat_state(model, self.buffers)
        fp = getattr(self, "meta", {}).get("fingerprint")
        if fp is not None and fingerprint(flat) != fp:
            raise UserError("the update log was recorded for a different model than the one being unlearned; "
                            "record it while training this original model")
        sel = self.selection(forget_classes)
        total = self.delta_matrix()[sel].sum(0) if bool(sel.any()) else torch.zeros_like(flat.cpu())
        write_flat(model, flat - total.to(flat.device), self.buffers)
        return {"steps_undone": int(sel.sum()), "steps_recorded": len(self.steps), "steps_total": self.n_steps,
                "undo_norm": float(total.norm())}


# ---------------------------------------------------------------------------------- pipeline stage
MAX_LOG_BYTES = 16 * 2**30  # refuse logs larger than this (every step of a class request is logged)


def _first_difference(a: dict, b: dict) -> str | None:
    """The name of the first tensor in which two state dicts differ (None when bit-identical)."""
    if set(a) != set(b):
        return sorted(set(a) ^ set(b))[0]
    for k in a:
        x, y = a[k].detach().cpu(), b[k].detach().cpu()
        if x.shape != y.shape or x.dtype != y.dtype or not torch.equal(x, y):
            return k
    return None


def run_record_update_log(job: Job, data: str, split: str, original: str, classes: list[int], settings: dict,
                          model_spec: dict, recipe: dict) -> None:
    """Rule record_update_log: Amnesiac's training-time log, recorded by replaying the original's
    training (rule train_original: same seed, initialisation, batch order and recipe) with the
    recorder as `training.train`'s on_batch hook. The replayed final weights must equal the original
    checkpoint bit for bit (every parameter and buffer), else the log would belong to another model:
    the job then fails with one line (e.g. non-deterministic GPU kernels). Inputs: the dataset archive,
    its split and the original checkpoint; settings: log_buffers. The timing sidecar's `seconds` are
    the recording overhead (hook + saving), the part the data owner pays on top of training; the
    replayed training time is recorded next to it as `replay_seconds`."""
    dev = job.start()  # seeded exactly as train_original (pipeline._train, replica 0): nothing below draws before new_model
    seed = job.seed
    classes = sorted({int(c) for c in classes})
    buffers = bool(settings.get("log_buffers", False))
    o_state, o_meta = load_checkpoint(original)
    if o_meta.get("kind") != "original" or "model_spec" not in o_meta:
        raise UserError(f"{original} is not an original-model checkpoint of rule train_original; rebuild it")
    if o_meta["model_spec"] != model_spec:
        raise UserError(f"{original} was trained with model {o_meta['model_spec']}, the config says {model_spec}; rebuild it")
    if o_meta.get("sparsity") is not None:
        raise UserError("record_update_log replays a dense original's training; pruned originals are not supported")
    d, split_d = read_npz(data), read_json(split)
    x, y = to_float(d["x"]), torch.from_numpy(d["y"].astype(np.int64))
    tr, va = torch.as_tensor(np.asarray(split_d["train"])), torch.as_tensor(np.asarray(split_d["val"]))
    model = new_model(d, model_spec)
    n_params = sum(p.numel() for p in model.parameters()) + (
        sum(b.numel() for b in model.buffers() if b.is_floating_point()) if buffers else 0)
    steps = int(recipe.get("epochs", 30)) * -(-len(tr) // int(recipe.get("batch_size", 64)))
    if steps * n_params * 4 > MAX_LOG_BYTES:
        raise UserError(f"record_update_log: the log could take {steps * n_params * 4 / 2**30:.0f} GiB ({steps} steps x "
                        f"{n_params} values); use a smaller model or recipe, or leave amnesiac out of this study")
    log = UpdateLog(y[tr], classes, len(d["class_names"]), sample_ids=tr, buffers=buffers)
    hook_seconds = [0.0]

    def on_batch(m, step, idx):
        t0 = time.perf_counter()
        log.on_batch(m, step, idx)
        hook_seconds[0] += time.perf_counter() - t0

    with measure(dev) as usage:  # its own sidecar below: the recording overhead, not the replay
        log.start(model)
        t_train = time.perf_counter()
        train(model, x[tr], y[tr], recipe, seed, dev, val=(x[va], y[va]), desc="replay", on_batch=on_batch)
        replay = time.perf_counter() - t_train
        diff = _first_difference(model.state_dict(), o_state)
        if diff is not None:
            raise UserError(f"record_update_log: the replayed training differs from {original} (first in {diff}): "
                            f"training is not deterministic on {dev} (e.g. GPU kernels); record the log on the CPU "
                            "with the threads the original was trained with")
        t_save = time.perf_counter()
        info = log.save(job.out["log"], model, {"original_config_hash": o_meta.get("config_hash"), "seed": seed})
        save_seconds = time.perf_counter() - t_save
    info = {k: v for k, v in info.items() if k not in ("names", "shapes")}
    info.update(n_train=int(len(tr)), n_params=n_params, bytes=int(len(log.steps) * n_params * 4),
                replay_identical=True)
    write_json(job.out["info"], info)
    write_json(job.out["time"], {**usage.record(), "seconds": hook_seconds[0] + save_seconds, "replay_seconds": replay,
                          "replay_and_record_seconds": usage.seconds})
    print(f"update log: {info['n_recorded']} of {info['n_steps']} steps hold a sample of {classes} "
          f"({info['bytes'] / 2**20:.1f} MiB); replayed training identical to {original}", flush=True)
