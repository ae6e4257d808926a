"""UISPS (Lian et al., "Achieving Zero-Glance Unlearning with Data-Free Inversion and Selective
Parameters Suppression", paper 004; no public code). Zero-glance class unlearning: the forget
samples are never read; the retained data are.

Algorithm 1, in three stages:
1. Inversion (artefact "inversion", rule make_inversion, one file per forgotten class; lines 1-15,
   Eqs 1-5): `inv_samples` images per class synthesised from the original model alone by CE to the
   class + lambda1 * BN-statistics loss + lambda2 * entropy term on a subset (parts/inversion.py).
2. Importance (artefact "importance", rule make_importance; lines 16-18, Eqs 8-10): diagonal
   empirical Fisher of the original model on the synthetic samples and on a small retain portion
   D'_r (`fisher_retain_fraction` of each retained class), stored raw (suppression.py).
3. Unlearning (here; lines 19-28, Eqs 11-15): min-max normalise both importances, suppress (freeze)
   the entries with gamma^r_hat > alpha * gamma^g_hat, relabel the synthetic samples with the soft
   outputs of a randomly initialised model of the same architecture (Eq. 13), and train `epochs` (1)
   epoch(s) of CE on D'_g ∪ D_r (shuffled, batch 128) updating only the non-suppressed entries.
   Eq. 15 writes theta + lambda * grad; that sign is a typo for descent on L_unlearn.

Choices (the paper leaves them open): the optimiser (Adam: the paper's small learning rates,
0.002-0.03 for a single epoch, and the UNSIR code it compares against; "sgd" is offered); BN in
eval mode during the unlearning epoch (bn_train false: the running statistics are buffers that SPS
cannot suppress, so they stay the original's; on digits train-mode BN made forgetting erratic across
seeds; bn_train true is ordinary training); the random model M_t is a deep copy of the original
re-initialised by each module's `reset_parameters` (parameters no module resets, e.g. a ViT's
position embedding, get N(0, 0.02)), drawn from a CPU generator seeded from the run seed, evaluated
in eval mode, and its soft labels are softmax(M_t(x)) at temperature 1, computed once (Eq. 13). The CE with soft labels is
-sum_c y'_c log p_c; retain samples use their one-hot labels.

Ablations (Table II and beyond): inv_lambda2 = 0 (no entropy term; a different inversion
artefact), suppress = false (no SPS: every parameter trains; the importance artefact is then not
needed), relabel (what replaces Eq. 13's random-model soft labels):
  "random_model"      paper: soft labels of M_t;
  "random_model_hard" argmax of M_t (a hard random-model label);
  "uniform"           the uniform distribution over all classes (what an untrained model approximates);
  "random_retain"     a uniformly drawn retained class per sample (the usual random-label baseline);
  "none"              the synthetic samples are not trained on at all (they only drive the
                      importance): SPS-masked fine-tuning on the retain data.
retain_fraction < 1 uses that fraction of each retained class (Tables VI-VII); D'_r for the
Fisher is then the seeded subset min(fisher_retain_fraction, retain_fraction), which the workflow's
nested subsets make a part of the training subset (zero access beyond what the method declares).

SPS for other methods (Table VIII): methods/uisps/suppression.restrict_updates(model, frozen) wraps any
method's `unlearn` call; see that function.
"""

from __future__ import annotations

import copy

from ...errors import UserError
from ...infra.lazy import F, torch
from ...parts.inversion import ENTROPY_SIGNS, INVERSION_DEFAULTS, INVERSION_KEYS, PARAMS, load_inversion
from ...runtime import generator
from ...training import make_optimizer, set_bn_train
from .._base import Access, UnlearningMethod, between, ge, one_of, register_method
from .suppression import (FISHER_KINDS, IMPORTANCE_KEYS, NORM_SCOPES, load_importance, mask_summary, restrict_updates,
                          select_parameters)

RELABELS = ("random_model", "random_model_hard", "uniform", "random_retain", "none")


def _relabel_seed(seed: int) -> int:
    return (int(seed) * 2_654_435_761 + 97) % 2**31


def random_model_like(model, seed: int, device):
    """A randomly initialised model of `model`'s architecture (deep copy, every module's
    reset_parameters under a CPU RNG seeded with `seed`; BN running statistics reset too), eval mode."""
    mt = copy.deepcopy(model).cpu()
    before = {k: v.detach().clone() for k, v in mt.named_parameters()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for m in mt.modules():
            if callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
    gen = generator(seed)
    with torch.no_grad():
        for k, p in mt.named_parameters():
            if torch.equal(p, before[k]):  # no module resets it (e.g. an embedding of the top module)
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    for p in mt.parameters():
        p.requires_grad_(False)
    return mt.to(device).eval()


def relabel(xg, yg, hp: dict, original, num_classes: int, retain_classes: list[int], seed: int, device):
    """Targets (probability vectors [n, K]) for the synthetic samples (Eq. 13 and its ablations)."""
    mode = hp["relabel"]
    if mode in ("random_model", "random_model_hard"):
        mt = random_model_like(original, _relabel_seed(seed), device)
        with torch.no_grad():
            logits = torch.cat([mt(xg[i:i + 256].to(device)).float().cpu() for i in range(0, len(xg), 256)])
        p = F.softmax(logits, dim=1)
        return p if mode == "random_model" else F.one_hot(p.argmax(1), num_classes).float()
    if mode == "uniform":
        return torch.full((len(xg), num_classes), 1.0 / num_classes)
    if mode == "random_retain":
        pick = torch.randint(len(retain_classes), (len(xg),), generator=generator(_relabel_seed(seed)))
        return F.one_hot(torch.as_tensor(retain_classes)[pick], num_classes).float()
    raise UserError(f"uisps: no targets for relabel {mode!r}")


def importance_view(fraction: float, seed: int) -> str:
    """The data view D'_r that rule make_importance reads: `retain` or `retain-p<f>-s<seed>`
    (the workflow's seeded per-class subset, nested in every larger fraction of the same seed)."""
    acc = Access(retain="full") if fraction >= 1 else Access(retain="subset", fraction=float(fraction))
    return acc.views(seed)["retain"]


@register_method("uisps")
class UISPS(UnlearningMethod):
    defaults = {
        **INVERSION_DEFAULTS,              # stage 1 (paper: 32 samples, 1000 iters, lr 0.01, 0.01, 0.05)
        "fisher_kind": "empirical",        # paper Eq. 9 (with the label); "true": E_{y~p}
        "fisher_retain_fraction": 0.1,     # choice: D'_r, "a small portion" of each retained class
        "alpha": 1.5,                      # paper
        "norm_scope": "global",            # paper Eq. 11 (min/max over all of theta); or "layer"
        "suppress": True,                  # SPS on (Table II ablation: false = update all)
        "relabel": "random_model",         # paper Eq. 13 (soft labels); ablations in the docstring
        "retain_fraction": 1.0,            # paper main tables; Tables VI-VII: 0.8 ... 0.2
        "epochs": 1,                       # paper: one epoch
        "batch_size": 128,                 # paper
        "lr": 0.002,                       # paper: ResNet18 CIFAR-10/100 (SVHN 0.003; AllCNN 0.03)
        "optimizer": "adam",               # choice (not given)
        "momentum": 0.9,                   # used by sgd only
        "weight_decay": 0.0,               # choice
        "bn_train": False,                 # choice: BN running statistics stay as the original's
    }
    checks = {
        "inv_samples": ge(1), "inv_iters": ge(0), "inv_lambda1": ge(0), "inv_lambda2": ge(0),
        "inv_entropy_fraction": between(0, 1), "inv_entropy_sign": one_of(*ENTROPY_SIGNS),
        "inv_param": one_of(*PARAMS), "fisher_kind": one_of(*FISHER_KINDS),
        "fisher_retain_fraction": between(0, 1, low_open=True), "alpha": ge(0),
        "norm_scope": one_of(*NORM_SCOPES), "relabel": one_of(*RELABELS),
        "retain_fraction": between(0, 1, low_open=True),
    }
    supports = frozenset({"class"})
    smoke = {"inv_iters": 30, "inv_samples": 16, "lr": 0.03}
    # The importance is computed on the synthetic samples, so it is keyed by their settings too.
    artefacts = {"inversion": INVERSION_KEYS, "importance": INVERSION_KEYS + IMPORTANCE_KEYS}

    def needs(self) -> tuple[str, ...]:
        if self.hp["suppress"]:
            return ("inversion", "importance")
        return ("inversion",) if self.hp["relabel"] != "none" else ()

    def artefact_settings(self, kind: str) -> dict:
        s = super().artefact_settings(kind)
        if kind == "importance":  # D'_r never exceeds the retain data the method may read
            s["fisher_retain_fraction"] = min(float(s["fisher_retain_fraction"]), float(self.hp["retain_fraction"]))
        return s

    def importance_view(self, seed: int) -> str:
        """The retain data view rule make_importance reads (D'_r)."""
        return importance_view(self.artefact_settings("importance")["fisher_retain_fraction"], seed)

    def access(self) -> Access:  # zero-glance: never the forget set
        p = float(self.hp["retain_fraction"])
        return Access(retain="full") if p >= 1 else Access(retain="subset", fraction=p)

    def unlearn(self, model, data, ctx):
        from ...parts.relabel import ce_pass

        hp, dev = self.hp, ctx.device
        xr, yr = data.retain
        k = data.num_classes
        shape = tuple(xr.shape[1:])
        xs = [xr]
        ts = [F.one_hot(yr, k).float()]
        if hp["relabel"] != "none":
            if "inversion" not in ctx.artefacts:
                raise UserError("uisps needs the inversion artefact (rule make_inversion)")
            syn = load_inversion(ctx.artefacts["inversion"], shape)
            missing = sorted(set(data.forget_classes) - set(syn))
            if missing:
                raise UserError(f"uisps: the inversion artefact lacks forget class(es) {missing}")
            xg = torch.cat([syn[c] for c in data.forget_classes])
            yg = torch.cat([torch.full((len(syn[c]),), c, dtype=torch.long) for c in data.forget_classes])
            tg = relabel(xg, yg, hp, ctx.original, k, data.retain_classes, ctx.seed, dev)
            xs.insert(0, xg)
            ts.insert(0, tg)
            ctx.info.update(n_synthetic=len(yg), relabel_max_prob=float(tg.max(1).values.mean()),
                            relabel_hist=torch.bincount(tg.argmax(1), minlength=k).tolist())
        frozen = None
        if hp["suppress"]:
            if "importance" not in ctx.artefacts:
                raise UserError("uisps with suppress needs the importance artefact (rule make_importance)")
            imp_g, imp_r, _ = load_importance(ctx.artefacts["importance"], model)
            frozen = select_parameters(imp_g, imp_r, float(hp["alpha"]), hp["norm_scope"])
            summary = mask_summary(frozen)
            ctx.info.update(frozen_fraction=summary["frozen_fraction"], n_frozen=summary["n_frozen"],
                            n_params=summary["n_params"], frozen_per_tensor=summary["frozen_per_tensor"])
        x, t = torch.cat(xs).to(dev), torch.cat(ts).to(dev)
        opt = make_optimizer(model.parameters(), hp["optimizer"], hp["lr"], hp["momentum"], hp["weight_decay"])
        gen = generator(ctx.seed)
        log = []
        with restrict_updates(model, frozen):
            for epoch in range(hp["epochs"]):
                model.train()
                set_bn_train(model, hp["bn_train"])
                loss = ce_pass(model, opt, x, t, hp["batch_size"], gen, f"uisps (epoch {epoch + 1})")  # Eq. 14, soft targets
                log.append({"epoch": epoch + 1, "loss": loss, "n": len(t)})
                ctx.log(f"uisps epoch {epoch + 1}: loss={loss:.4f} n={len(t)}")
        model.eval()
        # the artefact files this run consumed (figure kind tsne_synthetic finds the samples here)
        files = {k: ([str(v)] if isinstance(v, str) else [str(p) for p in v]) for k, v in ctx.artefacts.items()}
        ctx.info.update(log=log, n_retain=len(yr), artefact_files=files)
        return model
