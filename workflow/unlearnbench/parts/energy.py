"""Free energy of a classifier's logits (Liu et al. 2020) and CLUE's energy loss (paper 000, Eqs 1-2)."""

from __future__ import annotations

from ..errors import UserError
from ..infra.lazy import torch

ENERGY_VARIANTS = ("paper", "logit_norm")


def free_energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Helmholtz free energy E(x) = -T log sum_c exp(z_c / T) per sample (Eq. 1). OOD score = -E."""
    return -temperature * torch.logsumexp(logits / temperature, dim=1)


def neg_free_energy(logits, temperature: float = 1.0):
    """The OOD score of Fig. 4 (-HFE; higher = more in-distribution). Accepts NumPy or torch."""
    t = torch.as_tensor(logits, dtype=torch.float64)
    return (-free_energy(t, temperature)).numpy()


def energy_loss(logits: torch.Tensor, temperature: float = 1.0, variant: str = "paper") -> torch.Tensor:
    """CLUE's energy loss: the mean partition function (1/|B|) sum_k sum_c exp(z_kc / T) (Eq. 2).

    variant "paper": fixed temperature T; "logit_norm": the reference code's per-sample temperature
    T_k = ||z_k||_2 (gradient flows through the norm, as in the code).
    """
    if variant == "paper":
        if temperature <= 0:
            raise UserError(f"energy temperature must be > 0, got {temperature}")
        return torch.exp(logits / temperature).sum(1).mean()
    if variant == "logit_norm":
        norm = logits.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return torch.exp(logits / norm).sum(1).mean()
    raise UserError(f"unknown energy variant {variant!r}; use {' or '.join(ENERGY_VARIANTS)}")
