"""Results of an evaluation: the JSON record, the markdown table, and the plots."""

from __future__ import annotations

import subprocess
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .candidates import CandidateTable
from .methods import Choice

RESULTS_VERSION = 1
PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "safetensors",
            "math-verify", "scikit-learn", "deepspeed")


def environment() -> dict:
    """Package versions and the git commit, so a result can be traced to its code."""
    from importlib.metadata import PackageNotFoundError, version

    import dami_pref

    versions = {"dami-pref": dami_pref.__version__}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    try:
        root = Path(dami_pref.__file__).resolve().parents[1]
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"packages": versions, "git_commit": commit, "git_dirty": dirty,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def by_difficulty(lams: Sequence[float], difficulty: Sequence[str | None]) -> dict[str, float]:
    groups: dict[str, list[float]] = defaultdict(list)
    for lam, d in zip(lams, difficulty):
        if d is not None:
            groups[str(d)].append(lam)
    key = (lambda d: (0, int(d), "") if d.lstrip("-").isdigit() else (1, 0, d))
    return {d: float(np.mean(v)) for d, v in sorted(groups.items(), key=lambda kv: key(kv[0]))}


def method_record(choice: Choice, test: CandidateTable, thinking_tokens: float,
                  live: dict | None = None, thinking_live_seconds: float | None = None) -> dict:
    offline = test.score(choice.lams)
    record = {
        "method": choice.method, "label": choice.label,
        "accuracy": offline["accuracy"], "mean_tokens": offline["mean_tokens"],
        "tokens_vs_thinking": offline["mean_tokens"] / thinking_tokens if thinking_tokens else None,
        "lambda_counts": {f"{k:g}": v for k, v in sorted(Counter(choice.lams).items())},
        "mean_lambda_by_difficulty": by_difficulty(choice.lams, test.difficulty),
        "choose_seconds": choice.choose_seconds,
    }
    if live is not None:
        total = live["seconds"] + live["choose_seconds"]
        record["live"] = {
            "accuracy": float(np.mean([o.correct for o in live["outcomes"]])),
            "mean_tokens": float(np.mean([o.n_tokens for o in live["outcomes"]])),
            "choose_seconds": live["choose_seconds"], "generate_seconds": live["seconds"],
            "seconds": total, "same_choices_as_offline": live["same_choices"],
            "switches": live["switches"],
            "speedup_vs_thinking": (thinking_live_seconds / total) if thinking_live_seconds
            else None,
            "agrees_with_offline": live["agrees"],
        }
    return record


def results_table(records: list[dict]) -> str:
    live = any("live" in r for r in records)
    head = "| method | accuracy | mean tokens | tokens vs Thinking |"
    sep = "|---|---:|---:|---:|"
    if live:
        head += " live accuracy | wall time (s) | speed-up |"
        sep += "---:|---:|---:|"
    lines = [head, sep]
    for r in records:
        ratio = f"{100 * r['tokens_vs_thinking']:.0f}%" if r["tokens_vs_thinking"] else "—"
        line = f"| {r['label']} | {100 * r['accuracy']:.1f}% | {r['mean_tokens']:.1f} | {ratio} |"
        if live:
            if "live" in r:
                lv = r["live"]
                speed = f"{lv['speedup_vs_thinking']:.2f}×" if lv["speedup_vs_thinking"] else "—"
                line += f" {100 * lv['accuracy']:.1f}% | {lv['seconds']:.2f} | {speed} |"
            else:
                line += " — | — | — |"
        lines.append(line)
    return "\n".join(lines)


def validate_results(results: dict) -> None:
    """Raise ValueError naming every way ``results`` departs from the results format."""
    problems = []

    def need(container, key, kind, where):
        if not isinstance(container, dict) or key not in container:
            problems.append(f"{where}: missing {key!r}")
            return None
        if not isinstance(container[key], kind):
            problems.append(f"{where}.{key}: expected {kind}, got {type(container[key]).__name__}")
        return container[key]

    need(results, "format_version", int, "results")
    for key, kind in (("environment", dict), ("config", dict), ("seeds", dict), ("grid", list),
                      ("test", dict), ("methods", list), ("plots", dict)):
        need(results, key, kind, "results")
    env = results.get("environment", {})
    need(env, "packages", dict, "environment")
    need(env, "git_commit", (str, type(None)), "environment")
    for i, m in enumerate(results.get("methods", []) or []):
        where = f"methods[{i}]"
        for key, kind in (("method", str), ("label", str), ("accuracy", float),
                          ("mean_tokens", float), ("lambda_counts", dict)):
            need(m, key, kind, where)
        acc = m.get("accuracy")
        if isinstance(acc, float) and not 0.0 <= acc <= 1.0:
            problems.append(f"{where}.accuracy: {acc} is outside [0, 1]")
        if "live" in m:
            for key in ("accuracy", "mean_tokens", "seconds"):
                need(m["live"], key, float, f"{where}.live")
    if problems:
        raise ValueError("results do not follow the format: " + "; ".join(problems))


# -- plots ------------------------------------------------------------------------------------
def pareto_with_methods(records: list[dict], path: Path, title: str) -> Path:
    from ..plots import pareto_plot

    static = sorted((float(r["method"].split("_", 1)[1]), r["accuracy"], r["mean_tokens"])
                    for r in records if r["method"].startswith("static_"))
    points = [(r["label"], r["accuracy"], r["mean_tokens"]) for r in records
              if not r["method"].startswith("static_")]
    return pareto_plot(static, path, title=title, points=points)


def lambda_heatmaps(series: dict[str, Sequence[float]], difficulty: Sequence[str | None],
                    grid: Sequence[float], path: Path) -> Path:
    """Per method, the share of each difficulty's questions sent to each λ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plots import save_figure

    levels = sorted({str(d) for d in difficulty},
                    key=lambda d: (0, int(d), "") if d.lstrip("-").isdigit() else (1, 0, d))
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.8), dpi=120,
                             squeeze=False)
    index = {round(g, 6): j for j, g in enumerate(grid)}
    for ax, (label, lams) in zip(axes[0], series.items()):
        share = np.zeros((len(levels), len(grid)))
        for lam, d in zip(lams, difficulty):
            share[levels.index(str(d)), index[round(lam, 6)]] += 1
        share /= np.maximum(share.sum(1, keepdims=True), 1)
        image = ax.imshow(share, aspect="auto", cmap="viridis", vmin=0, vmax=1, origin="lower")
        ax.set_xticks(range(len(grid)), [f"{g:g}" for g in grid], fontsize=7)
        ax.set_yticks(range(len(levels)), levels, fontsize=8)
        ax.set_xlabel("chosen λ")
        ax.set_ylabel("difficulty")
        ax.set_title(label, fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="share of the level's questions")
    return save_figure(fig, path, bbox_inches="tight")


def cost_knob_plot(frontier: list[dict], static: list[tuple[float, float, float]],
                   path: Path) -> Path:
    from ..plots import pareto_plot

    points = [(f"β={row['beta']:g}", row["accuracy"], row["mean_tokens"]) for row in frontier]
    return pareto_plot(static, path, title="DAMI-Pref with the cost knob β", points=points)
