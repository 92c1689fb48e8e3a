"""The ranker's objectives as small pure functions (tested against hand-computed numbers).

``pref`` (DAMI-Pref): BCE(σ(r(q, λc) − r(q, λr) − margin), 1) = −log σ(r_c − r_r − margin), optionally
weighted per pair. Each problem's pairs are averaged first, then problems are averaged, so a
problem with many pairs does not outweigh one with few, and the loss of a batch equals the mean
of its micro-batches' losses (gradient accumulation and data parallelism change nothing).
``pred`` (DAMI-Pred): mean squared error between predicted and oracle λ*.
``route`` (DAMI-Routing): BCE on whether Instruct (the lowest λ) answers wrongly, so the
question should go to Thinking; a label with two classes on any pair.
``acc`` (accuracy first): BCE between r(q, λ) read as a logit and the accuracy measured at λ,
for every λ of the grid, so σ(r) is the predicted chance that λ answers right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_bce(chosen: torch.Tensor, rejected: torch.Tensor, problem: torch.Tensor,
                 n_problems: int, margin: float = 0.0,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over problems of the (weighted) mean pairwise loss of each problem's pairs.

    chosen, rejected: scores of each pair's two candidates, shape [P]; problem: the index of
    the problem each pair belongs to, in [0, n_problems); every problem must have a pair.
    """
    per_pair = -F.logsigmoid(chosen - rejected - margin)
    w = torch.ones_like(per_pair) if weights is None else weights.to(per_pair.dtype)
    num = torch.zeros(n_problems, dtype=per_pair.dtype, device=per_pair.device)
    den = torch.zeros_like(num)
    num.index_add_(0, problem, w * per_pair)
    den.index_add_(0, problem, w)
    return (num / den.clamp_min(torch.finfo(den.dtype).tiny)).mean()


def pred_mse(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DAMI-Pred: squared error between predicted λ (in [0, 1]) and λ*."""
    return F.mse_loss(predicted, target.to(predicted.dtype))


def route_bce(logits: torch.Tensor, thinking: torch.Tensor) -> torch.Tensor:
    """DAMI-Routing: binary cross-entropy on 'Instruct answers wrongly' (send to Thinking);
    graded targets (1 − accuracy over samples) are allowed."""
    return F.binary_cross_entropy_with_logits(logits, thinking.to(logits.dtype))


def correctness_bce(logits: torch.Tensor, acc: torch.Tensor) -> torch.Tensor:
    """Accuracy first: BCE of each candidate's logit [problems × grid] against its measured
    accuracy (0/1, or graded over samples), averaged over the grid and then the problems."""
    return F.binary_cross_entropy_with_logits(logits.float(), acc.to(torch.float32))
