"""Using a trained ranker: scores over the λ grid, and a λ per question, with a cost knob.

    ranker = LambdaRanker.from_pretrained("outputs/toy/ranker")     # or a Hub id
    ranker.score(["12+7+19"])            # [n_questions × n_candidates]
    ranker.select(["12+7+19"], cost_weight=0.5)

The cost knob β selects argmax over λ of r(q, λ) − β·ĉ(λ), where ĉ(λ) is the candidate's
expected cost normalised to [0, 1]: the mean generated tokens of that λ in the training rollouts
divided by the largest, or λ itself when the ranker does not know its costs. β > 0 trades
accuracy for tokens and β < 0 tokens for accuracy, without retraining. Without an explicit β the
ranker uses the one chosen on validation when it was trained (``operating_point`` in
``dami_pref.json``: by default the fewest tokens at the best static λ's validation accuracy);
β = 0 with ``objective="pref"`` is DAMI-Pref as published.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import DamiPrefError
from ..utils.devices import parse_dtype, resolve_device
from ..utils.hub import local_or_hub
from .encoding import QuestionEncoder
from .selection import grid_scores, normalized_costs, select_index


class LambdaRanker:
    def __init__(self, model, tokenizer, config: dict) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.spec = model.spec
        self.device = next(model.parameters()).device
        self.encoder = QuestionEncoder(tokenizer, self.spec.prompt_template, self.spec.max_length,
                                       self.spec.chat_template)
        self.truncated = 0  # questions cut to max_length so far

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | Path, *, backbone: str | None = None,
                        device: str | None = "auto", dtype: str = "auto",
                        trust_remote_code: bool = False,
                        revision: str | None = None) -> "LambdaRanker":
        """Load a ranker folder (or Hub repository): safetensors and JSON only, never pickles.

        ``backbone`` overrides the backbone recorded in ``dami_pref.json`` (for instance a local
        copy of a Hub model).
        """
        from .checkpoint import load_ranker

        folder = local_or_hub(path_or_hub_id, revision=revision, what="ranker")
        model, tokenizer, config = load_ranker(folder, backbone=backbone,
                                               device=resolve_device(device),
                                               dtype=parse_dtype(dtype),
                                               trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, config)

    @property
    def pair(self) -> dict:
        """The Instruct/Thinking pair the ranker was trained for (names, fingerprints) and how
        its rollouts generated (``generation``); empty for an older ranker."""
        from .checkpoint import recorded_pair

        return recorded_pair(self.config)

    @property
    def grid(self) -> list[float]:
        return list(self.spec.grid)

    @property
    def objective(self) -> str:
        return self.spec.objective

    def expected_costs(self) -> torch.Tensor:
        """ĉ(λ) in [0, 1] per candidate: training-rollout mean tokens over the largest, or λ."""
        return normalized_costs(self.config.get("lambda_costs"), self.grid).to(self.device)

    @property
    def default_cost_weight(self) -> float:
        """β chosen on validation when the ranker was trained (``operating_point`` in
        ``dami_pref.json``); 0, DAMI-Pref as published, for a ranker without one."""
        return float((self.config.get("operating_point") or {}).get("cost_weight", 0.0))

    def _encode(self, questions: Sequence[str]) -> dict[str, torch.Tensor]:
        cut = sum(n > self.spec.max_length for n in self.encoder.lengths(questions))
        if cut:
            self.truncated += cut
            warnings.warn(f"{cut} question(s) longer than the ranker's {self.spec.max_length} "
                          "tokens were cut to their last tokens", stacklevel=3)
        return {k: v.to(self.device) for k, v in self.encoder(questions).items()}

    @torch.no_grad()
    def score(self, questions: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Scores of every candidate λ for every question (one backbone pass per question)."""
        if isinstance(questions, str):
            questions = [questions]
        if not questions:
            return torch.empty(0, len(self.grid))
        grid = torch.tensor(self.grid, dtype=torch.float32, device=self.device)
        out = []
        for at in range(0, len(questions), batch_size):
            enc = self._encode(questions[at:at + batch_size])
            out.append(grid_scores(self.model(enc["input_ids"], enc["attention_mask"]),
                                   self.objective, grid).cpu())
        return torch.cat(out)

    def select_from_scores(self, scores: torch.Tensor,
                           cost_weight: float | None = None) -> list[float]:
        """λ per row of ``scores``; ``cost_weight`` None is the validation-chosen β."""
        if cost_weight is None:
            cost_weight = self.default_cost_weight
        if cost_weight != cost_weight:  # NaN
            raise DamiPrefError("cost_weight must be a number")
        penalty = cost_weight * self.expected_costs().cpu() if cost_weight else None
        return [self.grid[i] for i in select_index(scores, penalty).tolist()]

    def select(self, questions: Sequence[str], cost_weight: float | None = None,
               batch_size: int = 64) -> list[float]:
        """λ per question: argmax of r(q, λ) − β·ĉ(λ). β = ``cost_weight``; by default the
        operating point chosen on validation at training time."""
        return self.select_from_scores(self.score(questions, batch_size), cost_weight)
