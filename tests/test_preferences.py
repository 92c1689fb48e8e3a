"""Preference pairs from hand-made candidate tables: accuracy first, cost second, ties, tolerances."""

from __future__ import annotations

import pytest

from dami_pref.data.preferences import (PairOptions, candidates_from_rows, lambda_text,
                                        pair_rows, pairs_for_problem, split_problems)
from dami_pref.utils.ordering import Candidate, oracle

STRICT = PairOptions(acc_tolerance=0.0, cost_tolerance=0.0)


def lams(pairs):
    return sorted((c.lam, r.lam) for c, r in pairs)


def test_accuracy_first_then_cost():
    cands = [Candidate(0.0, 0.0, 3), Candidate(0.5, 1.0, 20), Candidate(1.0, 1.0, 40)]
    # 0.5 beats 0.0 on accuracy, 1.0 beats 0.0 on accuracy, 0.5 beats 1.0 on cost
    assert lams(pairs_for_problem(cands, STRICT)) == [(0.5, 0.0), (0.5, 1.0), (1.0, 0.0)]


def test_ties_give_no_pair():
    same = [Candidate(0.0, 1.0, 3), Candidate(0.1, 1.0, 3), Candidate(0.2, 1.0, 3)]
    assert pairs_for_problem(same, STRICT) == []


def test_all_wrong_prefers_the_cheapest_and_all_right_too():
    wrong = [Candidate(0.0, 0.0, 3), Candidate(1.0, 0.0, 40)]
    right = [Candidate(0.0, 1.0, 3), Candidate(1.0, 1.0, 40)]
    assert lams(pairs_for_problem(wrong, STRICT)) == [(0.0, 1.0)]
    assert lams(pairs_for_problem(right, STRICT)) == [(0.0, 1.0)]


def test_cost_tolerance_is_relative_to_the_dearer_cost():
    cands = [Candidate(0.8, 1.0, 38), Candidate(0.9, 1.0, 40)]
    assert lams(pairs_for_problem(cands, PairOptions(cost_tolerance=0.0))) == [(0.8, 0.9)]
    assert pairs_for_problem(cands, PairOptions(cost_tolerance=0.05)) == []  # 2 ≤ 5% of 40
    assert lams(pairs_for_problem(cands, PairOptions(cost_tolerance=0.04))) == [(0.8, 0.9)]


def test_accuracy_tolerance_falls_back_to_cost():
    cands = [Candidate(0.2, 0.75, 10), Candidate(0.8, 1.0, 40)]
    assert lams(pairs_for_problem(cands, STRICT)) == [(0.8, 0.2)]
    assert lams(pairs_for_problem(cands, PairOptions(acc_tolerance=0.25))) == [(0.2, 0.8)]


def test_several_samples_average_into_acc_and_cost():
    rows = [{"problem_id": "q", "lambda": 0.0, "correct": c, "n_tokens": t}
            for c, t in [(True, 3), (False, 5), (False, 4), (False, 4)]]
    rows += [{"problem_id": "q", "lambda": 1.0, "correct": c, "n_tokens": t}
             for c, t in [(True, 30), (True, 34), (True, 32), (False, 40)]]
    [c0, c1] = candidates_from_rows(rows)["q"]
    assert (c0.lam, c0.acc, c0.cost) == (0.0, 0.25, 4.0)
    assert (c1.lam, c1.acc, c1.cost) == (1.0, 0.75, 34.0)
    assert lams(pairs_for_problem([c0, c1], STRICT)) == [(1.0, 0.0)]


def test_oracle_is_the_cheapest_best():
    cands = [Candidate(0.0, 0.5, 3), Candidate(0.6, 1.0, 30), Candidate(1.0, 1.0, 30)]
    assert oracle(cands).lam == 0.6  # equal cost: the lower λ


def test_pair_rows_have_every_column():
    [row] = pair_rows("q1", "1+2", "1+2", [(Candidate(0.3, 1.0, 10), Candidate(0.0, 0.0, 3))])
    assert row == {"problem_id": "q1", "question": "1+2", "chosen_lambda": 0.3,
                   "rejected_lambda": 0.0, "chosen_acc": 1.0, "rejected_acc": 0.0,
                   "chosen_cost": 10, "rejected_cost": 3, "prompt": "1+2",
                   "chosen": lambda_text(0.3), "rejected": lambda_text(0.0)}
    assert lambda_text(0.3).isascii() and "0.30" in lambda_text(0.3)


def test_split_is_by_problem_seeded_and_disjoint():
    ids = [f"p{i}" for i in range(50)]
    train, val = split_problems(ids, 0.2, seed=1)
    assert len(val) == 10 and not set(train) & set(val) and set(train) | set(val) == set(ids)
    assert (train, val) == split_problems(ids, 0.2, seed=1)
    assert val != split_problems(ids, 0.2, seed=2)[1]
    assert split_problems(ids, 0.0, seed=1) == (ids, [])


@pytest.mark.parametrize("kwargs", [dict(acc_tolerance=-0.1), dict(cost_tolerance=1.0)])
def test_bad_options(kwargs):
    with pytest.raises(ValueError):
        PairOptions(**kwargs)
