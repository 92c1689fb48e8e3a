"""What one request goes through: parse, render the prompt, choose λ, queue, answer or stream.

Every request's λ comes from, in order: its ``lambda`` field, a fixed-λ model name
(``dami-pref@0.3``), or the ranker reading its question (the last user message of a chat, the
prompt of a completion) at ``cost_weight`` (by default the β chosen on validation). The model
reads the whole conversation through the pair's chat template; ``/v1/completions`` reads its
prompt as raw text. ``n`` choices of one prompt share its λ, each with its own seed.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, replace

from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from ..errors import DamiPrefError
from ..runtime.generation import DecodingOptions
from ..utils.prompts import encode_text
from ..utils.tokens import refuse_overlong
from . import responses
from .protocol import LONG, fixed_lambda
from .responses import Answer, Chunks
from .scheduler import QueueFull, ShuttingDown, WaitExpired
from .streaming import ChoiceStream, opens_thinking


class BadRequest(Exception):
    def __init__(self, status: int, message: str, kind: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.param = status, kind, param


@dataclass
class Prompt:
    question: str  # what the ranker reads
    ids: list[int]  # what the model reads
    echo: str = ""  # completions' echo: the prompt text, given back before the answer


@dataclass
class Flight:
    """One choice in flight."""

    future: asyncio.Future
    answer: Answer
    echo: str
    stream: ChoiceStream | None = None


def fresh_seed() -> int:
    """A request without a seed samples afresh, as OpenAI's and vLLM's servers do."""
    return random.SystemRandom().randrange(-LONG, LONG)


def nth_seed(seed: int, n: int) -> int:
    """The seed of a request's n-th choice: distinct per choice, in the signed 64-bit range."""
    return (seed + n + LONG) % (2 * LONG) - LONG


class RequestHandler:
    def __init__(self, runtime, ranker, settings, scheduler, metrics, scorer) -> None:
        self.runtime, self.ranker, self.settings = runtime, ranker, settings
        self.scheduler, self.metrics, self.scorer = scheduler, metrics, scorer
        self.token_text = responses.TokenText(runtime.tokenizer)

    async def answer(self, request: Request, model_class, chat: bool):
        started = time.perf_counter()
        body = await parse_body(request, model_class, self.settings.max_body_bytes)
        self.refuse(body, chat)
        decoding = self.decoding_of(body)
        prompts = self.prompts_of(body, chat, decoding)
        choices = [await self.choose(body, prompt.question) for prompt in prompts]
        events: asyncio.Queue | None = asyncio.Queue() if body.stream else None
        flights = self.submit(body, chat, prompts, choices, decoding, events)
        if events is not None:
            include = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(self.stream(request.url.path, body.model, chat, flights,
                                                 events, include, started),
                                     media_type="text/event-stream")
        await self.wait(request, flights)
        answers = [f.answer for f in flights]
        self.record(request.url.path, answers, started)
        if chat:
            return responses.chat_body(body.model, answers, self.token_text)
        return responses.completion_body(body.model, answers, [f.echo for f in flights],
                                         self.token_text)

    def refuse(self, body, chat: bool) -> None:
        """What this server cannot do, all named at once (400)."""
        problems = body.refused()
        engine = getattr(self.runtime, "engine", "runtime")
        if not chat and body.logprobs is not None and body.echo:
            problems.append("logprobs: the prompt's log-probabilities (logprobs with echo) are "
                            "not returned; send one or the other")
        if chat and body.response_format and body.response_format.type != "text" and \
                not getattr(self.runtime, "structured_output", False):
            problems.append(f"response_format: structured output ({body.response_format.type})"
                            f" is not available on the {engine} engine; use --engine vllm")
        vocabulary = len(self.runtime.tokenizer) if body.logit_bias else 0
        outside = [token for token, _ in body.bias() if token >= vocabulary]
        if outside:
            problems.append(f"logit_bias: token ids {outside[:3]} are outside the vocabulary "
                            f"(size {vocabulary})")
        if problems:
            raise BadRequest(400, "; ".join(problems), "invalid_request_error",
                             problems[0].split(":")[0])

    def decoding_of(self, body) -> DecodingOptions:
        base = self.settings.decoding
        max_tokens = getattr(body, "max_completion_tokens", None) or body.max_tokens
        return replace(base, max_new_tokens=max_tokens or base.max_new_tokens,
                       temperature=base.temperature if body.temperature is None
                       else body.temperature,
                       top_p=base.top_p if body.top_p is None else body.top_p,
                       stop=body.stops(), presence_penalty=body.presence_penalty,
                       frequency_penalty=body.frequency_penalty,
                       response_format=structured(getattr(body, "response_format", None)),
                       logprobs=body.logprobs_wanted(), logit_bias=body.bias())

    def prompts_of(self, body, chat: bool, decoding: DecodingOptions) -> list[Prompt]:
        """Each prompt's token ids, once they are known to fit the context with the answer."""
        texts = ["".join(turn["content"] for turn in body.conversation())] if chat \
            else body.prompts()
        try:  # a text too long for the context is refused before it is tokenized whole
            refuse_overlong(["messages"] if chat else [f"prompt[{i}]" for i in range(len(texts))],
                            texts, self.runtime.tokenizer, self.runtime.context,
                            decoding.max_new_tokens)
            if chat:
                prompts = [Prompt(body.question(),
                                  self.runtime.encode_conversation(body.conversation()))]
            else:
                texts = body.prompts()
                prompts = [Prompt(text, ids, text if body.echo else "")
                           for text, ids in zip(texts, encode_text(texts, self.runtime.tokenizer))]
            self.runtime.check_encoded([p.question for p in prompts], [p.ids for p in prompts],
                                       decoding.max_new_tokens)
        except DamiPrefError as err:
            raise BadRequest(400, str(err), "invalid_request_error",
                             "messages" if chat else "prompt") from None
        return prompts

    async def choose(self, body, question: str) -> dict:
        """λ and why: the request's own, the model name's, or the ranker's."""
        try:
            fixed = fixed_lambda(body.model)
        except LookupError:
            raise BadRequest(404, f"the model {body.model!r} does not exist; GET /v1/models "
                                  "lists them", "invalid_request_error", "model") from None
        if body.lambda_ is not None or fixed is not None:
            lam = body.lambda_ if body.lambda_ is not None else fixed
            return {"lambda": lam, "chosen_by": "request", "scores": None}
        beta = body.cost_weight if body.cost_weight is not None \
            else self.ranker.default_cost_weight
        scores = await self.scorer.score(question)
        [lam] = self.ranker.select_from_scores(scores[None], beta)
        return {"lambda": lam, "chosen_by": "ranker", "cost_weight": beta,
                "scores": {f"{g:g}": round(float(s), 6)
                           for g, s in zip(self.ranker.grid, scores.tolist())}}

    def submit(self, body, chat: bool, prompts: list[Prompt], choices: list[dict],
               decoding: DecodingOptions, events: asyncio.Queue | None) -> list[Flight]:
        """Queue every choice of every prompt, all or none (429 when the queue is full);
        ``events`` receives (choice, new token ids) when streaming."""
        loop, flights = asyncio.get_running_loop(), []
        seed = fresh_seed() if body.seed is None else body.seed
        try:
            for prompt, choice in zip(prompts, choices):
                opened = opens_thinking(self.runtime.tokenizer, prompt.ids)
                for n in range(body.n):
                    index = len(flights)
                    sink = None if events is None else (
                        lambda ids, i=index: loop.call_soon_threadsafe(events.put_nowait, (i, ids)))
                    future = self.scheduler.submit(prompt.question, choice["lambda"], decoding,
                                                   nth_seed(seed, len(flights)), prompt.ids, sink)
                    stream = None if events is None else ChoiceStream(
                        self.runtime.tokenizer, decoding.stop, split_reasoning=chat, opened=opened)
                    flights.append(Flight(future, Answer(None, choice, len(prompt.ids), opened),
                                          prompt.echo, stream))
        except QueueFull:
            for flight in flights:
                flight.future.cancel()
            raise BadRequest(429, f"the server is busy ({self.scheduler.max_queue} requests "
                                  "waiting); retry later", "rate_limit_exceeded") from None
        return flights

    async def wait(self, request: Request, flights: list[Flight]) -> None:
        """Every choice's result, or a 499 once the client has gone (its requests dropped)."""
        together = asyncio.gather(*(f.future for f in flights))
        try:
            results = await wait_or_cancel(request, together)
        except Exception as err:
            for flight in flights:
                flight.future.cancel()
            raise failure(err) from None
        if results is None:
            raise BadRequest(499, "the client closed the connection", "client_closed")
        for flight, result in zip(flights, results):
            flight.answer.result = result

    async def stream(self, path: str, model: str, chat: bool, flights: list[Flight],
                     events: asyncio.Queue, include_usage: bool, started: float):
        """Server-sent events: each choice's text as it is decoded, its end, [usage], [DONE]."""
        chunks = Chunks(model, chat)
        for index, flight in enumerate(flights):
            flight.future.add_done_callback(lambda _, i=index: events.put_nowait((i, None)))
            if chat:
                yield chunks.event(index, {"role": "assistant", "content": ""})
            elif flight.echo:
                yield chunks.event(index, text=flight.echo)
        pending = set(range(len(flights)))
        try:
            while pending:
                index, ids = await events.get()
                flight = flights[index]
                if ids is not None:
                    for event in chunks.text(index, *flight.stream.feed(ids)):
                        yield event
                elif index in pending:
                    pending.discard(index)
                    for event in self.ending(chunks, index, flight):
                        yield event
            if include_usage:
                yield chunks.usage([f.answer for f in flights])
            self.record(path, [f.answer for f in flights], started)
            yield responses.DONE
        except BadRequest as err:
            self.metrics.requests.labels(path, str(err.status)).inc()
            yield responses.sse(responses.error_body(str(err), err.kind, err.param, err.status))
            yield responses.DONE
        finally:
            for flight in flights:  # a client that left mid-stream: drop what still runs
                flight.future.cancel()

    def ending(self, chunks: Chunks, index: int, flight: Flight) -> list[str]:
        """The last text of a finished choice and its finish event (or the error it met)."""
        if flight.future.cancelled():
            raise BadRequest(503, "the server stopped before the answer finished",
                             "server_overloaded")
        if flight.future.exception() is not None:
            raise failure(flight.future.exception())
        result = flight.future.result()
        flight.answer.result = result
        events = chunks.text(index, *flight.stream.finish(result.completion))
        records = result.logprobs  # a stream's log-probabilities come with each choice's end
        logprobs = responses.chat_logprobs(records, self.token_text) if chunks.chat else \
            responses.completion_logprobs(records, self.token_text, len(flight.echo))
        events.append(chunks.event(index, finish=responses.finish_reason(result),
                                   logprobs=logprobs, dami_pref=flight.answer.choice))
        return events

    def record(self, path: str, answers: list[Answer], started: float) -> None:
        m = self.metrics
        m.requests.labels(path, "200").inc()
        usage = responses.usage(answers)
        m.prompt_tokens.inc(usage["prompt_tokens"])
        m.completion_tokens.inc(usage["completion_tokens"])
        m.reasoning_tokens.inc(usage["completion_tokens_details"]["reasoning_tokens"])
        for answer in answers:
            m.lam.observe(answer.choice["lambda"])
        m.latency.observe(time.perf_counter() - started)


def structured(response_format) -> str | None:
    """A request's ``response_format`` as the engine takes it (JSON text), None for plain text."""
    if response_format is None or response_format.type == "text":
        return None
    return json.dumps(response_format.model_dump(exclude_none=True), sort_keys=True)


def failure(err: BaseException) -> BadRequest:
    """A request's failure inside the scheduler or the engine, as the status a client gets."""
    if isinstance(err, DamiPrefError):
        return BadRequest(400, str(err), "invalid_request_error")
    if isinstance(err, WaitExpired):
        return BadRequest(503, f"the request waited {err.args[0]:.0f} s for the engine, more than "
                               "--max_wait_seconds; retry later", "server_overloaded")
    if isinstance(err, ShuttingDown):
        return BadRequest(503, "the server is shutting down and its drain ended before this "
                               "answer; retry", "server_overloaded")
    if isinstance(err, asyncio.CancelledError):
        return BadRequest(503, "the server stopped before the answer finished",
                          "server_overloaded")
    raise err


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed ``limit`` bytes: by its
    Content-Length before reading, or while reading a body sent without one."""
    too_large = BadRequest(413, f"the request body is larger than the server's limit of "
                                f"{limit:,} bytes (--max_body_bytes)", "invalid_request_error")
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(request: Request, model_class, limit: int = 16 * 2 ** 20):
    try:
        data = json.loads(await read_body(request, limit) or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(400, f"the body is not valid JSON ({err})",
                         "invalid_request_error") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "the body must be a JSON object", "invalid_request_error")
    try:
        return model_class.model_validate(data)
    except ValidationError as err:
        problems = [(".".join(str(p) for p in e["loc"]) or "body", e["msg"])
                    for e in err.errors()]
        raise BadRequest(400, "; ".join(f"{where}: {msg}" for where, msg in problems),
                         "invalid_request_error", problems[0][0]) from None


async def wait_or_cancel(request: Request, future: asyncio.Future):
    """The result, or None once the client has disconnected (its request is then dropped).

    The disconnect is an event, not a poll, so a client that leaves is dropped within
    milliseconds: before it starts if it is still queued, at the next decoding step if it runs.
    """
    leaves = asyncio.ensure_future(client_leaves(request))
    try:
        await asyncio.wait({future, leaves}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        leaves.cancel()
    if future.done():
        return future.result()
    future.cancel()
    return None


async def client_leaves(request: Request) -> None:
    """Returns when the client closes its connection (the body has been read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
