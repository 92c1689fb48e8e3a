"""Can the Instruct model's mistakes be foreseen from the question alone?

    python benchmarks/instruct_predictability.py --rollouts outputs/toy/eval/rollouts_test

A question-only selector can save Thinking tokens only on the questions it can tell the Instruct
model (λ=0) gets right. This reads λ=0 correctness from a finished rollout folder and fits
scikit-learn's gradient-boosted trees on two feature sets of each toy question:
  k only       the number of operands;
  hand-made    ``dami_pref.toy.task.question_features``: k, the sum, the largest and smallest
               operand, how many steps carry in the units, how many running sums cross 100,
               digit counts and the mean operand.
Reported: 5-fold cross-validated ROC-AUC over all questions and, for the hand-made features, within
each k (where k alone is 0.5 by construction). The toy pair's property test asks for ≥ 0.85 with
the hand-made features (README, "The toy pair").
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PredictabilityArgs:
    rollouts: str = "outputs/toy/eval/rollouts_test"
    folds: int = 5
    seed: int = 0


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import pyarrow.parquet as pq
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from dami_pref.cli.parsing import parse_args
    from dami_pref.toy.task import question_features

    args = parse_args(PredictabilityArgs, argv, prog="instruct_predictability.py",
                      description=__doc__)
    folder = Path(args.rollouts)
    questions = {r["problem_id"]: r["question"]
                 for r in pq.read_table(folder / "problems.parquet").to_pylist()}
    rows = [r for r in pq.read_table(folder / "rollouts.parquet").to_pylist()
            if r["lambda"] == 0.0 and r["sample"] == 0]
    x = np.array([question_features(questions[r["problem_id"]]) for r in rows], dtype=float)
    y = np.array([int(r["correct"]) for r in rows])
    k = x[:, 0].astype(int)
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    print(f"{len(y)} questions from {folder}, Instruct (λ=0) correct on {y.mean():.1%}; "
          f"{args.folds}-fold cross-validated gradient-boosted trees")
    print("| features | ROC-AUC, all questions | ROC-AUC within each k |\n|---|---:|---|")
    for name, columns in (("k only", [0]), ("hand-made", list(range(x.shape[1])))):
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05,
                                               random_state=args.seed)
        p = cross_val_predict(model, x[:, columns], y, cv=folds, method="predict_proba")[:, 1]
        within = []
        for level in sorted(set(k)):
            mask = k == level
            both = len(set(y[mask])) == 2
            within.append(f"k{level} {roc_auc_score(y[mask], p[mask]):.2f}" if both
                          else f"k{level} —")
        print(f"| {name} | {roc_auc_score(y, p):.3f} | "
              f"{' '.join(within) if name != 'k only' else '0.5 by construction'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
