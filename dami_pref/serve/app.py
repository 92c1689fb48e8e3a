"""The FastAPI app: OpenAI's chat and completions endpoints, models, health and metrics.

Every request's λ comes from, in order: its ``lambda`` field, a fixed-λ model name
(``dami-pref@0.3``), or the ranker reading its last user message at ``cost_weight`` (by default
the β chosen on validation when the ranker was trained). Errors are OpenAI-style JSON: 400 for
a bad body, 404 for an unknown model, 429 when the queue is full, 503 when a request waited
longer than ``max_wait_seconds`` for the engine.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import ValidationError

from ..errors import DamiPrefError
from ..runtime.generation import DecodingOptions
from . import responses
from .async_scheduler import AsyncScheduler
from .continuous import ContinuousLambdaScheduler
from .metrics import ServerMetrics
from .protocol import MODEL, ChatCompletionRequest, CompletionRequest, fixed_lambda
from .scheduler import LambdaScheduler, QueueFull, WaitExpired
from .scoring import BatchedScorer


@dataclass
class ServeSettings:
    decoding: DecodingOptions = DecodingOptions()
    max_queue: int = 256
    max_batch: int = 32
    max_wait_seconds: float = 600.0
    drain_seconds: float = 600.0


class BadRequest(Exception):
    def __init__(self, status: int, message: str, kind: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.param = status, kind, param


def scheduler_for(engine) -> type[LambdaScheduler]:
    """The scheduler an engine's capabilities call for (the one place that reads them): vLLM's
    own (AsyncLLM) batching behind admission control, continuous batching step by step, or static
    batches; each groups requests by λ only where the engine cannot mix them."""
    if getattr(engine, "serves_async", False):
        return AsyncScheduler
    return ContinuousLambdaScheduler if engine.steps else LambdaScheduler


def create_app(runtime, ranker, settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    metrics = ServerMetrics()
    scheduler = scheduler_for(runtime)(runtime, metrics, settings.max_queue,
                                       settings.max_batch, settings.max_wait_seconds)
    scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ranker")
    scorer = BatchedScorer(ranker, scoring)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        yield
        await scheduler.drain(settings.drain_seconds)  # SIGTERM: finish what was accepted
        await scheduler.stop()
        scoring.shutdown(wait=False)
        close = getattr(runtime, "close", None)
        if close is not None:  # an engine core in its own process must not outlive the server
            close()

    app = FastAPI(title="dami-pref", lifespan=lifespan)
    app.state.scheduler, app.state.metrics = scheduler, metrics
    server = _Server(runtime, ranker, settings, scheduler, metrics, scorer)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, err: BadRequest):
        metrics.requests.labels(request.url.path, str(err.status)).inc()
        headers = {"Retry-After": "1"} if err.status in (429, 503) else None
        return JSONResponse(responses.error_body(str(err), err.kind, err.param),
                            status_code=err.status, headers=headers)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await server.answer(request, ChatCompletionRequest, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await server.answer(request, CompletionRequest, chat=False)

    @app.get("/v1/models")
    async def models():
        names = [MODEL] + [f"{MODEL}@{lam:g}" for lam in ranker.grid]
        return {"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                            "owned_by": "dami-pref"} for n in names]}

    @app.get("/health")
    async def health():
        return {"status": "ok", "queue_depth": scheduler.depth}

    @app.get("/metrics")
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return PlainTextResponse(generate_latest(metrics.registry),
                                 media_type=CONTENT_TYPE_LATEST)

    return app


class _Server:
    """What one request goes through: parse, choose λ, queue, answer."""

    def __init__(self, runtime, ranker, settings, scheduler, metrics, scorer) -> None:
        self.runtime, self.ranker, self.settings = runtime, ranker, settings
        self.scheduler, self.metrics, self.scorer = scheduler, metrics, scorer

    async def answer(self, request: Request, model_class, chat: bool):
        started = time.perf_counter()
        body = await parse_body(request, model_class)
        question = body.question() if chat else body.prompt
        decoding = self.decoding_of(body)
        prompt = self.check_fits(question, decoding)
        prompt_tokens = len(prompt)
        choice = await self.choose(body, question)
        try:
            future = self.scheduler.submit(question, choice["lambda"], decoding, body.seed or 0,
                                           prompt)
        except QueueFull:
            raise BadRequest(429, f"the server is busy ({self.scheduler.max_queue} requests "
                                  "waiting); retry later", "rate_limit_exceeded") from None
        try:
            result = await wait_or_cancel(request, future)
        except DamiPrefError as err:
            raise BadRequest(400, str(err), "invalid_request_error") from None
        except WaitExpired as err:
            raise BadRequest(503, f"the request waited {err.args[0]:.0f} s for the engine, more "
                                  f"than --max_wait_seconds {self.scheduler.max_wait:g}; retry "
                                  "later", "server_overloaded") from None
        if result is None:  # the client went away; nothing to send
            return PlainTextResponse("", status_code=499)
        self.record(request.url.path, result, prompt_tokens, choice, started)
        if chat and body.stream:
            include = bool((body.stream_options or {}).get("include_usage"))
            return StreamingResponse(responses.chat_stream(body.model, result, prompt_tokens,
                                                           choice, include),
                                     media_type="text/event-stream")
        build = responses.chat_body if chat else responses.completion_body
        return build(body.model, result, prompt_tokens, choice)

    def decoding_of(self, body) -> DecodingOptions:
        base = self.settings.decoding
        max_tokens = getattr(body, "max_completion_tokens", None) or body.max_tokens
        return replace(base, max_new_tokens=max_tokens or base.max_new_tokens,
                       temperature=base.temperature if body.temperature is None
                       else body.temperature,
                       top_p=base.top_p if body.top_p is None else body.top_p)

    def check_fits(self, question: str, decoding: DecodingOptions) -> list[int]:
        """The prompt's token ids, once they are known to fit the context with the answer."""
        try:
            [ids] = self.runtime.check_questions([question], decoding.max_new_tokens)
        except DamiPrefError as err:
            raise BadRequest(400, str(err), "invalid_request_error", "messages") from None
        return ids

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

    def record(self, path: str, result, prompt_tokens: int, choice: dict, started: float):
        m = self.metrics
        m.requests.labels(path, "200").inc()
        m.prompt_tokens.inc(prompt_tokens)
        m.completion_tokens.inc(result.n_tokens)
        m.reasoning_tokens.inc(result.think_tokens)
        m.lam.observe(choice["lambda"])
        m.latency.observe(time.perf_counter() - started)


async def parse_body(request: Request, model_class):
    try:
        data = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(400, f"the body is not valid JSON ({err})",
                         "invalid_request_error") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "the body must be a JSON object", "invalid_request_error")
    try:
        return model_class.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise BadRequest(400, f"{param}: {first['msg']}", "invalid_request_error",
                         param) from None


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
