"""Plots people would rather look at than read: accuracy against tokens, λ choices by difficulty.

Every figure is saved under a temporary name and renamed into place, like every other output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .grid import Grid
from .io import atomic_path
from .ordering import difficulty_key

MARKERS = "*sD^vPXo"
COLORS = ["tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink",
          "tab:olive", "tab:cyan"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, **savefig_kwargs) -> Path:
    """Save and close a matplotlib figure under a temporary name, then rename it into place."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    _pyplot().close(fig)
    return Path(path)


def pareto_plot(frontier: Sequence[tuple[float, float, float]], path: str | Path, *,
                title: str = "Accuracy against cost",
                points: Sequence[tuple[str, float, float]] = ()) -> Path:
    """Save a PNG of the static-λ curve (λ, accuracy, mean tokens) and labelled method points.

    ``points`` are (label, accuracy, mean tokens), e.g. the oracle or a trained selector.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    xs = [tokens for _, _, tokens in frontier]
    ys = [100 * acc for _, acc, _ in frontier]
    ax.plot(xs, ys, "-o", color="tab:blue", label="static λ", zorder=2)
    for lam, acc, tokens in frontier:
        ax.annotate(f"{lam:g}", (tokens, 100 * acc), textcoords="offset points",
                    xytext=(4, -10), fontsize=7, color="tab:blue")
    for i, (label, acc, tokens) in enumerate(points):
        ax.scatter([tokens], [100 * acc], marker=MARKERS[i % len(MARKERS)], s=90, zorder=3,
                   color=COLORS[i % len(COLORS)], label=label)
    return _save_cost_plane(fig, ax, title, path, legend_size=8)


def frontier_plot(static: Sequence[tuple[float, float, float]],
                  curves: dict[str, Sequence[tuple[float, float]]], path: str | Path, *,
                  title: str, points: Sequence[tuple[str, float, float]] = ()) -> Path:
    """The static-λ curve, one line per selector's frontier ((accuracy, mean tokens) as its
    knob moves) and labelled operating points: where a selector beats fixed λ is where its
    line runs above the static one."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    ax.plot([t for _, _, t in static], [100 * a for _, a, _ in static], "-o", color="tab:blue",
            label="static λ", zorder=2)
    for lam, acc, tokens in static:
        ax.annotate(f"{lam:g}", (tokens, 100 * acc), textcoords="offset points",
                    xytext=(4, -10), fontsize=7, color="tab:blue")
    for i, (label, curve) in enumerate(curves.items()):
        ordered = sorted(curve, key=lambda p: p[1])
        ax.step([t for _, t in ordered], [100 * a for a, _ in ordered], where="post",
                color=COLORS[(i + 1) % len(COLORS)], label=f"{label}: β frontier", zorder=2)
    for i, (label, acc, tokens) in enumerate(points):
        ax.scatter([tokens], [100 * acc], marker=MARKERS[i % len(MARKERS)], s=90, zorder=3,
                   color=COLORS[(i + 1) % len(COLORS)], label=label, edgecolors="black")
    return _save_cost_plane(fig, ax, title, path, legend_size=7)


def _save_cost_plane(fig, ax, title: str, path: str | Path, legend_size: int) -> Path:
    """Labels, grid and legend of an accuracy-against-tokens plot, then the file."""
    ax.set_xlabel("mean generated tokens per question")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=legend_size)
    fig.tight_layout()
    return save_figure(fig, path)


def _levels(difficulties: Sequence) -> list[str]:
    return sorted({str(d) for d in difficulties}, key=difficulty_key)


def lambda_star_histogram(oracle_lambdas: Sequence[float], difficulties: Sequence[str | None],
                          grid: Sequence[float], path: str | Path,
                          title: str = "λ*(q) by difficulty") -> Path:
    """Stacked bars: how many problems have each λ* (cheapest best λ), one colour per level."""
    plt = _pyplot()
    grid = Grid.parse(grid)
    levels = _levels(difficulties)
    counts = {level: [0] * len(grid) for level in levels}
    for lam, level in zip(oracle_lambdas, difficulties):
        counts[str(level)][grid.index(lam)] += 1
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


def lambda_heatmaps(series: dict[str, Sequence[float]], difficulty: Sequence[str | None],
                    grid: Sequence[float], path: Path) -> Path:
    """Per method, the share of each difficulty's questions sent to each λ."""
    import numpy as np

    plt = _pyplot()
    grid = Grid.parse(grid)
    levels = _levels(difficulty)
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.8), dpi=120,
                             squeeze=False)
    for ax, (label, lams) in zip(axes[0], series.items()):
        share = np.zeros((len(levels), len(grid)))
        for lam, d in zip(lams, difficulty):
            share[levels.index(str(d)), grid.index(lam)] += 1
        share /= np.maximum(share.sum(1, keepdims=True), 1)
        image = ax.imshow(share, aspect="auto", cmap="viridis", vmin=0, vmax=1, origin="lower")
        ax.set_xticks(range(len(grid)), [f"{g:g}" for g in grid], fontsize=7)
        ax.set_yticks(range(len(levels)), levels, fontsize=8)
        ax.set_xlabel("chosen λ")
        ax.set_ylabel("difficulty")
        ax.set_title(label, fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="share of the level's questions")
    return save_figure(fig, path, bbox_inches="tight")
