"""Evaluate DAMI-Pref against every baseline on a test set, offline and live.

The same command as ``dami-pref eval``.

    python eval/run.py --config configs/toy/eval.yaml
    python eval/run.py --config configs/toy/eval.yaml --modes offline --methods thinking,dami_pref,oracle
    python eval/run.py --config configs/qwen3_4b/eval.yaml          # a real pair on a GPU

Methods: every static λ of the grid, Instruct (λ=0), Thinking (λ=1), the best static λ on
validation, DAMI-Pref, DAMI-Pred, DAMI-Routing (rankers from train/pref.py), DAMI-Conf (zero-shot,
calibrated on validation) and the oracle (the best λ per test problem, an upper bound). Writes
OUTPUT/results.json, results.md, pareto.png, lambda_by_difficulty.png and cost_knob.png, and
prints the table.
"""

from __future__ import annotations

import sys

from dami_pref.cli import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("eval", argv, prog="eval/run.py")


if __name__ == "__main__":
    sys.exit(main())
