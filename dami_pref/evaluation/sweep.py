"""The static λ sweep: every λ of a grid on a problem set, and the per-problem oracle.

This is the first thing to run on a new pair: it shows whether accuracy and cost move smoothly
with λ (linear mode connectivity at work) and how much a per-question λ could save.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..data.frontier import by_difficulty, format_frontier, summarize
from ..data.grading import Outcome, outcome_of_rollout
from ..data.problems import Problem
from ..data.rollouts import ensure_rollouts, load_rollouts
from ..runtime.generation import DecodingOptions
from ..utils.ordering import Candidate, oracle


def run_sweep(runtime, problems: Sequence[Problem], grid: Sequence[float],
              options: DecodingOptions, folder: str | Path, *, pair: dict,
              overwrite: bool = False, progress: bool = True,
              source: dict | None = None) -> dict[float, list[Outcome]]:
    """Answer every problem at every λ on the rollout machinery, into the rollout folder
    ``folder`` (unit by unit, so a killed sweep resumes where it stopped, and a finished one is
    read back); outcomes per λ in problem order."""
    ensure_rollouts(runtime, problems, grid, options, folder, pair=pair, overwrite=overwrite,
                    progress=progress, source=source)
    return sweep_outcomes(folder, problems)


def sweep_outcomes(folder: str | Path, problems: Sequence[Problem]) -> dict[float, list[Outcome]]:
    """Per λ, in problem order, the outcomes of a finished rollout folder (its first sample)."""
    _, _, table = load_rollouts(folder)
    by_id = {p.id: p for p in problems}
    order = {p.id: i for i, p in enumerate(problems)}
    rows = sorted((r for r in table.to_pylist() if r["sample"] == 0),
                  key=lambda r: (r["lambda"], order[r["problem_id"]]))
    outcomes: dict[float, list[Outcome]] = {}
    for row in rows:
        outcomes.setdefault(row["lambda"], []).append(
            outcome_of_rollout(by_id[row["problem_id"]], row))
    return outcomes


def summarize_outcomes(outcomes: Sequence[Outcome]) -> dict:
    """The frontier's summary of one λ, with accuracy and tokens per difficulty level."""
    rows = [asdict(o) for o in outcomes]
    return {**summarize(rows),
            "accuracy_by_difficulty": by_difficulty(rows, lambda r: r["correct"]),
            "mean_tokens_by_difficulty": by_difficulty(rows, lambda r: r["n_tokens"])}


def oracle_outcomes(outcomes: dict[float, list[Outcome]]) -> list[tuple[float, Outcome]]:
    """Per problem, the cheapest λ among those that answer best (greedy: any correct one)."""
    grid = sorted(outcomes)
    chosen = []
    for i in range(len(outcomes[grid[0]])):
        best = oracle([Candidate(lam, float(outcomes[lam][i].correct), outcomes[lam][i].n_tokens)
                       for lam in grid])
        chosen.append((best.lam, outcomes[best.lam][i]))
    return chosen


def oracle_summary(chosen: list[tuple[float, Outcome]], thinking_tokens: float) -> dict:
    summary = summarize_outcomes([o for _, o in chosen])
    rows = [{"difficulty": o.difficulty, "lambda": lam} for lam, o in chosen]
    summary["mean_lambda"] = sum(lam for lam, _ in chosen) / max(len(chosen), 1)
    summary["mean_lambda_by_difficulty"] = by_difficulty(rows, lambda r: r["lambda"])
    summary["lambdas"] = {o.id: lam for lam, o in chosen}
    summary["tokens_relative_to_thinking"] = (summary["mean_tokens"] / thinking_tokens
                                              if thinking_tokens else 0.0)
    return summary


def sweep_report(outcomes: dict[float, list[Outcome]], config: dict) -> dict:
    """Everything ``sweep.json`` holds: per-λ summaries with per-problem results, the oracle."""
    grid = sorted(outcomes)
    per_lambda = [{"lambda": lam, **summarize_outcomes(outcomes[lam]),
                   "results": [asdict(o) for o in outcomes[lam]]} for lam in grid]
    thinking = per_lambda[-1]  # the highest λ of the grid
    return {"config": config, "grid": grid, "lambdas": per_lambda,
            "oracle": oracle_summary(oracle_outcomes(outcomes), thinking["mean_tokens"])}


def format_table(report: dict) -> str:
    """The sweep as a Markdown table, with the oracle's line."""
    return format_frontier(report["lambdas"],
                           ("accuracy", "mean_tokens", "think_rate", "malformed_rate"),
                           extra_rows=[("oracle", report["oracle"])])


def format_difficulty_table(report: dict) -> str:
    """Accuracy per difficulty at the two ends of the grid, and the oracle's mean λ."""
    rows = report["lambdas"]
    first, last = rows[0], rows[-1]
    keys = list(first["accuracy_by_difficulty"])
    if not keys:
        return "(the problems carry no difficulty field)"
    head = (f"| difficulty | acc λ={first['lambda']:g} | acc λ={last['lambda']:g} | "
            f"tokens λ={first['lambda']:g} | tokens λ={last['lambda']:g} | oracle mean λ |")
    lines = [head, "|---:|---:|---:|---:|---:|---:|"]
    for k in keys:
        lines.append(
            f"| {k} | {100 * first['accuracy_by_difficulty'][k]:.1f}% | "
            f"{100 * last['accuracy_by_difficulty'][k]:.1f}% | "
            f"{first['mean_tokens_by_difficulty'][k]:.1f} | "
            f"{last['mean_tokens_by_difficulty'][k]:.1f} | "
            f"{report['oracle']['mean_lambda_by_difficulty'].get(k, float('nan')):.2f} |")
    return "\n".join(lines)


def oracle_line(report: dict) -> str:
    o, last = report["oracle"], report["lambdas"][-1]
    return (f"oracle (cheapest correct λ per problem): accuracy {100 * o['accuracy']:.1f}% "
            f"with {o['mean_tokens']:.1f} mean tokens = "
            f"{100 * o['tokens_relative_to_thinking']:.0f}% of λ={last['lambda']:g}'s "
            f"{last['mean_tokens']:.1f} (λ={last['lambda']:g} accuracy "
            f"{100 * last['accuracy']:.1f}%)")
