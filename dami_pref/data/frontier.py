"""The static frontier: per λ, accuracy, mean tokens and how often the model thinks.

One computation serves the sweep (graded outcomes), the rollout tables and the preference
dataset's card, and one formatter prints it, so every report agrees on what it shows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from ..utils.grid import lambda_key
from ..utils.ordering import difficulty_key

# column -> (header, how a value prints)
COLUMNS = {
    "accuracy": ("accuracy", lambda v: f"{100 * v:.1f}%"),
    "mean_tokens": ("mean tokens", lambda v: f"{v:.1f}"),
    "think_rate": ("think rate", lambda v: f"{100 * v:.1f}%"),
    "malformed_rate": ("malformed", lambda v: f"{100 * v:.1f}%"),
    "unfinished_rate": ("unfinished", lambda v: f"{100 * v:.1f}%"),
    "rows": ("rows", lambda v: f"{v}"),
}


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def summarize(rows: Sequence[Mapping]) -> dict:
    """Accuracy, mean tokens, think rate and unfinished rate of graded rows (dicts with
    ``correct``, ``n_tokens``, ``think_tokens``, ``finished`` and, when known, ``malformed``)."""
    out = {"accuracy": _mean(bool(r["correct"]) for r in rows),
           "mean_tokens": _mean(r["n_tokens"] for r in rows),
           "think_rate": _mean(r["think_tokens"] > 0 for r in rows),
           "unfinished_rate": _mean(not r["finished"] for r in rows),
           "rows": len(rows)}
    if rows and "malformed" in rows[0]:
        out["malformed_rate"] = _mean(bool(r["malformed"]) for r in rows)
    return out


def by_difficulty(rows: Sequence[Mapping], value) -> dict[str, float]:
    """Mean of ``value(row)`` per difficulty level (rows without a level are left out)."""
    groups: dict[str, list] = defaultdict(list)
    for r in rows:
        if r.get("difficulty") is not None:
            groups[str(r["difficulty"])].append(value(r))
    return {k: _mean(v) for k, v in sorted(groups.items(), key=lambda kv: difficulty_key(kv[0]))}


def frontier(rows: Iterable[Mapping]) -> list[dict]:
    """One summary per λ (rows carry a ``lambda`` key), sorted by λ."""
    groups: dict[float, list] = defaultdict(list)
    lams: dict[float, float] = {}
    for r in rows:
        key = lambda_key(r["lambda"])
        groups[key].append(r)
        lams.setdefault(key, float(r["lambda"]))
    return [{"lambda": lams[key], **summarize(groups[key])} for key in sorted(groups)]


def table_frontier(table) -> list[dict]:
    """The frontier of a rollout table (pyarrow) over all its rows."""
    columns = ("lambda", "correct", "n_tokens", "think_tokens", "finished")
    return frontier(table.select(list(columns)).to_pylist())


def format_frontier(points: Sequence[Mapping], columns: Sequence[str] = (
        "accuracy", "mean_tokens", "think_rate"), extra_rows: Sequence[tuple[str, Mapping]] = ()
        ) -> str:
    """A Markdown table: one row per λ, then labelled extra rows (e.g. the oracle)."""
    lines = ["| λ | " + " | ".join(COLUMNS[c][0] for c in columns) + " |",
             "|---:|" + "---:|" * len(columns)]
    labelled = [(f"{p['lambda']:.2f}", p) for p in points] + list(extra_rows)
    for label, p in labelled:
        lines.append(f"| {label} | " + " | ".join(COLUMNS[c][1](p[c]) for c in columns) + " |")
    return "\n".join(lines)
