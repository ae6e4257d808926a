"""Barlow Twins redundancy-reduction loss (Zbontar et al. 2021) as DAU's self-supervised regulariser
(paper 003, Sec. 3.4, Eq. 2) between forget-set and validation-set features of the defender.

For two batches za, zb [B, D] whose rows are paired (row b of za with row b of zb):
    z  <- z - mean_b z                              (mean-centred per dimension)
    C_ij = sum_b za_bi zb_bj / (sqrt(sum_b za_bi^2) sqrt(sum_b zb_bj^2))
    V_ss = sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2,   lambda = 5e-3 (paper, from [62])
(the paper's normalisation; it equals Barlow Twins' batch-standardised C). A dimension that is
constant over the batch (a dead ReLU) has C_i. = 0 and no gradient; `eps` keeps the division finite.

Pairing (the paper sums over a common batch index b without saying how forget and validation
samples are matched; `pair_indices`): "random" (default, choice): index-aligned independent random
batches, as Algorithm 1 samples them; "class": each forget sample is paired with a random
validation sample of the same label (the paper's suggested class-aware variant), falling back to
any validation sample when the label has none.
"""

from __future__ import annotations

import torch

from ...runtime import sqrt

PAIRINGS = ("random", "class")


def cross_correlation(za: torch.Tensor, zb: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    if za.shape != zb.shape or za.dim() != 2:
        raise ValueError(f"barlow twins: need two [B, D] batches of the same shape, got {tuple(za.shape)} and {tuple(zb.shape)}")
    za = za - za.mean(0, keepdim=True)
    zb = zb - zb.mean(0, keepdim=True)
    na = sqrt(za.pow(2).sum(0).add(eps))
    nb = sqrt(zb.pow(2).sum(0).add(eps))
    return (za.t() @ zb) / (na[:, None] * nb[None, :])


def barlow_twins(za: torch.Tensor, zb: torch.Tensor, lambd: float = 5e-3, eps: float = 1e-8
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """V_ss (Eq. 2) and its parts {"on_diag", "off_diag"} (off_diag before the lambda weight)."""
    c = cross_correlation(za.float(), zb.float(), eps)
    diag = torch.diagonal(c)
    on = (1 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return on + lambd * off, {"on_diag": on.item(), "off_diag": off.item()}


def pair_indices(y_forget: torch.Tensor, y_val: torch.Tensor, gen: torch.Generator, mode: str = "class") -> torch.Tensor:
    """For "class" pairing: an index into the validation set for each forget sample (same label if
    the validation set has it, else any). CPU tensors."""
    if mode != "class":
        raise ValueError(f"pair_indices is for class pairing, got {mode!r}")
    y_forget, y_val = y_forget.cpu(), y_val.cpu()
    u = torch.rand(len(y_forget), generator=gen)
    out = torch.empty(len(y_forget), dtype=torch.long)
    for c in torch.unique(y_forget).tolist():
        rows = (y_forget == c).nonzero().flatten()
        pool = (y_val == c).nonzero().flatten()
        if len(pool) == 0:
            pool = torch.arange(len(y_val))
        out[rows] = pool[(u[rows] * len(pool)).long().clamp_max(len(pool) - 1)]
    return out
