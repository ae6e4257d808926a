"""Device choice, determinism, batching and resource measurement shared by every stage."""

from __future__ import annotations

import os
import platform
import random
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from .errors import UserError
from .infra.lazy import torch
from .infra.numerics import active_mode
from .io import write_json


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda was requested but no CUDA GPU is visible; set device: cpu or auto")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r}; use cpu, cuda or auto")
    return torch.device(name)


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed every RNG and make CPU runs bit-reproducible (fixed thread count, deterministic ops)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(int(threads))
    _deterministic()
    torch.backends.cudnn.benchmark = False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _deterministic() -> None:
    """torch.use_deterministic_algorithms(True, warn_only=True). The public call also sets the flag of
    torch.compile's inductor, importing torch._dynamo to do so (1-4 s per job); nothing here compiles,
    so while inductor is not loaded only the eager flag is set (the same C call the public one makes)."""

    c_set = getattr(torch._C, "_set_deterministic_algorithms", None)
    if "torch._inductor.config" in sys.modules or c_set is None:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        c_set(True, warn_only=True)
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()


def sqrt(x: torch.Tensor) -> torch.Tensor:
    """Square root, correctly rounded (computed in float64): torch.sqrt of a float32 CPU tensor goes
    through MKL's vector math, whose results differ between CPUs (numerics.py). Differentiable."""
    return x.double().sqrt().to(x.dtype)


def generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def iterate_batches(n: int, batch_size: int, gen: torch.Generator | None, shuffle: bool = True) -> Iterator[torch.Tensor]:
    """Index batches over range(n); the order is drawn from `gen` (CPU) so it is device-independent."""
    order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def augment(x: torch.Tensor, crop_pad: int, hflip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random-crop-with-padding and horizontal flip on a batch, randomness drawn on the CPU."""
    if crop_pad > 0:
        n, _, h, w = x.shape
        padded = torch.nn.functional.pad(x, (crop_pad,) * 4)
        dx = torch.randint(0, 2 * crop_pad + 1, (n,), generator=gen)
        dy = torch.randint(0, 2 * crop_pad + 1, (n,), generator=gen)
        rows = (dy.view(n, 1) + torch.arange(h)).to(x.device)
        cols = (dx.view(n, 1) + torch.arange(w)).to(x.device)
        x = padded[torch.arange(n, device=x.device)[:, None, None, None],
                   torch.arange(x.shape[1], device=x.device)[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :]]
    if hflip:
        flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


def predict_logits(model: torch.nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """Eval-mode logits for a [0,1] image tensor, returned on the CPU."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


@dataclass
class Job:
    """One rule job's context for its stage function: the run's seed, the device, the torch thread
    count and the job's outputs by name (`out["time"]`: the timing sidecar). `start()` seeds every
    RNG and resolves the device; `timed()` measures a block and writes the timing sidecar."""

    seed: int = 0
    device: str = "auto"
    threads: int = 1
    out: dict = field(default_factory=dict)
    dev: Any = None

    def start(self, seed: int | None = None) -> torch.device:
        seed_everything(self.seed if seed is None else seed, self.threads)
        self.dev = resolve_device(self.device)
        return self.dev

    @contextmanager
    def timed(self, **extra) -> Iterator["Usage"]:
        """Wall time and peak memory of the block, written with `extra` (and whatever the block put
        in `usage.extra`) to the timing sidecar."""
        with measure(self.dev) as usage:
            yield usage
        write_json(self.out["time"], usage.record(**extra))


@dataclass
class Usage:
    seconds: float = 0.0
    peak_mem_mb: float = 0.0  # peak extra memory during the block (RSS on CPU, allocator on CUDA)
    device: str = "cpu"
    extra: dict = field(default_factory=dict)

    def record(self, **extra) -> dict:
        """The timing sidecar of a stage (`*.time.json`): seconds, memory and where they were measured."""
        return {"seconds": self.seconds, "peak_mem_mb": self.peak_mem_mb, **machine(self.device), **self.extra, **extra}


def machine(device: str = "cpu") -> dict:
    """Where a time was measured: host, CPU model and count, torch threads, device, numerics mode."""

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((l.split(":", 1)[1].strip() for l in fh if l.startswith("model name")), cpu)
    except OSError:
        pass

    info = {"host": socket.gethostname(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": str(device), "numerics": active_mode()}
    if str(device).startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@contextmanager
def measure(device: torch.device) -> Iterator[Usage]:
    """Wall time and peak memory of a block. CPU: RSS sampled every 2 ms above the starting RSS."""
    usage = Usage(device=str(device))
    stop = threading.Event()
    base = peak = 0.0
    sampler = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) / 2**20
    elif os.path.exists("/proc/self/statm"):
        base = peak = _rss_mb()

        def sample():
            nonlocal peak
            while not stop.wait(0.002):
                peak = max(peak, _rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    t0 = time.perf_counter()
    try:
        yield usage
    finally:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        usage.seconds = time.perf_counter() - t0
        if device.type == "cuda":
            usage.peak_mem_mb = torch.cuda.max_memory_allocated(device) / 2**20 - base
        elif sampler is not None:
            stop.set()
            sampler.join()
            usage.peak_mem_mb = max(peak, _rss_mb()) - base
