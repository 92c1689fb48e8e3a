"""Data efficiency: DAMI-Pref's objectives (acc, pref) against DAMI-Pred on 100/300/1000 problems.

    python benchmarks/data_efficiency.py --pairs outputs/toy/pairs
    python benchmarks/data_efficiency.py --sizes 20,40 --steps 5      # CI smoke

Every run trains for the same number of optimizer steps on a seeded subset of the training
problems and is scored on the same validation problems: top-1 agreement with λ*, and the regret
of the selected λ against the oracle (accuracy lost, tokens spent beyond the oracle's), averaged
over --seeds seeds. The last two columns are the ranker at its operating point: the β that
training chose on these same validation problems (fewest tokens at the best static λ's
accuracy), so they show what the default choice gives, not a held-out figure.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class EfficiencyArgs:
    pairs: str = "outputs/toy/pairs"
    sizes: str = "100,300,1000"
    objectives: str = "acc,pref,pred"
    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 2e-3
    seeds: int = 2
    out: str | None = None


def main(argv: list[str] | None = None) -> int:
    from dami_pref.cli.parsing import parse_args
    from dami_pref.ranker.config import ranker_arguments
    from dami_pref.ranker.training import train
    from dami_pref.toy import TOY_BASE

    args = parse_args(EfficiencyArgs, argv, prog="data_efficiency.py", description=__doc__)
    sizes = [int(x) for x in args.sizes.split(",")]
    objectives = [x.strip() for x in args.objectives.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for objective in objectives:
                runs = []
                for seed in range(args.seeds):
                    result = train(*ranker_arguments(
                        pairs=args.pairs, output_dir=f"{tmp}/{objective}-{n}-{seed}",
                        model_name_or_path=str(TOY_BASE),
                        objective=objective, max_train_problems=n, seed=seed,
                        max_steps=args.steps, per_device_train_batch_size=min(args.batch_size, n),
                        learning_rate=args.learning_rate, use_cpu=True, eval_strategy="no",
                        save_strategy="no", report_to="none", disable_tqdm=True,
                        max_length=64))
                    point = result["operating_point"]["validation"]
                    runs.append({**result["validation"], "point_accuracy": point["accuracy"],
                                 "point_tokens": point["mean_tokens"]})
                mean = {k: statistics.mean(r[k] for r in runs) for k in runs[0]}
                rows.append({**mean, "train_problems": n, "objective": objective})
                print(f"{objective} on {n} problems: top-1 {mean['top1_agreement']:.3f}, "
                      f"accuracy regret {mean['accuracy_regret']:.3f}, token regret "
                      f"{mean['tokens_regret']:.2f}", file=sys.stderr)
    print(f"{args.steps} steps of ≤{args.batch_size} problems, mean of {args.seeds} seed(s), "
          f"scored on the {int(rows[0]['problems'])} validation problems")
    print("| train problems | objective | top-1 agreement with λ* | selected accuracy (β=0) | "
          "accuracy regret | tokens selected | token regret | accuracy at the chosen β | "
          "tokens at the chosen β |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['train_problems']} | {r['objective']} | {r['top1_agreement']:.3f} | "
              f"{100 * r['accuracy_selected']:.1f}% | {100 * r['accuracy_regret']:.1f} pts | "
              f"{r['tokens_selected']:.1f} | {r['tokens_regret']:.1f} | "
              f"{100 * r['point_accuracy']:.1f}% | {r['point_tokens']:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
