"""The evaluation run: rollouts of the test and validation sets, every method, both modes.

Steps: (1) roll out every λ of the grid on the test and validation problems (resumable, reused
when already there); (2) let each method choose a λ per test question; (3) offline: score the
choices on the test rollouts; (4) live: generate at the chosen λ values, grouped by λ, timing
choosing and generating, against Thinking on the same questions in the same run; (5) write the
results JSON, the markdown table and the plots.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..data.problems import Problem
from ..errors import DamiPrefError
from ..runtime.generation import DecodingOptions
from .candidates import CandidateTable
from .methods import KNOWN, RANKER_OBJECTIVES, Choice

RANKER_METHODS = tuple(RANKER_OBJECTIVES)


@dataclass
class EvalSettings:
    """What to evaluate and how; ``config`` is recorded verbatim in ``results.json``."""

    grid: list[float]
    methods: list[str]
    output: Path
    modes: frozenset[str] = frozenset({"offline", "live"})
    cost_weights: list[float] = field(default_factory=list)
    rankers: dict[str, str | None] = field(default_factory=dict)
    batch_size: int = 64
    seed: int = 0
    live_limit: int | None = None
    live_batch_size: int | None = None
    conf_answer_tokens: int = 8
    conf_think_skip: str = "<think></think>"
    test_rollouts: str | None = None
    validation_rollouts: str | None = None
    progress: bool = True
    config: dict = field(default_factory=dict)
    # provenance, recorded in results.json (see evaluation/provenance.py)
    models: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    command: str | None = None
    started: str | None = None

    def check(self) -> None:
        """Everything that can be refused before any rollout runs; once per settings (the
        command checks before any model loads, ``evaluate`` only settings handed to it
        unchecked)."""
        from .methods import check_ranker

        if getattr(self, "_checked", False):
            return
        if not self.modes or set(self.modes) - {"offline", "live"}:
            raise DamiPrefError(f"--modes must name offline and/or live, got "
                                f"{sorted(self.modes)}")
        unknown = [m for m in self.methods if m not in KNOWN]
        if unknown:
            raise DamiPrefError(f"unknown method(s) {unknown}; choose from {list(KNOWN)}")
        for name in RANKER_METHODS:
            if name not in self.methods:
                continue
            path = self.rankers.get(name)
            if not path:
                raise DamiPrefError(f"method {name} needs {name}_ranker (a folder from "
                                    "train/pref.py)")
            if not Path(path).is_dir():
                raise DamiPrefError(f"{name}_ranker not found: {path}")
            check_ranker(name, path, self.grid)
        self._checked = True

    def used_rankers(self) -> dict[str, str]:
        return {n: p for n, p in self.rankers.items() if p and n in self.methods}


@dataclass
class EvalTables:
    """The test and validation rollouts, read as per-problem (λ, acc, cost) tables."""

    test_problems: list[Problem]
    test: CandidateTable
    validation: CandidateTable
    test_dir: Path
    validation_dir: Path
    rollout_seconds: float


def run_evaluation(settings: EvalSettings, runtime, test_problems: Sequence[Problem],
                   validation_problems: Sequence[Problem], decoding: DecodingOptions,
                   pair: dict) -> dict:
    """Evaluate every method; writes results.json, results.md and the plots under the output."""
    from .report import write_report

    settings.check()
    tables = rollout_tables(settings, runtime, test_problems, validation_problems, decoding,
                            pair)
    choices = choose(settings, tables, runtime, decoding)
    live, thinking_seconds = {}, None
    if "live" in settings.modes:
        live, thinking_seconds = run_live(settings, tables, choices, runtime, decoding)
    return write_report(settings, tables, choices, live, thinking_seconds)


def rollout_tables(settings: EvalSettings, runtime, test_problems: Sequence[Problem],
                   validation_problems: Sequence[Problem], decoding: DecodingOptions,
                   pair: dict) -> EvalTables:
    """Roll out (or resume, or read the user's folders) and load both candidate tables."""
    from ..data.rollouts import ensure_rollouts
    from .candidates import load_candidate_table

    started = time.perf_counter()
    folders = []
    for given, problems, name in ((settings.test_rollouts, test_problems, "rollouts_test"),
                                  (settings.validation_rollouts, validation_problems,
                                   "rollouts_validation")):
        # Rollout folders the user names are read as they are (a finer grid is fine); the
        # harness makes (or resumes) its own under the output folder otherwise.
        if given:
            check_given_rollouts(Path(given), pair, decoding)
        folders.append(Path(given) if given else ensure_rollouts(
            runtime, problems, settings.grid, decoding, settings.output / name, pair=pair,
            seed=settings.seed, progress=settings.progress))
    seconds = time.perf_counter() - started
    test = load_candidate_table(folders[0], settings.grid)
    validation = load_candidate_table(folders[1], settings.grid)
    known = {p.id for p in test_problems}
    if set(test.problem_ids) - known:
        raise DamiPrefError(f"{folders[0]} holds rollouts of problems that are not in the test "
                            f"set (e.g. {sorted(set(test.problem_ids) - known)[0]!r})")
    return EvalTables(list(test_problems), test, validation, folders[0], folders[1], seconds)


def check_given_rollouts(folder: Path, pair: dict, decoding: DecodingOptions) -> None:
    """A rollout folder the user names must come from this pair with these decoding settings,
    or its accuracies describe another model (a clear error naming both sides)."""
    from ..data.rollouts import MANIFEST, answers_identity

    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DamiPrefError(f"{folder}: not a finished rollout folder ({err})") from None
    here = answers_identity(pair, decoding)
    differ = [key for key in here if manifest.get(key) != here[key]]
    if differ:
        key = differ[0]
        there, now = manifest.get(key), here[key]
        if key == "pair":
            changed = sorted(k for k in set(there or {}) | set(now)
                             if (there or {}).get(k) != now.get(k))
            there, now = {k: (there or {}).get(k) for k in changed}, {k: now[k] for k in changed}
        raise DamiPrefError(f"{folder} was rolled out with other settings than this evaluation "
                            f"({key}: {there} there, {now} here); evaluate with the same pair and "
                            "decoding options, or leave --test_rollouts/--validation_rollouts "
                            "out to roll out afresh")


def choose(settings: EvalSettings, tables: EvalTables, runtime,
           decoding: DecodingOptions) -> list[Choice]:
    """Every method's λ per test question, in the order asked."""
    from .methods import choose_all

    return choose_all(settings.methods, tables.test, tables.validation, settings.rankers,
                      str(runtime.device), runtime=runtime,
                      conf_options={"answer_tokens": settings.conf_answer_tokens,
                                    "think_skip": settings.conf_think_skip,
                                    "batch_size": settings.batch_size,
                                    "kv_cache": decoding.kv_cache},
                      batch_size=settings.batch_size)


def run_live(settings: EvalSettings, tables: EvalTables, choices: list[Choice], runtime,
             decoding: DecodingOptions) -> tuple[dict[str, dict], float]:
    """Generate at each method's λ for the live questions; Thinking first, as the reference."""
    from .methods import live_run

    test = tables.test
    live_decoding = replace(decoding, batch_size=settings.live_batch_size or decoding.batch_size)
    n_live = min(settings.live_limit or len(test), len(test))
    questions = test.questions[:n_live]
    def announce(method: str) -> bool:  # the live phase takes minutes: say what runs
        if settings.progress:
            print(f"live mode: {method}, {n_live} questions", file=sys.stderr, flush=True)
        return settings.progress

    thinking_run = live_run(runtime, questions, [test.grid.highest] * n_live, live_decoding,
                            announce("thinking"))
    live: dict[str, dict] = {}
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
               else live_run(runtime, questions, lams, live_decoding, announce(choice.method)))
        live[choice.method] = {**run, **grade_live(tables, run["results"], lams),
                               "choose_seconds": choose_seconds,
                               "same_choices": lams == choice.lams[:n_live]}
    return live, thinking_run["seconds"]


def grade_live(tables: EvalTables, results, lams: list[float]) -> dict:
    """Grade live answers and check them against the offline rollouts of the same λ."""
    from ..data.grading import grade_result

    test = tables.test
    by_id = {p.id: p for p in tables.test_problems}
    n = len(results)
    outcomes = [grade_result(by_id[pid], r) for pid, r in zip(test.problem_ids[:n], results)]
    rows = np.arange(n)
    cols = [test.column(lam) for lam in lams]
    agrees = bool(np.array_equal(np.array([o.correct for o in outcomes], dtype=float),
                                 test.acc[rows, cols])
                  and np.array_equal(np.array([o.n_tokens for o in outcomes], float),
                                     test.cost[rows, cols]))
    return {"outcomes": outcomes, "agrees": agrees}
