"""Token log-probabilities, as OpenAI's ``logprobs`` / ``top_logprobs`` return them, the same on
every engine: each generated token's log-probability under the model at its λ, before sampling
settings (temperature, top-p, penalties) touch the logits (vLLM's default ``raw_logprobs``), and
the ``top`` most likely tokens at that step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor

@dataclass(frozen=True)
class TokenLogprob:
    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()  # (token id, log-probability), most likely first


class LogprobRecorder(LogitsProcessor):
    """Records each row's log-probabilities as ``generate`` decodes (first in the processor list,
    so it sees the model's own logits).

    A step's chosen token is known only once it is sampled, so the step's log-softmax is kept
    until the next call (whose ``input_ids`` end with it) or until :meth:`finish`.
    """

    def __init__(self, top: int) -> None:
        self.top = top
        self.rows: list[list[TokenLogprob]] = []
        self._pending: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._resolve(input_ids[:, -1])
        self._pending = torch.log_softmax(scores.float(), dim=-1)
        if not self.rows:
            self.rows = [[] for _ in range(scores.shape[0])]
        return scores

    def finish(self, last_tokens: torch.Tensor) -> list[list[TokenLogprob]]:
        """Every row's log-probabilities, given the tokens chosen at the last step."""
        self._resolve(last_tokens)
        return self.rows

    def _resolve(self, chosen: torch.Tensor) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        chosen = chosen.to(pending.device).view(-1, 1)
        picked = pending.gather(1, chosen).view(-1).tolist()
        values, ids = pending.topk(self.top, dim=-1) if self.top else (None, None)
        for row, (token, logprob) in enumerate(zip(chosen.view(-1).tolist(), picked)):
            top = tuple(zip(ids[row].tolist(), values[row].tolist())) if self.top else ()
            self.rows[row].append(TokenLogprob(token, logprob, top))


def from_vllm(token_ids: Sequence[int], steps: Sequence[dict | None] | None,
              top: int) -> list[TokenLogprob] | None:
    """vLLM's per-token ``{token id: Logprob}`` (the chosen token and the ``top`` most likely,
    ranked) as this module's records."""
    if steps is None:
        return None
    records = []
    for token, step in zip(token_ids, steps):
        step = step or {}
        chosen = step.get(token)
        ranked = sorted((lp.rank, tid, lp.logprob) for tid, lp in step.items()
                        if lp.rank is not None and lp.rank <= top)
        records.append(TokenLogprob(token, chosen.logprob if chosen else float("-inf"),
                                    tuple((tid, lp) for _, tid, lp in ranked)))
    return records
