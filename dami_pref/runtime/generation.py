"""Batched generation over many λ values: full batches of one λ (one switch each), and on a
runtime that mixes λ, the groups' remainders together in mixed batches.

Sampling draws every request's tokens from its own seeded generator, so a request's completion
does not depend on which other requests share its batch, or on the batch size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.streamers import BaseStreamer

from ..errors import DamiPrefError
from ..utils.answers import final_answer, split_thinking
from ..utils.grid import check_lambda
from ..utils.limits import DECODING
from ..utils.options import check_options
from ..utils.tokens import check_prompts, end_token_ids, left_pad, question_labels, \
    refuse_overlong, token_id
from .kv_cache import KVCacheOptions
from .logprobs import LogprobRecorder, TokenLogprob


TokenSink = Callable[[list[int]], None]  # called from the engine with a request's new token ids


@dataclass(frozen=True)
class GenerationRequest:
    question: str
    lam: float
    seed: int = 0  # used when sampling
    prompt: tuple[int, ...] | None = None  # token ids the caller rendered (a conversation, raw
    #                                        text); None: the question through the pair's templates
    sink: TokenSink | None = field(default=None, compare=False)  # new token ids, as decoded


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode. ``temperature == 0`` is greedy decoding."""

    max_new_tokens: int = field(default=256, metadata=DECODING["max_new_tokens"])
    temperature: float = field(default=0.0, metadata=DECODING["temperature"])
    top_p: float = field(default=1.0, metadata=DECODING["top_p"])
    batch_size: int = field(default=64, metadata=DECODING["batch_size"])
    kv_cache: KVCacheOptions = KVCacheOptions()
    stop: tuple[str, ...] = ()  # the completion ends before the first of these (OpenAI's stop)
    # OpenAI's penalties: subtracted from a generated token's logit, once / per occurrence
    presence_penalty: float = field(default=0.0, metadata=DECODING["presence_penalty"])
    frequency_penalty: float = field(default=0.0, metadata=DECODING["frequency_penalty"])
    response_format: str | None = None  # OpenAI's, as JSON text: structured output (vLLM only)
    # each token's log-probability and this many alternatives (None: none)
    logprobs: int | None = field(default=None, metadata=DECODING["logprobs"])
    logit_bias: tuple[tuple[int, float], ...] = ()  # OpenAI's: (token id, added to its logit)

    def __post_init__(self) -> None:
        check_options(self)  # the ranges in utils/limits.py, as the command line checks them
        if not all(isinstance(s, str) and s for s in self.stop):
            raise DamiPrefError(f"stop sequences must be non-empty strings, got {self.stop!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class GenerationResult:
    lam: float
    completion: str  # generated text, thinking span included, special tokens removed
    answer: str  # the final answer after the thinking span ("" if the span never closed)
    n_tokens: int  # every generated token, the end-of-sequence token included
    think_tokens: int  # tokens of the thinking span, its tags included
    finished: bool  # False when generation hit max_new_tokens
    seconds: float  # this request's share of its batch's wall time
    logprobs: tuple[TokenLogprob, ...] | None = None  # per token, when DecodingOptions asks


class RowSeededSampler(LogitsProcessor):
    """Temperature / top-p sampling with one torch.Generator per row.

    It returns scores that are −inf everywhere but the sampled token, so ``generate`` run
    greedily picks exactly the token each row's own generator drew.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float,
                 device: torch.device) -> None:
        self.generators = []
        for seed in seeds:
            gen = torch.Generator(device=device)
            gen.manual_seed(int(seed))
            self.generators.append(gen)
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, sorted_idx = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs > self.top_p
            sorted_probs = sorted_probs.masked_fill(outside, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, sorted_idx, sorted_probs)
        chosen = torch.stack([torch.multinomial(probs[i], 1, generator=gen)
                              for i, gen in enumerate(self.generators)])
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, chosen, 0.0)


class Penalties(LogitsProcessor):
    """OpenAI's presence and frequency penalties over each row's generated tokens (the prompt,
    the first ``width`` columns, does not count)."""

    def __init__(self, width: int, presence: float, frequency: float) -> None:
        self.width, self.presence, self.frequency = width, presence, frequency

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        counts = torch.zeros_like(scores)
        generated = input_ids[:, self.width:]
        counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


class LogitBias(LogitsProcessor):
    """OpenAI's ``logit_bias``: a fixed amount added to chosen tokens' logits at every step."""

    def __init__(self, bias: Sequence[tuple[int, float]]) -> None:
        self.ids = torch.tensor([token for token, _ in bias])
        self.amounts = torch.tensor([amount for _, amount in bias])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        scores[:, self.ids.to(scores.device)] += self.amounts.to(scores.device, scores.dtype)
        return scores


class RowStreamer(BaseStreamer):
    """Hands each row's new token to its request's sink as ``generate`` decodes it, until the row
    ends (transformers pads a finished row)."""

    def __init__(self, sinks: Sequence[TokenSink | None], eos: set[int]) -> None:
        self.sinks, self.eos = list(sinks), eos
        self.prompt_seen, self.ended = False, [sink is None for sink in sinks]

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate hands over the prompt first
            self.prompt_seen = True
            return
        for row, token in enumerate(value.view(-1).tolist()):
            if not self.ended[row]:
                self.sinks[row]([token])
                self.ended[row] = token in self.eos

    def end(self) -> None:
        self.ended = [True] * len(self.ended)


def _thinking_span_length(tokens: list[int], open_id: int | None, close_id: int | None) -> int:
    if close_id is not None and close_id in tokens:
        close_at = tokens.index(close_id)
        open_at = tokens.index(open_id) if open_id in tokens[:close_at] else 0
        return close_at - open_at + 1
    if open_id is not None and open_id in tokens:
        return len(tokens) - tokens.index(open_id)
    return 0


def generate(runtime, requests: Sequence[GenerationRequest], options: DecodingOptions,
             progress: bool = False) -> list[GenerationResult]:
    """Answer every request; results come back in the order of the requests."""
    from tqdm.auto import tqdm

    tokenizer, model = runtime.tokenizer, runtime.model
    options.kv_cache.check(runtime.device)
    if options.response_format:
        raise DamiPrefError("response_format: structured output is not available on the runtime "
                            "engine; use --engine vllm")
    eos = end_token_ids(model, tokenizer)
    open_id, close_id = token_id(tokenizer, "<think>"), token_id(tokenizer, "</think>")
    questions = [r.question for r in requests if r.prompt is None]
    refuse_overlong(question_labels(questions), questions, tokenizer, runtime.context,
                    options.max_new_tokens)  # before tokenizing a huge question whole
    encoded = prompt_ids(runtime, requests)
    check_prompts([r.question for r in requests], encoded, tokenizer, runtime.context,
                  options.max_new_tokens)
    lams = [check_lambda(r.lam) for r in requests]
    results: list[GenerationResult | None] = [None] * len(requests)
    bar = tqdm(total=len(requests), disable=not progress, unit="q", dynamic_ncols=True)
    generated_tokens, started = 0, time.perf_counter()
    for batch in plan_batches(lams, runtime.lam, encoded, options.batch_size,
                              runtime.mixes_lambdas):
        t0 = time.perf_counter()
        rows, logprobs = _generate_batch(runtime, [encoded[i] for i in batch],
                                         [lams[i] for i in batch], [requests[i] for i in batch],
                                         options)
        seconds = (time.perf_counter() - t0) / len(batch)
        for row, (i, tokens) in enumerate(zip(batch, rows)):
            results[i] = decode_result(tokenizer, lams[i], tokens, eos, open_id, close_id,
                                       options.max_new_tokens, seconds, options.stop,
                                       logprobs[row] if logprobs else None)
            generated_tokens += results[i].n_tokens
        rate = generated_tokens / max(time.perf_counter() - started, 1e-9)
        lam_label = f"{lams[batch[0]]:g}" if len({lams[i] for i in batch}) == 1 else "mixed"
        # the postfix waits for the update's redraw: one line per update in a log
        bar.set_postfix(lam=lam_label, tok_s=f"{rate:,.0f}", refresh=False)
        bar.update(len(batch))
    bar.close()
    return results  # type: ignore[return-value]


def prompt_ids(engine, requests: Sequence[GenerationRequest]) -> list[list[int]]:
    """Each request's prompt token ids: its own, or its question through the pair's templates."""
    questions = [r.question for r in requests if r.prompt is None]
    encoded = iter(engine.encode_prompts(questions) if questions else [])
    return [list(r.prompt) if r.prompt is not None else next(encoded) for r in requests]


def lambda_order(lams: Sequence[float], current: float,
                 encoded: Sequence[Sequence[int]]) -> list[int]:
    """Request indices grouped by λ (one switch each), the λ already loaded first; inside a group,
    by prompt length, so batches carry little padding."""
    return sorted(range(len(lams)), key=lambda i: (lams[i] != current, lams[i], len(encoded[i])))


def plan_batches(lams: Sequence[float], current: float, encoded: Sequence[Sequence[int]],
                 batch_size: int, mixes: bool) -> list[list[int]]:
    """Request indices in batches: every full batch holds one λ (a switch, then the plain model:
    λ predicts answer length, and a static batch costs its longest answer). Each λ group's
    remainder is a batch of its own, or, where the runtime mixes λ, joins the other remainders in
    mixed batches (ordered by λ), so a handful of requests over many λ is one batch, not many."""
    order = lambda_order(lams, current, encoded)
    batches, tails = [], []
    for _, group in groupby(order, key=lambda i: lams[i]):
        group = list(group)
        full = len(group) - len(group) % batch_size if mixes else len(group)
        batches += [group[at:at + batch_size] for at in range(0, full, batch_size)]
        tails += group[full:]
    return batches + [tails[at:at + batch_size] for at in range(0, len(tails), batch_size)]


Decoded = tuple[list[list[int]], list[list[TokenLogprob]] | None]  # tokens, log-probabilities


def _generate_batch(runtime, prompts: list[list[int]], lams: list[float],
                    requests: list[GenerationRequest], options: DecodingOptions) -> Decoded:
    """One static batch: at its λ (switched in place), or mixed around the λ the weights hold."""
    if len(set(lams)) == 1:
        runtime.set_lambda(lams[0])
        return _decode(runtime, prompts, requests, options)
    with runtime.mixed_rows(lams):
        return _decode(runtime, prompts, requests, options)


def _decode(runtime, prompts: list[list[int]], requests: list[GenerationRequest],
            options: DecodingOptions) -> Decoded:
    tokenizer, model = runtime.tokenizer, runtime.model
    pad = tokenizer.pad_token_id
    input_ids, attention = left_pad(prompts, pad)
    width = input_ids.shape[1]
    kwargs = dict(max_new_tokens=options.max_new_tokens, do_sample=False, pad_token_id=pad,
                  num_beams=1, top_k=None, top_p=None, temperature=None,
                  **options.kv_cache.generate_kwargs())
    recorder = None if options.logprobs is None else LogprobRecorder(options.logprobs)
    processors = [] if recorder is None else [recorder]  # first: it records the model's own logits
    if options.logit_bias:
        processors.append(LogitBias(options.logit_bias))
    if options.presence_penalty or options.frequency_penalty:
        processors.append(Penalties(width, options.presence_penalty, options.frequency_penalty))
    if not options.greedy:
        processors.append(RowSeededSampler([r.seed for r in requests], options.temperature,
                                           options.top_p, runtime.device))
    if processors:
        kwargs["logits_processor"] = LogitsProcessorList(processors)
    if options.stop:  # each row stops at its first stop string (the text is cut before it)
        kwargs.update(stop_strings=list(options.stop), tokenizer=tokenizer)
    if any(r.sink is not None for r in requests):
        kwargs["streamer"] = RowStreamer([r.sink for r in requests],
                                         end_token_ids(model, tokenizer))
    with torch.no_grad():
        out = model.generate(input_ids=input_ids.to(runtime.device),
                             attention_mask=attention.to(runtime.device), **kwargs)
    return out[:, width:].tolist(), recorder.finish(out[:, -1]) if recorder is not None else None


def stop_cut(tokenizer, tokens: list[int], text: str,
             stop: Sequence[str]) -> tuple[int, str] | None:
    """(tokens kept, text before the stop) at the first stop string, or None: the tokens kept are
    the fewest whose text holds the stop string (found by bisection, a few decodes)."""
    found = [(text.find(s), s) for s in stop if s in text]
    if not found:
        return None
    at, first = min(found)
    low, high = 1, len(tokens)
    while low < high:
        mid = (low + high) // 2
        if first in tokenizer.decode(tokens[:mid], skip_special_tokens=True):
            high = mid
        else:
            low = mid + 1
    return low, text[:at]


def decode_result(tokenizer, lam: float, tokens: list[int], eos: set[int], open_id: int | None,
                  close_id: int | None, max_new_tokens: int, seconds: float,
                  stop: Sequence[str] = (),
                  logprobs: Sequence[TokenLogprob] | None = None) -> GenerationResult:
    """One request's generated token ids as a result: cut after the first end token (or where a
    stop string ends), decoded, the stop string removed, thinking span and final answer split off
    (the same on every engine)."""
    end = next((j for j, t in enumerate(tokens) if t in eos), None)
    finished = end is not None
    tokens = tokens[:end + 1] if finished else tokens[:max_new_tokens]
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    cut = stop_cut(tokenizer, tokens, text, stop)
    if cut is not None:
        tokens, text, finished = tokens[:cut[0]], cut[1], True
    split = split_thinking(text)
    answer = final_answer(split.answer_text) if split.span_closed and finished else ""
    return GenerationResult(lam=lam, completion=text, answer=answer, n_tokens=len(tokens),
                            think_tokens=_thinking_span_length(tokens, open_id, close_id),
                            finished=finished, seconds=seconds,
                            logprobs=None if logprobs is None else tuple(logprobs[:len(tokens)]))
