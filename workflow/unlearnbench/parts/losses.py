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
