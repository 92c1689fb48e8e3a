"""Turn graded rollouts into (Acc, Cost)-ranked preference pairs for the ranker.

    python data_builders/pairs.py --rollouts outputs/rollouts --output outputs/pairs
    python data_builders/pairs.py --config configs/pairs_toy.yaml --cost_tolerance 0.1

Reads a finished rollout folder (data_builders/rollout.py) and writes the preference dataset:
pairs as a datasets DatasetDict (save_to_disk and parquet) split into train and validation by
problem, the per-problem (λ, acc, cost) table, the oracle λ*(q), a dataset card, and a histogram
of λ* by difficulty. Prints the frontier the rollouts measured.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from dami_pref.arguments import parse_args
from dami_pref.errors import DamiPrefError


@dataclass
class PairsArgs:
    rollouts: str = field(default="outputs/rollouts", metadata={"help": "rollout folder"})
    output: str = field(default="outputs/pairs", metadata={"help": "pairs folder to write"})
    acc_tolerance: float = field(default=0.0, metadata={
        "help": "accuracy gaps up to this count as ties (0 = any gap decides)"})
    cost_tolerance: float = field(default=0.05, metadata={
        "help": "at equal accuracy, cost gaps up to this fraction of the dearer cost are ties"})
    validation_fraction: float = field(default=0.1, metadata={
        "help": "share of problems (not pairs) held out for validation"})
    seed: int = field(default=0, metadata={"help": "seeds the train/validation split"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty --output"})


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(PairsArgs, argv, prog="pairs.py", description=__doc__)
        return run(args)
    except (DamiPrefError, ValueError) as err:
        print(f"pairs.py: error: {err}", file=sys.stderr)
        return 2


def run(args: PairsArgs) -> int:
    from dami_pref.pair_dataset import build_pair_dataset
    from dami_pref.preferences import PairOptions

    summary = build_pair_dataset(
        args.rollouts, args.output, PairOptions(args.acc_tolerance, args.cost_tolerance),
        validation_fraction=args.validation_fraction, seed=args.seed, overwrite=args.overwrite)
    print("| λ | accuracy | mean tokens | think rate |\n|---:|---:|---:|---:|")
    for r in summary["frontier"]:
        print(f"| {r['lambda']:.2f} | {100 * r['accuracy']:.1f}% | {r['mean_tokens']:.1f} | "
              f"{100 * r['think_rate']:.1f}% |")
    p, n = summary["problems"], summary["pairs"]
    print(f"\nproblems: {p['train']} train, {p['validation']} validation; pairs: {n['train']} "
          f"train, {n['validation']} validation ({summary['pairs_per_problem']:.1f} per problem); "
          f"problems with no signal: {summary['problems_without_signal']}")
    print(f"wrote {args.output} (dataset/, parquet/, candidates.parquet, oracle.parquet, "
          "lambda_star.png, README.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
