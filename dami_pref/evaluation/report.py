"""Results of an evaluation: the JSON record, the markdown table, and the plots."""

from __future__ import annotations

import subprocess
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..utils.ordering import difficulty_key
from ..utils.plots import pareto_plot
from .candidates import CandidateTable
from .methods import Choice

RESULTS_VERSION = 1
PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "safetensors",
            "math-verify", "scikit-learn", "deepspeed")


def environment() -> dict:
    """Package versions and the git commit, so a result can be traced to its code."""
    from importlib.metadata import PackageNotFoundError, version

    from ..version import PACKAGE_DIR, __version__

    versions = {"dami-pref": __version__}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    try:
        root = PACKAGE_DIR.parent
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
    return {d: float(np.mean(v))
            for d, v in sorted(groups.items(), key=lambda kv: difficulty_key(kv[0]))}


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
    static = sorted((float(r["method"].split("_", 1)[1]), r["accuracy"], r["mean_tokens"])
                    for r in records if r["method"].startswith("static_"))
    points = [(r["label"], r["accuracy"], r["mean_tokens"]) for r in records
              if not r["method"].startswith("static_")]
    return pareto_plot(static, path, title=title, points=points)


def cost_knob_plot(frontier: list[dict], static: list[tuple[float, float, float]],
                   path: Path) -> Path:
    points = [(f"β={row['beta']:g}", row["accuracy"], row["mean_tokens"]) for row in frontier]
    return pareto_plot(static, path, title="DAMI-Pref with the cost knob β", points=points)


# -- the whole report -------------------------------------------------------------------------
def routing_and_conf_extras(choices: list[Choice], test: CandidateTable) -> dict:
    """ROC-AUCs of DAMI-Routing's logit and DAMI-Conf's signal against 'λ* > 0.5'."""
    from sklearn.metrics import roc_auc_score

    extra: dict = {}
    needs_thinking = np.array([lam > 0.5 for lam in test.oracle()])
    two_classes = len(set(needs_thinking)) == 2
    for c in choices:
        if c.method == "dami_routing" and two_classes:
            logits = c.details["scores"][:, -1].numpy()  # logit · (λmax − ½): monotone in logit
            extra["routing_roc_auc"] = float(roc_auc_score(needs_thinking, logits))
        if c.method == "dami_conf":
            extra["dami_conf"] = {k: v for k, v in c.details.items() if k != "signal"}
            if two_classes:
                extra["dami_conf"]["roc_auc"] = float(roc_auc_score(needs_thinking,
                                                                    c.details["signal"]))
    return extra


def cost_knob(pref: Choice | None, test: CandidateTable, betas: Sequence[float]) -> list[dict]:
    """DAMI-Pref's accuracy and tokens at every β of the cost knob, from the same scores."""
    from ..ranker.selection import select_index

    if pref is None or not betas:
        return []
    costs = pref.details["expected_costs"].cpu()
    frontier = []
    for beta in betas:
        idx = select_index(pref.details["scores"], beta * costs if beta else None)
        frontier.append({"beta": beta, **test.score([test.grid[i] for i in idx.tolist()])})
    return frontier


def draw_plots(records: list[dict], choices: list[Choice], test: CandidateTable,
               knob: list[dict], out: Path) -> dict[str, str]:
    from ..utils.plots import lambda_heatmaps

    plots = {}
    pref = next((c for c in choices if c.method == "dami_pref"), None)
    if knob:
        static = [(c.lam, c.acc, c.cost) for c in test.static()]
        plots["cost_knob"] = str(cost_knob_plot(knob, static, out / "cost_knob.png"))
    plots["pareto"] = str(pareto_with_methods(records, out / "pareto.png",
                                              f"{len(test)} test problems, offline"))
    if pref is not None:
        plots["lambda_by_difficulty"] = str(lambda_heatmaps(
            {"DAMI-Pref": pref.lams, "oracle λ*(q)": test.oracle()}, test.difficulty,
            test.grid, out / "lambda_by_difficulty.png"))
    return plots


def write_report(settings, tables, choices: list[Choice], live: dict[str, dict],
                 thinking_seconds: float | None) -> dict:
    """Score every choice offline, add the live runs, write results.json/.md and the plots."""
    from ..ranker.checkpoint import read_ranker_config
    from ..utils.io import atomic_write_json, atomic_write_text

    test, out = tables.test, settings.output
    thinking_tokens = test.score([test.grid.highest] * len(test))["mean_tokens"]
    records = [method_record(c, test, thinking_tokens, live.get(c.method), thinking_seconds)
               for c in choices]
    pref = next((c for c in choices if c.method == "dami_pref"), None)
    knob = cost_knob(pref, test, settings.cost_weights)
    plots = draw_plots(records, choices, test, knob, out)
    rankers = settings.used_rankers()
    is_live = "live" in settings.modes
    results = {
        "format_version": RESULTS_VERSION, "environment": environment(),
        "config": dict(settings.config),
        "seeds": {"rollouts": settings.seed, "rankers": {
            n: read_ranker_config(p).get("training", {}).get("seed") for n, p in rankers.items()}},
        "rankers": rankers, "grid": list(test.grid),
        "test": {"problems": len(test), "rollouts": str(tables.test_dir),
                 "live_questions": min(settings.live_limit or len(test), len(test))
                 if is_live else 0,
                 "thinking_live_seconds": thinking_seconds,
                 "live_batch_size": (settings.live_batch_size or settings.batch_size)
                 if is_live else None},
        "validation": {"problems": len(tables.validation),
                       "rollouts": str(tables.validation_dir)},
        "methods": records, "cost_knob": knob, "plots": plots,
        "timings": {"rollouts_seconds": tables.rollout_seconds},
        **routing_and_conf_extras(choices, test),
    }
    validate_results(results)
    atomic_write_json(out / "results.json", results)
    table = results_table(records)
    atomic_write_text(out / "results.md", table + "\n")
    results["table"] = table
    return results
