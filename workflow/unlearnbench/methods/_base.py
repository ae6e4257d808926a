"""The method interface, its registry and the data-access contract.

Torch-free: Snakemake reads every declaration here while it builds the DAG (which data views and
artefacts a run needs, which scenarios a method supports, whether its hyperparameters are valid),
so nothing in this module, and nothing a method file runs at import time, may import torch.
Method files use `from ..infra.lazy import torch, F` (imported on first use, inside the job).

A method is a class registered with `@register_method("name")` that declares
- `defaults`: its hyperparameters; a config instance may override any of them and nothing else.
  Values are checked and coerced once, here: by the type of the default, by `COMMON_CHECKS` (lr,
  epochs, batch_size, optimizer, ... mean the same for every method) and by the class's `checks`;
- `access()`: which data it may read (`Access`). The workflow materialises each declared set as
  its own file and the unlearn job receives only those files;
- `supports`: the forget-request types it handles ("class", "random");
- `artefacts`: {kind: (hyperparameters that determine it)}: files made by other rules (noise,
  masks, generators...). The settings key the artefact's path, so a change of any other
  hyperparameter reuses it. Override `needs()` when a hyperparameter switches an artefact off.
`unlearn(model, data, ctx)` returns the unlearned model (it may modify `model` in place).
`original` and `retrain` are reference entries (kind "reference"): the pipeline maps them to the
trained checkpoints.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from ..errors import AccessError, UserError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "constant")


# --------------------------------------------------------------------------- hyperparameter checks
@dataclass(frozen=True)
class Check:
    """A declared constraint on one hyperparameter (bounds, choices or a pattern)."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    pattern: str | None = None
    help: str = ""

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.pattern is not None:
            return self.help or f"a string matching {self.pattern}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts)

    def ok(self, v: Any) -> bool:
        if self.choices is not None:
            return v in self.choices
        if self.pattern is not None:
            return isinstance(v, str) and re.fullmatch(self.pattern, v) is not None
        if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        if self.high is not None and (v >= self.high if self.high_open else v > self.high):
            return False
        return True

    @property
    def numeric(self) -> bool:
        return self.low is not None or self.high is not None


def gt(x: float) -> Check:
    return Check(low=x, low_open=True)


def ge(x: float) -> Check:
    return Check(low=x)


def between(lo: float, hi: float, low_open: bool = False, high_open: bool = False) -> Check:
    return Check(low=lo, high=hi, low_open=low_open, high_open=high_open)


def one_of(*choices: Any) -> Check:
    return Check(choices=tuple(choices))


def pattern(rx: str, help: str) -> Check:
    return Check(pattern=rx, help=help)


# Names that mean the same thing in every method, declared once. A method's `checks` add to them;
# any name ending in "_lr" is a learning rate.
COMMON_CHECKS: dict[str, Check] = {
    "lr": gt(0), "epochs": ge(1), "batch_size": ge(1), "optimizer": one_of(*OPTIMIZERS),
    "schedule": one_of(*SCHEDULES), "momentum": between(0, 1, high_open=True), "weight_decay": ge(0),
    "retain_per_class": ge(1),
}
_FLOAT_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(inf|nan)", re.IGNORECASE)
_INT_RE = re.compile(r"[-+]?\d+")


def coerce(value: Any, default: Any, where: str) -> Any:
    """`value` converted to the type of `default`. Numbers given as strings ("1e-3": PyYAML reads
    an exponent without a dot as a string; --config overrides arrive as strings) are accepted."""
    if value is None or default is None:
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
            return float(value) if not _INT_RE.fullmatch(value.strip()) else int(value)
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise UserError(f"{where} must be true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"{where} must be an integer, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
            return float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise UserError(f"{where} must be a number, got {value!r}")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise UserError(f"{where} must be a string, got {value!r}")
    if isinstance(default, (list, tuple)) and not isinstance(value, (list, tuple)):
        raise UserError(f"{where} must be a list, got {value!r}")
    return value


# --------------------------------------------------------------------------- access contract
@dataclass(frozen=True)
class Access:
    """What a method may read. Each set is materialised as its own file by rule `data_view`."""
    forget: bool = False
    retain: str | None = None        # None, "full" or "subset"
    per_class: int | None = None     # subset: this many samples of each retained class
    fraction: float | None = None    # subset: this fraction of each retained class
    val: bool = False                # the held-out validation split (e.g. DAU's attacker)
    label_text: str | None = None    # reference rows and generator-based methods name themselves

    def __post_init__(self):
        if self.retain not in (None, "full", "subset"):
            raise UserError(f"access: retain must be None, 'full' or 'subset', got {self.retain!r}")
        if self.retain == "subset" and (self.per_class is None) == (self.fraction is None):
            raise UserError("access: a retain subset needs exactly one of per_class and fraction")
        if self.fraction is not None and not 0 < self.fraction < 1:
            raise UserError(f"access: retain fraction must be in (0, 1), got {self.fraction}; use retain='full' for all")

    @property
    def label(self) -> str:
        if self.label_text:
            return self.label_text
        retain = {"full": ["retain"], None: []}.get(self.retain)
        if retain is None:
            retain = [f"retain-subset ({self.per_class}/class)" if self.per_class
                      else f"retain-subset ({self.fraction:g})"]
        parts = (["forget"] if self.forget else []) + retain + (["val"] if self.val else [])
        return "+".join(parts) if parts else "none (zero-shot)"

    def views(self, seed: int) -> dict[str, str]:
        """{role: view name} of the data files this access reads (see data.view_indices)."""
        out = {}
        if self.forget:
            out["forget"] = "forget"
        if self.retain == "full":
            out["retain"] = "retain"
        elif self.retain == "subset":
            out["retain"] = (f"retain-k{self.per_class}-s{seed}" if self.per_class
                             else f"retain-p{self.fraction:g}-s{seed}")
        if self.val:
            out["val"] = "val"
        return out


class UnlearnData:
    """The data handed to a method: only what its `Access` declares. Tensors are CPU, [0,1] pixels.

    `sets` maps a role (forget / retain / val) to (x, y); reading a role the access does not
    declare raises AccessError. `labels` records what was actually read (e.g. a retain subset
    that covers the whole retain set is reported as "retain (all)")."""

    def __init__(self, access: Access, num_classes: int, forget_classes: list[int], request_type: str,
                 sets: dict[str, tuple] | None = None, label: str | None = None):
        self.access = access
        self.num_classes = int(num_classes)
        self.forget_classes = list(forget_classes)  # the request itself, known to every method
        self.request_type = request_type
        self.retain_classes = [c for c in range(self.num_classes) if c not in self.forget_classes]
        self._sets = dict(sets or {})
        self.label = label or access.label

    def _get(self, name: str, allowed: bool):
        if not allowed:
            raise AccessError(f"method with access '{self.access.label}' tried to read the {name} set")
        if name not in self._sets:
            raise AccessError(f"the {name} set was declared but not provided to this job")
        return self._sets[name]

    @property
    def forget(self):
        return self._get("forget", self.access.forget)

    @property
    def retain(self):
        return self._get("retain", self.access.retain is not None)

    @property
    def val(self):
        return self._get("val", self.access.val)


@dataclass
class Context:
    device: Any                      # torch.device of the job
    seed: int
    original: Any                    # frozen copy of the original model (teacher / reference), eval mode
    artefacts: dict[str, Any] = field(default_factory=dict)  # kind -> path or list of paths
    input_shape: tuple[int, int, int] | None = None  # (C, H, W) of the model's inputs (zero-shot methods)
    log: Callable[[str], None] = print
    info: dict[str, Any] = field(default_factory=dict)  # method-specific numbers for the run record


# --------------------------------------------------------------------------- base class + registry
class UnlearningMethod:
    name: ClassVar[str] = ""
    kind: ClassVar[str] = "method"  # or "reference"
    defaults: ClassVar[dict[str, Any]] = {}
    checks: ClassVar[dict[str, Check]] = {}
    supports: ClassVar[frozenset[str]] = frozenset({"class", "random"})
    artefacts: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Hyperparameters for a seconds-long conformance run on 8 px digits (tests only), for methods
    # whose paper defaults take minutes (e.g. GKT's 4000 pseudo batches).
    smoke: ClassVar[dict[str, Any]] = {}

    def __init__(self, **hparams: Any):
        unknown = sorted(set(hparams) - set(self.defaults))
        if unknown:
            raise UserError(f"method {self.name!r} has no hyperparameter {unknown[0]!r}; "
                            f"known: {', '.join(sorted(self.defaults)) or '(none)'}")
        self.hp = copy.deepcopy(self.defaults)
        for k, v in hparams.items():
            self.hp[k] = coerce(v, self.defaults[k], f"method {self.name!r}: {k}")
        for k, v in self.hp.items():
            check = self.check_for(k)
            if check is not None and v is not None and not check.ok(v):
                raise UserError(f"method {self.name!r}: {k} must be {check.describe()}, got {v!r}")
        for kind, keys in type(self).artefacts.items():
            missing = [k for k in keys if k not in self.defaults]
            if missing:  # a programming error in the method file
                raise TypeError(f"method {self.name!r}: artefact {kind!r} is keyed by unknown hyperparameter {missing[0]!r}")
        self.validate()

    @classmethod
    def check_for(cls, key: str) -> Check | None:
        if key in cls.checks:
            return cls.checks[key]
        if key in COMMON_CHECKS:
            return COMMON_CHECKS[key]
        return gt(0) if key.endswith("_lr") else None

    def validate(self) -> None:
        """Checks across hyperparameters (override; raise UserError with one line)."""

    def access(self) -> Access:  # pragma: no cover - every method overrides
        raise NotImplementedError

    def needs(self) -> tuple[str, ...]:
        """The artefact kinds this instance reads (default: every declared kind)."""
        return tuple(self.artefacts)

    def artefact_settings(self, kind: str) -> dict[str, Any]:
        """The hyperparameters that determine artefact `kind` (they key its path)."""
        return {k: self.hp[k] for k in self.artefacts[kind]}

    def unlearn(self, model, data: UnlearnData, ctx: Context):  # pragma: no cover
        raise NotImplementedError


_METHODS: dict[str, type[UnlearningMethod]] = {}


def register_method(name: str):
    def deco(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
        if name in _METHODS:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls
    return deco


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> type[UnlearningMethod]:
    if name not in _METHODS:
        raise UserError(f"unknown unlearning method {name!r}; available: {', '.join(list_methods())}")
    return _METHODS[name]


def create_method(spec: dict[str, Any]) -> UnlearningMethod:
    """Instantiate from a config instance: {'method': <registered name>, <hyperparameters>...}.
    The reserved keys `tune` / `tune_as` name tuning entries; their locked values are merged in by tuning.resolve_cell."""
    spec = {k: v for k, v in spec.items() if k not in ("tune", "tune_as")}
    return get_method(spec.pop("method"))(**spec)
