"""Plots people would rather look at than read: accuracy against tokens, λ labelled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .io import temporary_sibling


def pareto_plot(frontier: Sequence[tuple[float, float, float]], path: str | Path, *,
                title: str = "Accuracy against cost",
                points: Sequence[tuple[str, float, float]] = ()) -> Path:
    """Save a PNG of the static-λ curve (λ, accuracy, mean tokens) and labelled method points.

    ``points`` are (label, accuracy, mean tokens), e.g. the oracle or a trained selector.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    xs = [tokens for _, _, tokens in frontier]
    ys = [100 * acc for _, acc, _ in frontier]
    ax.plot(xs, ys, "-o", color="tab:blue", label="static λ", zorder=2)
    for lam, acc, tokens in frontier:
        ax.annotate(f"{lam:g}", (tokens, 100 * acc), textcoords="offset points",
                    xytext=(4, -10), fontsize=7, color="tab:blue")
    markers = "*sD^vPXo"
    colors = ["tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink",
              "tab:olive", "tab:cyan"]
    for i, (label, acc, tokens) in enumerate(points):
        ax.scatter([tokens], [100 * acc], marker=markers[i % len(markers)], s=90, zorder=3,
                   color=colors[i % len(colors)], label=label)
    ax.set_xlabel("mean generated tokens per question")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str | Path, **savefig_kwargs) -> Path:
    """Save and close a matplotlib figure under a temporary name, then rename it into place."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path).with_suffix(".png")
    fig.savefig(tmp, **savefig_kwargs)
    plt.close(fig)
    tmp.replace(path)
    return path
