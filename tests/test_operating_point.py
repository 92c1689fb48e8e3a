"""The ranker's operating point: the β chosen on validation, recorded, and used by default."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dami_pref.ranker.operating_point import (best_static_index, candidate_betas,
                                              choose_operating_point)

GRID = [0.0, 0.5, 1.0]
COSTS = torch.tensor([0.1, 0.5, 1.0])  # normalised expected cost of each λ
# Four validation problems: λ=0.5 is right on all; λ=0 on the two easy ones; λ=1 on three.
ACC = np.array([[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 0]], dtype=float)
TOKENS = np.array([[2, 20, 40], [2, 20, 40], [3, 30, 60], [3, 30, 60]], dtype=float)
# Predicted correctness: confident that λ=0 is right on the easy ones, unsure on the others.
SCORES = torch.tensor([[0.99, 1.0, 0.9], [0.97, 1.0, 0.9], [0.6, 1.0, 0.9], [0.2, 0.95, 0.5]])


def test_best_static_is_the_most_accurate_then_cheapest_column():
    assert best_static_index(ACC, TOKENS) == 1
    tie = np.array([[1, 1], [0, 0]], dtype=float)
    assert best_static_index(tie, np.array([[5, 3], [5, 3]], dtype=float)) == 1


def test_best_static_target_by_hand():
    """β = 0 picks λ=0.5 everywhere (100 %, 25 tokens). For 0.075 < β < 1 both easy problems
    move to λ=0 (the penalty saved, 0.4β, beats their 0.01 and 0.03 drops in score) while the
    third stays (its drop, 0.4, is larger): still 100 %, (2+2+30+30) / 4 = 16 tokens. From β = 1
    the third moves to λ=0 and is wrong. The cheapest choice that keeps 100 % is kept."""
    point = choose_operating_point(SCORES, ACC, TOKENS, COSTS, GRID)
    assert point["target"] == "best_static" and point["target_met"] is True
    v = point["validation"]
    assert v["best_static_lambda"] == 0.5 and v["best_static_accuracy"] == 1.0
    assert v["accuracy"] == 1.0 and v["mean_tokens"] == pytest.approx(16.0)
    assert 0.075 < point["cost_weight"] < 1.0


def test_other_targets_and_an_unmet_target():
    assert choose_operating_point(SCORES, ACC, TOKENS, COSTS, GRID, "paper")["cost_weight"] == 0
    most = choose_operating_point(SCORES, ACC, TOKENS, COSTS, GRID, "max_accuracy")
    assert most["validation"]["accuracy"] == 1.0 and most["validation"]["mean_tokens"] == 16.0
    wrong = torch.tensor([[0.0, 0.0, 1.0]] * 4)  # always prefers λ=1: 75 % at any β ≤ …
    unmet = choose_operating_point(wrong, ACC, TOKENS, COSTS, GRID)
    assert unmet["target_met"] is False and unmet["validation"]["accuracy"] < 1.0
    with pytest.raises(ValueError, match="unknown operating target"):
        choose_operating_point(SCORES, ACC, TOKENS, COSTS, GRID, "cheapest")
    betas = candidate_betas()
    assert 0.0 in betas and min(betas) < -50 and max(betas) > 50 and betas == sorted(betas)


@pytest.mark.parametrize("objective", ["acc", "pref"])
def test_training_records_the_operating_point_and_select_uses_it(toy_pairs, session_ranker,
                                                                 tmp_path, objective):
    from helpers import quick_args, reset_accelerate_state, run_in_process

    from dami_pref import LambdaRanker
    from dami_pref.ranker.training import train

    out = session_ranker  # trained with objective acc
    if objective != "acc":
        out = tmp_path / "ranker"
        reset_accelerate_state()
        result = train(*quick_args(toy_pairs, out, objective=objective, max_steps=10))
        reset_accelerate_state()
        assert json.loads((out / "dami_pref.json").read_text())["operating_point"] == \
            result["operating_point"]
    saved = json.loads((out / "dami_pref.json").read_text())["operating_point"]
    assert saved["target"] == "best_static"
    ranker = LambdaRanker.from_pretrained(out, device="cpu")
    assert ranker.default_cost_weight == saved["cost_weight"]
    questions = ["3+4", "12+7+19", "23+6", "9+8+7+6+5+4+3+2+1+1"] * 3
    scores = ranker.score(questions)
    assert ranker.select(questions) == ranker.select_from_scores(scores, saved["cost_weight"])
    # the same scores through the validation table reproduce what training recorded
    from dami_pref.ranker.data import load_examples
    from dami_pref.ranker.operating_point import frontier

    examples = load_examples(toy_pairs)[0]["validation"]
    if objective == "pref":
        examples = [e for e in examples if e.pairs]
    val_scores = ranker.score([e.question for e in examples])
    [row] = frontier(val_scores, np.array([e.acc for e in examples]),
                     np.array([e.cost for e in examples]), ranker.expected_costs().cpu(),
                     [saved["cost_weight"]])
    assert row["accuracy"] == pytest.approx(saved["validation"]["accuracy"], abs=1e-9)
    assert row["mean_tokens"] == pytest.approx(saved["validation"]["mean_tokens"], rel=1e-6)
    # and the command line uses it too, unless --cost_weight says otherwise
    def cli(*extra: str) -> list[float]:
        proc = run_in_process("select", "--ranker", str(out), "--question", *questions,
                              "--device", "cpu", "--format", "jsonl", *extra)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return [json.loads(line)["lambda"] for line in proc.stdout.splitlines()]

    assert cli() == ranker.select(questions)
    assert cli("--cost_weight", "1e6") == [ranker.grid[int(ranker.expected_costs().argmin())]] \
        * len(questions)
