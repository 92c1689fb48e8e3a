"""The static scheduler: requests wait in queues, and the engine serves one batch at a time.

Where the engine mixes λ (``engine.mixes_lambdas``), a batch is simply the oldest waiting
requests, whatever their λ: one queue per decoding setting, no switch. Otherwise requests wait in
per-λ queues and the engine serves one λ group at a time, so a batch costs one switch of the
weights, however many requests share it.

Policy, and what it trades:
- **oldest first across groups.** The next group is the one whose oldest request has waited
  longest, so a rare λ is never starved: it is served within one round of the groups ahead of it.
- **batches within a group.** A batch takes up to ``max_batch`` waiting requests of that group
  (λ, where the engine does not mix, and decoding settings). Larger batches raise throughput;
  every request of a static batch waits for the batch's longest answer, which is the latency a
  large batch costs.
- **bounded waiting.** At most ``max_queue`` requests wait; one more is refused (HTTP 429 with
  ``Retry-After``) rather than queued without bound. A request that has waited ``max_wait``
  seconds without reaching the engine is answered 503 (the server is too slow for it now, and
  its client should not wait forever). A request whose client has gone is dropped before it
  reaches the engine.
The engine is one model in memory, so one batch runs at a time, in a worker thread, while the
event loop keeps accepting requests.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..runtime.generation import DecodingOptions, GenerationRequest, TokenSink


class QueueFull(Exception):
    """More requests wait than ``max_queue`` allows."""


class WaitExpired(Exception):
    """A request waited longer than ``max_wait`` seconds for the engine."""


class ShuttingDown(Exception):
    """The server stopped (SIGTERM) and its drain ended before this request's answer."""


@dataclass
class Job:
    question: str
    lam: float
    decoding: DecodingOptions
    seed: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)
    prompt: list[int] | None = None  # its token ids, when the server already has them
    sink: TokenSink | None = None  # receives its new token ids as they are decoded (streaming)

    def prompt_ids(self, engine) -> list[int]:
        return self.prompt if self.prompt is not None else engine.encode_prompts([self.question])[0]

    def key(self, mixes_lambdas: bool) -> tuple:
        """Requests of one key may share a batch."""
        return (self.decoding,) if mixes_lambdas else (round(self.lam, 6), self.decoding)


class LambdaScheduler:
    def __init__(self, runtime, metrics, max_queue: int = 256, max_batch: int = 32,
                 max_wait: float = 600.0) -> None:
        self.runtime, self.metrics = runtime, metrics
        self.max_queue, self.max_batch, self.max_wait = max_queue, max_batch, max_wait
        self.groups: dict[tuple, deque[Job]] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self.current_lam: float | None = None
        self.busy = False
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.unanswered: set[asyncio.Future] = set()  # every accepted request not yet answered

    @property
    def depth(self) -> int:
        return sum(len(q) for q in self.groups.values())

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def submit(self, question: str, lam: float, decoding: DecodingOptions, seed: int = 0,
               prompt: list[int] | None = None, sink: TokenSink | None = None) -> asyncio.Future:
        if self.depth >= self.max_queue:
            raise QueueFull(self.max_queue)
        job = Job(question, lam, decoding, seed, asyncio.get_running_loop().create_future(),
                  prompt=prompt, sink=sink)
        self.groups.setdefault(job.key(self.runtime.mixes_lambdas), deque()).append(job)
        self.unanswered.add(job.future)
        job.future.add_done_callback(self.unanswered.discard)
        self.metrics.queue_depth.set(self.depth)
        self._wakeup.set()
        return job.future

    def next_batch(self) -> list[Job]:
        """The oldest group's waiting requests (up to max_batch), cancelled ones dropped."""
        for key in [k for k, q in self.groups.items() if not q]:
            del self.groups[key]
        while self.groups:
            key = min(self.groups, key=lambda k: self.groups[k][0].enqueued)
            queue, batch = self.groups[key], []
            now = time.monotonic()
            while queue and len(batch) < self.max_batch:
                job = queue.popleft()
                if self.still_wanted(job, now):
                    batch.append(job)
            if not queue:
                del self.groups[key]
            if batch:
                return batch
        return []

    def still_wanted(self, job: Job, now: float) -> bool:
        """Whether a waiting request may still reach the engine: one whose client left (its
        future cancelled) is dropped, one that waited over ``max_wait`` is answered 503; both
        are counted. Every scheduler drops them here."""
        if job.future.done():
            self.metrics.cancelled.inc()
            return False
        if now - job.enqueued > self.max_wait:
            self.metrics.expired.inc()
            job.future.set_exception(WaitExpired(now - job.enqueued))
            return False
        return True

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while batch := self.next_batch():
                self.metrics.queue_depth.set(self.depth)
                self.busy = True
                if not self.runtime.mixes_lambdas:
                    if self.current_lam is not None and batch[0].lam != self.current_lam:
                        self.metrics.switches.inc()
                    self.current_lam = batch[0].lam
                try:
                    results = await loop.run_in_executor(self.executor, self._generate, batch)
                except Exception as err:  # noqa: BLE001 - handed to each waiting request
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(err)
                else:
                    for job, result in zip(batch, results):
                        if not job.future.done():
                            job.future.set_result(result)
                finally:
                    self.busy = False

    def _generate(self, batch: list[Job]):
        requests = [GenerationRequest(j.question, j.lam, j.seed, prompt=tuple(j.prompt_ids(
            self.runtime)), sink=j.sink) for j in batch]
        self.metrics.engine_requests.inc(len(requests))
        return self.runtime.generate(requests, batch[0].decoding)

    async def drain(self, timeout: float = 600.0) -> None:
        """A graceful stop: wait until every accepted request is answered, for at most
        ``timeout`` seconds; then answer the rest ``ShuttingDown`` (their clients get a 503
        with ``Retry-After``, never a dropped connection)."""
        deadline = time.monotonic() + timeout
        while (self.depth or self.busy or self.unanswered) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for future in list(self.unanswered):
            if not future.done():
                future.set_exception(ShuttingDown())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)
