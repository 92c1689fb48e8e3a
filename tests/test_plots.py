"""The plots a reader looks at: λ labels that overlap nothing, markers that hide nothing,
titles and values in the heat-map cells."""

from __future__ import annotations

import itertools

import pytest

from dami_pref.utils import plots

# a static curve crowded the way the toy pair's is: λ 0 and 0.1 a few tokens apart, 0.5-0.7
# within a point of accuracy of each other
CROWDED = [(0.0, 0.564, 3.3), (0.1, 0.58, 4.1), (0.2, 0.70, 9.8), (0.3, 0.85, 19.0),
           (0.4, 0.95, 29.0), (0.5, 0.993, 43.0), (0.6, 0.997, 46.4), (0.7, 0.996, 49.5),
           (0.8, 0.98, 65.0), (0.9, 0.96, 75.0), (1.0, 0.94, 83.0)]


def test_lambda_labels_overlap_no_label_point_or_legend():
    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    plots._static_curve(ax, CROWDED)
    methods = [("Instruct", 0.564, 3.3), ("best static", 0.997, 46.4), ("oracle", 0.998, 32.3)]
    plots._method_markers(ax, methods, first_color=0)
    legend = ax.legend(loc="lower right")
    anchors = [(t, 100 * a) for _, a, t in CROWDED]
    plots.place_labels(ax, anchors, [f"{lam:g}" for lam, _, _ in CROWDED], avoid=[legend])
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text()]
    assert [t.get_text() for t in labels] == [f"{lam:g}" for lam, _, _ in CROWDED]
    boxes = [t.get_window_extent(renderer) for t in labels]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    points = [ax.transData.transform(p) for p in anchors]
    for box in boxes:
        assert not any(box.contains(x, y) for x, y in points)
        assert not box.overlaps(legend.get_window_extent(renderer))
    plt.close(fig)


def test_coincident_methods_stay_visible(tmp_path):
    """Two methods at one point (routing everything to Instruct) are hollow markers of two
    sizes, so neither hides the other."""
    plt = plots._pyplot()
    fig, ax = plt.subplots()
    plots._method_markers(ax, [("Instruct", 0.5, 3.0), ("DAMI-Routing", 0.5, 3.0)], 0)
    first, second = ax.collections
    assert first.get_sizes()[0] > second.get_sizes()[0]
    assert all(c.get_facecolor().size == 0 or c.get_facecolor()[0][3] == 0
               for c in (first, second))
    plt.close(fig)


def test_heatmap_has_a_title_and_its_values(tmp_path):
    import matplotlib.pyplot as plt

    saved = []
    real = plots.save_figure
    plots_fig = {}

    def keep(fig, path, **kwargs):
        plots_fig["fig"] = fig
        saved.append([t.get_text() for ax in fig.axes for t in ax.texts])
        plots_fig["title"] = fig._suptitle.get_text() if fig._suptitle else ""
        return real(fig, path, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "save_figure", keep)
        plots.lambda_heatmaps({"DAMI-Pref": [0.0, 0.0, 1.0, 0.5]}, ["1", "1", "2", "2"],
                              [0.0, 0.5, 1.0], tmp_path / "h.png")
    assert (tmp_path / "h.png").is_file() and "difficulty" in plots_fig["title"]
    assert sorted(saved[0]) == ["100", "50", "50"]  # level 1: all at 0; level 2: half, half
    plt.close("all")


# the toy pair's own frontier (2026-12-03 main job): λ 0.5, 0.6 and 0.7 lie within 2 tokens and
# one point of accuracy of each other
TOY = [(0.0, 0.564, 3.3), (0.1, 0.561, 5.3), (0.2, 0.592, 11.6), (0.3, 0.844, 34.9),
       (0.4, 0.956, 45.0), (0.5, 0.992, 47.5), (0.6, 0.997, 48.4), (0.7, 0.987, 49.4),
       (0.8, 0.98, 52.9), (0.9, 0.956, 66.0), (1.0, 0.94, 83.0)]


def _kept_figure(monkeypatch):
    kept = {}
    real = plots.save_figure

    def keep(fig, path, **kwargs):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        kept["axes"] = [(ax, [(t.get_text(), t.get_window_extent(renderer))
                              for t in ax.texts if t.get_text()])
                        for ax in fig.axes + fig.axes[0].child_axes]
        kept["legend"] = fig.axes[0].get_legend().get_window_extent(renderer)
        return real(fig, path, **kwargs)

    monkeypatch.setattr(plots, "save_figure", keep)
    return kept


def test_a_crowded_cluster_is_labelled_in_a_zoomed_inset(tmp_path, monkeypatch):
    """λ labels that cannot sit apart at the plot's scale are drawn again in an inset, which
    keeps off the legend; every λ is labelled exactly once and no two labels overlap."""
    kept = _kept_figure(monkeypatch)
    methods = [("Instruct", 0.564, 3.3), ("Thinking", 0.94, 83.0), ("best static", 0.997, 48.4),
               ("DAMI-Pref", 0.996, 45.0), ("oracle", 0.998, 32.3)]
    plots.pareto_plot(TOY, tmp_path / "p.png", points=methods)
    (main, main_labels), (inset, inset_labels) = kept["axes"]
    assert sorted(t for t, _ in inset_labels) == ["0.5", "0.6", "0.7"]
    assert sorted(t for t, _ in main_labels + inset_labels) == sorted(f"{lam:g}"
                                                                      for lam, _, _ in TOY)
    for labels in (main_labels, inset_labels):
        for (_, a), (_, b) in itertools.combinations(labels, 2):
            assert not a.overlaps(b)
    assert not inset.get_window_extent().overlaps(kept["legend"])
    x0, x1 = inset.get_xlim()
    assert x0 < 47.5 and 49.4 < x1 and x1 - x0 < 10  # zoomed on the cluster


def test_no_inset_when_every_label_fits(tmp_path, monkeypatch):
    kept = _kept_figure(monkeypatch)
    spread = [(lam, 0.5 + 0.4 * lam, 5 + 70 * lam) for lam in (0.0, 0.25, 0.5, 0.75, 1.0)]
    plots.pareto_plot(spread, tmp_path / "p.png")
    assert len(kept["axes"]) == 1
