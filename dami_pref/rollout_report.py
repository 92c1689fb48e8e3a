"""What a rollout table says at a glance: the frontier per λ and where λ* falls by difficulty."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from .plots import save_figure


def frontier(table: pa.Table) -> list[dict]:
    """Per λ: accuracy, mean tokens, think rate and unfinished rate over every rollout row."""
    groups: dict[float, list[tuple[bool, int, int, bool]]] = defaultdict(list)
    cols = [table.column(c).to_pylist()
            for c in ("lambda", "correct", "n_tokens", "think_tokens", "finished")]
    for lam, correct, n_tokens, think, finished in zip(*cols):
        groups[lam].append((correct, n_tokens, think, finished))
    out = []
    for lam in sorted(groups):
        rows = groups[lam]
        n = len(rows)
        out.append({"lambda": lam, "accuracy": sum(r[0] for r in rows) / n,
                    "mean_tokens": sum(r[1] for r in rows) / n,
                    "think_rate": sum(r[2] > 0 for r in rows) / n,
                    "unfinished_rate": sum(not r[3] for r in rows) / n, "rows": n})
    return out


def frontier_table(table: pa.Table, problems: pa.Table | None = None) -> str:
    lines = ["| λ | accuracy | mean tokens | think rate | unfinished | rows |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in frontier(table):
        lines.append(f"| {r['lambda']:.2f} | {100 * r['accuracy']:.1f}% | "
                     f"{r['mean_tokens']:.1f} | {100 * r['think_rate']:.1f}% | "
                     f"{100 * r['unfinished_rate']:.1f}% | {r['rows']} |")
    return "\n".join(lines)


def lambda_star_histogram(oracle_lambdas: Sequence[float], difficulties: Sequence[str | None],
                          grid: Sequence[float], path: str | Path,
                          title: str = "λ*(q) by difficulty") -> Path:
    """Stacked bars: how many problems have each λ* (cheapest best λ), one colour per level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted({str(d) for d in difficulties},
                    key=lambda d: (0, int(d), "") if d.lstrip("-").isdigit() else (1, 0, d))
    counts = {level: [0] * len(grid) for level in levels}
    index = {round(lam, 6): i for i, lam in enumerate(grid)}
    for lam, level in zip(oracle_lambdas, difficulties):
        counts[str(level)][index[round(lam, 6)]] += 1
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    bottom = [0] * len(grid)
    cmap = plt.get_cmap("viridis", max(len(levels), 2))
    width = min(b - a for a, b in zip(grid, grid[1:])) * 0.8 if len(grid) > 1 else 0.08
    for i, level in enumerate(levels):
        ax.bar(list(grid), counts[level], bottom=bottom, width=width, color=cmap(i),
               label=f"difficulty {level}" if level != "None" else "no difficulty")
        bottom = [b + c for b, c in zip(bottom, counts[level])]
    ax.set_xlabel("λ*  (cheapest λ with the best accuracy)")
    ax.set_ylabel("problems")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)
