"""The ranker's scores for a server: questions that arrive together are scored together.

One backbone pass per question costs about as much as one per batch of a dozen on a small
ranker (it is overhead-bound), so scoring one request at a time caps a server's throughput. Here
a question waits while the scorer is busy and joins the next batch: under load the batches grow
by themselves, and a lone request is scored at once. Scores are what ``LambdaRanker.score`` gives
for a batch (``dami-pref select`` scores in batches too).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

import torch


class BatchedScorer:
    def __init__(self, ranker, executor: Executor, max_batch: int = 64) -> None:
        self.ranker, self.executor, self.max_batch = ranker, executor, max_batch
        self.waiting: list[tuple[str, asyncio.Future]] = []
        self.busy = False

    async def score(self, question: str) -> torch.Tensor:
        """The scores of every candidate λ for one question (a row of the batch it joined)."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((question, future))
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.waiting:
                batch = self.waiting[:self.max_batch]
                del self.waiting[:self.max_batch]
                batch = [(q, f) for q, f in batch if not f.done()]  # clients that left
                if not batch:
                    continue
                try:
                    scores = await loop.run_in_executor(self.executor, self.ranker.score,
                                                        [q for q, _ in batch])
                except Exception as err:  # noqa: BLE001 - handed to every question it concerns
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(err)
                    continue
                for (_, future), row in zip(batch, scores):
                    if not future.done():
                        future.set_result(row)
        finally:
            self.busy = False
