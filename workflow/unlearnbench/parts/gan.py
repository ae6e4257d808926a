"""Per-class DCGANs for MuGAN (paper 002, Sec. 3.2): the data owner trains one GAN per class while
the original model is trained, so that a later deletion request needs no real sample.

Architecture: the DCGAN of Radford et al. / the PyTorch DCGAN tutorial (the reference code's
`Generator`), with its depth following the image size: the image is halved while it stays even and
at least 8, down to a base of 4..7 pixels (64 -> 4 halvings, 32 -> 3, 16 -> 2, 8 -> 1, 28 -> 2 with
base 7). Generator: z (as [z_dim,1,1]) -> ConvT(base) -> g_width*2^(k-1) channels, then k stride-2
ConvT layers halving the channels (BatchNorm + ReLU), the last to the image channels with tanh;
the tanh output t is returned as pixels (t + 1) / 2 in [0,1]. Discriminator: the mirror (stride-2
convs with LeakyReLU(0.2), BatchNorm from the second, a final conv over the base to one logit); it
sees pixels mapped back to [-1,1], as the tutorial's normalised data.
Training recipe (tutorial): weights N(0, 0.02), BatchNorm weights N(1, 0.02); Adam(lr 2e-4, betas
(0.5, 0.999)) for both nets; per batch one D step on BCE(real -> 1) + BCE(fake -> 0) (real and fake
in separate forward passes) and one G step on the non-saturating loss BCE(D(G(z)) -> 1).
All random numbers come from one CPU generator, so a CPU run is reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import to_float
from ..errors import UserError
from ..io import load_checkpoint, read_json, read_npz, save_checkpoint, write_json
from ..runtime import Job, generator, iterate_batches
from ..training import make_optimizer

# The settings that determine a GAN file (method hyperparameter names; see methods/mugan.py).
GAN_KEYS = ("gan_z_dim", "gan_g_width", "gan_d_width", "gan_epochs", "gan_batch_size", "gan_lr", "gan_beta1")
GAN_KIND = "gan_generator"


def depth_for(image_size: int) -> tuple[int, int]:
    """(number of stride-2 layers k, base size) for an image size: halve while even and >= 8."""
    size, k = int(image_size), 0
    while size % 2 == 0 and size >= 8:
        size //= 2
        k += 1
    if k == 0:
        raise UserError(f"GAN: image size {image_size} is not supported "
                        "(need an even size >= 8, e.g. 8, 16, 28, 32, 64)")
    return k, size


def init_dcgan_(module: nn.Module, gen: torch.Generator) -> None:
    """DCGAN initialisation, drawn from `gen`: conv weights N(0, 0.02), BN weights N(1, 0.02), biases 0."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.02)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(1.0 + torch.randn(m.weight.shape, generator=gen) * 0.02)
                m.bias.zero_()


class DCGenerator(nn.Module):
    """z [N, z_dim] -> images [N, channels, image_size, image_size] in [0,1]."""

    def __init__(self, z_dim: int, channels: int, image_size: int, width: int = 64):
        super().__init__()
        k, base = depth_for(image_size)
        self.z_dim, self.channels, self.image_size, self.width = int(z_dim), int(channels), int(image_size), int(width)
        c = width * 2 ** (k - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, c, base, 1, 0, bias=False), nn.BatchNorm2d(c),
                                   nn.ReLU(True)]
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        """The tanh output in [-1, 1] (what the discriminator sees)."""
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.raw(z) + 1) / 2

    def arch(self) -> dict:
        return {"z_dim": self.z_dim, "channels": self.channels, "image_size": self.image_size, "width": self.width}


class DCDiscriminator(nn.Module):
    """Images in [-1,1] -> one logit per image."""

    def __init__(self, channels: int, image_size: int, width: int = 64):
        super().__init__()
        k, base = depth_for(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        c = width
        for _ in range(k - 1):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, True)]
            c *= 2
        layers.append(nn.Conv2d(c, 1, base, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def class_seed(seed: int, cls: int) -> int:
    """The seed of class `cls`'s GAN (independent streams per class)."""
    return (int(seed) * 1_000_003 + int(cls) * 7919 + 101) % 2**31


def train_class_gan(x_class: torch.Tensor, settings: dict, seed: int, device: torch.device) -> tuple[dict, dict]:
    """Train one DCGAN on one class's images (x in [0,1], [N,C,H,W]).

    Returns (generator state dict on the CPU, info) where info holds the architecture and a log
    with one row per epoch: mean D loss, mean G loss, mean D(x) and D(G(z)) (probabilities)."""
    s = {k: settings[k] for k in GAN_KEYS}
    if len(x_class) == 0:
        raise UserError("GAN: no training images for this class")
    _, c, h, w = x_class.shape
    if h != w:
        raise UserError(f"GAN: images must be square, got {h}x{w}")
    gen = generator(seed)
    G = DCGenerator(int(s["gan_z_dim"]), c, h, int(s["gan_g_width"]))
    D = DCDiscriminator(c, h, int(s["gan_d_width"]))
    init_dcgan_(G, gen)
    init_dcgan_(D, gen)
    G.to(device).train()
    D.to(device).train()
    betas = (float(s["gan_beta1"]), 0.999)
    opt_g = make_optimizer(G.parameters(), "adam", float(s["gan_lr"]), betas=betas)
    opt_d = make_optimizer(D.parameters(), "adam", float(s["gan_lr"]), betas=betas)
    real_all = (x_class.float() * 2 - 1).to(device)
    n, bs = len(real_all), int(s["gan_batch_size"])
    log = []
    for epoch in range(int(s["gan_epochs"])):
        sums = {"d_loss": 0.0, "g_loss": 0.0, "d_real": 0.0, "d_fake": 0.0}
        for idx in iterate_batches(n, bs, gen):
            real = real_all[idx.to(device)]
            b = len(real)
            z = torch.randn(b, G.z_dim, generator=gen).to(device)
            fake = G.raw(z)
            ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)
            # D step: real -> 1, fake -> 0 (separate passes, as the tutorial)
            out_real = D(real)
            out_fake = D(fake.detach())
            loss_d = (F.binary_cross_entropy_with_logits(out_real, ones)
                      + F.binary_cross_entropy_with_logits(out_fake, zeros))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            # G step: non-saturating loss, D just updated
            out_g = D(fake)
            loss_g = F.binary_cross_entropy_with_logits(out_g, ones)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if not (math.isfinite(loss_d.item()) and math.isfinite(loss_g.item())):
                raise UserError(f"GAN: loss became non-finite at epoch {epoch + 1}; lower gan_lr")
            sums["d_loss"] += loss_d.item() * b
            sums["g_loss"] += loss_g.item() * b
            sums["d_real"] += torch.sigmoid(out_real).sum().item()
            sums["d_fake"] += torch.sigmoid(out_fake).sum().item()
        log.append({"epoch": epoch + 1, **{k: v / n for k, v in sums.items()}})
    G.eval()
    state = {k: v.detach().cpu() for k, v in G.state_dict().items()}
    return state, {"arch": G.arch(), "n_train": n, "log": log}


def build_generator(arch: dict) -> DCGenerator:
    return DCGenerator(arch["z_dim"], arch["channels"], arch["image_size"], arch["width"])


def load_generator(path: str, device: torch.device | str = "cpu") -> tuple[DCGenerator, dict]:
    """Rebuild a class GAN generator written by `run_train_gan` (eval mode, on `device`)."""

    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != GAN_KIND or "arch" not in meta:
        raise UserError(f"{path} is not a MuGAN class generator (kind {meta.get('kind')!r}); "
                        "delete it and rerun rule train_gan")
    G = build_generator(meta["arch"])
    try:
        G.load_state_dict(tensors)
    except RuntimeError as e:
        raise UserError(f"{path} does not fit its recorded GAN architecture ({str(e).splitlines()[0]}); "
                        "delete it and rerun") from None
    return G.to(device).eval(), meta


def run_train_gan(job: Job, data_path: str, split_path: str, cls: int, settings: dict) -> None:
    """Rule train_gan: train the GAN of class `cls` on that class's training images.

    Inputs: the canonical dataset archive and its split (only split['train'] is read). Output: the
    generator (safetensors, kind "gan_generator", meta with its architecture), a deterministic info
    JSON (architecture, settings, per-epoch loss log) and the timing sidecar."""

    dev = job.start()
    seed = job.seed
    data = read_npz(data_path)
    for key in ("x", "y"):
        if key not in data:
            raise UserError(f"{data_path} has no array {key!r}; it is not a dataset archive of rule prepare_dataset")
    split = read_json(split_path)
    if "train" not in split:
        raise UserError(f"{split_path} has no 'train' indices; it is not a split of rule make_split")
    num_classes = len(data["class_names"]) if "class_names" in data else int(data["y"].max()) + 1
    cls = int(cls)
    if not 0 <= cls < num_classes:
        raise UserError(f"train_gan: class {cls} out of range 0..{num_classes - 1}")

    train = np.asarray(split["train"], dtype=np.int64)
    idx = train[data["y"][train] == cls]
    if len(idx) == 0:
        raise UserError(f"train_gan: the training split has no image of class {cls}")
    x = to_float(data["x"][idx])
    s = {k: settings[k] for k in GAN_KEYS}
    with job.timed() as usage:
        state, info = train_class_gan(x, s, class_seed(seed, cls), dev)
    info.update({"class": cls, "num_classes": num_classes, "settings": s, "seed": seed})
    meta = {"kind": GAN_KIND, **{k: info[k] for k in ("arch", "class", "num_classes", "settings", "seed", "n_train")},
            "final": info["log"][-1]}
    save_checkpoint(job.out["generator"], state, meta)
    write_json(job.out["info"], info)
    usage.extra.update(cls=cls)
    last = info["log"][-1]
    print(f"gan class {cls}: {info['n_train']} images, {s['gan_epochs']} epochs, D {last['d_loss']:.3f} "
          f"G {last['g_loss']:.3f} in {usage.seconds:.1f}s", flush=True)
