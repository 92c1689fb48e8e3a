"""The static λ sweep: every λ of a grid on a problem set, and the per-problem oracle.

This is the first thing to run on a new pair: it shows whether accuracy and cost move smoothly
with λ (linear mode connectivity at work) and how much a per-question λ could save.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .errors import DamiPrefError
from .generation import DecodingOptions, GenerationRequest, GenerationResult
from .grading import answers_match, gold_answer, is_parsable
from .ordering import Candidate, oracle
from .problems import Problem


def parse_grid(spec: str | Sequence[float]) -> list[float]:
    """``"0:1:0.1"`` (start:stop:step, stop included) or ``"0,0.25,1"`` → sorted λ values."""
    if isinstance(spec, str):
        text = spec.strip()
        try:
            if ":" in text:
                parts = [float(x) for x in text.split(":")]
                if len(parts) != 3 or parts[2] <= 0:
                    raise ValueError
                start, stop, step = parts
                count = int(round((stop - start) / step)) + 1
                values = [round(start + i * step, 10) for i in range(count)
                          if start + i * step <= stop + 1e-9]
            else:
                values = [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise DamiPrefError(f"cannot read λ grid {spec!r}; write start:stop:step "
                                "(e.g. 0:1:0.1) or a comma list (e.g. 0,0.5,1)") from None
    else:
        values = [float(x) for x in spec]
    if not values:
        raise DamiPrefError(f"λ grid {spec!r} is empty")
    bad = [v for v in values if not 0.0 <= v <= 1.0]  # NaN fails this too
    if bad:
        raise DamiPrefError(f"λ grid {spec!r} has values outside [0, 1]: {bad}")
    return sorted(set(values))


@dataclass(frozen=True)
class Outcome:
    """One problem answered at one λ, graded."""

    id: str
    difficulty: int | str | None
    correct: bool
    n_tokens: int
    think_tokens: int
    finished: bool
    malformed: bool
    answer: str


def grade_result(problem: Problem, result: GenerationResult) -> Outcome:
    correct = result.finished and answers_match(result.answer, gold_answer(problem.answer))
    malformed = not result.finished or not is_parsable(result.answer)
    return Outcome(problem.id, problem.difficulty, correct, result.n_tokens,
                   result.think_tokens, result.finished, malformed, result.answer)


def run_sweep(runtime, problems: Sequence[Problem], grid: Sequence[float],
              options: DecodingOptions, progress: bool = True) -> dict[float, list[Outcome]]:
    """Answer every problem at every λ (one switch per λ); outcomes per λ in problem order."""
    requests = [GenerationRequest(p.question, lam) for lam in grid for p in problems]
    results = runtime.generate(requests, options, progress=progress)
    outcomes: dict[float, list[Outcome]] = {}
    for index, (request, result) in enumerate(zip(requests, results)):
        problem = problems[index % len(problems)]
        outcomes.setdefault(request.lam, []).append(grade_result(problem, result))
    return outcomes


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _by_difficulty(outcomes: Sequence[Outcome], value) -> dict[str, float]:
    groups: dict[str, list] = defaultdict(list)
    for o in outcomes:
        if o.difficulty is not None:
            groups[str(o.difficulty)].append(value(o))
    return {k: _mean(v) for k, v in sorted(groups.items(), key=lambda kv: _sort_key(kv[0]))}


def _sort_key(text: str):
    return (0, int(text), "") if text.lstrip("-").isdigit() else (1, 0, text)


def summarize(outcomes: Sequence[Outcome]) -> dict:
    return {
        "accuracy": _mean(o.correct for o in outcomes),
        "mean_tokens": _mean(o.n_tokens for o in outcomes),
        "think_rate": _mean(o.think_tokens > 0 for o in outcomes),
        "malformed_rate": _mean(o.malformed for o in outcomes),
        "accuracy_by_difficulty": _by_difficulty(outcomes, lambda o: o.correct),
        "mean_tokens_by_difficulty": _by_difficulty(outcomes, lambda o: o.n_tokens),
    }


def oracle_outcomes(outcomes: dict[float, list[Outcome]]) -> list[tuple[float, Outcome]]:
    """Per problem, the cheapest λ among those that answer best (greedy: any correct one)."""
    grid = sorted(outcomes)
    chosen = []
    for i in range(len(outcomes[grid[0]])):
        best = oracle([Candidate(lam, float(outcomes[lam][i].correct), outcomes[lam][i].n_tokens)
                       for lam in grid])
        chosen.append((best.lam, outcomes[best.lam][i]))
    return chosen


def sweep_report(outcomes: dict[float, list[Outcome]], config: dict) -> dict:
    """Everything ``sweep.json`` holds: per-λ summaries with per-problem results, the oracle."""
    grid = sorted(outcomes)
    per_lambda = [{"lambda": lam, **summarize(outcomes[lam]),
                   "results": [asdict(o) for o in outcomes[lam]]} for lam in grid]
    chosen = oracle_outcomes(outcomes)
    oracle_summary = summarize([o for _, o in chosen])
    lam_by_difficulty: dict[str, list[float]] = defaultdict(list)
    for lam, o in chosen:
        if o.difficulty is not None:
            lam_by_difficulty[str(o.difficulty)].append(lam)
    oracle_summary["mean_lambda"] = _mean(lam for lam, _ in chosen)
    oracle_summary["mean_lambda_by_difficulty"] = {
        k: _mean(v) for k, v in sorted(lam_by_difficulty.items(), key=lambda kv: _sort_key(kv[0]))}
    oracle_summary["lambdas"] = {o.id: lam for lam, o in chosen}
    thinking = next((row for row in per_lambda if row["lambda"] == max(grid)), per_lambda[-1])
    oracle_summary["tokens_relative_to_thinking"] = (
        oracle_summary["mean_tokens"] / thinking["mean_tokens"] if thinking["mean_tokens"] else 0.0)
    return {"config": config, "grid": grid, "lambdas": per_lambda, "oracle": oracle_summary}


def format_table(report: dict) -> str:
    """The sweep as a plain-text table (Markdown-compatible), with the oracle's line."""
    lines = ["| λ | accuracy | mean tokens | think rate | malformed |",
             "|---:|---:|---:|---:|---:|"]
    for row in report["lambdas"]:
        lines.append(f"| {row['lambda']:.2f} | {100 * row['accuracy']:.1f}% | "
                     f"{row['mean_tokens']:.1f} | {100 * row['think_rate']:.1f}% | "
                     f"{100 * row['malformed_rate']:.1f}% |")
    o = report["oracle"]
    lines.append(f"| oracle | {100 * o['accuracy']:.1f}% | {o['mean_tokens']:.1f} | "
                 f"{100 * o['think_rate']:.1f}% | {100 * o['malformed_rate']:.1f}% |")
    return "\n".join(lines)


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
