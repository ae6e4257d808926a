"""KegNet-style zero-shot model inversion for zMuGAN (paper 002, Sec. 3.1.2, Alg. 6, after Yoo et al.,
"Knowledge Extraction with No Observable Data", NeurIPS 2019, code snudatalab/KegNet).

A conditional generator G(y, z) (z ~ N(0, I) of `inv_noise_dim`, y one-hot) and a decoder D(x) -> z
are trained against the frozen original classifier f (eval mode by default, no data at all) on
    loss = CE(f(G(y, z)), y) + alpha * MSE(D(G(y, z)), z) + beta * L_div(z, G(y, z))     (Eq. 11)
where CE equals KegNet's KL to the one-hot label and L_div = exp(-mean_ij d_z(i,j) * d_x(i,j)) with
d_z the mean squared difference of the noises and d_x the mean (squared or absolute) difference of
the images of every pair in the batch (KegNet's DiversityLoss). One Adam optimiser over G and D.

Architecture (KegNet's ImageGenerator, depth following the image size): fc (noise+classes -> 256 ->
128, BatchNorm + ReLU), a transposed conv from 1x1 to the base size (4..7, see gan.depth_for) with
`inv_width` channels, stride-2 transposed convs dividing the channels by 4 (64, 16, 4 at 32x32, as
KegNet), the last to the image channels. Choice: KegNet standardises every generated image per
channel (its classifiers take normalised inputs); here the output is tanh mapped to [0,1] pixels,
because every model of this project normalises inside. Decoder: KegNet's MLP (120 units, ELU +
BatchNorm, `inv_dec_layers` hidden layers). An ensemble of `inv_members` generators, each trained
from its own seed (KegNet: seed 2019 + index), one file per member.

Paper-exact options (issue #21; method hyperparameters of zMuGAN, INVERSION_KEYS). The reference is
snudatalab/KegNet, src/kegnet/generator/{train.py,models.py,loss.py}; the thesis's own KegNet code
(keg_net_work.tar.bz2 in DataSystemsGroupUT/zero-shot-machine-unlearning) is not retrievable.
Each default keeps this module's earlier behaviour:
- `inv_classifier_mode` ("eval" | "train"; KegNet-exact "train"): KegNet's `update()` (train.py)
  calls `generator.train()` only; the classifier, built by `init_classifier` and loaded with
  `load_checkpoints`, is never put in eval mode, so it runs in train mode during the whole
  inversion: BatchNorm normalises with the generated batch's statistics (and updates its running
  statistics), dropout (if any) is active. "train" does that on a private copy of the original,
  so the caller's model, weights and BatchNorm statistics are untouched in both settings. The
  thesis (Sec. 3.1.2) does not say; "eval" (frozen teacher) is this project's choice.
- `inv_output` ("tanh" | "standardize" | "kegnet"; KegNet-exact "kegnet"): KegNet's
  ImageGenerator.forward (models.py) ends with `normalize_images`: every generated image is
  standardised per channel, (t - mean_hw) / std_hw (torch's unbiased std, no epsilon), and that
  tensor is the classifier's input (KegNet's classifiers take normalised images,
  utils/data.py transforms.Normalize). "kegnet" does exactly that: pixels mean + std * z with the
  classifier's mean/std, not clipped, so the model's own normalisation gives back z (the samples
  may leave [0,1]). "standardize" is the earlier approximation (std + 1e-6, pixels clipped to
  [0,1]); "tanh" (default) maps the tanh output to [0,1] pixels.
- `inv_div_metric` ("l1" | "l2"; KegNet-code "l1", thesis-text "l2"): the image distance of the
  diversity term. KegNet's train.py builds `DiversityLoss(metric='l1')` (loss.py: mean |x_i - x_j|
  over the flattened image; the noise distance is always the mean squared difference); the
  thesis's Alg. 6 writes metric='L2' (mean (x_i - x_j)^2). The default "l2" follows the thesis.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..io import load_checkpoint, save_checkpoint, write_json
from ..models.checkpoint import load_model
from ..runtime import Job, generator
from ..training import make_optimizer
from .gan import depth_for

# Settings that determine one inversion generator (method hyperparameter names; methods/zmugan.py).
INVERSION_KEYS = ("inv_noise_dim", "inv_width", "inv_steps", "inv_batch_size", "inv_lr", "inv_alpha", "inv_beta",
                  "inv_div_metric", "inv_dec_layers", "inv_output", "inv_classifier_mode")
# Keys added after artefacts were first written: a settings dict without them means the default.
OPTIONAL_DEFAULTS = {"inv_classifier_mode": "eval"}
INVERSION_KIND = "inversion_generator"
DIV_METRICS = ("l1", "l2")
OUTPUTS = ("tanh", "standardize", "kegnet")
CLASSIFIER_MODES = ("eval", "train")


class InversionGenerator(nn.Module):
    """(one-hot labels [N, K], noise [N, nz]) -> images [N, C, S, S] in [0,1].

    output "tanh": pixels (t + 1) / 2 of the tanh output t. "standardize": KegNet's per-image,
    per-channel standardisation of t, read as the classifier's normalised input (pixels
    mean + std * z with the classifier's mean/std) and clipped to [0,1]. "kegnet": exactly KegNet's
    `normalize_images` (unbiased std, no epsilon) and no clipping: (pixels - mean) / std = z."""

    def __init__(self, num_classes: int, channels: int, image_size: int, noise_dim: int = 10, width: int = 64,
                 output: str = "tanh", mean: list[float] | None = None, std: list[float] | None = None):
        super().__init__()
        k, base = depth_for(image_size)
        if output not in OUTPUTS:
            raise UserError(f"inversion: output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.num_classes, self.channels, self.image_size = int(num_classes), int(channels), int(image_size)
        self.noise_dim, self.width, self.output = int(noise_dim), int(width), output
        self.register_buffer("mean", torch.tensor(mean if mean is not None else [0.5] * channels).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std if std is not None else [0.5] * channels).view(1, -1, 1, 1))
        self.fc = nn.Sequential(nn.Linear(noise_dim + num_classes, 256), nn.BatchNorm1d(256), nn.ReLU(),
                                nn.Linear(256, 128), nn.BatchNorm1d(128), nn.ReLU())
        c = width
        layers: list[nn.Module] = [nn.ConvTranspose2d(128, c, base, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
        for _ in range(k - 1):
            nxt = max(c // 4, 4)
            layers += [nn.ConvTranspose2d(c, nxt, 4, 2, 1, bias=False), nn.BatchNorm2d(nxt), nn.ReLU()]
            c = nxt
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.conv = nn.Sequential(*layers)

    def forward(self, labels: torch.Tensor, noises: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat((noises, labels), dim=1))
        t = self.conv(h.view(h.shape[0], h.shape[1], 1, 1))
        if self.output == "tanh":
            return (t + 1) / 2
        if self.output == "kegnet":
            z = (t - t.mean(dim=(2, 3), keepdim=True)) / t.flatten(2).std(dim=2)[..., None, None]
            return self.mean + self.std * z
        z = (t - t.mean(dim=(2, 3), keepdim=True)) / (t.flatten(2).std(dim=2)[..., None, None] + 1e-6)
        return (self.mean + self.std * z).clamp(0, 1)

    def arch(self) -> dict:
        return {"num_classes": self.num_classes, "channels": self.channels, "image_size": self.image_size,
                "noise_dim": self.noise_dim, "width": self.width, "output": self.output,
                "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}


class NoiseDecoder(nn.Module):
    """KegNet's decoder: flattened image -> reconstructed noise."""

    def __init__(self, in_features: int, out_features: int, n_layers: int, units: int = 120):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_features, units), nn.ELU(), nn.BatchNorm1d(units)]
        for _ in range(n_layers):
            layers += [nn.Linear(units, units), nn.ELU(), nn.BatchNorm1d(units)]
        layers.append(nn.Linear(units, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))


def _pairwise(t: torch.Tensor, metric: str) -> torch.Tensor:
    d = t.unsqueeze(0) - t.unsqueeze(1)  # [N, N, F]
    return d.abs().mean(2) if metric == "l1" else d.pow(2).mean(2)


def diversity_loss(noises: torch.Tensor, images: torch.Tensor, metric: str = "l2") -> torch.Tensor:
    """KegNet's diversity term exp(-mean_ij d_z(i,j) * d_x(i,j)); d_z is always the squared distance."""
    if metric not in DIV_METRICS:
        raise UserError(f"inversion: diversity metric must be l1 or l2, got {metric!r}")
    return torch.exp(-(_pairwise(noises, "l2") * _pairwise(images.flatten(1), metric)).mean())


def member_seed(seed: int, member: int) -> int:
    return (int(seed) * 1_000_003 + 2019 + int(member) * 104_729) % 2**31


def inversion_settings(settings: dict) -> dict:
    """The INVERSION_KEYS of `settings` (a key of OPTIONAL_DEFAULTS may be missing: its default)."""
    return {k: settings[k] if k in settings or k not in OPTIONAL_DEFAULTS else OPTIONAL_DEFAULTS[k]
            for k in INVERSION_KEYS}


def inversion_classifier(original: nn.Module, mode: str) -> nn.Module:
    """The classifier an inversion trains against: `original` itself in eval mode ("eval"), or a
    train-mode copy of it ("train", KegNet's code: batch statistics, running statistics updated on
    the copy only)."""
    if mode not in CLASSIFIER_MODES:
        raise UserError(f"inversion: inv_classifier_mode must be eval or train, got {mode!r}")
    return copy.deepcopy(original).train() if mode == "train" else original.eval()


def _freeze(model: nn.Module) -> list[bool]:
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    return flags


def train_inversion(original: nn.Module, num_classes: int, channels: int, image_size: int, settings: dict,
                    seed: int, device: torch.device, mean: list[float] | None = None,
                    std: list[float] | None = None) -> tuple[dict, dict]:
    """Train one inversion generator against the frozen `original` (eval mode, or with
    inv_classifier_mode "train" a train-mode copy of it; either way its weights and BN statistics
    are untouched). Returns (generator state dict on the CPU, info with a log of window means: cls,
    dec, div, total loss and the accuracy of f on the generated batch)."""
    s = inversion_settings(settings)
    if s["inv_div_metric"] not in DIV_METRICS:
        raise UserError(f"inversion: inv_div_metric must be l1 or l2, got {s['inv_div_metric']!r}")
    gen = generator(seed)
    with torch.random.fork_rng(devices=[]):  # default PyTorch init (as KegNet), seeded per member
        torch.manual_seed(seed)
        G = InversionGenerator(num_classes, channels, image_size, int(s["inv_noise_dim"]), int(s["inv_width"]),
                               s["inv_output"], mean, std)
        Dec = NoiseDecoder(channels * image_size * image_size, int(s["inv_noise_dim"]), int(s["inv_dec_layers"]))
    G, Dec = G.to(device), Dec.to(device)
    original = inversion_classifier(original, s["inv_classifier_mode"])
    flags = _freeze(original)
    opt = make_optimizer(list(G.parameters()) + list(Dec.parameters()), "adam", float(s["inv_lr"]))
    steps, bs, nz = int(s["inv_steps"]), int(s["inv_batch_size"]), int(s["inv_noise_dim"])
    alpha, beta = float(s["inv_alpha"]), float(s["inv_beta"])
    window = max(1, min(100, steps // 10))  # KegNet logs every 100 batches ("epoch")
    G.train()
    Dec.train()
    log, acc_rows = [], {"cls": 0.0, "dec": 0.0, "div": 0.0, "total": 0.0, "acc": 0.0, "n": 0}
    try:
        for step in range(steps):
            z = torch.randn(bs, nz, generator=gen).to(device)
            y = torch.randint(0, num_classes, (bs,), generator=gen).to(device)
            onehot = F.one_hot(y, num_classes).float()
            x = G(onehot, z)
            out = original(x)
            l_cls = F.cross_entropy(out, y)
            l_dec = F.mse_loss(Dec(x), z)
            l_div = diversity_loss(z, x, s["inv_div_metric"])
            loss = l_cls + alpha * l_dec + beta * l_div
            if not torch.isfinite(loss):
                raise UserError(f"inversion: loss became {loss.item()} at step {step + 1}; lower inv_lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k, v in (("cls", l_cls), ("dec", l_dec), ("div", l_div), ("total", loss)):
                acc_rows[k] += v.item()
            acc_rows["acc"] += (out.argmax(1) == y).float().mean().item() * 100
            acc_rows["n"] += 1
            if acc_rows["n"] == window or step == steps - 1:
                n = acc_rows.pop("n")
                log.append({"step": step + 1, **{k: v / n for k, v in acc_rows.items()}})
                acc_rows = {"cls": 0.0, "dec": 0.0, "div": 0.0, "total": 0.0, "acc": 0.0, "n": 0}
    finally:
        for p, f in zip(original.parameters(), flags):
            p.requires_grad_(f)
    G.eval()
    state = {k: v.detach().cpu() for k, v in G.state_dict().items()}
    return state, {"arch": G.arch(), "log": log}


def build_inversion_generator(arch: dict) -> InversionGenerator:
    return InversionGenerator(arch["num_classes"], arch["channels"], arch["image_size"], arch["noise_dim"],
                              arch["width"], arch.get("output", "tanh"), arch.get("mean"), arch.get("std"))


def load_inversion_generator(path: str, device: torch.device | str = "cpu") -> tuple[InversionGenerator, dict]:
    """Rebuild an inversion generator written by `run_train_inversion` (eval mode, on `device`)."""

    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != INVERSION_KIND or "arch" not in meta:
        raise UserError(f"{path} is not a zMuGAN inversion generator (kind {meta.get('kind')!r}); "
                        "delete it and rerun rule train_kegnet")
    G = build_inversion_generator(meta["arch"])
    try:
        G.load_state_dict(tensors)
    except RuntimeError as e:
        raise UserError(f"{path} does not fit its recorded generator architecture ({str(e).splitlines()[0]}); "
                        "delete it and rerun") from None
    return G.to(device).eval(), meta


def original_id(meta: dict) -> dict:
    """What identifies the original model a generator was trained against (recorded and checked)."""
    return {k: meta.get(k) for k in ("config_hash", "seed", "kind") if meta.get(k) is not None}


def run_train_inversion(job: Job, original_ckpt: str, settings: dict, member: int) -> None:
    """Rule train_kegnet: one member of the zMuGAN generator ensemble, from the original model only.

    Input: the original checkpoint (no dataset). Output: the generator (safetensors, kind
    "inversion_generator", meta with its architecture), a deterministic info JSON (settings, loss log)
    and the timing sidecar."""

    dev = job.start()
    seed = job.seed
    model, meta = load_model(original_ckpt, dev)
    s = inversion_settings(settings)
    member = int(member)
    if member < 0:
        raise UserError(f"train_kegnet: member must be >= 0, got {member}")
    with job.timed() as usage:
        state, info = train_inversion(model, meta["num_classes"], meta["in_channels"], meta["image_size"], s,
                                      member_seed(seed, member), dev, meta.get("mean"), meta.get("std"))
    info.update({"member": member, "settings": s, "seed": seed, "original": original_id(meta)})
    first, last = info["log"][0], info["log"][-1]
    info["final"] = last
    keep = ("arch", "member", "settings", "seed", "original", "final")
    save_checkpoint(job.out["generator"], state, {"kind": INVERSION_KIND, **{k: info[k] for k in keep}})
    write_json(job.out["info"], info)
    usage.extra.update(member=member)
    print(f"inversion member {member}: CE {first['cls']:.3f} -> {last['cls']:.3f}, acc {first['acc']:.1f} -> "
          f"{last['acc']:.1f} in {usage.seconds:.1f}s", flush=True)
