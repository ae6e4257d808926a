"""Wrappers that run another registered method (the "base") under a UISPS mechanism (paper 004).

`sps` (Table VIII, "Transferability of SPS"): selective parameter suppression (Sec. IV-C, Eqs 8-12,
15) added to any method. The base method runs unchanged inside methods/uisps/suppression.restrict_updates:
the entries UISPS would suppress (normalised retain importance > sps_alpha * normalised forget
importance, Eq. 12) keep the original's values whatever the base's optimiser does. The importance
is UISPS's own: the diagonal Fisher on the inversion's synthetic forget samples and on a retain
portion D'_r, i.e. the same "inversion" and "importance" artefacts as `uisps` (their settings use
uisps's names, so a wrapper and a uisps instance with equal settings share the files). The paper
wraps the two-teacher "bad teaching" method (Chundawat et al. 2023, registered as bad_teacher).

`partial_retain` (Tables VI-VII): the base method given only a seeded fraction `data_fraction` of
each retained class, for methods without a retain-fraction setting of their own (UNSIR, FineTune).

Hyperparameters: `base` (a registered method's name), the wrapper's own keys, and every other key
is a hyperparameter of the base (checked by the base; a base key that clashes with an own key is an
error). `lr` is also declared by the wrappers and handed to the base, so tuning grids may name it.
`hp` holds both the wrapper's and the base's values.

Access (the union of what the base and the wrapper's artefacts read):
- sps: the base's access; when the base reads no retain data, the retain portion D'_r
  (fisher_retain_fraction) is added, since the importance artefact reads it. When the base reads a
  retain fraction q, D'_r is capped at q (nested seeded subsets: D'_r is then part of the base's
  data). When the base reads k samples per class, D'_r = retain-p<f> and the base's retain-k<k> are
  prefixes of the same seeded per-class permutations, so D'_r lies inside the base's data whenever
  round(f * n_class) <= k (e.g. f = 0.1, k = 1000: up to 10 000 samples per class).
- partial_retain: the base's forget/val access; retain = a fraction data_fraction * q of each class
  (q = the base's own retain fraction, 1 for full retain); a base reading k per class gets at most k
  per class drawn (seeded) from the data_fraction subset.
The wrapped method is told only the sets its own access declares.
"""

from __future__ import annotations

from ..errors import UserError
from ..infra.lazy import torch
from ..parts.inversion import INVERSION_DEFAULTS, INVERSION_KEYS
from ..runtime import generator
from ._base import Access, UnlearnData, UnlearningMethod, between, ge, get_method, one_of, register_method
from .uisps import UISPS, importance_view
from .uisps.suppression import (IMPORTANCE_KEYS, NORM_SCOPES, load_importance, mask_summary, restrict_updates,
                                select_parameters)

_ROLES = ("forget", "retain", "val")


def _roles(access: Access) -> list[str]:
    return [r for r, on in zip(_ROLES, (access.forget, access.retain is not None, access.val)) if on]


class _Wrapper(UnlearningMethod):
    """Common part of the wrappers: building the base, delegating artefacts, handing it its data.
    `lr` is declared by the wrapper too (None: the base's own) and passed to the base, so that a
    tuning grid may name it (the tuning check reads the class's declared hyperparameters)."""

    def __init__(self, **hparams):
        base_name = hparams.get("base", self.defaults["base"])
        if not isinstance(base_name, str):
            raise UserError(f"method {self.name!r}: base must be a registered method's name, got {base_name!r}")
        cls = get_method(base_name)
        if cls.kind == "reference" or issubclass(cls, _Wrapper) or base_name == "uisps":
            raise UserError(f"method {self.name!r}: cannot wrap {base_name!r} (a reference row, a wrapper, or uisps "
                            "itself); wrap an unlearning method")
        clash = sorted(set(cls.defaults) & set(self.defaults) - {"lr"})
        if clash:
            raise UserError(f"method {self.name!r}: base {base_name!r} has a hyperparameter named like the wrapper's "
                            f"own {clash[0]!r}; it cannot be wrapped")
        own = {k: v for k, v in hparams.items() if k in self.defaults}
        rest = {k: v for k, v in hparams.items() if k not in self.defaults}
        if own.get("lr") is not None:
            rest["lr"] = own["lr"]
        self.base = cls(**rest)
        super().__init__(**own)
        self.hp = {**{k: v for k, v in self.hp.items() if k != "lr"}, **self.base.hp}
        self.supports = self.base.supports

    # --- artefacts: the wrapper's own kinds plus the base's
    def needs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.own_needs() + tuple(self.base.needs())))

    def own_needs(self) -> tuple[str, ...]:
        return ()

    def artefact_settings(self, kind: str) -> dict:
        if kind in self.own_needs():
            return super().artefact_settings(kind)
        return self.base.artefact_settings(kind)

    # --- data
    def base_data(self, data: UnlearnData, ctx) -> UnlearnData:
        acc = self.base.access()
        sets = {role: getattr(data, role) for role in _roles(acc)}
        return UnlearnData(acc, data.num_classes, data.forget_classes, data.request_type, sets=sets, label=data.label)


@register_method("sps")
class SPS(_Wrapper):
    smoke = {"base": "bad_teacher", "inv_iters": 30, "inv_samples": 16}
    defaults = {
        "base": "bad_teacher",           # paper Table VIII: the two-teacher model
        **INVERSION_DEFAULTS,            # the inversion of uisps (paper: 32 samples, 1000 iters, ...)
        "fisher_kind": "empirical",      # as uisps (paper Eq. 9)
        "fisher_retain_fraction": 0.1,   # as uisps (choice: D'_r)
        "sps_alpha": 1.5,                # paper alpha
        "sps_norm_scope": "global",      # paper Eq. 11
        "lr": None,                      # the base's learning rate (None: the base's default)
    }
    checks = {**{k: UISPS.checks[k] for k in INVERSION_KEYS + IMPORTANCE_KEYS if k in UISPS.checks},
              "sps_alpha": ge(0), "sps_norm_scope": one_of(*NORM_SCOPES)}
    artefacts = {"inversion": INVERSION_KEYS, "importance": INVERSION_KEYS + IMPORTANCE_KEYS}

    def __init__(self, **hparams):
        super().__init__(**hparams)
        self.supports = self.base.supports & frozenset({"class"})  # the inversion needs the forget classes
        if not self.supports:
            raise UserError(f"method 'sps': base {self.hp['base']!r} supports no class forgetting")

    def own_needs(self) -> tuple[str, ...]:
        return ("inversion", "importance")

    def _fisher_fraction(self) -> float:
        f = float(self.hp["fisher_retain_fraction"])
        acc = self.base.access()
        if acc.retain == "subset" and acc.fraction is not None:
            return min(f, float(acc.fraction))
        return f

    def artefact_settings(self, kind: str) -> dict:
        s = super().artefact_settings(kind)
        if kind == "importance":
            s["fisher_retain_fraction"] = self._fisher_fraction()
        return s

    def importance_view(self, seed: int) -> str:
        return importance_view(self._fisher_fraction(), seed)

    def access(self) -> Access:
        acc = self.base.access()
        if acc.retain is not None:
            return acc
        f = self._fisher_fraction()
        retain = dict(retain="full") if f >= 1 else dict(retain="subset", fraction=f)
        return Access(forget=acc.forget, val=acc.val, **retain)

    def unlearn(self, model, data, ctx):

        if "importance" not in ctx.artefacts:
            raise UserError("sps needs the importance artefact (rule make_importance)")
        imp_g, imp_r, _ = load_importance(ctx.artefacts["importance"], model)
        frozen = select_parameters(imp_g, imp_r, float(self.hp["sps_alpha"]), self.hp["sps_norm_scope"])
        summary = mask_summary(frozen)
        with restrict_updates(model, frozen):
            out = self.base.unlearn(model, self.base_data(data, ctx), ctx)
        if out is not model:  # the base built a new model object: apply Eq. 15 to it by name
            orig = dict(ctx.original.named_parameters())
            with torch.no_grad():
                for k, p in out.named_parameters():
                    m = frozen[k].to(p.device)
                    p.copy_(torch.where(m, orig[k].to(p.device), p))
        ctx.info.update(sps_base=self.hp["base"], frozen_fraction=summary["frozen_fraction"],
                        n_frozen=summary["n_frozen"], n_params=summary["n_params"])
        return out


@register_method("partial_retain")
class PartialRetain(_Wrapper):
    smoke = {"base": "finetune", "data_fraction": 0.5, "epochs": 1}
    defaults = {
        "base": "finetune",     # Tables VI-VII: FineTune and UNSIR
        "data_fraction": 0.5,   # the fraction of each retained class that is available (0.8 ... 0.2)
        "lr": None,             # the base's learning rate (None: the base's default)
    }
    checks = {"data_fraction": between(0, 1, low_open=True, high_open=True)}

    def access(self) -> Access:
        acc = self.base.access()
        if acc.retain is None:
            raise UserError(f"method 'partial_retain': base {self.hp['base']!r} reads no retain data")
        q = float(acc.fraction) if acc.retain == "subset" and acc.fraction is not None else 1.0
        return Access(forget=acc.forget, val=acc.val, retain="subset", fraction=float(self.hp["data_fraction"]) * q)

    def validate(self) -> None:
        self.access()  # a base without retain data fails at construction

    def base_data(self, data, ctx):
        acc = self.base.access()
        sets = {role: getattr(data, role) for role in _roles(acc)}
        if acc.retain == "subset" and acc.per_class is not None:  # at most k per class, seeded
            x, y = sets["retain"]
            gen = generator(ctx.seed)
            keep = []
            for c in torch.unique(y).tolist():
                idx = torch.nonzero(y == c).flatten()
                keep.append(idx[torch.randperm(len(idx), generator=gen)[: acc.per_class]])
            keep = torch.sort(torch.cat(keep)).values
            sets["retain"] = (x[keep], y[keep])
        return UnlearnData(acc, data.num_classes, data.forget_classes, data.request_type, sets=sets, label=data.label)

    def unlearn(self, model, data, ctx):
        base_data = self.base_data(data, ctx)
        ctx.info.update(partial_base=self.hp["base"], data_fraction=float(self.hp["data_fraction"]),
                        n_retain_given=len(base_data.retain[1]) if base_data.access.retain else 0)
        return self.base.unlearn(model, base_data, ctx)
