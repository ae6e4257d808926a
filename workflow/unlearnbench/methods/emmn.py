"""EMMN: error-minimising / error-maximising noise (Chundawat et al., "Zero-Shot Machine Unlearning",
IEEE TIFS 2023); a zero-shot baseline of the MuGAN thesis (paper 002, Sec. 2.2.2, Fig. 2).

No data are read. Against the frozen original model (eval mode, BN statistics untouched; see
`noise_mode`):
- error-MAXIMISING noise for each forget class c: `noise_batch` images N_c learned by `max_steps`
  Adam steps (lr `noise_lr`) on  -CE(f(N_c), c) + noise_lambda * mean_i ||N_i||^2  (UNSIR's noise);
- error-MINIMISING noise for each retained class k: `min_steps` Adam steps on CE(f(N_k), k)
  (+ min_lambda * mean ||N||^2, 0 in the code).
Then impair/repair on the noise only (the paper: UNSIR's impair-repair with the missing retain data
replaced by the minimising noise): `passes` is a string of I (one epoch on `noise_copies` copies of
all noise, each image labelled with its own class) and R (one epoch on the minimising noise only);
consecutive equal letters share one optimiser, each change of stage starts a fresh one.

Noise is parametrised in the model's normalised input space (z ~ N(0,1) at init, pixels
x = mean + std * z, not clipped), as in `unsir.py`. The noise is learned inside the unlearning step
(it depends only on the original model and these settings; cheap), so EMMN has no artefact. The
image shape comes from `Context.input_shape`.

Defaults: the thesis' run. Noise settings from the reference code the thesis ran (Foster et al.'s
EMMN, in the thesis repository): noise_batch 4, max_steps 25, min_steps 30, noise_lr 0.1,
noise_lambda 0.1, noise_copies 80, batch 4, Adam; that code trains 2 epochs on all noise and never
repairs (passes "II"); lr 5e-5 (thesis Sec. 4.4). The paper's impair-then-repair schedule is
passes "IR" (UNSIR's values for it: impair_lr 0.02, repair_lr 0.01).
Not copied from that code: it uses only 3 images of each noise batch (it loops over the channel
count). Its train mode is an option (below), off by default: every batch is noise, so BN
statistics stay frozen (`bn_train`).

Options (issue #21; reference = DataSystemsGroupUT/zero-shot-machine-unlearning):
- `noise_mode` "frozen" (default, choice): the noise is learned against the frozen original in eval
  mode (no BN statistic moves, no parameter gradient). "reference" (paper-exact, the code the thesis
  ran): against the model being unlearned (unlearning_techniques.py:567-574 pass `model`), which is
  in train mode (execute_unlearning_algorithms.py:118 model.train()), so every noise forward
  overwrites its BN running statistics; the noise optimiser zeroes only the noise's gradient
  (unlearning_techniques.py:506, 524), so the gradients of all noise steps accumulate in the
  model's .grad and enter the first unlearning step (utils.py:65-67 fit: backward, step, then
  zero_grad), here the first step of the first pass.
- `bn_train`: False (default, choice); True is the reference's train mode during the passes
  (utils.py:60 fit: model.train()). Paper-exact: noise_mode "reference" with bn_train true.
"""

from __future__ import annotations

from ..errors import UserError
from ..infra.lazy import F, torch
from ..runtime import generator, iterate_batches
from ..training import make_optimizer, set_bn_train
from ._base import Access, UnlearningMethod, ge, one_of, pattern, register_method

NOISE_MODES = ("frozen", "reference")


def _noise_seed(seed: int, cls: int, maximise: bool) -> int:
    return (int(seed) * 1_000_003 + int(cls) * 7919 + (101 if maximise else 202)) % 2**31


def input_shape(ctx) -> tuple[int, int, int]:
    """(C, H, W) of the model's inputs, which zero-shot methods need to shape noise or generators."""
    shape = getattr(ctx, "input_shape", None)
    if not shape:
        raise UserError("this zero-shot method needs the input image size: Context.input_shape is not set")
    return tuple(int(v) for v in shape)


def learn_class_noise(model, cls: int, maximise: bool, batch: int, steps: int, lr: float, lam: float,
                      seed: int, device, shape: tuple[int, ...], reference: bool = False) -> tuple[torch.Tensor, dict]:
    """Noise images (pixel space, CPU) that maximise (or minimise) the frozen model's CE for `cls`.
    reference=True (noise_mode "reference"): `model` in train mode, so each noise step moves its BN
    running statistics, and every step's gradient accumulates in its parameters' .grad (never zeroed).
    The info forwards (ce_before/after) run in eval mode either way."""
    model.train(reference)  # default: BN in eval mode, running statistics stay untouched
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(reference and p.requires_grad)
    mean = getattr(model, "mean", torch.zeros(1, shape[0], 1, 1)).to(device)
    std = getattr(model, "std", torch.ones(1, shape[0], 1, 1)).to(device)
    z = torch.randn((batch, *shape), generator=generator(_noise_seed(seed, cls, maximise))).to(device).requires_grad_(True)
    opt = make_optimizer([z], "adam", lr)
    target = torch.full((batch,), int(cls), dtype=torch.long, device=device)
    sign = -1.0 if maximise else 1.0

    def ce():
        return F.cross_entropy(model(mean + std * z), target)

    @torch.no_grad()
    def probe(x):  # eval mode: reading the model moves no BN statistics
        model.eval()
        out = model(x)
        model.train(reference)
        return out

    ce0 = F.cross_entropy(probe(mean + std * z), target).item()
    for _ in range(steps):
        loss = sign * ce() + lam * z.pow(2).flatten(1).sum(1).mean()
        opt.zero_grad(set_to_none=True)  # the noise's gradient only
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = (mean + std * z).detach()
        logits = probe(x)
        info = {"class": int(cls), "maximise": maximise, "ce_before": ce0,
                "ce_after": F.cross_entropy(logits, target).item(),
                "pred_as_class": (logits.argmax(1) == cls).float().mean().item() * 100}
    for p, f in zip(model.parameters(), flags):
        p.requires_grad_(f)
    return x.cpu(), info


@register_method("emmn")
class EMMN(UnlearningMethod):
    defaults = {
        "noise_batch": 4,        # code: noise images per class
        "max_steps": 25,         # code: Adam steps of the maximising noise
        "min_steps": 30,         # code: Adam steps of the minimising noise
        "noise_lr": 0.1,         # code
        "noise_lambda": 0.1,     # code/UNSIR: norm penalty of the maximising noise
        "min_lambda": 0.0,       # code: no penalty on the minimising noise
        "noise_copies": 80,      # code: copies of each noise batch in the training set
        "passes": "II",          # thesis run (code: 2 epochs on all noise); paper: "IR"
        "impair_lr": 5e-5,       # thesis Sec. 4.4
        "repair_lr": 5e-5,       # thesis Sec. 4.4 (used by R passes only)
        "batch_size": 4,         # code
        "optimizer": "adam",     # code/paper
        "weight_decay": 0.0,
        "bn_train": False,       # choice: noise-only batches must not overwrite BN statistics (code: True)
        "noise_mode": "frozen",  # choice; code: "reference" (module docstring)
    }
    checks = {"noise_batch": ge(1), "max_steps": ge(0), "min_steps": ge(0), "noise_lambda": ge(0),
              "min_lambda": ge(0), "noise_copies": ge(1),
              "passes": pattern(r"[IR]+", "a non-empty string of I (impair) and R (repair)"),
              "noise_mode": one_of(*NOISE_MODES)}
    supports = frozenset({"class"})

    def access(self) -> Access:
        return Access()  # zero-shot

    def make_noise(self, model, forget: list[int], retain: list[int], ctx, shape,
                   reference: bool = False) -> tuple[dict, dict, list]:
        hp = self.hp
        maxn, minn, infos = {}, {}, []
        for c in forget:
            maxn[c], info = learn_class_noise(model, c, True, hp["noise_batch"], hp["max_steps"], hp["noise_lr"],
                                              hp["noise_lambda"], ctx.seed, ctx.device, shape, reference)
            infos.append(info)
        for c in retain:
            minn[c], info = learn_class_noise(model, c, False, hp["noise_batch"], hp["min_steps"], hp["noise_lr"],
                                              hp["min_lambda"], ctx.seed, ctx.device, shape, reference)
            infos.append(info)
        return maxn, minn, infos

    def unlearn(self, model, data, ctx):
        hp, dev = self.hp, ctx.device
        if not data.retain_classes:
            raise UserError("emmn needs at least one retained class")
        shape = input_shape(ctx)
        ref = hp["noise_mode"] == "reference"  # noise against `model` itself, its .grad left for step 1
        if ref:
            model.zero_grad(set_to_none=True)
        maxn, minn, infos = self.make_noise(model if ref else ctx.original, data.forget_classes,
                                            data.retain_classes, ctx, shape, ref)

        def stack(noise):
            xs = torch.cat([noise[c].repeat(hp["noise_copies"], 1, 1, 1) for c in noise])
            ys = torch.cat([torch.full((len(noise[c]) * hp["noise_copies"],), c, dtype=torch.long) for c in noise])
            return xs, ys

        (xmax, ymax), (xmin, ymin) = stack(maxn), stack(minn)
        sets = {"I": (torch.cat([xmax, xmin]).to(dev), torch.cat([ymax, ymin]).to(dev)), "R": (xmin.to(dev), ymin.to(dev))}
        lrs = {"I": hp["impair_lr"], "R": hp["repair_lr"]}
        gen = generator(ctx.seed)
        log, opt, prev, stale = [], None, None, ref
        for i, stage in enumerate(hp["passes"]):
            if stage != prev:
                opt = make_optimizer(model.parameters(), hp["optimizer"], lrs[stage], 0.9, hp["weight_decay"])
            prev = stage
            x, y = sets[stage]
            model.train()
            set_bn_train(model, hp["bn_train"])
            tot = 0.0
            for idx in iterate_batches(len(y), hp["batch_size"], gen):
                idx = idx.to(dev)
                loss = F.cross_entropy(model(x[idx]), y[idx])
                if not torch.isfinite(loss):
                    raise UserError(f"emmn: loss became {loss.item()} in pass {i + 1} ({stage}); lower {'impair' if stage == 'I' else 'repair'}_lr")
                if not stale:  # reference: the first step also carries the noise steps' gradients
                    opt.zero_grad(set_to_none=True)
                stale = False
                loss.backward()
                opt.step()
                tot += loss.item() * len(idx)
            row = {"pass": i + 1, "stage": "impair" if stage == "I" else "repair", "loss": tot / len(y), "n": len(y)}
            log.append(row)
            ctx.log(f"emmn pass {i + 1} {row['stage']}: loss={row['loss']:.3f} n={len(y)}")
        model.eval()
        ctx.info.update(log=log, noise=infos, n_max_noise=len(ymax), n_min_noise=len(ymin))
        return model
