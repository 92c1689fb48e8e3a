"""Continuous batching, for an engine that takes requests mid-batch (vLLM).

The oldest waiting request decides, request by request. Where the engine mixes λ
(``engine.mixes_lambdas``), it joins the running batch at the next decoding step whatever its λ
(up to ``max_batch`` in flight): no λ groups, no switches. Otherwise, while it has the λ the engine
holds it joins; when it has another λ, nothing more is admitted, the running requests finish, and
the engine switches, so a request of the current λ never overtakes an older request of another λ.
A client that leaves is aborted mid-generation, not only before it starts.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from .scheduler import Job, LambdaScheduler


class ContinuousLambdaScheduler(LambdaScheduler):
    """For engines that step (``engine.steps``: a ``SteppingEngine``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.running: dict[str, Job] = {}
        self._ids = itertools.count()

    def admissible(self) -> list[Job]:
        """The waiting requests that may join now, oldest first."""
        admitted: list[Job] = []
        while len(self.running) + len(admitted) < self.max_batch:
            job = self._oldest_waiting()
            if job is None:
                break
            if not self.runtime.mixes_lambdas:
                lam = admitted[0].lam if admitted else (
                    self.runtime.lam if self.running else job.lam)
                if job.lam != lam:
                    break  # another λ is older: let the running batch finish, then switch
            self.groups[job.key(self.runtime.mixes_lambdas)].popleft()
            admitted.append(job)
        return admitted

    def _oldest_waiting(self) -> Job | None:
        """The oldest request still wanted, dropping the cancelled and the expired on the way."""
        now = time.monotonic()
        while True:
            heads = [q[0] for q in self.groups.values() if q]
            if not heads:
                return None
            job = min(heads, key=lambda j: j.enqueued)
            if self.still_wanted(job, now):
                return job
            self.groups[job.key(self.runtime.mixes_lambdas)].popleft()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.running and not self.depth:
                await self._wakeup.wait()
                self._wakeup.clear()
            admitted = self.admissible()
            gone = [rid for rid, job in self.running.items() if job.future.done()]
            self.metrics.queue_depth.set(self.depth)
            if not admitted and not self.running:
                await asyncio.sleep(0)
                continue
            self.busy = True
            try:
                done = await loop.run_in_executor(self.executor, self._step, admitted, gone)
            except Exception as err:  # noqa: BLE001 - handed to each request it concerns
                for job in [*self.running.values(), *admitted]:
                    if not job.future.done():
                        job.future.set_exception(err)
                self.running.clear()
                done = []
            for rid, result in done:
                job = self.running.pop(rid, None)
                if job is not None and not job.future.done():
                    job.future.set_result(result)
            self.busy = bool(self.running)  # drain() waits for this

    def _step(self, admitted: list[Job], gone: list[str]) -> list:
        """In the engine's thread: abort the abandoned, switch if idle, admit, decode one step."""
        if gone:
            self.runtime.abort(gone)
            for rid in gone:
                self.running.pop(rid, None)
                self.metrics.cancelled.inc()
        if admitted:
            if not self.runtime.mixes_lambdas and admitted[0].lam != self.runtime.lam:
                if self.current_lam is not None:
                    self.metrics.switches.inc()
                self.runtime.set_lambda(admitted[0].lam)
            self.current_lam = admitted[0].lam
            joining = bool(self.running)
            for job in admitted:
                rid = f"serve-{next(self._ids)}"
                self.runtime.submit(rid, job.prompt_ids(self.runtime), job.seed, job.decoding,
                                    job.lam, sink=job.sink)
                self.running[rid] = job
            self.metrics.engine_requests.inc(len(admitted))
            if joining:
                self.metrics.joined.inc(len(admitted))
        return self.runtime.step() if self.runtime.running else []
