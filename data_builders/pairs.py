"""Turn graded rollouts into (Acc, Cost)-ranked preference pairs for the ranker.

The same command as ``dami-pref pairs``.

    python data_builders/pairs.py --rollouts outputs/rollouts --output outputs/pairs
    python data_builders/pairs.py --config configs/toy/pairs.yaml --cost_tolerance 0.1

Reads a finished rollout folder and writes the preference dataset: pairs as a datasets
DatasetDict (save_to_disk and parquet) split into train and validation by problem, the
per-problem (λ, acc, cost) table, the oracle λ*(q), a dataset card, and a histogram of λ* by
difficulty. Prints the frontier the rollouts measured.
"""

from __future__ import annotations

import sys

from dami_pref.cli import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("pairs", argv, prog="data_builders/pairs.py")


if __name__ == "__main__":
    sys.exit(main())
