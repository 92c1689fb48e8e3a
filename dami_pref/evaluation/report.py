"""Results of an evaluation: the JSON record, the markdown table, and the plots."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..data.frontier import by_difficulty
from ..utils.plots import pareto_plot
from ..utils.stats import bootstrap_ci
from .provenance import environment, now
from .candidates import CandidateTable
from .frontiers import cost_knob, frontier_vs_static, knob_curve
from .methods import Choice

RESULTS_VERSION = 2


def method_record(choice: Choice, test: CandidateTable, thinking_tokens: float,
                  live: dict | None = None, thinking_live_seconds: float | None = None) -> dict:
    offline = test.score(choice.lams)
    rows, cols = np.arange(len(test)), [test.column(lam) for lam in choice.lams]
    record = {
        "method": choice.method, "label": choice.label,
        "accuracy": offline["accuracy"], "mean_tokens": offline["mean_tokens"],
        "accuracy_ci95": bootstrap_ci(test.acc[rows, cols]),
        "mean_tokens_ci95": bootstrap_ci(test.cost[rows, cols]),
        "tokens_vs_thinking": offline["mean_tokens"] / thinking_tokens if thinking_tokens else None,
        "lambda_counts": {f"{k:g}": v for k, v in sorted(Counter(choice.lams).items())},
        "mean_lambda_by_difficulty": by_difficulty(
            [{"lambda": lam, "difficulty": d} for lam, d in zip(choice.lams, test.difficulty)],
            lambda row: row["lambda"]),
        "choose_seconds": choice.choose_seconds,
    }
    if live is not None:
        total = live["seconds"] + live["choose_seconds"]
        correct = [float(o.correct) for o in live["outcomes"]]
        record["live"] = {
            "accuracy": float(np.mean(correct)), "accuracy_ci95": bootstrap_ci(correct),
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
        line = (f"| {r['label']} | {_percent(r['accuracy'], r.get('accuracy_ci95'))} | "
                f"{_tokens(r['mean_tokens'], r.get('mean_tokens_ci95'))} | {ratio} |")
        if live:
            if "live" in r:
                lv = r["live"]
                speed = f"{lv['speedup_vs_thinking']:.2f}×" if lv["speedup_vs_thinking"] else "—"
                line += (f" {_percent(lv['accuracy'], lv.get('accuracy_ci95'))} | "
                         f"{lv['seconds']:.2f} | {speed} |")
            else:
                line += " — | — | — |"
        lines.append(line)
    return "\n".join(lines)


def _percent(value: float, ci: list[float] | None) -> str:
    text = f"{100 * value:.1f}%"
    return f"{text} ({100 * ci[0]:.1f}–{100 * ci[1]:.1f})" if ci else text


def _tokens(value: float, ci: list[float] | None) -> str:
    return f"{value:.1f} ({ci[0]:.1f}–{ci[1]:.1f})" if ci else f"{value:.1f}"


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
                      ("test", dict), ("methods", list), ("plots", dict), ("models", dict),
                      ("data", dict), ("rankers", dict), ("grading", dict), ("run", dict)):
        need(results, key, kind, "results")
    env = results.get("environment", {})
    for key, kind in (("packages", dict), ("git_commit", (str, type(None))), ("python", str),
                      ("os", str), ("torch_threads", int)):
        need(env, key, kind, "environment")
    for side in ("instruct", "thinking"):
        model = need(results.get("models", {}), side, dict, "models") or {}
        need(model, "weights_fingerprint", str, f"models.{side}")
    for split in ("test", "validation"):
        data = need(results.get("data", {}), split, dict, "data") or {}
        need(data, "sha256", str, f"data.{split}")
    for key in ("command", "started", "finished"):
        need(results.get("run", {}), key, str, "run")
    for i, m in enumerate(results.get("methods", []) or []):
        where = f"methods[{i}]"
        for key, kind in (("method", str), ("label", str), ("accuracy", float),
                          ("mean_tokens", float), ("lambda_counts", dict), ("accuracy_ci95", list),
                          ("mean_tokens_ci95", list)):
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


def cost_knob_plot(curves: dict[str, list[tuple[float, float]]], chosen: list[tuple],
                   static: list[tuple[float, float, float]], path: Path) -> Path:
    from ..utils.plots import frontier_plot

    return frontier_plot(static, curves, path, points=chosen,
                         title="β frontiers of the rankers against the static frontier")


# -- the whole report -------------------------------------------------------------------------
def routing_and_conf_extras(choices: list[Choice], test: CandidateTable) -> dict:
    """ROC-AUCs of DAMI-Routing's logit and DAMI-Conf's signal against 'Instruct (the lowest
    λ) answers wrongly', the label DAMI-Routing is trained on: two classes on any pair whose
    Instruct model is neither always right nor always wrong."""
    from sklearn.metrics import roc_auc_score

    extra: dict = {}
    needs_thinking = test.acc[:, test.column(min(test.grid))] < 0.5
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


def draw_plots(records: list[dict], choices: list[Choice], test: CandidateTable,
               out: Path) -> dict[str, str]:
    from ..utils.plots import lambda_heatmaps

    plots = {}
    pref = next((c for c in choices if c.method == "dami_pref"), None)
    rankers = [c for c in choices if c.method in ("dami_pref", "dami_pref_paper")]
    if rankers:
        static = [(c.lam, c.acc, c.cost) for c in test.static()]
        curves = {c.label: knob_curve(c, test) for c in rankers}
        chosen = [(f"its default: {c.label}", row["accuracy"], row["mean_tokens"])
                  for c in rankers for row in cost_knob(c, test) if row["chosen"]]
        plots["cost_knob"] = str(cost_knob_plot(curves, chosen, static, out / "cost_knob.png"))
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
    from ..utils.io import outputs_together

    with outputs_together():  # plots, results.md and results.json land together or not at all
        return _write_report(settings, tables, choices, live, thinking_seconds)


def _write_report(settings, tables, choices: list[Choice], live: dict[str, dict],
                  thinking_seconds: float | None) -> dict:
    from ..utils.io import atomic_write_json, atomic_write_text

    test, out = tables.test, settings.output
    thinking_tokens = test.score([test.grid.highest] * len(test))["mean_tokens"]
    records = [method_record(c, test, thinking_tokens, live.get(c.method), thinking_seconds)
               for c in choices]
    pref = next((c for c in choices if c.method == "dami_pref"), None)
    paper = next((c for c in choices if c.method == "dami_pref_paper"), None)
    knob = cost_knob(pref, test, settings.cost_weights)
    results = {**results_header(settings),
               "test": test_record(settings, tables, thinking_seconds),
               "validation": {"problems": len(tables.validation),
                              "rollouts": str(tables.validation_dir)},
               "methods": records, "cost_knob": knob,
               "cost_knob_paper": cost_knob(paper, test, settings.cost_weights),
               "frontier_vs_static": {c.method: frontier_vs_static(c, test)
                                      for c in (pref, paper) if c is not None},
               "plots": draw_plots(records, choices, test, out),
               "timings": {"rollouts_seconds": tables.rollout_seconds},
               **routing_and_conf_extras(choices, test)}
    results["run"]["finished"] = now()
    validate_results(results)
    table = results_table(records)
    atomic_write_text(out / "results.md", table + "\n")
    atomic_write_json(out / "results.json", results)
    results["table"] = table
    return results


def results_header(settings) -> dict:
    """What was run, on what, with which code: everything but the measurements."""
    from ..data.grading import grading_settings
    from .provenance import command_line, describe_ranker

    rankers = {n: describe_ranker(p) for n, p in settings.used_rankers().items()}
    return {"format_version": RESULTS_VERSION, "environment": environment(),
            "run": {"command": settings.command or command_line(), "started": settings.started,
                    "finished": None},
            "config": dict(settings.config), "models": settings.models, "data": settings.data,
            "seeds": {"rollouts": settings.seed,
                      "rankers": {n: r["seed"] for n, r in rankers.items()}},
            "rankers": rankers, "grading": grading_settings(), "grid": list(settings.grid)}


def test_record(settings, tables, thinking_seconds: float | None) -> dict:
    n, is_live = len(tables.test), "live" in settings.modes
    return {"problems": n, "rollouts": str(tables.test_dir),
            "live_questions": min(settings.live_limit or n, n) if is_live else 0,
            "thinking_live_seconds": thinking_seconds,
            "live_batch_size": (settings.live_batch_size or settings.batch_size)
            if is_live else None}
