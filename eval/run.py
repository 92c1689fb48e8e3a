"""Evaluate DAMI-Pref against every baseline on a test set, offline and live.

    python eval/run.py --config configs/eval_toy.yaml
    python eval/run.py --config configs/eval_toy.yaml --modes offline --methods thinking,dami_pref,oracle
    python eval/run.py --config configs/eval_qwen3_4b.yaml          # a real pair on a GPU

Methods: every static λ of the grid, Instruct (λ=0), Thinking (λ=1), the best static λ on
validation, DAMI-Pref, DAMI-Pred, DAMI-Routing (rankers from train/pref.py), DAMI-Conf (zero-shot,
calibrated on validation) and the oracle (the best λ per test problem, an upper bound). Writes
OUTPUT/results.json (configuration, seeds, package versions, git commit, every method), results.md,
pareto.png, lambda_by_difficulty.png and cost_knob.png, and prints the table.
"""

from __future__ import annotations

import sys

from dami_pref.arguments import parse_args
from dami_pref.errors import DamiPrefError
from dami_pref.evaluation.harness import EvalArgs, run_evaluation


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(EvalArgs, argv, prog="eval/run.py", description=__doc__)
        results = run_evaluation(args)
    except DamiPrefError as err:
        print(f"eval/run.py: error: {err}", file=sys.stderr)
        return 2
    print(results["table"])
    extra = []
    if "routing_roc_auc" in results:
        extra.append(f"DAMI-Routing ROC-AUC {results['routing_roc_auc']:.3f}")
    if "dami_conf" in results and "roc_auc" in results["dami_conf"]:
        extra.append(f"DAMI-Conf signal ROC-AUC {results['dami_conf']['roc_auc']:.3f}")
    if extra:
        print("\n" + "; ".join(extra) + " (against 'λ* > 0.5' on the test problems)")
    if results["cost_knob"]:
        print("\ncost knob β (DAMI-Pref): " + ", ".join(
            f"β={r['beta']:g}: {100 * r['accuracy']:.1f}% at {r['mean_tokens']:.1f} tokens"
            for r in results["cost_knob"]))
    out = results["config"]["output"]
    print(f"\nwrote {out}/results.json and {out}/results.md; plots: "
          + ", ".join(results["plots"].values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
