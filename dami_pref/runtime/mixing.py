"""Every λ in one transformers batch: each parametrised leaf adds (λ_row − λ_live)·f(x; Δ).

Every leaf of a decoder that holds parameters (linear layers with or without bias, embeddings,
RMSNorm and LayerNorm) is linear in its own parameters, so with the live weights at λ_live and
Δ = Θ_T − Θ_I, f(x; Θ(λ_row)) = f(x; Θ(λ_live)) + (λ_row − λ_live)·f(x; Δ): attention and
activations then run once on the mixed hidden states, and one batch holds every λ exactly. The
cost is a second pass of each leaf over Δ. A batch whose rows all sit at λ_live takes the plain
path (no second pass).

Modules holding parameters of another kind (a norm with an offset such as Gemma's ``1 + w``,
fused experts, anything unknown) are refused by name when mixing is turned on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import DamiPrefError

# RMSNorm classes computing weight * normalize(x) (weight only, no offset), by class name.
PLAIN_RMS_NORMS = frozenset({"Qwen3RMSNorm", "Qwen2RMSNorm", "LlamaRMSNorm", "MistralRMSNorm",
                             "Qwen3MoeRMSNorm", "Qwen2MoeRMSNorm", "Phi3RMSNorm"})


class RowOffsets:
    """λ_row − λ_live for the batch being decoded, shaped to broadcast over a leaf's output
    (rows first); None outside a mixed batch."""

    def __init__(self) -> None:
        self.values: torch.Tensor | None = None
        self._views: dict[int, torch.Tensor] = {}

    def set(self, values: torch.Tensor | None) -> None:
        self.values, self._views = values, {}

    def like(self, out: torch.Tensor) -> torch.Tensor:
        view = self._views.get(out.dim())
        if view is None:
            view = self._views[out.dim()] = self.values.view(
                out.shape[0], *([1] * (out.dim() - 1)))
        return view


def _linear(module: nn.Linear, delta: Callable[[], tuple], rows: RowOffsets):
    original = type(module).forward

    def forward(x):
        out = original(module, x)
        if rows.values is None:
            return out
        weight, bias = delta()
        return torch.addcmul(out, rows.like(out), F.linear(x, weight, bias))
    return forward


def _embedding(module: nn.Embedding, delta, rows: RowOffsets):
    original = type(module).forward

    def forward(ids):
        out = original(module, ids)
        if rows.values is None:
            return out
        weight, _ = delta()
        moved = F.embedding(ids, weight, module.padding_idx, module.max_norm, module.norm_type,
                            module.scale_grad_by_freq, module.sparse)
        return torch.addcmul(out, rows.like(out), moved)
    return forward


def _rms_norm(module, delta, rows: RowOffsets):
    """weight · normalize(x), as transformers' RMSNorm classes compute it, with the weight of
    each row moved by its offset (a row at offset 0 gets exactly the plain result)."""
    original = type(module).forward
    eps = getattr(module, "variance_epsilon", getattr(module, "eps", 1e-6))

    def forward(x):
        if rows.values is None:
            return original(module, x)
        h = x.to(torch.float32)
        normed = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
        weight, _ = delta()
        return torch.addcmul(module.weight, rows.like(normed), weight) * normed
    return forward


def _layer_norm(module: nn.LayerNorm, delta, rows: RowOffsets):
    original = type(module).forward

    def forward(x):
        out = original(module, x)
        if rows.values is None:
            return out
        weight, bias = delta()
        normed = F.layer_norm(x, module.normalized_shape, None, None, module.eps)
        moved = normed * weight if bias is None else torch.addcmul(bias, normed, weight)
        return torch.addcmul(out, rows.like(out), moved)
    return forward


def leaf_kind(module: nn.Module) -> str | None:
    """How a module with parameters of its own mixes, or None if it is not known to be linear
    in its parameters."""
    own = {name for name, _ in module.named_parameters(recurse=False)}
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Embedding):
        return "embedding"
    if isinstance(module, nn.LayerNorm):
        return "layer_norm"
    if type(module).__name__ in PLAIN_RMS_NORMS and own == {"weight"}:
        return "rms_norm"
    return None


MIXERS = {"linear": _linear, "embedding": _embedding, "rms_norm": _rms_norm,
          "layer_norm": _layer_norm}


def check_leaves(model: nn.Module) -> dict[str, str]:
    """Every module holding parameters, with how it mixes; any other kind refused by name."""
    kinds = {}
    for name, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        kind = leaf_kind(module)
        if kind is None:
            raise DamiPrefError(
                f"mixed-λ batches need every parametrised module to be linear in its parameters; "
                f"{name} ({type(module).__name__}) is not known to be: use --lambda_batching "
                "grouped for this model")
        kinds[name] = kind
    return kinds


def mix_leaves(model: nn.Module, delta_of: Callable[[nn.Parameter], torch.Tensor],
               rows: RowOffsets) -> int:
    """Make every parametrised leaf of ``model`` add the rows' offset times f(x; Δ).

    ``delta_of(parameter)`` is Δ for one of the model's parameters (a tied output layer shares its
    embedding's Δ, since both hold one Parameter). Returns how many leaves mix.
    """
    kinds = check_leaves(model)
    for name, kind in kinds.items():
        module = model.get_submodule(name)

        def delta(module=module):
            bias = getattr(module, "bias", None)
            return delta_of(module.weight), None if bias is None else delta_of(bias)

        module.forward = MIXERS[kind](module, delta, rows)
    return len(kinds)
