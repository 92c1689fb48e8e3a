"""The methods compared: each turns test questions into one λ per question.

Offline, a method's λ choices are scored against the test rollouts (exact for greedy decoding).
Live, the runtime generates at the chosen λ values, grouped by λ, and the wall time counts the
choosing (ranker scoring, confidence passes) as well as the generation and its λ switches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import DamiPrefError
from ..utils.grid import Grid
from ..utils.ordering import Candidate, oracle
from .candidates import CandidateTable

KNOWN = ("static", "instruct", "thinking", "best_static", "dami_pref", "dami_pref_paper",
         "dami_pred", "dami_routing", "dami_conf", "oracle")
# The objectives each ranker method accepts; the first is what its ranker is trained with.
RANKER_OBJECTIVES = {"dami_pref": ("acc", "pref"), "dami_pref_paper": ("pref",),
                     "dami_pred": ("pred",), "dami_routing": ("route",)}
LABELS = {"instruct": "Instruct (λ=0)", "thinking": "Thinking (λ=1)",
          "best_static": "best static λ (validation)", "dami_pref": "DAMI-Pref",
          "dami_pref_paper": "DAMI-Pref as published (pref, β=0)",
          "dami_pred": "DAMI-Pred", "dami_routing": "DAMI-Routing", "dami_conf": "DAMI-Conf",
          "oracle": "oracle λ*(q)"}


@dataclass
class Choice:
    """One method's λ per test question, and what choosing them cost."""

    method: str
    label: str
    lams: list[float]
    choose_seconds: float = 0.0
    details: dict = field(default_factory=dict)
    # Chooses λ for other questions the same way (live mode times it on the live questions);
    # None for methods that need no work per question (static λ, the oracle).
    chooser: Callable[[list[str]], list[float]] | None = field(default=None, repr=False)


def parse_methods(spec: str) -> list[str]:
    names = list(KNOWN) if spec.strip() == "all" else [s.strip() for s in spec.split(",")
                                                       if s.strip()]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise DamiPrefError(f"unknown method(s) {unknown}; choose from {list(KNOWN)} or 'all'")
    return names


def best_static(validation: CandidateTable) -> float:
    """The static λ with the best validation accuracy (then the fewest tokens)."""
    # accuracies are rounded so that float noise in a mean cannot break a tie
    return oracle([Candidate(c.lam, round(c.acc, 12), c.cost) for c in validation.static()]).lam


def ranker_choice(method: str, ranker_path: str, questions: Sequence[str], grid: list[float],
                  device: str, batch_size: int = 64) -> Choice:
    """A ranker's λ per question: DAMI-Pref at its validation-chosen β; the paper's DAMI-Pref,
    DAMI-Pred and DAMI-Routing at β = 0, as published."""
    from ..ranker.inference import LambdaRanker

    check_ranker(method, ranker_path, grid)
    ranker = LambdaRanker.from_pretrained(ranker_path, device=device)
    cost_weight = ranker.default_cost_weight if method == "dami_pref" else 0.0
    start = time.perf_counter()
    scores = ranker.score(list(questions), batch_size=batch_size)
    lams = ranker.select_from_scores(scores, cost_weight)
    seconds = time.perf_counter() - start
    details = {"ranker": ranker_path, "scores": scores, "expected_costs": ranker.expected_costs(),
               "objective": ranker.objective, "cost_weight": cost_weight,
               "operating_point": ranker.config.get("operating_point")}

    def chooser(some: list[str]) -> list[float]:
        return ranker.select_from_scores(ranker.score(list(some), batch_size=batch_size),
                                         cost_weight)

    label = LABELS[method]
    if method == "dami_pref":
        label += f" ({ranker.objective}, β={cost_weight:.3g} chosen on validation)"
    return Choice(method, label, lams, seconds, details, chooser)


def check_ranker(method: str, ranker_path: str, grid: list[float]) -> None:
    """Grid and objective of a ranker folder, read from its JSON before any rollout runs."""
    from ..ranker.checkpoint import read_ranker_config

    config = read_ranker_config(ranker_path)
    trained = [float(x) for x in config.get("grid", [])]
    if not trained or Grid(trained) != Grid(grid):
        raise DamiPrefError(f"the ranker {ranker_path} was trained on the grid {trained}, "
                            f"the evaluation uses {list(grid)}")
    expected = RANKER_OBJECTIVES[method]
    if config.get("objective", "pref") not in expected:
        raise DamiPrefError(f"{ranker_path} was trained with objective "
                            f"{config.get('objective')!r}; {LABELS[method]} needs "
                            + " or ".join(repr(e) for e in expected))


def choose_all(names: list[str], test: CandidateTable, validation: CandidateTable | None,
               rankers: dict[str, str | None], device: str, runtime=None,
               conf_options: dict | None = None, batch_size: int = 64) -> list[Choice]:
    """Every requested method's choices on the test questions, in the order asked."""
    n = len(test)
    choices = []
    for name in names:
        if name == "static":
            choices += [Choice(f"static_{lam:g}", f"static λ={lam:g}", [lam] * n)
                        for lam in test.grid]
        elif name == "instruct":
            choices.append(Choice(name, LABELS[name], [min(test.grid)] * n))
        elif name == "thinking":
            choices.append(Choice(name, LABELS[name], [max(test.grid)] * n))
        elif name == "best_static":
            if validation is None:
                raise DamiPrefError("best_static needs validation rollouts")
            lam = best_static(validation)
            choices.append(Choice(name, f"{LABELS[name]}: {lam:g}", [lam] * n,
                                  details={"lambda": lam}))
        elif name == "oracle":
            choices.append(Choice(name, LABELS[name], test.oracle()))
        elif name in RANKER_OBJECTIVES:
            path = rankers.get(name)
            if not path:
                raise DamiPrefError(f"{LABELS[name]} needs a ranker: set {name}_ranker in the "
                                    "config (train it with train/pref.py)")
            choices.append(ranker_choice(name, path, test.questions, test.grid, device,
                                         batch_size))
        elif name == "dami_conf":
            if validation is None or runtime is None:
                raise DamiPrefError("dami_conf needs validation rollouts and the pair")
            choices.append(conf_choice(runtime, test, validation, **(conf_options or {})))
    return choices


def conf_choice(runtime, test: CandidateTable, validation: CandidateTable,
                answer_tokens: int = 8, think_skip: str = "<think></think>",
                batch_size: int = 64, kv_cache=None) -> Choice:
    from .conf import ConfCalibration, confidence_features

    val_features = confidence_features(runtime, validation.questions, answer_tokens, think_skip,
                                       batch_size, kv_cache)
    calibration = ConfCalibration.fit(val_features, validation.oracle())
    start = time.perf_counter()
    features = confidence_features(runtime, test.questions, answer_tokens, think_skip,
                                   batch_size, kv_cache)
    lams = calibration.select(features, test.grid)
    seconds = time.perf_counter() - start

    def chooser(some: list[str]) -> list[float]:
        return calibration.select(confidence_features(runtime, some, answer_tokens, think_skip,
                                                      batch_size, kv_cache), test.grid)

    return Choice("dami_conf", LABELS["dami_conf"], lams, seconds, details={
        "calibration": calibration.__dict__, "answer_tokens": answer_tokens,
        "think_skip": think_skip, "signal": calibration.signal(features)}, chooser=chooser)


def live_run(runtime, questions: Sequence[str], lams: Sequence[float], decoding,
             progress: bool = False) -> dict:
    """Generate every question at its λ (grouped by λ); wall time includes the switches."""
    from ..runtime.generation import GenerationRequest

    runtime.set_lambda(0.0)
    switches = runtime.switches
    start = time.perf_counter()
    results = runtime.generate([GenerationRequest(q, lam) for q, lam in zip(questions, lams)],
                               decoding, progress=progress)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "results": results, "switches": runtime.switches - switches}
