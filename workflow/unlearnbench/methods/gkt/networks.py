"""GKT's pieces (Chundawat et al., "Zero-Shot Machine Unlearning", 2023, after Micaelli & Storkey's
zero-shot knowledge transfer): the pseudo-sample generator and a tap that captures a model's
intermediate activations for the attention-transfer loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Generator(nn.Module):
    """z in R^z_dim -> an image in the model's *normalised* input space (final BatchNorm, as in the
    reference code): linear -> width x s x s (s = ceil(image_size / 4)) -> BN -> [upsample x2 ->
    conv3x3 -> BN -> LeakyReLU(0.2)] x 2 (width, width/2 channels) -> conv3x3 -> BN. Sizes that are
    not a multiple of 4 are resized bilinearly at the end."""

    def __init__(self, z_dim: int, out_channels: int, image_size: int, width: int = 128):
        super().__init__()
        self.image_size = int(image_size)
        self.init = max(1, math.ceil(image_size / 4))
        half = max(1, width // 2)
        self.fc = nn.Linear(z_dim, width * self.init ** 2)
        self.width = width
        self.body = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, half, 3, padding=1), nn.BatchNorm2d(half), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(half, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels, affine=True),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.body(self.fc(z).view(len(z), self.width, self.init, self.init))
        if out.shape[-1] != self.image_size:
            out = F.interpolate(out, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return out


class ActivationTap:
    """Runs a model and returns (logits, [activations]) at chosen module calls.

    `layers="auto"`: a probe forward (eval mode, no grad) lists every module call with a 4-D output;
    for each spatial resolution above 1x1 the last such call is kept (the end of each stage, as the
    ZSKT/GKT models expose them). `layers="conv_blocks"`: one activation per conv block, i.e. per
    nn.Conv2d call, taken at the end of the block: the last of the norm/activation module calls
    that directly follow the conv with its output's shape (conv -> BatchNorm -> ReLU gives the ReLU's
    output, as the reference AllCNN returns actv1..actv8), or the conv's own output if none follows;
    blocks whose output is 1x1 or smaller are left out, as in "auto" (their attention map is the
    constant 1). Otherwise a comma-separated list of module names (first call of each). Two models
    of the same architecture give activations of matching shapes."""

    def __init__(self, model: nn.Module, probe: torch.Tensor, layers: str = "auto"):
        self.model = model
        modules = dict(model.named_modules())
        if layers == "auto":
            last: dict[tuple, tuple[str, int]] = {}
            order: list[tuple] = []
            for name, k, _, shape in _probe_calls(model, probe):
                hw = shape[-2:]
                if hw[0] * hw[1] <= 1:
                    continue
                if hw not in last:
                    order.append(hw)
                last[hw] = (name, k)
            self.keys = [last[hw] for hw in order]
        elif layers == "conv_blocks":
            self.keys = _conv_block_ends(_probe_calls(model, probe, leaves_only=True))
        else:
            names = [s.strip() for s in layers.split(",") if s.strip()]
            unknown = [n for n in names if n not in modules]
            if unknown:
                raise ValueError(f"unknown module {unknown[0]!r} in at_layers")
            self.keys = [(n, 1) for n in names]
        if not self.keys:
            raise ValueError("no 4-D intermediate activation found for attention transfer; set at_beta 0 or at_layers")
        self._wanted_keys = set(self.keys)
        self._acts: dict[tuple[str, int], torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        wanted = {n for n, _ in self.keys}
        self._handles = [modules[n].register_forward_hook(self._hook(n)) for n in wanted]

    def _hook(self, name: str):
        def hook(mod, inp, out):
            self._counts[name] = self._counts.get(name, 0) + 1
            key = (name, self._counts[name])
            if key in self._wanted_keys:
                self._acts[key] = out
        return hook

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self._acts, self._counts = {}, {}
        out = self.model(x)
        acts = [self._acts[k] for k in self.keys]
        self._acts = {}
        return out, acts

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


# Module types that may close a conv block (conv -> norm -> activation) for `layers="conv_blocks"`.
_BLOCK_TAIL = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU,
               nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.PReLU, nn.Tanh, nn.Sigmoid)


def _probe_calls(model: nn.Module, probe: torch.Tensor, leaves_only: bool = False) -> list[tuple[str, int, nn.Module, tuple]]:
    """[(module name, call number, module, output shape)] of every module call (of the leaf modules
    only, if asked) with a 4-D output, in completion order, in one eval-mode no-grad forward of
    `probe` (the model's mode is restored)."""
    calls: list[tuple[str, int, nn.Module, tuple]] = []
    counts: dict[str, int] = {}
    handles = []
    for name, m in model.named_modules():
        if name == "" or (leaves_only and next(m.children(), None) is not None):
            continue

        def hook(mod, inp, out, name=name):
            counts[name] = counts.get(name, 0) + 1
            if isinstance(out, torch.Tensor) and out.dim() == 4:
                calls.append((name, counts[name], mod, tuple(out.shape)))
        handles.append(m.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(probe)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return calls


def _conv_block_ends(calls: list[tuple[str, int, nn.Module, tuple]]) -> list[tuple[str, int]]:
    """The (name, call) that ends each nn.Conv2d call's block, in order (see ActivationTap)."""
    ends: list[tuple[tuple[str, int], tuple]] = []
    open_block = False
    for name, k, mod, shape in calls:
        if isinstance(mod, nn.Conv2d):
            ends.append(((name, k), shape))
            open_block = True
        elif open_block and isinstance(mod, _BLOCK_TAIL) and shape == ends[-1][1]:
            ends[-1] = ((name, k), shape)
        else:
            open_block = False
    return [key for key, shape in ends if shape[-2] * shape[-1] > 1]
