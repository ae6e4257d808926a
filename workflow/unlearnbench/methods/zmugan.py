"""zMuGAN (paper 002, Sec. 3.1, Algs. 5, 6 and 8): zero-shot class unlearning; no data at all.

Stages (each its own file and rule; the functions live in parts/):
1. train_kegnet (parts/kegnet.run_train_inversion, rules/artefacts/kegnet.smk): `inv_members`
   KegNet-style conditional generators inverted from the frozen original model alone (Alg. 6,
   Eq. 11), one file per member, each from its own seed (artefact "kegnet", settings
   INVERSION_KEYS; the member count is not a key, so a smaller ensemble reuses the first members).
   The rule's only input is the original checkpoint: zero-shot is visible in the DAG.
2. make_synthetic (parts/synthetic.run_make_synthetic, kind "inversion"): `samples_per_class`
   images per class shared between the members, each kept only if the original model predicts the
   class the generator was conditioned on; the artefact "synthetic_inversion" is that .npz
   (settings INVERSION_KEYS + inv_members + SAMPLE_KEYS), with a PNG grid under
   results/figures/synthetic/. Independent of the forget request. Both artefacts are declared, so
   the inversion time is part of every zMuGAN run's artefact cost.
3. unlearn: Alg. 8, exactly as MuGAN (methods/mugan.impair_repair).
Multi-class forgetting works unchanged; random (sample) forgetting is not supported.

Choice: the thesis draws the ensemble's samples with random labels and splits them by the original's
prediction (Alg. 5, 5 generators x 1000 samples); here every class gets a fixed quota of filtered
samples (the same filter keeps exactly the samples whose prediction equals their label), so the
forget and retain sets have a known size. Defaults of the inversion: KegNet's SVHN setting.
"""

from __future__ import annotations

from ._base import Access, UnlearningMethod, ge, one_of, register_method
from .mugan import SAMPLE_CHECKS, SAMPLE_KEYS, UNLEARN_CHECKS, UNLEARN_DEFAULTS, unlearn_from_synthetic

# Mirrors parts/kegnet.INVERSION_KEYS (kept here: this file must not import torch).
INVERSION_KEYS = ("inv_noise_dim", "inv_width", "inv_steps", "inv_batch_size", "inv_lr", "inv_alpha", "inv_beta",
                  "inv_div_metric", "inv_dec_layers", "inv_output")


@register_method("zmugan")
class ZMuGAN(UnlearningMethod):
    defaults = {
        # inversion ensemble (rule train_kegnet, one job per member)
        "inv_members": 5,        # paper (Sec. 5.2, after KegNet)
        "inv_noise_dim": 10,     # KegNet
        "inv_width": 64,         # KegNet (channels 64, 16, 4 at 32x32)
        "inv_steps": 20000,      # KegNet code (200 epochs x 100 batches)
        "inv_batch_size": 256,   # KegNet code
        "inv_lr": 1e-2,          # KegNet code (SVHN)
        "inv_alpha": 1.0,        # KegNet code (SVHN)
        "inv_beta": 1.0,         # KegNet code (SVHN)
        "inv_div_metric": "l2",  # paper (Alg. 6: metric='L2'; KegNet's code uses l1)
        "inv_dec_layers": 3,     # KegNet code (SVHN)
        "inv_output": "tanh",    # choice: tanh -> [0,1] pixels; "standardize" = KegNet's per-image standardisation
        # filtered sampling (rule make_synthetic)
        "samples_per_class": 500,  # choice: ~ the thesis's 5 x 1000 samples over 10 classes
        "max_draw_factor": 20.0,   # choice
        "sample_batch": 256,       # KegNet code (sampling loader batch)
        "min_fill": 1.0,           # choice: every class full (see mugan)
        **UNLEARN_DEFAULTS,        # lr 1e-4: paper (Table 14, VGG16 SVHN best)
    }
    checks = {"inv_members": ge(1), "inv_noise_dim": ge(1), "inv_width": ge(4), "inv_steps": ge(1),
              "inv_batch_size": ge(2), "inv_alpha": ge(0), "inv_beta": ge(0), "inv_div_metric": one_of("l1", "l2"),
              "inv_output": one_of("tanh", "standardize"),
              "inv_dec_layers": ge(0), **SAMPLE_CHECKS, **UNLEARN_CHECKS}
    supports = frozenset({"class"})
    smoke = {"inv_members": 2, "inv_steps": 200, "inv_batch_size": 32, "inv_dec_layers": 1, "samples_per_class": 20,
             "max_draw_factor": 100.0, "lr": 1.0e-3}
    artefacts = {"kegnet": INVERSION_KEYS, "synthetic_inversion": INVERSION_KEYS + ("inv_members",) + SAMPLE_KEYS}

    def access(self) -> Access:
        return Access()  # "none (zero-shot)"

    def unlearn(self, model, data, ctx):
        return unlearn_from_synthetic(self, "synthetic_inversion", model, data, ctx)
