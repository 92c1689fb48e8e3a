"""Checks on weights: a NaN or inf weight is named before it spreads into results."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..errors import DamiPrefError


def non_finite(named: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an inf."""
    return [name for name, tensor in named
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def check_finite(named: Iterable[tuple[str, torch.Tensor]], where: str) -> None:
    """A DamiPrefError naming the first broken tensor of ``where``, if any."""
    bad = non_finite(named)
    if bad:
        raise DamiPrefError(f"{where}: {len(bad)} weight tensor(s) hold NaN or inf (e.g. "
                            f"{bad[0]}); the checkpoint is broken")
