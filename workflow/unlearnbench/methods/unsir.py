"""UNSIR (Tarun et al., "Fast Yet Effective Machine Unlearning", TNNLS 2023): error-maximising noise
plus single-pass impair and repair, zero-glance (the forget samples are never read).

Stages
1. Noise (its own artefact, rule `make_noise`, one file per forget class): a batch of
   `noise_batch` images N is learned against the frozen original model in eval mode (BatchNorm
   statistics untouched) by `noise_steps` Adam steps (lr `noise_lr`) on
       loss = -CE(f(N), c) + noise_lambda * mean_i ||N_i||^2          (paper Eq. 1, code's norm)
   N is parametrised in the model's *normalised* input space (z ~ N(0,1) at init, as in the
   reference code, which normalises in the data transform) and stored in [0,1] pixel space as
   x = mean + std * z, which the model normalises back to z. Pixel values are NOT clipped to [0,1]
   (clipping would change the optimised noise; the reference does not clip either).
2. Impair: one epoch (Adam `impair_lr`, batch `batch_size`) on `noise_copies` copies of each class's
   noise, every noise image labelled with ITS forget class (the reference labels all noise 0), mixed
   with the retain subset (`retain_per_class` samples of each retained class).
3. Repair: one epoch on the retain subset only (fresh Adam, `repair_lr`).
`passes` generalises the schedule for the paper's Table V: a string of I (impair epoch) and R
(repair epoch), e.g. "IR" (paper default), "IIR", "IRIR". Consecutive equal letters share one
optimiser; each change of stage starts a fresh one. All randomness comes from one generator seeded
with the run seed, so the run with passes "I" is exactly the intermediate state of "IR", etc.
Multi-class forgetting is one pass with one noise tensor per class.
"""

from __future__ import annotations

from ..errors import UserError
from ..infra.lazy import F, torch
from ..io import load_checkpoint, save_checkpoint, write_json
from ..runtime import Job, generator, iterate_batches
from ..training import make_optimizer, set_bn_train
from ._base import Access, UnlearningMethod, ge, pattern, register_method

# The hyperparameters that determine the noise artefact (and nothing else does).
NOISE_KEYS = ("noise_batch", "noise_steps", "noise_lr", "noise_lambda")


def _noise_seed(seed: int, cls: int) -> int:
    return (int(seed) * 1_000_003 + int(cls) * 7919 + 17) % 2**31


def learn_noise(model: torch.nn.Module, cls: int, num_classes: int, batch: int, steps: int, lr: float, lam: float,
                seed: int, device: torch.device, shape: tuple[int, ...]) -> tuple[torch.Tensor, dict]:
    """Error-maximising noise for class `cls` against a frozen model. Returns pixel-space noise (CPU)."""
    if not 0 <= cls < num_classes:
        raise UserError(f"unsir noise: class {cls} out of range 0..{num_classes - 1}")
    model.eval()  # BN in eval mode: running statistics stay untouched
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)  # the model is frozen; only the noise is optimised
    mean = getattr(model, "mean", torch.zeros(1, shape[0], 1, 1)).to(device)
    std = getattr(model, "std", torch.ones(1, shape[0], 1, 1)).to(device)
    z = torch.randn((batch, *shape), generator=generator(_noise_seed(seed, cls))).to(device).requires_grad_(True)
    opt = make_optimizer([z], "adam", lr)
    target = torch.full((batch,), cls, dtype=torch.long, device=device)

    def ce():
        return F.cross_entropy(model(mean + std * z), target)

    with torch.no_grad():
        ce0 = ce().item()
    for _ in range(steps):
        loss = -ce() + lam * z.pow(2).flatten(1).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = (mean + std * z).detach()
        logits = model(x)
        info = {"class": cls, "ce_before": ce0, "ce_after": F.cross_entropy(logits, target).item(),
                "pred_as_class": (logits.argmax(1) == cls).float().mean().item() * 100,
                "z_sq_norm": z.pow(2).flatten(1).sum(1).mean().item(),
                "pixel_min": x.min().item(), "pixel_max": x.max().item()}
    for p, f in zip(model.parameters(), flags):
        p.requires_grad_(f)
    return x.cpu(), info


def run_make_noise(job: Job, original: str, cls: int, settings: dict) -> None:
    """Rule make_noise: learn and save the noise of one class for one original model."""
    from ..models.checkpoint import load_model

    dev = job.start()
    seed = job.seed
    model, meta = load_model(original, dev)
    s = {k: settings[k] for k in NOISE_KEYS}
    shape = (meta["in_channels"], meta["image_size"], meta["image_size"])
    with job.timed() as usage:
        x, info = learn_noise(model, int(cls), meta["num_classes"], int(s["noise_batch"]), int(s["noise_steps"]),
                              float(s["noise_lr"]), float(s["noise_lambda"]), seed, dev, shape)
    info.update(settings=s, seed=seed)
    save_checkpoint(job.out["noise"], {"noise": x}, {"kind": "unsir_noise", **info})
    write_json(job.out["info"], info)
    print(f"unsir noise class {cls}: CE {info['ce_before']:.3f} -> {info['ce_after']:.3f} "
          f"in {usage.seconds:.2f}s", flush=True)


def load_noise(paths: list[str]) -> dict[int, torch.Tensor]:
    """The per-class noise files of rule make_noise: {class: pixel noise}."""

    noise = {}
    for path in paths:
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != "unsir_noise" or "noise" not in tensors:
            raise UserError(f"{path} is not an UNSIR noise file (kind {meta.get('kind')!r}); delete it and rerun")
        noise[int(meta["class"])] = tensors["noise"]
    return noise


def noise_dataset(noise: dict[int, torch.Tensor], classes: list[int], copies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`copies` copies of each class's noise batch, each image labelled with its own forget class."""
    xn = torch.cat([noise[c].repeat(copies, 1, 1, 1) for c in classes])
    yn = torch.cat([torch.full((len(noise[c]) * copies,), c, dtype=torch.long) for c in classes])
    return xn, yn


@register_method("unsir")
class UNSIR(UnlearningMethod):
    # Paper defaults (CIFAR-10 setting, Sec. V-D; noise details from the reference code).
    defaults = {
        "noise_batch": 256,      # images in the learned noise tensor ("a single batch size")
        "noise_steps": 40,       # Adam steps on the noise (code: 5 x 8)
        "noise_lr": 0.1,
        "noise_lambda": 0.1,     # lambda in Eq. 1
        "noise_copies": 20,      # copies of the noise batch in the impair set
        "retain_per_class": 1000,  # D_r_sub: samples per retained class
        "passes": "IR",          # impair/repair schedule (Table V: "IIR", "IRIR")
        "impair_lr": 0.02,
        "repair_lr": 0.01,
        "batch_size": 256,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "bn_train": True,        # BN statistics update during impair/repair (as in normal training)
    }
    checks = {"noise_batch": ge(1), "noise_steps": ge(0), "noise_lambda": ge(0), "noise_copies": ge(1),
              "passes": pattern(r"[IR]+", "a non-empty string of I (impair) and R (repair)")}
    supports = frozenset({"class"})
    smoke = {"noise_steps": 5, "noise_copies": 1, "batch_size": 32, "retain_per_class": 20}
    artefacts = {"noise": NOISE_KEYS}  # one file per forget class (rule make_noise)

    def access(self) -> Access:  # zero-glance: never the forget set
        return Access(retain="subset", per_class=self.hp["retain_per_class"])

    def unlearn(self, model, data, ctx):
        noise = load_noise(ctx.artefacts["noise"])
        missing = sorted(set(data.forget_classes) - set(noise))
        if missing:
            raise UserError(f"unsir: noise artefact lacks forget class(es) {missing}")
        xr, yr = data.retain
        xn, yn = noise_dataset(noise, data.forget_classes, self.hp["noise_copies"])
        sets = {"I": (torch.cat([xn, xr]).to(ctx.device), torch.cat([yn, yr]).to(ctx.device)),
                "R": (xr.to(ctx.device), yr.to(ctx.device))}
        lrs = {"I": self.hp["impair_lr"], "R": self.hp["repair_lr"]}
        gen = generator(ctx.seed)
        log, opt, prev = [], None, None
        for i, stage in enumerate(self.hp["passes"]):
            if stage != prev:  # a new stage gets a fresh optimiser (code: separate Adam for repair)
                opt = make_optimizer(model.parameters(), self.hp["optimizer"], lrs[stage], 0.9, self.hp["weight_decay"])
            prev = stage
            x, y = sets[stage]
            model.train()
            set_bn_train(model, self.hp["bn_train"])
            tot, correct = 0.0, 0
            for idx in iterate_batches(len(y), self.hp["batch_size"], gen):
                idx = idx.to(ctx.device)
                out = model(x[idx])
                loss = F.cross_entropy(out, y[idx])
                if not torch.isfinite(loss):
                    raise UserError(f"unsir: loss became {loss.item()} in pass {i + 1} ({stage}); lower {'impair' if stage == 'I' else 'repair'}_lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot += loss.item() * len(idx)
                correct += (out.argmax(1) == y[idx]).sum().item()
            row = {"pass": i + 1, "stage": "impair" if stage == "I" else "repair", "loss": tot / len(y),
                   "train_acc": 100 * correct / len(y), "n": len(y)}
            log.append(row)
            ctx.log(f"unsir pass {i + 1} {row['stage']}: loss={row['loss']:.3f} acc={row['train_acc']:.1f} n={len(y)}")
        model.eval()
        ctx.info.update(log=log, n_noise=len(yn), n_retain=len(yr))
        return model
