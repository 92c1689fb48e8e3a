"""The evaluation run: rollouts of the test and validation sets, every method, both modes.

Steps: (1) roll out every λ of the grid on the test and validation problems (resumable, reused
when already there); (2) let each method choose a λ per test question; (3) offline: score the
choices on the test rollouts; (4) live: generate at the chosen λ values, grouped by λ, timing
choosing and generating, against Thinking on the same questions in the same run; (5) write the
results JSON, the markdown table and the plots.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..commands.common import DecodingArgs, PairArgs
from ..errors import DamiPrefError


@dataclass
class EvalArgs(PairArgs, DecodingArgs):
    """Arguments of ``eval/run.py`` (also readable from ``--config FILE.yaml``)."""

    output: str = field(default="outputs/toy/eval", metadata={"help": "results folder"})
    test_problems: str | None = field(default=None, metadata={
        "help": "test problems (any source the data builders accept); default: the toy test set"})
    test_split: str | None = None
    validation_problems: str | None = field(default=None, metadata={
        "help": "validation problems (best static λ, DAMI-Conf calibration); default: toy"})
    validation_split: str | None = None
    preset: str = field(default="default", metadata={"help": "column preset of both sets"})
    question_field: str | None = field(default=None, metadata={
        "help": "question column of both sets (overrides the preset)"})
    answer_field: str | None = None
    id_field: str | None = None
    limit: int | None = field(default=None, metadata={"help": "test problems to use"})
    validation_limit: int | None = None
    test_rollouts: str | None = field(default=None, metadata={
        "help": "finished rollout folder of the test problems, used as it is (default: made "
                "under OUTPUT/rollouts_test)"})
    validation_rollouts: str | None = None
    grid: str = "0:1:0.1"
    methods: str = field(default="all", metadata={
        "help": "comma list of static, instruct, thinking, best_static, dami_pref, dami_pred, "
                "dami_routing, dami_conf, oracle; or all"})
    dami_pref_ranker: str | None = None
    dami_pred_ranker: str | None = None
    dami_routing_ranker: str | None = None
    modes: str = field(default="offline,live", metadata={"help": "offline, live, or both"})
    live_limit: int | None = field(default=None, metadata={
        "help": "test questions generated in live mode (default: all)"})
    live_batch_size: int | None = field(default=None, metadata={
        "help": "batch size of live generation (default: --batch_size); 1 serves questions one "
                "by one, where a question's tokens set its latency"})
    cost_weights: str = field(default="-8,-4,-2,-1,0,1,2,4", metadata={
        "help": "β values of the DAMI-Pref cost-knob frontier (negative: more thinking)"})
    conf_answer_tokens: int = 8
    conf_think_skip: str = "<think></think>"
    seed: int = 0
    progress: bool = True


def _load(args: "EvalArgs", source, split, limit, default_split):
    from ..problems import field_map, load_problems
    from ..toy import toy_problems_path

    fields = field_map(args.preset, question=args.question_field, answer=args.answer_field,
                       id=args.id_field)
    return load_problems(source or toy_problems_path(default_split), fields=fields, split=split,
                         limit=limit)


def run_evaluation(args: EvalArgs) -> dict:
    from ..io import atomic_write_json, atomic_write_text
    from ..rollouts import ensure_rollouts, pair_identity
    from ..sweep import grade_result, parse_grid
    from .candidates import load_candidate_table
    from ..ranker.checkpoint import read_ranker_config
    from .methods import check_ranker, choose_all, live_run, parse_methods
    from .report import (RESULTS_VERSION, cost_knob_plot, environment, lambda_heatmaps,
                         method_record, pareto_with_methods, results_table, validate_results)

    grid = parse_grid(args.grid)
    names = parse_methods(args.methods)
    modes = {m.strip() for m in args.modes.split(",") if m.strip()}
    if not modes or modes - {"offline", "live"}:
        raise DamiPrefError(f"--modes must name offline and/or live, got {args.modes!r}")
    betas = [float(x) for x in args.cost_weights.split(",") if x.strip()]
    if any(b != b for b in betas):
        raise DamiPrefError(f"--cost_weights must be numbers, got {args.cost_weights!r}")
    rankers = {"dami_pref": args.dami_pref_ranker, "dami_pred": args.dami_pred_ranker,
               "dami_routing": args.dami_routing_ranker}
    for name in ("dami_pref", "dami_pred", "dami_routing"):  # fail before any rollout
        if name in names and not rankers[name]:
            raise DamiPrefError(f"method {name} needs {name}_ranker (a folder from "
                                "train/pref.py)")
        if name in names and not Path(rankers[name]).is_dir():
            raise DamiPrefError(f"{name}_ranker not found: {rankers[name]}")
        if name in names:
            check_ranker(name, rankers[name], grid)
    test_problems = _load(args, args.test_problems, args.test_split, args.limit, "test")
    val_problems = _load(args, args.validation_problems, args.validation_split,
                         args.validation_limit, "validation")
    out = Path(args.output)
    decoding = args.decoding()
    runtime = args.runtime()
    pair = pair_identity(runtime.instruct_path, runtime.thinking_path, args.dtype,
                         args.prompt_template, args.chat_template_from, args.memory_mode)
    timings = {}
    t0 = time.perf_counter()
    # Rollout folders the user names are read as they are (a finer grid is fine); the harness
    # makes (or resumes) its own under OUTPUT otherwise.
    test_dir = Path(args.test_rollouts) if args.test_rollouts else ensure_rollouts(
        runtime, test_problems, grid, decoding, out / "rollouts_test", pair=pair,
        seed=args.seed, progress=args.progress)
    val_dir = Path(args.validation_rollouts) if args.validation_rollouts else ensure_rollouts(
        runtime, val_problems, grid, decoding, out / "rollouts_validation", pair=pair,
        seed=args.seed, progress=args.progress)
    timings["rollouts_seconds"] = time.perf_counter() - t0
    test = load_candidate_table(test_dir, grid)
    validation = load_candidate_table(val_dir, grid)
    known = {p.id for p in test_problems}
    if set(test.problem_ids) - known:
        raise DamiPrefError(f"{test_dir} holds rollouts of problems that are not in the test set "
                            f"(e.g. {sorted(set(test.problem_ids) - known)[0]!r})")

    choices = choose_all(names, test, validation, rankers, str(runtime.device), runtime=runtime,
                         conf_options={"answer_tokens": args.conf_answer_tokens,
                                       "think_skip": args.conf_think_skip,
                                       "batch_size": args.batch_size,
                                       "kv_cache": decoding.kv_cache},
                         batch_size=args.batch_size)
    thinking_tokens = test.score([max(grid)] * len(test))["mean_tokens"]

    live: dict[str, dict] = {}
    thinking_seconds = None
    if "live" in modes:
        from dataclasses import replace

        live_decoding = replace(decoding, batch_size=args.live_batch_size or decoding.batch_size)
        n_live = min(args.live_limit or len(test), len(test))
        questions = test.questions[:n_live]
        by_id = {p.id: p for p in test_problems}
        thinking_run = live_run(runtime, questions, [max(grid)] * n_live, live_decoding)
        thinking_seconds = thinking_run["seconds"]
        for choice in choices:
            if choice.method.startswith("static_"):
                continue
            # The method chooses for the live questions inside the timed run (ranker scoring,
            # confidence passes); static λ and the oracle need no work per question.
            lams, choose_seconds = choice.lams[:n_live], 0.0
            if choice.chooser is not None:
                start = time.perf_counter()
                lams = choice.chooser(list(questions))
                choose_seconds = time.perf_counter() - start
            run = (thinking_run if choice.method == "thinking"
                   else live_run(runtime, questions, lams, live_decoding))
            outcomes = [grade_result(by_id[pid], r)
                        for pid, r in zip(test.problem_ids[:n_live], run["results"])]
            rows = np.arange(n_live)
            cols = [test.column(lam) for lam in lams]
            agrees = bool(np.array_equal(np.array([o.correct for o in outcomes], dtype=float),
                                         test.acc[rows, cols])
                          and np.array_equal(np.array([o.n_tokens for o in outcomes], float),
                                             test.cost[rows, cols]))
            live[choice.method] = {**run, "outcomes": outcomes, "agrees": agrees,
                                   "choose_seconds": choose_seconds,
                                   "same_choices": lams == choice.lams[:n_live]}

    records = [method_record(c, test, thinking_tokens, live.get(c.method), thinking_seconds)
               for c in choices]
    extra: dict = {}
    oracle = test.oracle()
    needs_thinking = np.array([lam > 0.5 for lam in oracle])
    from sklearn.metrics import roc_auc_score

    for c in choices:
        if c.method == "dami_routing" and len(set(needs_thinking)) == 2:
            logits = c.details["scores"][:, -1].numpy()  # logit · (λmax − ½): monotone in logit
            extra["routing_roc_auc"] = float(roc_auc_score(needs_thinking, logits))
        if c.method == "dami_conf":
            extra["dami_conf"] = {k: v for k, v in c.details.items() if k != "signal"}
            if len(set(needs_thinking)) == 2:
                extra["dami_conf"]["roc_auc"] = float(roc_auc_score(needs_thinking,
                                                                    c.details["signal"]))
    plots = {}
    pref = next((c for c in choices if c.method == "dami_pref"), None)
    frontier = []
    if pref is not None and betas:
        from ..ranker.inference import LambdaRanker
        from ..ranker.selection import select_index

        ranker = LambdaRanker.from_pretrained(args.dami_pref_ranker, device="cpu")
        costs = ranker.expected_costs().cpu()
        for beta in betas:
            idx = select_index(pref.details["scores"], beta * costs if beta else None)
            lams = [grid[i] for i in idx.tolist()]
            frontier.append({"beta": beta, **test.score(lams)})
        static = [(lam, *test.score([lam] * len(test)).values()) for lam in grid]
        plots["cost_knob"] = str(cost_knob_plot(frontier, static, out / "cost_knob.png"))
    plots["pareto"] = str(pareto_with_methods(records, out / "pareto.png",
                                              f"{len(test)} test problems, offline"))
    if pref is not None:
        plots["lambda_by_difficulty"] = str(lambda_heatmaps(
            {"DAMI-Pref": pref.lams, "oracle λ*(q)": oracle}, test.difficulty, grid,
            out / "lambda_by_difficulty.png"))
    results = {
        "format_version": RESULTS_VERSION, "environment": environment(),
        "config": {k: v for k, v in asdict(args).items()},
        "seeds": {"rollouts": args.seed, "rankers": {
            n: read_ranker_config(p).get("training", {}).get("seed")
            for n, p in rankers.items() if p and n in names}},
        "rankers": {n: p for n, p in rankers.items() if p and n in names},
        "grid": grid,
        "test": {"problems": len(test), "rollouts": str(test_dir),
                 "live_questions": min(args.live_limit or len(test), len(test))
                 if "live" in modes else 0,
                 "thinking_live_seconds": thinking_seconds,
                 "live_batch_size": (args.live_batch_size or args.batch_size)
                 if "live" in modes else None},
        "validation": {"problems": len(validation), "rollouts": str(val_dir)},
        "methods": records, "cost_knob": frontier, "plots": plots, "timings": timings, **extra,
    }
    validate_results(results)
    atomic_write_json(out / "results.json", results)
    table = results_table(records)
    atomic_write_text(out / "results.md", table + "\n")
    results["table"] = table
    return results
