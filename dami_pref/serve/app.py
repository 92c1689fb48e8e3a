"""The FastAPI app: OpenAI's chat and completions endpoints, models, health and metrics.

What a request goes through is in :mod:`.handling`. Errors are OpenAI-style JSON, counted in
``/metrics`` under their status: 400 for a bad body, 404 for an unknown model, 429 when the queue
is full, 503 when a request waited longer than ``max_wait_seconds`` for the engine or was still
unanswered when a SIGTERM's drain ended, and 500 (still JSON) only for a bug.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ..runtime.generation import DecodingOptions
from . import responses
from .async_scheduler import AsyncScheduler
from .continuous import ContinuousLambdaScheduler
from .handling import BadRequest, RequestHandler
from .metrics import ServerMetrics
from .protocol import MODEL, ChatCompletionRequest, CompletionRequest
from .scheduler import LambdaScheduler
from .scoring import BatchedScorer


@dataclass
class ServeSettings:
    decoding: DecodingOptions = DecodingOptions()
    max_queue: int = 256
    max_batch: int = 32
    max_wait_seconds: float = 600.0
    drain_seconds: float = 600.0
    max_body_bytes: int = 16 * 2 ** 20


class Drain:
    """SIGTERM: finish what was accepted, for at most ``seconds``, then answer the rest 503.
    A server awaits it as soon as it stops accepting (its open connections wait on it); the
    lifespan's end awaits the same drain, which runs once."""

    def __init__(self, scheduler: LambdaScheduler, seconds: float) -> None:
        self.scheduler, self.seconds = scheduler, seconds
        self.task: asyncio.Future | None = None

    async def __call__(self) -> None:
        if self.task is None:
            self.task = asyncio.ensure_future(self.scheduler.drain(self.seconds))
        await self.task


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

    drain = Drain(scheduler, settings.drain_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        yield
        await drain()
        await scheduler.stop()
        scoring.shutdown(wait=False)
        close = getattr(runtime, "close", None)
        if close is not None:  # an engine core in its own process must not outlive the server
            close()

    app = FastAPI(title="dami-pref", lifespan=lifespan)
    app.state.scheduler, app.state.metrics, app.state.drain = scheduler, metrics, drain
    server = RequestHandler(runtime, ranker, settings, scheduler, metrics, scorer)

    answer_errors(app, metrics)

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


def answer_errors(app: FastAPI, metrics: ServerMetrics) -> None:
    """Every failure as OpenAI-style JSON, counted under its status."""

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, err: BadRequest):
        metrics.requests.labels(request.url.path, str(err.status)).inc()
        headers = {"Retry-After": "1"} if err.status in (429, 503) else None
        return JSONResponse(responses.error_body(str(err), err.kind, err.param, err.status),
                            status_code=err.status, headers=headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception):
        logging.getLogger("dami_pref.serve").exception("request failed")
        metrics.requests.labels(request.url.path, "500").inc()
        return JSONResponse(responses.error_body(f"internal error ({type(err).__name__}); the "
                                                 "server log has the details", "internal_error",
                                                 code=500), status_code=500)


def run_server(app: FastAPI, host: str, port: int, drain_seconds: float) -> None:
    """uvicorn, with the app's drain started the moment SIGTERM stops accepting: uvicorn then
    waits for the open connections, which the drain answers (a 503 once ``drain_seconds`` have
    passed), so uvicorn never has to cancel one mid-answer (its own timeout is a backstop)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            draining = asyncio.ensure_future(app.state.drain())
            await super().shutdown(sockets)
            await draining

    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=int(drain_seconds) + 30)
    DrainingServer(config).run()
