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
    def draw(ax) -> None:
        _static_curve(ax, frontier)
        _method_markers(ax, points, first_color=0)

    return _cost_plane(draw, title, path, frontier, points, legend_size=8)


def frontier_plot(static: Sequence[tuple[float, float, float]],
                  curves: dict[str, Sequence[tuple[float, float]]], path: str | Path, *,
                  title: str, points: Sequence[tuple[str, float, float]] = ()) -> Path:
    """The static-λ curve, one line per selector's frontier ((accuracy, mean tokens) as its
    knob moves) and labelled operating points: where a selector beats fixed λ is where its
    line runs above the static one."""
    def draw(ax) -> None:
        _static_curve(ax, static)
        for i, (label, curve) in enumerate(curves.items()):
            ordered = sorted(curve, key=lambda p: p[1])
            ax.step([t for _, t in ordered], [100 * a for a, _ in ordered], where="post",
                    color=COLORS[(i + 1) % len(COLORS)], label=f"{label}: β frontier",
                    zorder=2)
        _method_markers(ax, points, first_color=1)

    return _cost_plane(draw, title, path, static, points, legend_size=7)


def _static_curve(ax, frontier: Sequence[tuple[float, float, float]]) -> None:
    ax.plot([t for _, _, t in frontier], [100 * a for _, a, _ in frontier], "-o",
            color="tab:blue", markersize=4, label="static λ", zorder=2)


def _marker_area(index: int) -> float:
    """Each method's marker smaller than the one before, so coincident ones nest."""
    return max(200 - 22 * index, 40)


def _marker_radius(fig, area: float) -> float:
    """A scatter marker's half-width in pixels (its area is in points²), with its edge."""
    return (0.75 * area ** 0.5 + 1.6) * fig.dpi / 72


def _method_markers(ax, points: Sequence[tuple[str, float, float]], first_color: int) -> None:
    """Hollow markers, each smaller than the one before: two methods at one point (DAMI-Routing
    sending everything to Instruct, the best static λ on the curve) both stay visible."""
    for i, (label, acc, tokens) in enumerate(points):
        ax.scatter([tokens], [100 * acc], marker=MARKERS[i % len(MARKERS)],
                   s=_marker_area(i), zorder=3 + i, facecolors="none", linewidths=1.6,
                   edgecolors=COLORS[(i + first_color) % len(COLORS)], label=label)


def _cost_plane(draw, title: str, path: str | Path, frontier, points,
                legend_size: int) -> Path:
    """An accuracy-against-tokens plot drawn by ``draw``, its λ labels placed where they overlap
    nothing; a cluster of λ too close to label apart is drawn again, zoomed, in an inset."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    draw(ax)
    ax.set_xlabel("mean generated tokens per question")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.margins(x=0.08, y=0.08)
    legend = ax.legend(loc="lower right", fontsize=legend_size)
    fig.tight_layout()
    anchors = [(tokens, 100 * acc) for _, acc, tokens in frontier]
    texts = [f"{lam:g}" for lam, _, _ in frontier]
    markers = [(tokens, 100 * acc, _marker_radius(fig, _marker_area(i)))
               for i, (_, acc, tokens) in enumerate(points)]
    cluster = _crowded_cluster(ax, anchors)
    avoid = [legend]
    inset = cluster and _zoom_inset(ax, draw, [anchors[i] for i in cluster],
                                    _obstacles(ax, anchors, markers, avoid, ax.lines), avoid)
    if inset:
        place_labels(inset, [anchors[i] for i in cluster], [texts[i] for i in cluster],
                     markers, lines=inset.lines)
        avoid.append(inset)
    rest = [i for i in range(len(anchors)) if not (inset and i in cluster)]
    place_labels(ax, [anchors[i] for i in rest], [texts[i] for i in rest], markers, avoid,
                 lines=ax.lines, points=anchors)
    return save_figure(fig, path)


def _crowded_cluster(ax, anchors: Sequence[tuple[float, float]], gap_px: float = 14,
                     least: int = 3) -> list[int]:
    """The largest group of anchors (at least ``least``) chained by gaps under ``gap_px``
    pixels: points whose labels cannot sit apart at the plot's scale."""
    px = [ax.transData.transform(a) for a in anchors]
    groups: list[set[int]] = []
    for i in range(len(px)):
        near = {j for j in range(len(px)) if ((px[i] - px[j]) ** 2).sum() < gap_px ** 2}
        joined = [g for g in groups if g & near]
        merged = near.union(*joined)
        groups = [g for g in groups if g not in joined] + [merged]
    largest = max(groups, key=len, default=set())
    return sorted(largest) if len(largest) >= least else []


def _zoom_inset(ax, draw, cluster: Sequence[tuple[float, float]], taken: Sequence,
                forbidden: Sequence, size: tuple[float, float] = (0.27, 0.3)):
    """An inset drawn by ``draw`` around ``cluster`` (data coordinates), placed where it covers
    the fewest points, markers and lines, and tied to its region by zoom lines."""
    xs, ys = [x for x, _ in cluster], [y for _, y in cluster]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    pad_x = max(0.6 * (max(xs) - min(xs)), 0.02 * (x1 - x0))
    pad_y = max(0.6 * (max(ys) - min(ys)), 0.02 * (y1 - y0))
    renderer = ax.figure.canvas.get_renderer()
    bounds = _free_spot(ax, taken, [a.get_window_extent(renderer) for a in forbidden], size)
    if bounds is None:
        return None
    inset = ax.inset_axes(bounds)
    draw(inset)
    inset.set_xlim(min(xs) - pad_x, max(xs) + pad_x)
    inset.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    inset.tick_params(labelsize=6)
    inset.grid(alpha=0.3)
    ax.indicate_inset_zoom(inset, edgecolor="0.4")
    return inset


def _free_spot(ax, taken: Sequence, forbidden: Sequence, size: tuple[float, float],
               ticks_px: tuple[float, float] = (30, 16)) -> list[float] | None:
    """Axes-fraction bounds of the spot of ``size`` that overlaps no ``forbidden`` box (the
    legend) and the fewest ``taken`` ones, scanning from the top left; the inset's tick labels
    (``ticks_px`` left and below) stay inside the axes too. None if every spot is forbidden."""
    from matplotlib.transforms import Bbox

    frame = ax.get_window_extent()
    width, height = size[0] * frame.width, size[1] * frame.height
    best, fewest = None, None
    for top in [0.97 - 0.03 * i for i in range(16)]:
        for left in [0.02 + 0.03 * i for i in range(24)]:
            x0 = frame.x0 + left * frame.width + ticks_px[0]
            y0 = frame.y0 + top * frame.height - height
            if x0 + width > frame.x1 or y0 - ticks_px[1] < frame.y0:
                continue
            box = Bbox.from_bounds(x0 - ticks_px[0], y0 - ticks_px[1], width + ticks_px[0],
                                   height + ticks_px[1])
            if any(box.overlaps(other) for other in forbidden):
                continue
            hits = sum(box.overlaps(other) for other in taken)
            if fewest is None or hits < fewest:
                best = [(x0 - frame.x0) / frame.width, (y0 - frame.y0) / frame.height, *size]
                fewest = hits
            if hits == 0:
                return best
    return best


def _candidate_offsets() -> list[tuple[float, float]]:
    """Pixel offsets to try for a label, nearest first, right and below preferred."""
    import math

    angles = [-35, 35, -90, 90, -145, 145, 0, 180, -60, 60, -120, 120]
    return [(r * math.cos(math.radians(a)), r * math.sin(math.radians(a)))
            for r in (9, 13, 17, 22, 27, 33, 40, 48, 56, 66) for a in angles]


def _line_boxes(ax, lines: Sequence) -> list:
    """Small pixel boxes every few pixels along each line, so a label can keep off it."""
    import numpy as np
    from matplotlib.transforms import Bbox

    boxes = []
    for line in lines:
        xy = line.get_transform().transform(line.get_path().interpolated(1).vertices)
        for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:]):
            steps = max(int(np.hypot(x1 - x0, y1 - y0) / 3), 1)
            for t in np.linspace(0, 1, steps + 1):
                x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
                boxes.append(Bbox.from_extents(x - 1, y - 1, x + 1, y + 1))
    return boxes


def _free_offset(box_at, inside, taken) -> tuple[float, float]:
    """The nearest candidate offset whose box stays inside the axes and overlaps nothing
    taken; the nearest inside the axes with the fewest overlaps if none is free."""
    best, fewest = None, None
    for dx, dy in _candidate_offsets():
        box = box_at(dx, dy)
        if not (inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)):
            continue
        hits = sum(box.overlaps(other) for other in taken)
        if hits == 0:
            return dx, dy
        if fewest is None or hits < fewest:
            best, fewest = (dx, dy), hits
    return best or (0.0, 9.0)


def _obstacles(ax, anchors: Sequence[tuple[float, float]],
               markers: Sequence[tuple[float, float, float]], avoid: Sequence,
               lines: Sequence) -> list:
    """Pixel boxes a label or an inset must keep off: points, markers (x, y, radius in
    pixels), lines and other artists such as the legend."""
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    to_px = ax.transData.transform
    taken = [a.get_window_extent(renderer) for a in avoid] + _line_boxes(ax, lines)
    taken += [Bbox.from_extents(x - 4, y - 4, x + 4, y + 4) for x, y in map(to_px, anchors)]
    for mx, my, radius in markers:
        x, y = to_px((mx, my))
        taken.append(Bbox.from_extents(x - radius, y - radius, x + radius, y + radius))
    return taken


def place_labels(ax, anchors: Sequence[tuple[float, float]], texts: Sequence[str],
                 markers: Sequence[tuple[float, float, float]] = (), avoid: Sequence = (),
                 lines: Sequence = (), points: Sequence[tuple[float, float]] = ()):
    """Annotate each anchor (data coordinates) at the nearest offset whose text box overlaps
    no other label, no anchor or extra point, no marker (x, y, radius in pixels), no line and
    nothing in ``avoid`` (artists such as the legend); far labels get a leader line."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    inside = ax.get_window_extent(renderer)
    taken = _obstacles(ax, list(anchors) + list(points), markers, avoid, lines)
    for (x, y), text in zip(anchors, texts):
        label = ax.annotate(text, (x, y), textcoords="offset pixels", xytext=(0, 0),
                            fontsize=7, color="tab:blue", ha="center", va="center", zorder=6)
        size = label.get_window_extent(renderer)
        px, py = to_px((x, y))

        def box_at(dx, dy, px=px, py=py, size=size):
            return Bbox.from_bounds(px + dx - size.width / 2 - 1, py + dy - size.height / 2 - 1,
                                    size.width + 2, size.height + 2)

        dx, dy = _free_offset(box_at, inside, taken)
        label.xyann = (dx, dy)
        if dx * dx + dy * dy > 20 ** 2:
            ax.annotate("", (x, y), xytext=(px + dx, py + dy), textcoords="figure pixels",
                        arrowprops=dict(arrowstyle="-", color="tab:blue", lw=0.5, alpha=0.6,
                                        shrinkA=4, shrinkB=2))
        taken.append(box_at(dx, dy))


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
                    grid: Sequence[float], path: Path,
                    title: str = "Chosen λ by difficulty: % of each level's questions") -> Path:
    """Per method, the share of each difficulty's questions sent to each λ, written in the
    cells."""
    import numpy as np

    plt = _pyplot()
    grid = Grid.parse(grid)
    levels = _levels(difficulty)
    fig, axes = plt.subplots(1, len(series), figsize=(4.6 * len(series), 0.5 * len(levels) + 2.4),
                             dpi=120, squeeze=False, layout="constrained")
    for ax, (label, lams) in zip(axes[0], series.items()):
        share = np.zeros((len(levels), len(grid)))
        for lam, d in zip(lams, difficulty):
            share[levels.index(str(d)), grid.index(lam)] += 1
        share /= np.maximum(share.sum(1, keepdims=True), 1)
        image = ax.imshow(share, aspect="auto", cmap="viridis", vmin=0, vmax=1, origin="lower")
        _cell_values(ax, share)
        ax.set_xticks(range(len(grid)), [f"{g:g}" for g in grid], fontsize=7)
        ax.set_yticks(range(len(levels)), levels, fontsize=8)
        ax.set_xlabel("chosen λ")
        ax.set_ylabel("difficulty")
        ax.set_title(label, fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="share of the level's questions")
    return save_figure(fig, path, bbox_inches="tight")


def _cell_values(ax, share) -> None:
    """Each non-empty cell's share in percent, dark on light cells and light on dark."""
    for row in range(share.shape[0]):
        for col in range(share.shape[1]):
            value = share[row, col]
            if value > 0:
                ax.text(col, row, f"{100 * value:.0f}", ha="center", va="center", fontsize=6,
                        color="black" if value > 0.6 else "white")
