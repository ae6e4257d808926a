"""Reference rows of every table: the original model and the retrained gold model.

They are not run by the unlearning stage: the pipeline maps them to the checkpoints made by
`train_original` and `train_retrain` (retrain's time is its training time). `replica: r >= 1` is
an independent retrain (another initialisation and batch order): the row "retrain vs retrain"
that shows how far two gold models differ (the noise floor of every gap).
"""

from __future__ import annotations

from ._base import Access, UnlearningMethod, ge, register_method


@register_method("original")
class Original(UnlearningMethod):
    kind = "reference"

    def access(self) -> Access:
        return Access(label_text="— (no unlearning)")


@register_method("retrain")
class Retrain(UnlearningMethod):
    kind = "reference"
    defaults = {"replica": 0}
    checks = {"replica": ge(0)}

    def access(self) -> Access:
        return Access(retain="full", label_text="retain (retrain from scratch)")
