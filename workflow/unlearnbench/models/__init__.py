"""Model registry (timm-style): one name, one constructor, discoverable with `list_models()`.

Every constructor takes `in_channels`, `num_classes`, `image_size` plus its own keyword arguments
and returns a module with `forward_features(x)` (penultimate features) and a linear `head`.
`build_model` wraps it in a `Classifier` that normalises [0,1] pixels inside the model, so every
unlearning method works in pixel space.

This module is torch-free: `list_models()` and `model_arguments()` read the architecture files'
source (every function decorated `@register_model`), so the config is checked when Snakemake
builds the DAG without importing torch; `build_model` imports the architectures inside a job.
"""

from __future__ import annotations

from ._registry import BUILD_ARGS, list_models, model_arguments, register_model

__all__ = ["BUILD_ARGS", "build_model", "list_models", "model_arguments", "register_model"]


def build_model(arch: str, **kwargs):
    """Build a registered architecture wrapped in a Classifier."""
    from ._builder import build_model as _build  # imports torch: not while the DAG is built

    return _build(arch, **kwargs)
