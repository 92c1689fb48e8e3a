"""Scheduling for an engine that batches by itself (``engine.serves_async``: vLLM's AsyncLLM).

vLLM's own scheduler runs the batch, continuously and with every λ together. This layer keeps the
server's promises in front of it, as the other schedulers do: the oldest waiting request is
admitted first, at most ``max_batch`` run at once (the engine's ``max_num_seqs``), at most
``max_queue`` wait (one more is refused with 429), a request that waited ``max_wait`` seconds is
answered 503, and a client that leaves is dropped before it starts or aborted inside the engine.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from .scheduler import Job, LambdaScheduler


class AsyncScheduler(LambdaScheduler):
    """Admits waiting requests into an :class:`~dami_pref.runtime.engines.AsyncEngine`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tasks: set[asyncio.Task] = set()
        self._ids = itertools.count()

    def _admit(self) -> None:
        """Start the oldest waiting requests while fewer than ``max_batch`` run."""
        while len(self.tasks) < self.max_batch:
            job = self._oldest()
            if job is None:
                return
            rid = f"serve-{next(self._ids)}"
            task = asyncio.get_running_loop().create_task(self._run(rid, job))
            self.tasks.add(task)
            task.add_done_callback(self._finished)
            self.metrics.engine_requests.inc()
        self.metrics.queue_depth.set(self.depth)

    def _oldest(self) -> Job | None:
        """The oldest request still wanted, dropping the cancelled and the expired on the way."""
        now = time.monotonic()
        while True:
            queues = [q for q in self.groups.values() if q]
            if not queues:
                return None
            queue = min(queues, key=lambda q: q[0].enqueued)
            job = queue.popleft()
            if self.still_wanted(job, now):
                return job

    async def _run(self, rid: str, job: Job) -> None:
        """One request through the engine; a client that leaves cancels it there too."""
        engine = asyncio.ensure_future(self.runtime.generate_one(
            rid, job.prompt_ids(self.runtime), job.seed, job.decoding, job.lam, sink=job.sink))
        try:
            await asyncio.wait({engine, job.future}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not engine.done():  # the client went away, or the server stops: abort it
                engine.cancel()
        if engine.cancelled():
            self.metrics.cancelled.inc()
            return
        if job.future.done():
            return
        if engine.exception() is not None:
            job.future.set_exception(engine.exception())
        else:
            job.future.set_result(engine.result())

    def _finished(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        self.busy = bool(self.tasks)
        self._wakeup.set()

    async def _serve(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            self._admit()
            self.busy = bool(self.tasks)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await super().stop()
