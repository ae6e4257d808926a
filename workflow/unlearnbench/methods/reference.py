"""Reference rows of every table: the original model and the retrained gold model.

They are not run by the unlearning stage: the pipeline maps them to the checkpoints made by
`train_original` and `train_retrain` (retrain's time is its training time). `replica: r >= 1` is
an independent retrain (another initialisation and batch order): the row "retrain vs retrain"
that shows how far two gold models differ (the noise floor of every gap). With `seed_cycle: [s0, s1, ...]`
that row reads the gold retrain of the next seed of the cycle instead of training one more model: the
data, split and forget request do not depend on the seed, so another seed's retrain is an independent
gold model of the same request, and the noise floor costs no training.
"""

from __future__ import annotations

from ..errors import UserError
from ._base import Access, UnlearningMethod, ge, register_method


@register_method("original")
class Original(UnlearningMethod):
    kind = "reference"

    def access(self) -> Access:
        return Access(label_text="— (no unlearning)")


@register_method("retrain")
class Retrain(UnlearningMethod):
    kind = "reference"
    defaults = {"replica": 0, "seed_cycle": []}
    checks = {"replica": ge(0)}

    def validate(self) -> None:
        cycle = self.hp["seed_cycle"]
        if not cycle:
            return
        if not self.hp["replica"]:
            raise UserError("method 'retrain': seed_cycle makes a noise-floor row; give it with replica: 1 "
                            "(replica 0 is the gold model every gap is measured against)")
        if (len(cycle) < 2 or len(set(cycle)) != len(cycle)
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in cycle)):
            raise UserError(f"method 'retrain': seed_cycle must list two or more distinct integer seeds, got {cycle!r}")

    def partner_seed(self, seed: int) -> int | None:
        """The seed whose gold retrain is this row's model at `seed` (None: its own replica is trained).
        check_config has made sure every seed of a study that lists this row is in the cycle."""
        cycle = self.hp["seed_cycle"]
        return cycle[(cycle.index(seed) + 1) % len(cycle)] if cycle else None

    def access(self) -> Access:
        return Access(retain="full", label_text="retain (retrain from scratch)")
