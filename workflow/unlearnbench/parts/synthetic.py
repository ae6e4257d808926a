"""Synthetic, class-filtered datasets drawn from generators (MuGAN's per-class GANs, zMuGAN's
conditional inversion ensemble), the data MuGAN and zMuGAN unlearn with (paper 002, Algs. 5 and 7).

A generated image of class c is kept only if the original model's argmax on it is c (the thesis's
filter, the reference code's `generate_image_from_class`), until `samples_per_class` images of every
class are kept. Per class at most `max_draw_factor * samples_per_class` images are drawn; a class
that cannot be filled raises a UserError naming it, unless `min_fill` < 1: then a class that kept at
least ceil(min_fill * samples_per_class) images is kept short (its `kept` and `short` counts are in
the info JSON) and only one below that fails; `min_fill` 0 sets no floor (a class the generators
never produce is left empty, as thesis sampling leaves it, and recorded). The ensemble shares each class's quota between
its members (equal shares, the remainder to the first members; a member that falls short hands
the shortfall on to the next members, what the last one misses goes round the ensemble once more,
and the class fails only if the whole ensemble does). Generators sample in eval mode (BN
running statistics), in batches of `sample_batch`; every (class, member) draws from its own seeded
CPU generator, so a class's samples do not depend on the other classes.

Sampling "thesis" (zMuGAN only, settings `sampling` and `samples_per_member`; thesis Alg. 5 and
Sec. 4.4): no filter and no quota. One draw of `samples_per_member` noise vectors and uniformly random
one-hot labels is fed to every ensemble member (as KegNet's `sample_kegnet_data`), every image is
kept and labelled by the original model's argmax: members x samples_per_member images. accept_rate
is then the share of the images conditioned on class c that the original predicts as c.

The artefact is an .npz: x float32 [N,C,H,W] in [0,1] (not quantised: the filter saw these floats),
y int64 (the generator's class = the original's prediction), source int64 (the class GAN or the
ensemble member that made each sample), accept_rate float64 per class, kind, format.
"""

from __future__ import annotations

import textwrap

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..errors import UserError
from ..io import atomic_path, read_npz, write_json, write_npz
from ..models.checkpoint import load_model
from ..runtime import Job, generator
from .gan import load_generator
from .kegnet import load_inversion_generator, original_id

SAMPLE_KEYS = ("samples_per_class", "max_draw_factor", "sample_batch", "min_fill")
SYNTHETIC_FORMAT = "unlearnbench-synthetic-v1"
KINDS = ("gan", "inversion")


def draw_seed(seed: int, cls: int, member: int) -> int:
    return (int(seed) * 1_000_003 + int(cls) * 7919 + int(member) * 104_729 + 7) % 2**31


@torch.no_grad()
def sample_filtered(draw, model: torch.nn.Module, cls: int, need: int, max_draws: int, batch: int,
                    gen: torch.Generator, device: torch.device, who: str = "", least: int | None = None,
                    floor: str = "") -> tuple[torch.Tensor, dict]:
    """Draw images with `draw(n, gen) -> [n,C,H,W]` until `need` of them are predicted `cls` by
    `model` (eval mode) or `max_draws` images were drawn. Returns (the first `need` accepted on the
    CPU, {drawn, accepted}); raises UserError naming the class when fewer than `least` (default
    `need`; 0: return what was kept, possibly nothing) were kept; `floor` names the setting that
    set `least` (e.g. "min_fill 0.05")."""
    model.eval()
    kept, n_kept, drawn = [], 0, 0
    while n_kept < need and drawn < max_draws:
        n = min(batch, max_draws - drawn)
        x = draw(n, gen).to(device)
        ok = model(x).argmax(1) == cls
        drawn += n
        if ok.any():
            kept.append(x[ok].float().cpu())
            n_kept += int(ok.sum())
    least = need if least is None else least
    if n_kept < least:
        raise UserError(f"synthetic data: class {cls}{who} gave only {n_kept} of {need} images the original model "
                        f"classifies as {cls} in {drawn} draws (acceptance {n_kept / max(drawn, 1):.1%}"
                        + (f"; {floor} needs {least}" if floor else "") + "); retrain its generator (more "
                        "epochs/steps), lower samples_per_class or min_fill, or raise max_draw_factor")
    x = torch.cat(kept)[:need] if kept else torch.zeros((0, *draw(1, generator(0)).shape[1:]))
    return x, {"drawn": drawn, "accepted": n_kept}


def shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@torch.no_grad()
def sample_unfiltered(model: torch.nn.Module, generators: list, num_classes: int, per_member: int, batch: int,
                      seed: int, device: torch.device) -> tuple[dict, dict]:
    """Sampling "thesis": every member maps the same `per_member` (noise, random label) draws; every
    image is kept with the original's argmax as its label. Returns (arrays, info) as make_synthetic."""
    model.eval()
    gen = generator(draw_seed(seed, 0, 0))
    z = torch.randn(per_member, generators[0].noise_dim, generator=gen)
    cond = torch.randint(num_classes, (per_member,), generator=gen)
    onehot = torch.nn.functional.one_hot(cond, num_classes).float()
    xs, ys, src = [], [], []
    for m, g in enumerate(generators):
        g.eval()
        for i in range(0, per_member, batch):
            x = g(onehot[i:i + batch].to(device), z[i:i + batch].to(device))
            xs.append(x.float().cpu())
            ys.append(model(x).argmax(1).cpu())
        src.append(torch.full((per_member,), m, dtype=torch.long))
    x, y, c = torch.cat(xs), torch.cat(ys), cond.repeat(len(generators))
    per_class = [{"class": k, "drawn": int((c == k).sum()), "accepted": int(((c == k) & (y == k)).sum()),
                  "kept": int((y == k).sum()), "short": 0} for k in range(num_classes)]
    for r in per_class:
        r["accept_rate"] = r["accepted"] / max(r["drawn"], 1)
    arrays = {"x": x.numpy().astype(np.float32), "y": y.numpy(), "source": torch.cat(src).numpy(),
              "accept_rate": np.asarray([r["accept_rate"] for r in per_class], dtype=np.float64),
              "kind": np.asarray("inversion"), "format": np.asarray(SYNTHETIC_FORMAT)}
    info = {"kind": "inversion", "settings": {"sampling": "thesis", "samples_per_member": per_member,
                                              "sample_batch": batch}, "seed": seed, "n": int(len(x)),
            "per_class": per_class, "pixel_min": float(x.min()), "pixel_max": float(x.max())}
    return arrays, info


def make_synthetic(model: torch.nn.Module, generators: list, kind: str, num_classes: int, settings: dict,
                   seed: int, device: torch.device) -> tuple[dict, dict]:
    """The filtered dataset. `generators`: for kind "gan" a list indexed by class (one DCGenerator
    each); for "inversion" the ensemble members (InversionGenerator). Returns (arrays, info).
    settings["sampling"] "thesis" (inversion only): sample_unfiltered instead (module docstring)."""
    if settings.get("sampling", "quota") == "thesis":
        per_member, batch = int(settings["samples_per_member"]), int(settings["sample_batch"])
        if kind != "inversion" or per_member < 1 or batch < 1:
            raise UserError(f"synthetic data: sampling 'thesis' needs kind inversion, samples_per_member and "
                            f"sample_batch >= 1, got kind {kind!r}, {per_member}, {batch}")
        return sample_unfiltered(model, generators, num_classes, per_member, batch, seed, device)
    s = {k: settings[k] for k in SAMPLE_KEYS if k != "min_fill"}
    s["min_fill"] = float(settings.get("min_fill", 1.0))  # 1: every class full (the default)
    need, factor, batch = int(s["samples_per_class"]), float(s["max_draw_factor"]), int(s["sample_batch"])
    if need < 1 or factor < 1 or batch < 1 or not 0 <= s["min_fill"] <= 1:
        raise UserError(f"synthetic data: samples_per_class, sample_batch must be >= 1, max_draw_factor >= 1 and "
                        f"0 <= min_fill <= 1, got {s}")
    least = int(np.ceil(s["min_fill"] * need))  # a class keeping fewer fails (0: none does)
    if kind not in KINDS:
        raise UserError(f"synthetic data: kind must be gan or inversion, got {kind!r}")
    xs, ys, src, per_class = [], [], [], []
    for c in range(num_classes):
        if kind == "gan":
            plan = [(c, need, generators[c])]
        else:
            plan = [(m, q, g) for m, (q, g) in enumerate(zip(shares(need, len(generators)), generators)) if q > 0]
        drawn = accepted = carry = 0
        # a member that cannot fill its share hands the shortfall on to the next members; what is
        # still missing after the last one goes round the ensemble once more (fresh draws), so one
        # collapsed member does not sink the set; the class fails only if the whole ensemble does
        rounds = 1 if kind == "gan" else 2
        for rnd in range(rounds):
            for i, (source, q, g) in enumerate(plan):
                if rnd and not carry:
                    break
                g.eval()
                if kind == "gan":
                    def draw(n, gen, g=g):
                        return g(torch.randn(n, g.z_dim, generator=gen).to(device))
                    who = f" (GAN of class {c})"
                    x, st = sample_filtered(draw, model, c, q, int(np.ceil(factor * q)), batch,
                                            generator(draw_seed(seed, c, source)), device, who, least,
                                            f"min_fill {s['min_fill']:g}" if least < q else "")
                else:
                    onehot = torch.zeros(1, num_classes)
                    onehot[0, c] = 1

                    def draw(n, gen, g=g, onehot=onehot):
                        z = torch.randn(n, g.noise_dim, generator=gen)
                        return g(onehot.expand(n, -1).to(device), z.to(device))
                    q = carry if rnd else q + carry
                    x, st = sample_filtered(draw, model, c, q, int(np.ceil(factor * q)), batch,
                                            generator(draw_seed(seed + 7919 * rnd, c, source)), device, least=0)
                carry = q - len(x)
                xs.append(x)
                ys.append(torch.full((len(x),), c, dtype=torch.long))
                src.append(torch.full((len(x),), source, dtype=torch.long))
                drawn += st["drawn"]
                accepted += st["accepted"]
        if need - carry < least:
            raise UserError(f"synthetic data: class {c} (inversion ensemble of {len(plan)}) gave only "
                            f"{need - carry} of {need} images the original model classifies as {c} in "
                            f"{drawn} draws (min_fill {s['min_fill']:g} needs {least}); retrain the generators "
                            "(more steps), lower samples_per_class or min_fill, or raise max_draw_factor")
        per_class.append({"class": c, "drawn": drawn, "accepted": accepted, "accept_rate": accepted / max(drawn, 1),
                          "kept": need - carry, "short": carry})
    x = torch.cat(xs)
    arrays = {"x": x.numpy().astype(np.float32), "y": torch.cat(ys).numpy(), "source": torch.cat(src).numpy(),
              "accept_rate": np.asarray([r["accept_rate"] for r in per_class], dtype=np.float64),
              "kind": np.asarray(kind), "format": np.asarray(SYNTHETIC_FORMAT)}
    info = {"kind": kind, "settings": s, "seed": seed, "n": int(len(x)), "per_class": per_class,
            "pixel_min": float(x.min()), "pixel_max": float(x.max())}
    return arrays, info


def class_grid(x: np.ndarray, y: np.ndarray, num_classes: int, per_row: int) -> np.ndarray:
    """[H, W, C] image: a row per class with `per_row` of its samples, evenly spaced, 1-px white gaps."""
    c, h, w = x.shape[1:]
    grid = np.ones((num_classes * (h + 1), per_row * (w + 1), c), dtype=np.float32)
    for k in range(num_classes):
        xk = x[y == k]
        sel = xk[np.unique(np.linspace(0, len(xk) - 1, per_row).round().astype(int))] if len(xk) else xk
        for j, img in enumerate(sel):
            grid[k * (h + 1):k * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = img.transpose(1, 2, 0)
    return grid


def save_grid_png(path: str, x: np.ndarray, y: np.ndarray, num_classes: int, per_row: int = 10,
                  title: str = "", class_names: list[str] | None = None) -> None:
    """One figure, a row per class with `per_row` of its samples, evenly spaced (so every member shows)."""

    matplotlib.use("Agg")

    c, h = x.shape[1], x.shape[2]
    grid = class_grid(x, y, num_classes, per_row)
    cell = min(max(0.25, 0.5 * h / 16), 30 / num_classes)  # inches per image; at most ~30 inches tall
    fig, ax = plt.subplots(figsize=(0.6 + per_row * cell, 0.4 + num_classes * cell), dpi=100)
    ax.imshow(np.clip(grid[..., 0] if c == 1 else grid, 0, 1), cmap="gray" if c == 1 else None,
              interpolation="nearest", vmin=0, vmax=1)
    names = class_names or [str(k) for k in range(num_classes)]
    ax.set_yticks([k * (h + 1) + h / 2 for k in range(num_classes)], names, fontsize=7)
    ax.set_xticks([])

    ax.set_title("\n".join(textwrap.fill(t, 40) for t in title.split("\n")), fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def load_generators(paths: list[str], kind: str, device: torch.device, num_classes: int) -> tuple[list, list[dict]]:
    """The generator modules of `paths` in the order make_synthetic needs (by class for "gan")."""

    if kind not in KINDS:
        raise UserError(f"make_synthetic: kind must be gan or inversion, got {kind!r}")
    if not paths:
        raise UserError("make_synthetic: no generator files given")
    loaded = [(load_generator if kind == "gan" else load_inversion_generator)(p, device) for p in paths]
    metas = [m for _, m in loaded]
    if kind == "gan":
        by_class = {}
        for p, (g, m) in zip(paths, loaded):
            if not 0 <= int(m["class"]) < num_classes:
                raise UserError(f"make_synthetic: {p} is the GAN of class {m['class']}, "
                                f"the model has {num_classes} classes")
            if int(m["class"]) in by_class:
                raise UserError(f"make_synthetic: two GAN files for class {m['class']} ({p}); give one per class")
            by_class[int(m["class"])] = g
        missing = [c for c in range(num_classes) if c not in by_class]
        if missing:
            raise UserError(f"make_synthetic: no GAN for class(es) {missing}; MuGAN needs one GAN per class")
        return [by_class[c] for c in range(num_classes)], metas
    for p, m in zip(paths, metas):
        if int(m["arch"]["num_classes"]) != num_classes:
            raise UserError(f"{p} was trained for {m['arch']['num_classes']} classes, the model has {num_classes}")
    return [g for g, _ in loaded], metas


def run_make_synthetic(job: Job, original_ckpt: str, generator_paths: list[str], kind: str, settings: dict) -> None:
    """Rule make_synthetic: the filtered synthetic dataset of MuGAN (kind "gan": one GAN file per
    class) or zMuGAN (kind "inversion": the ensemble member files), a PNG with a row per class,
    a deterministic info JSON (acceptance rate per class) and the timing sidecar."""

    dev = job.start()
    seed = job.seed
    model, meta = load_model(original_ckpt, dev)
    k, size, ch = meta["num_classes"], meta["image_size"], meta["in_channels"]
    gens, gmetas = load_generators(list(generator_paths), kind, dev, k)
    for p, gm in zip(generator_paths, gmetas):
        a = gm["arch"]
        if (a["channels"], a["image_size"]) != (ch, size):
            raise UserError(f"{p} makes {a['channels']}x{a['image_size']}x{a['image_size']} images, the model takes "
                            f"{ch}x{size}x{size}; train the generators on this dataset")
        if kind == "inversion":
            want, got = original_id(meta), gm.get("original", {})
            if want.get("config_hash") and got.get("config_hash") and want != got:
                raise UserError(f"{p} was inverted from another original model; rerun rule train_kegnet")
    with job.timed() as usage:
        arrays, info = make_synthetic(model, gens, kind, k, settings, seed, dev)
    key = "class" if kind == "gan" else "member"
    info["generators"] = sorted(({key: gm.get(key), "seed": gm.get("seed"), "final": gm.get("final")} for gm in gmetas),
                                key=lambda r: r[key])
    write_npz(job.out["synthetic"], **arrays)
    rates = ", ".join(f"{r['class']}:{r['accept_rate']:.0%}" + (f" ({r['kept']} kept)" if r["short"] else "")
                      for r in info["per_class"])
    every = info["settings"].get("sampling") == "thesis"
    head = (f"{'MuGAN class GANs' if kind == 'gan' else 'zMuGAN inversion ensemble'}: "
            + ("every sample, by the original's label" if every else "accepted samples"))
    save_grid_png(job.out["grid"], arrays["x"], arrays["y"], k, title=head + ("\nacceptance " + rates if k <= 10 else ""))
    write_json(job.out["info"], info)
    print(f"synthetic {kind}: {info['n']} images, acceptance per class {rates} in {usage.seconds:.1f}s", flush=True)


def load_synthetic(path: str, kind: str | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(x float [0,1], y int64, {accept_rate, kind}) of a file written by run_make_synthetic."""

    z = read_npz(path)
    if str(z.get("format", "")) != SYNTHETIC_FORMAT or "x" not in z or "y" not in z:
        raise UserError(f"{path} is not a synthetic dataset of rule make_synthetic; delete it and rerun")
    if kind is not None and str(z["kind"]) != kind:
        raise UserError(f"{path} holds {z['kind']} samples, expected {kind}; point the method at its own synthetic set")
    x, y = z["x"], z["y"]
    if x.ndim != 4 or x.dtype != np.float32 or len(x) != len(y) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path} has malformed arrays (x {x.shape} {x.dtype}, y {y.shape} {y.dtype}); "
                        "delete it and rerun")
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)), {
        "kind": str(z["kind"]), "accept_rate": z["accept_rate"].tolist()}
