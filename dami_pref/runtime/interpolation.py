"""The interpolation runtime: both endpoints on the device and one live model rewritten in place.

Θ(λ) = λ·Θ_Thinking + (1−λ)·Θ_Instruct. The live model's parameters are views into one flat
buffer per dtype, and the two endpoints are flat buffers of the same layout, so ``set_lambda`` is
a single ``torch.lerp(..., out=live)`` pass over memory: no copy of the model, no disk, and a
cost set by memory bandwidth (three copies of the weights: two endpoints and the live one).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DamiPrefError
from ..utils.tensors import check_finite
from ..utils.devices import resolve_device, resolve_dtype
from ..utils.grid import check_lambda
from ..utils.prompts import check_prompt_template, encode_conversation, encode_prompts, \
    render_prompt
from .checkpoints import check_same_tensors, open_pair
from .engines import check_lambda_batching
from .mixing import RowOffsets, check_leaves, mix_leaves

LMC_WARN_BELOW = 0.95
MEMORY_MODES = ("auto", "exact", "delta")


def resolve_memory_mode(mode: str, lambda_batching: str) -> str:
    """The memory mode to use: ``auto`` is exact for grouped λ batches and delta for mixed ones,
    which need Δ (and hold two copies of the weights, not three)."""
    if mode not in MEMORY_MODES:
        raise DamiPrefError(f"memory_mode must be one of {MEMORY_MODES}, got {mode!r}")
    if check_lambda_batching(lambda_batching) == "mixed" and mode == "exact":
        raise DamiPrefError("lambda_batching mixed computes with Θ and Δ = Θ_T − Θ_I: use "
                            "memory_mode delta (or auto), not exact")
    if mode == "auto":
        return "delta" if lambda_batching == "mixed" else "exact"
    return mode


@dataclass
class _FlatGroup:
    """Parameters of one dtype, laid out back to back in three flat buffers."""

    names: list[str]
    offsets: list[tuple[int, int]]  # (start, numel) per name
    live: torch.Tensor
    instruct: torch.Tensor | None = None  # exact mode
    thinking: torch.Tensor | None = None  # exact mode
    delta: torch.Tensor | None = None  # delta mode: Θ_T − Θ_I


@dataclass(frozen=True)
class LayerSimilarity:
    group: str  # "layers.3", "embed_tokens", ...
    cosine: float
    relative_distance: float  # ||T − I|| / ||I||


def _layer_group(name: str) -> str:
    match = re.search(r"layers\.(\d+)\.", name)
    if match:
        return f"layers.{match.group(1)}"
    return name.removeprefix("model.").rsplit(".", 1)[0]


class InterpolationRuntime:
    """Holds an Instruct/Thinking pair and serves the interpolated model at any λ.

    Args:
        instruct, thinking: local folders, Hub ids or ``dami_pref://`` names.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        dtype: ``auto`` (as stored), ``float32``, ``bfloat16`` or ``float16``; both the
            endpoints and the live model use it, and λ blends are computed by ``torch.lerp``
            (in float32 internally for 16-bit types) and rounded once.
        trust_remote_code: passed to transformers; off unless the user asks.
        chat_template_from: whose chat template renders prompts (``instruct`` or ``thinking``).
        prompt_template: wraps each question before the chat template, e.g. to ask for
            ``\\boxed{}`` answers from real models.
        memory_mode: ``exact`` holds both endpoints and the live weights (three copies; every λ
            is one rounding away from the float32 blend, λ = 0 and 1 are bit exact); ``delta``
            holds the live weights and Θ_T − Θ_I (two copies) and moves by
            live += (λ_new − λ_old)·Δ, so rounding accumulates over switches (measured in
            BENCHMARKS.md); ``auto``: exact for grouped λ batches, delta for mixed ones.
        lambda_batching: ``grouped`` (one λ per batch, switched in place) or ``mixed`` (a batch
            may hold every λ: each parametrised leaf adds (λ_row − λ_live)·f(x; Δ); needs Δ, so
            the delta memory mode). See :mod:`dami_pref.runtime.mixing`.
    """

    engine = "runtime"
    steps = False  # static batches: a server batches requests before calling generate
    serves_async = False

    def __init__(self, instruct: str | Path, thinking: str | Path, *,
                 device: str | torch.device | None = "cpu", dtype: str | torch.dtype = "auto",
                 trust_remote_code: bool = False, chat_template_from: str = "instruct",
                 prompt_template: str = "{question}", revision: str | None = None,
                 memory_mode: str = "auto", lambda_batching: str = "grouped") -> None:
        from transformers import AutoModelForCausalLM

        if chat_template_from not in ("instruct", "thinking"):
            raise DamiPrefError("chat_template_from must be 'instruct' or 'thinking', got "
                                f"{chat_template_from!r}")
        check_prompt_template(prompt_template)  # before any loading
        memory_mode = resolve_memory_mode(memory_mode, lambda_batching)
        pair = open_pair(instruct, thinking, revision, trust_remote_code)
        instruct_path, thinking_path = pair.instruct_dir, pair.thinking_dir
        device = resolve_device(device)
        tensors = pair.instruct.tensors
        stored = next(iter(tensors.values()))[1] if tensors else None
        dtype = resolve_dtype(dtype, stored)
        load = dict(dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(instruct_path, **load).to(device)
        # The Thinking endpoint is staged on the CPU and copied tensor by tensor, so the device
        # never holds more than the three copies the design allows.
        staged = AutoModelForCausalLM.from_pretrained(thinking_path, **load)
        check_finite(model.named_parameters(), str(instruct_path))
        check_finite(staged.named_parameters(), str(thinking_path))
        self._setup(model, staged, pair.tokenizers[chat_template_from], prompt_template,
                    memory_mode, lambda_batching)
        self.instruct_path, self.thinking_path = instruct_path, thinking_path
        self.trust_remote_code = trust_remote_code

    @classmethod
    def from_models(cls, instruct_model, thinking_model, tokenizer, *,
                    prompt_template: str = "{question}", memory_mode: str = "auto",
                    lambda_batching: str = "grouped") -> "InterpolationRuntime":
        """A runtime over two models already in memory (same architecture and shapes).

        The Instruct model becomes the live model, on its current device and dtype; the
        Thinking model's weights are copied in and its tensors released as they are copied.
        """
        check_same_tensors(*({n: (tuple(p.shape), str(p.dtype)) for n, p in m.named_parameters()}
                             for m in (instruct_model, thinking_model)))
        memory_mode = resolve_memory_mode(memory_mode, lambda_batching)
        check_finite(instruct_model.named_parameters(), "the instruct model")
        check_finite(thinking_model.named_parameters(), "the thinking model")
        runtime = cls.__new__(cls)
        runtime._setup(instruct_model, thinking_model, tokenizer, prompt_template, memory_mode,
                       lambda_batching)
        runtime.instruct_path = runtime.thinking_path = None
        runtime.trust_remote_code = False
        return runtime

    def _setup(self, model, staged, tokenizer, prompt_template: str, memory_mode: str,
               lambda_batching: str) -> None:
        check_prompt_template(prompt_template)
        if lambda_batching == "mixed":
            check_leaves(model)  # refused before any weight moves
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.prompt_template = prompt_template
        self.model = model.eval().requires_grad_(False)
        first = next(model.parameters())
        self.device, self.dtype = first.device, first.dtype
        self.memory_mode = memory_mode
        self._groups = self._flatten_live_parameters()
        self._fill_thinking(dict(staged.named_parameters()))
        self._check_buffers_match(staged)
        self._lam = 0.0
        self.switches = 0
        self.structured_output = False  # response_format: vLLM only
        self.mixes_lambdas = lambda_batching == "mixed"
        self.rows = RowOffsets()
        if self.mixes_lambdas:
            mix_leaves(self.model, self._delta_views().__getitem__, self.rows)

    # -- construction ------------------------------------------------------------------------
    def _flatten_live_parameters(self) -> list[_FlatGroup]:
        by_dtype: dict[torch.dtype, list[tuple[str, torch.nn.Parameter]]] = {}
        for name, param in self.model.named_parameters():  # tied weights appear once
            by_dtype.setdefault(param.dtype, []).append((name, param))
        groups = []
        for dtype, params in by_dtype.items():
            total = sum(p.numel() for _, p in params)
            live = torch.empty(total, dtype=dtype, device=self.device)
            names, offsets, start = [], [], 0
            for name, param in params:
                n = param.numel()
                live[start:start + n].copy_(param.data.reshape(-1))
                param.data = live[start:start + n].view(param.shape)  # old storage is freed
                names.append(name)
                offsets.append((start, n))
                start += n
            if self.memory_mode == "exact":
                groups.append(_FlatGroup(names, offsets, live, instruct=live.clone(),
                                         thinking=torch.empty_like(live)))
            else:
                groups.append(_FlatGroup(names, offsets, live, delta=torch.empty_like(live)))
        return groups

    def _fill_thinking(self, thinking_params: dict[str, torch.nn.Parameter]) -> None:
        for group in self._groups:
            for name, (start, n) in zip(group.names, group.offsets):
                if name not in thinking_params:
                    raise DamiPrefError(f"thinking model has no parameter {name!r}")
                source = thinking_params[name]
                target = source.data.reshape(-1).to(group.live.device)
                if group.thinking is not None:
                    group.thinking[start:start + n].copy_(target)
                else:  # Δ = Θ_T − Θ_I, computed in float32 and rounded once
                    group.delta[start:start + n].copy_(
                        target.float() - group.live[start:start + n].float())
                source.data = torch.empty(0, dtype=source.dtype)  # free as we go

    def _check_buffers_match(self, staged: torch.nn.Module) -> None:
        live_buffers = dict(self.model.named_buffers())
        for name, buf in staged.named_buffers():
            mine = live_buffers.get(name)
            if mine is not None and not torch.equal(mine.cpu(), buf.cpu()):
                raise DamiPrefError(f"buffer {name!r} differs between the endpoints; only "
                                    "parameters are interpolated")

    def _delta_views(self) -> dict[torch.nn.Parameter, torch.Tensor]:
        """Δ of each live parameter, as a view of the flat Δ buffer (delta mode); a tied output
        layer holds its embedding's Parameter, so it finds the same Δ."""
        views = {}
        for group in self._groups:
            for name, (start, n) in zip(group.names, group.offsets):
                param = self.model.get_parameter(name)
                views[param] = group.delta[start:start + n].view(param.shape)
        return views

    @property
    def architecture(self) -> str:
        """The model class name its config records (``Qwen3ForCausalLM``)."""
        return (getattr(self.model.config, "architectures", None) or ["?"])[0]

    # -- λ -------------------------------------------------------------------------------------
    @property
    def lam(self) -> float:
        """The λ the live model currently holds."""
        return self._lam

    def set_lambda(self, lam: float) -> None:
        """Write lerp(Θ_I, Θ_T, λ) into the live parameters in place.

        λ = 0 and λ = 1 copy the endpoints exactly; other values match a float32 reference
        within the dtype's rounding. Setting the current λ again costs nothing.
        """
        lam = check_lambda(lam)
        if lam == self._lam:
            return
        with torch.no_grad():
            for group in self._groups:
                if group.delta is not None:
                    group.live.add_(group.delta, alpha=lam - self._lam)
                elif lam == 0.0:
                    group.live.copy_(group.instruct)
                elif lam == 1.0:
                    group.live.copy_(group.thinking)
                else:
                    torch.lerp(group.instruct, group.thinking, lam, out=group.live)
        self._lam = lam
        self.switches += 1

    @contextmanager
    def mixed_rows(self, lams: Sequence[float]):
        """Within the block, row r of a batch is computed at ``lams[r]`` (the weights stay at
        ``lam``; each leaf adds (λ_r − λ)·f(x; Δ)). Needs ``lambda_batching="mixed"``."""
        if not self.mixes_lambdas:
            raise DamiPrefError("this runtime holds one λ per batch (lambda_batching grouped); "
                                "load it with lambda_batching='mixed' to mix λ in a batch")
        offsets = torch.tensor([check_lambda(lam) - self._lam for lam in lams],
                               dtype=torch.float32).to(self.device, self.dtype)
        self.rows.set(offsets if bool(offsets.any()) else None)
        try:
            yield
        finally:
            self.rows.set(None)

    def mark_lambda(self, lam: float) -> None:
        """Record that the live weights hold λ because something outside the runtime wrote
        them (e.g. a benchmark's own merge); the next ``set_lambda(λ)`` then costs nothing."""
        self._lam = check_lambda(lam)

    @property
    def resident_bytes(self) -> int:
        """Bytes of weights the runtime holds: 3 copies (exact) or 2 (delta)."""
        copies = 3 if self.memory_mode == "exact" else 2
        return sum(copies * g.live.numel() * g.live.element_size() for g in self._groups)

    @property
    def bytes_per_switch(self) -> int:
        """Bytes a λ switch must move: read two buffers, write the live weights (both modes)."""
        return sum(3 * g.live.numel() * g.live.element_size() for g in self._groups)

    def endpoint_state(self, which: str) -> dict[str, torch.Tensor]:
        """Views of one endpoint's weights by parameter name (``instruct`` or ``thinking``)."""
        if self.memory_mode != "exact":
            raise DamiPrefError("endpoint weights are only held in memory_mode='exact'")
        out = {}
        for group in self._groups:
            flat = getattr(group, which)
            for name, (start, n) in zip(group.names, group.offsets):
                shape = self.model.get_parameter(name).shape
                out[name] = flat[start:start + n].view(shape)
        return out

    # -- diagnostics ---------------------------------------------------------------------------
    def lmc_report(self, warn_below: float = LMC_WARN_BELOW) -> list[LayerSimilarity]:
        """Per-layer cosine similarity of the two endpoints (the paper sees > 0.99).

        Interpolation is only trustworthy between checkpoints of one base; a low similarity is
        the first sign that they are not, so it is warned about.
        """
        sums: dict[str, list[float]] = {}
        with torch.no_grad():
            for group in self._groups:
                for name, (start, n) in zip(group.names, group.offsets):
                    if group.delta is not None:  # reconstruct from the live weights and Δ
                        d = group.delta[start:start + n].double()
                        a = group.live[start:start + n].double() - self._lam * d
                        b = a + d
                    else:
                        a = group.instruct[start:start + n].double()
                        b = group.thinking[start:start + n].double()
                    acc = sums.setdefault(_layer_group(name), [0.0, 0.0, 0.0, 0.0])
                    acc[0] += float(a @ b)
                    acc[1] += float(a @ a)
                    acc[2] += float(b @ b)
                    acc[3] += float((b - a) @ (b - a))
        report = []
        for key, (ab, aa, bb, dd) in sums.items():
            cosine = ab / math.sqrt(aa * bb) if aa > 0 and bb > 0 else 1.0
            report.append(LayerSimilarity(key, cosine, math.sqrt(dd / aa) if aa > 0 else 0.0))
        low = [r for r in report if r.cosine < warn_below]
        if low:
            worst = min(low, key=lambda r: r.cosine)
            warnings.warn(f"{len(low)} parameter group(s) have cosine similarity below "
                          f"{warn_below} between the endpoints (lowest: {worst.group} at "
                          f"{worst.cosine:.3f}); the pair may not share a base, and interpolated "
                          "models may be incoherent.", stacklevel=2)
        return report

    # -- prompts and generation ----------------------------------------------------------------
    def render_prompt(self, question: str) -> str:
        """The question as the model sees it: prompt template, then the chat template."""
        return render_prompt(question, self.prompt_template, self.tokenizer)

    def encode_prompts(self, questions: Sequence[str]) -> list[list[int]]:
        """Token ids of each question's prompt (special tokens added exactly once)."""
        return encode_prompts(questions, self.prompt_template, self.tokenizer)

    def encode_conversation(self, turns: Sequence[dict]) -> list[int]:
        """Token ids of a whole conversation through the chat template (a server's request)."""
        return encode_conversation(turns, self.prompt_template, self.tokenizer)

    def check_questions(self, questions: Sequence[str], max_new_tokens: int,
                        labels: Sequence[str] | None = None) -> list[list[int]]:
        """Refuse questions whose prompt and answer cannot fit the model's context (naming the
        first), warn about unreadable ones: before a command writes anything. Returns the
        prompts' token ids. A text too long for the context is refused before it is tokenized
        whole (``labels`` name each question in that error)."""
        from ..utils.tokens import question_labels, refuse_overlong

        refuse_overlong(question_labels(questions, labels), questions, self.tokenizer,
                        self.context, max_new_tokens)
        return self.check_encoded(questions, self.encode_prompts(questions), max_new_tokens)

    @property
    def context(self) -> int | None:
        """Positions the model reads (prompt and answer together)."""
        return getattr(self.model.config, "max_position_embeddings", None)

    def check_encoded(self, labels: Sequence[str], encoded: Sequence[Sequence[int]],
                      max_new_tokens: int) -> list[list[int]]:
        """As ``check_questions``, for prompts already tokenized (``labels`` name them)."""
        from ..utils.tokens import check_prompts

        check_prompts(labels, encoded, self.tokenizer, self.context, max_new_tokens)
        return [list(ids) for ids in encoded]

    def generate(self, requests, options=None, progress: bool = False):
        """Answer requests (question, λ[, seed]) grouped by λ; see :mod:`dami_pref.generation`."""
        from .generation import DecodingOptions, generate

        return generate(self, requests, options or DecodingOptions(), progress=progress)
