"""The properties the toy pair must have, read off a greedy sweep of a problem set.

They are what is documented for real Instruct/Thinking pairs (README, "The toy pair"): a good
but imperfect Thinking model, a monotone frontier, interpolated models that match Thinking with
fewer tokens, a gradual transition (first the think rate rises, then traces lengthen), a
per-question oracle well above Thinking, and difficulty visible in the question.
"""

from __future__ import annotations

from collections.abc import Callable

from . import task as toy_task

Row = tuple[str, str, bool]


def check_properties(report: dict, questions: dict[str, str]) -> list[Row]:
    """(property, measured value, holds) rows from a ``sweep.json`` report (grid 0…1), so a
    rebuild shows at once what moved. ``questions`` maps problem ids to question texts."""
    rows = sorted(report["lambdas"], key=lambda r: r["lambda"])
    if rows[0]["lambda"] != 0.0 or rows[-1]["lambda"] != 1.0:
        raise ValueError("the sweep must include λ=0 and λ=1")
    checks: list[Callable[[list[dict]], Row]] = [
        endpoints, frontier_rises, tokens_rise, mid_lambda_matches_thinking, think_rate_stages,
        traces_lengthen]
    out = [check(rows) for check in checks]
    out.append(oracle_beats_thinking(report, rows[-1]))
    out.append(instruct_predictable(rows[0], questions))
    return out


def endpoints(rows: list[dict]) -> Row:
    acc_i, acc_t = rows[0]["accuracy"], rows[-1]["accuracy"]
    return ("Thinking 80–95 %, Instruct 35–75 %", f"{100 * acc_t:.1f} %, {100 * acc_i:.1f} %",
            0.80 <= acc_t <= 0.95 and 0.35 <= acc_i <= 0.75)


def frontier_rises(rows: list[dict]) -> Row:
    accuracy = [r["accuracy"] for r in rows]
    best = max(range(len(rows)), key=lambda i: (accuracy[i], -i))
    drop = max([accuracy[i - 1] - accuracy[i] for i in range(1, best + 1)], default=0.0)
    return ("accuracy never drops > 2 pts up to the best λ",
            f"best λ={rows[best]['lambda']:g}, worst drop {100 * drop:.1f} pts", drop <= 0.02)


def tokens_rise(rows: list[dict]) -> Row:
    ratio = min(b["mean_tokens"] / max(a["mean_tokens"], 1e-9) for a, b in zip(rows, rows[1:]))
    return ("mean tokens never fall (5 % slack)", f"smallest step ratio {ratio:.3f}",
            ratio >= 0.95)


def mid_lambda_matches_thinking(rows: list[dict]) -> Row:
    thinking = rows[-1]
    found = [(r["lambda"], r["accuracy"], r["mean_tokens"] / thinking["mean_tokens"])
             for r in rows if 0.5 <= r["lambda"] <= 0.9]
    good = [f"λ={lam:g}: {100 * acc:.1f} % at {100 * rel:.0f} %" for lam, acc, rel in found
            if acc >= thinking["accuracy"] - 0.005 and rel <= 0.85]
    return ("a λ in [0.5, 0.9] ≥ Thinking's accuracy (−0.5) at ≤ 85 % of its tokens",
            "; ".join(good) or "none", bool(good))


def think_rate_stages(rows: list[dict]) -> Row:
    mixed = [r["lambda"] for r in rows if 0.0 < r["think_rate"] < 1.0]
    return ("≥ 3 grid points think on some questions only",
            f"{len(mixed)}: " + ", ".join(f"{lam:g}" for lam in mixed), len(mixed) >= 3)


def traces_lengthen(rows: list[dict]) -> Row:
    """Summed over questions that think below λ=1 and at λ=1: thinking tokens at λ=1 against
    those at the first λ where the question starts to think."""
    first_sum = last_sum = count = 0
    for i, at_one in enumerate(rows[-1]["results"]):
        start = next((r["results"][i] for r in rows[:-1] if r["results"][i]["think_tokens"]),
                     None)
        if at_one["think_tokens"] and start is not None:
            count += 1
            first_sum += start["think_tokens"]
            last_sum += at_one["think_tokens"]
    ratio = last_sum / max(first_sum, 1)
    return ("thinking tokens at λ=1 ≥ 1.15 × at the first thinking λ",
            f"{ratio:.2f} over {count} questions", ratio >= 1.15)


def oracle_beats_thinking(report: dict, thinking: dict) -> Row:
    oracle = report["oracle"]
    gain = oracle["accuracy"] - thinking["accuracy"]
    relative = oracle["tokens_relative_to_thinking"]
    return ("oracle ≥ Thinking + 5 pts with ≤ 50 % of its tokens",
            f"{100 * oracle['accuracy']:.1f} % (+{100 * gain:.1f}) at {100 * relative:.0f} %",
            gain >= 0.05 and relative <= 0.5)


def instruct_auc(instruct: dict, questions: dict[str, str], seed: int = 0) -> float:
    """5-fold cross-validated ROC-AUC of gradient-boosted trees that predict, from the
    question's features alone, whether Instruct (λ=0) answers it correctly."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    results = instruct["results"]
    x = np.array([toy_task.question_features(questions[r["id"]]) for r in results])
    y = np.array([int(r["correct"]) for r in results])
    if len(set(y)) < 2 or min(np.bincount(y)) < 5:
        return float("nan")
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(roc_auc_score(y, cross_val_predict(model, x, y, cv=folds,
                                                    method="predict_proba")[:, 1]))


def instruct_predictable(instruct: dict, questions: dict[str, str]) -> Row:
    auc = instruct_auc(instruct, questions)
    return ("Instruct's correctness predictable from the question: ROC-AUC ≥ 0.85",
            f"{auc:.3f}", auc >= 0.85)


def best_static_lambda(report: dict) -> float:
    """The grid λ with the best accuracy, then the fewest mean tokens, then the lowest λ: the
    same rule as the ``best_static`` method (accuracies rounded so float noise cannot break a
    tie)."""
    best = min(report["lambdas"], key=lambda r: (-round(r["accuracy"], 12), r["mean_tokens"],
                                                 r["lambda"]))
    return float(best["lambda"])


def format_properties(rows: list[Row]) -> str:
    lines = ["| required property | measured | holds |", "|---|---|:-:|"]
    lines += [f"| {name} | {value} | {'yes' if ok else 'NO'} |" for name, value, ok in rows]
    return "\n".join(lines)
