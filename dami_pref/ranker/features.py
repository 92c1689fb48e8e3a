"""How the head sees a candidate λ, and how the backbone's states are pooled."""

from __future__ import annotations

import math

import torch

N_FREQUENCIES = 4
N_FEATURES = 2 + 2 * N_FREQUENCIES


def lambda_features(lams: torch.Tensor) -> torch.Tensor:
    """[λ, λ², sin(kπλ), cos(kπλ) for k = 1..4]: smooth in λ, rich enough to tell grid points apart."""
    lams = lams.reshape(-1, 1)
    k = torch.arange(1, N_FREQUENCIES + 1, dtype=lams.dtype, device=lams.device)
    angles = math.pi * lams * k
    return torch.cat([lams, lams ** 2, torch.sin(angles), torch.cos(angles)], dim=-1)


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The state of each row's last real (non-pad) token, whatever side the padding is on.

    Reward models that pooled "the last token" on padded batches have pooled a pad token; this
    finds the last position whose mask is 1 explicitly.
    """
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (attention_mask.long() * positions).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
