"""Techniques shared by two or more methods, or by a method and a metric (timm's `layers/`).

Imported only inside jobs (they may import torch at module level)."""

from __future__ import annotations
