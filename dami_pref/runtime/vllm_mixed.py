"""Every λ in one vLLM batch: the model holds Θ_I and Δ = Θ_T − Θ_I, and each token carries its
request's λ.

Every parametrised leaf of a decoder is linear in its own parameters, so
f(x; Θ_I + λΔ) = f(x; Θ_I) + λ·f(x; Δ): each leaf adds λ_token·f(x; Δ) to its Instruct output, and
attention and activations run once on the mixed hidden states. A batch whose tokens belong to
requests of different λ is therefore exact in one forward, and vLLM's continuous batching runs
every λ together.

The pieces, all on vLLM's public extension points but one:
- ``DamiMixed<Arch>``: a subclass of vLLM's own model class for the pair's architecture, with a
  second instance of that class holding Δ (its attention layers are never run and get no KV
  cache). Its ``load_weights`` streams the Instruct weights vLLM reads and computes Δ from the
  Thinking folder tensor by tensor (float32, rounded once), so no merged copy is ever written.
  Registered from a ``vllm.general_plugins`` entry point, so every vLLM process knows it.
- :class:`LambdaSlots`: a logits processor (vLLM's public per-request state) that keeps the λ of
  each persistent-batch slot from ``SamplingParams.extra_args["dami_lambda"]``, written into a
  static buffer before every forward; it changes no logits.
- which slot each scheduled token belongs to is vLLM-internal: :mod:`.vllm_internals` hands the
  model runner's own per-token buffer to the model, once, at load.
The buffers are static (allocated once, filled in place), so a CUDA graph captured over the
forward reads the current step's λ.
"""

from __future__ import annotations

import math
import types
from pathlib import Path

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from .vllm_internals import LAMBDA_KEY, MIXED_PREFIX, base_model_class

DELTA_PREFIX = "dami_delta"


class LambdaTable(torch.nn.Module):
    """λ per persistent-batch slot and per scheduled token, in static buffers on the device."""

    def __init__(self, max_slots: int, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("slots", torch.zeros(max_slots, dtype=torch.float32,
                                                  device=device), persistent=False)
        self.register_buffer("tokens", torch.zeros(0, dtype=dtype, device=device),
                             persistent=False)
        self.req_indices: torch.Tensor | None = None  # the model runner's, bound at load

    def bind(self, req_indices: torch.Tensor) -> None:
        """Take the model runner's per-token slot buffer (filled before every forward)."""
        self.req_indices = req_indices
        self.tokens = torch.zeros(req_indices.shape[0], dtype=self.tokens.dtype,
                                  device=self.slots.device)

    def gather(self, n: int) -> None:
        """λ of each of the step's ``n`` tokens, from its request's slot (in place)."""
        if self.req_indices is None:
            raise RuntimeError("dami-pref's mixed-λ model was not bound to vLLM's model runner; "
                               "this vLLM version is not supported (see vllm_internals)")
        if self.tokens.dtype == torch.float32:
            torch.index_select(self.slots, 0, self.req_indices[:n], out=self.tokens[:n])
        else:  # λ kept in float32 per slot, rounded once to the model's dtype per token
            self.tokens[:n].copy_(self.slots.index_select(0, self.req_indices[:n]))


_TABLE: LambdaTable | None = None  # the model of this process (one engine per process)


def _lam_like(table: LambdaTable, out: torch.Tensor) -> torch.Tensor:
    """The step's per-token λ, shaped to broadcast over one leaf's output (tokens first)."""
    lam = table.tokens[:out.shape[0]]  # a slice of the static buffer: graph-safe
    return lam[:, None] if out.dim() == 2 else lam.view(-1, *([1] * (out.dim() - 1)))


def _fused_linear(module, table):
    """One GEMM over [W_I; Δ] (stacked on the output dimension at load), then
    y = y_I + λ·y_Δ: one more elementwise pass than a plain layer, no second GEMM call."""
    original, width = type(module).forward, module.weight.shape[0] // 2

    def forward(x):
        out = original(module, x)
        both, bias = (out[0], out[1]) if isinstance(out, tuple) else (out, None)
        mixed = torch.addcmul(both[..., :width], _lam_like(table, both), both[..., width:])
        if not isinstance(out, tuple):
            return mixed
        return mixed, bias if bias is None else bias[:width]  # skip_bias_add: Δb is dropped
    return forward


def _mixed_linear(module, delta, table):
    """Two GEMMs (a layer whose output is gathered across ranks cannot be stacked)."""
    original = type(module).forward

    def forward(x):
        base, d = original(module, x), delta(x)
        if isinstance(base, tuple):
            return torch.addcmul(base[0], _lam_like(table, base[0]), d[0]), base[1]
        return torch.addcmul(base, _lam_like(table, base), d)
    return forward


def _mixed_embedding(module, delta, table):
    original = type(module).forward

    def forward(ids):
        base = original(module, ids)
        return torch.addcmul(base, _lam_like(table, base), delta(ids))
    return forward


def _mixed_rms_norm(module, delta, table):
    from vllm import ir

    eps, size = module.variance_epsilon, module.variance_size_override
    weight, delta_weight = module.weight, delta.weight

    def forward(x, residual=None):
        if residual is None:
            normed = ir.ops.rms_norm(x, None, eps, size)
        else:  # out of place: both weights see the same sum
            normed, residual = ir.ops.fused_add_rms_norm(x, residual, None, eps, size)
        out = normed * torch.addcmul(weight, _lam_like(table, normed), delta_weight)
        return out if residual is None else (out, residual)
    return forward


def _leaf_kind(module) -> str | None:
    """How a module with parameters of its own mixes, or None if it is not known to be linear
    in its parameters."""
    from vllm.model_executor.layers.layernorm import RMSNorm
    from vllm.model_executor.layers.linear import LinearBase, UnquantizedLinearMethod
    from vllm.model_executor.layers.vocab_parallel_embedding import (ParallelLMHead,
                                                                     VocabParallelEmbedding)

    if isinstance(module, ParallelLMHead):
        return "lm_head"  # mixed in compute_logits
    if isinstance(module, VocabParallelEmbedding):
        return "embedding"
    if isinstance(module, LinearBase) and isinstance(module.quant_method,
                                                     UnquantizedLinearMethod):
        return "linear"
    if isinstance(module, RMSNorm) and module.has_weight:
        return "rms_norm"
    return None


def check_leaves(model: torch.nn.Module) -> dict[str, str]:
    """Every module of ``model`` holding parameters, with how it mixes; a module not known to be
    linear in its parameters is refused by name, before any weight is read."""
    kinds = {}
    for name, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        kind = _leaf_kind(module)
        if kind is None:
            raise ValueError(f"mixed-λ batches need every parametrised module to be linear in its "
                             f"parameters; {name} ({type(module).__name__}) is not known to be: "
                             "use --lambda_batching grouped for this model")
        kinds[name] = kind
    return kinds


def _stack_into(module, twin) -> None:
    """[W_I; Δ] (and [b_I; Δb]) in ``module``, stacked on the output dimension."""
    module.weight.data = torch.cat([module.weight.data, twin.weight.data], dim=0)
    if getattr(module, "bias", None) is not None:
        module.bias.data = torch.cat([module.bias.data, twin.bias.data], dim=0)


def mix_leaves(model: torch.nn.Module, delta: torch.nn.Module, kinds: dict[str, str],
               table: LambdaTable) -> None:
    """Make every leaf add λ_token·f(x; Δ), once both weights are loaded: linear layers stack
    [W_I; Δ] into one weight (Δ's own layer is then dropped), the rest call their twin."""
    for name, kind in kinds.items():
        module, twin = model.get_submodule(name), delta.get_submodule(name)
        if kind == "linear" and not getattr(module, "gather_output", False):
            _stack_into(module, twin)
            parent, _, leaf = name.rpartition(".")
            setattr(delta.get_submodule(parent) if parent else delta, leaf, torch.nn.Identity())
            module.forward = _fused_linear(module, table)
        elif kind == "linear":
            module.forward = _mixed_linear(module, twin, table)
        elif kind == "embedding":
            module.forward = _mixed_embedding(module, twin, table)
        elif kind == "rms_norm":
            module.forward = _mixed_rms_norm(module, twin, table)


class MixedLambdaMixin:
    """Put before a vLLM model class (``DamiMixed<Arch>``): Θ_I, Δ, and λ per token."""

    dami_base_class: type

    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        global _TABLE
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        config = vllm_config.model_config.hf_config
        if getattr(config, "final_logit_softcapping", None):
            raise ValueError("mixed-λ batches: logit soft-capping is not linear in the output "
                             "layer's weights; use grouped λ batches for this model")
        self.dami_leaves = check_leaves(self)  # before Δ exists: refused before any weight
        delta_prefix = f"{prefix}.{DELTA_PREFIX}" if prefix else DELTA_PREFIX
        self.dami_delta = self.dami_base_class(vllm_config=vllm_config, prefix=delta_prefix)
        context = vllm_config.compilation_config.static_forward_context
        for layer in [k for k in context if k.startswith(delta_prefix + ".")]:
            del context[layer]  # Δ's attention never runs: no KV cache for it
        first = next(self.parameters())
        self.dami_table = LambdaTable(vllm_config.scheduler_config.max_num_seqs, first.device,
                                      first.dtype)
        self.dami_thinking = config.dami_thinking
        _TABLE = self.dami_table

    def dami_bind(self, req_indices: torch.Tensor) -> None:
        self.dami_table.bind(req_indices)

    def forward(self, input_ids, positions, *args, **kwargs):
        self.dami_table.gather(positions.shape[-1])
        return super().forward(input_ids, positions, *args, **kwargs)

    def compute_logits(self, hidden_states: torch.Tensor):
        base = super().compute_logits(hidden_states)
        if base is None:  # not the last pipeline rank
            return None
        delta = self.dami_delta.compute_logits(hidden_states)
        # one row per request, in slot order (no speculative decoding, no prompt logprobs)
        lam = self.dami_table.slots[:base.shape[0]].to(base.dtype).unsqueeze(-1)
        return torch.addcmul(base, lam, delta)

    def load_weights(self, weights):
        thinking = ThinkingTensors(Path(self.dami_thinking))
        delta_loaded: set[str] = set()

        def instruct_then_delta():
            for name, tensor in weights:
                delta = thinking.get(name).float() - tensor.float()
                delta_loaded.update(self.dami_delta.load_weights([(name, delta)]))
                yield name, tensor

        loaded = super().load_weights(instruct_then_delta())
        thinking.close()
        mix_leaves(self, self.dami_delta, self.dami_leaves, self.dami_table)
        return set(loaded or ()) | {f"{DELTA_PREFIX}.{n}" for n in delta_loaded}


class ThinkingTensors:
    """The Thinking checkpoint's tensors by name, read one at a time (safetensors only)."""

    def __init__(self, folder: Path) -> None:
        from safetensors import safe_open

        from .checkpoints import safetensors_files

        self.handles, self.where = [], {}
        for file in safetensors_files(folder):
            handle = safe_open(str(file), framework="pt")
            self.handles.append(handle)
            for name in handle.keys():
                self.where[name] = handle
        self.folder = folder

    def get(self, name: str) -> torch.Tensor:
        if name not in self.where:
            raise ValueError(f"{self.folder} has no tensor {name!r}; the pair must hold the same "
                             "tensors")
        return self.where[name].get_tensor(name)

    def close(self) -> None:
        self.handles, self.where = [], {}


def mixed_class(base_cls: type) -> type:
    """``DamiMixed<Arch>``: vLLM's class for the architecture with Θ_I, Δ and λ per token."""
    return types.new_class(MIXED_PREFIX + base_cls.__name__, (MixedLambdaMixin, base_cls), {},
                           lambda ns: ns.update(dami_base_class=base_cls, __module__=__name__))


def __getattr__(name: str):
    """``DamiMixedQwen3ForCausalLM`` and the like, built on demand for vLLM's lazy registry."""
    if not name.startswith(MIXED_PREFIX):
        raise AttributeError(name)
    base = base_model_class(name[len(MIXED_PREFIX):])
    if base is None:
        raise AttributeError(name)
    cls = mixed_class(base)
    globals()[name] = cls
    return cls


def _lambda_of(params) -> float:
    lam = (params.extra_args or {}).get(LAMBDA_KEY) if params is not None else None
    return 0.0 if lam is None else float(lam)


class LambdaSlots(LogitsProcessor):
    """λ of every request in the persistent batch, by slot, from
    ``SamplingParams.extra_args["dami_lambda"]`` (0 when absent); copied into the model's static
    buffer before every forward, changed or not, so the buffer is never stale. Changes no logits.
    """

    @classmethod
    def validate_params(cls, sampling_params) -> None:
        if sampling_params.prompt_logprobs is not None:
            raise ValueError("prompt_logprobs: the mixed-λ model computes one row of logits per "
                             "request; use grouped λ batches for prompt log-probabilities")
        lam = (sampling_params.extra_args or {}).get(LAMBDA_KEY)
        if lam is None:
            return
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) \
                or not math.isfinite(lam) or not 0.0 <= lam <= 1.0:
            raise ValueError(f"extra_args[{LAMBDA_KEY!r}] must be a number in [0, 1], got "
                             f"{lam!r}")

    def __init__(self, vllm_config, device, is_pin_memory) -> None:
        self.lams = torch.zeros(vllm_config.scheduler_config.max_num_seqs, dtype=torch.float32,
                                pin_memory=is_pin_memory)

    def is_argmax_invariant(self) -> bool:
        return True

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is not None:  # vLLM's order: removed (nothing to do), added, moved
            for index, params, _, _ in batch_update.added:
                self.lams[index] = _lambda_of(params)
            for a, b, direction in batch_update.moved:
                if direction == MoveDirectionality.SWAP:
                    self.lams[[a, b]] = self.lams[[b, a]]
                else:
                    self.lams[b] = self.lams[a]
        if _TABLE is not None:
            _TABLE.slots.copy_(self.lams, non_blocking=True)
