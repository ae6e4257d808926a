"""Distillation losses shared by several methods (KD with a temperature: MuGAN, SCRUB, Bad Teacher)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Batch mean of KL(softmax(teacher / T) || softmax(student / T)) * T^2 (Hinton et al. 2015)."""
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits / t, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(1).mean() * t * t


def attention_map(activation: torch.Tensor) -> torch.Tensor:
    """Spatial attention of a [B, C, H, W] activation: the channel mean of a^2, flattened and
    L2-normalised per sample (Zagoruyko & Komodakis 2017, as used by ZSKT and GKT)."""
    return F.normalize(activation.pow(2).mean(1).flatten(1), dim=1)


def attention_transfer(student_acts: list[torch.Tensor], teacher_acts: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of mean((att(student) - att(teacher))^2) (GKT's L_at, Eq. 5 of the thesis;
    the reference code's per-layer mean of squared differences of normalised attention maps)."""
    if len(student_acts) != len(teacher_acts) or not student_acts:
        raise ValueError(f"attention transfer needs matching, non-empty activation lists "
                         f"({len(student_acts)} vs {len(teacher_acts)})")
    return sum((attention_map(s) - attention_map(t)).pow(2).mean() for s, t in zip(student_acts, teacher_acts))
