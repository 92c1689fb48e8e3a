"""Does the bundled toy pair answer the sums a user types, across its stated ranges?

    python benchmarks/toy_robustness.py --per_set 200 --grid 0,0.5,1

Fresh held-out questions (seeded, none of them in the committed problem sets), in five sets:
  one-digit     every operand 0-9, k uniform over 2-10;
  two-digit     every operand 10-29, k uniform over 2-10;
  mixed         one- and two-digit operands in every question, k uniform over 2-10;
  longest       k 9 or 10, every operand uniform over 0-29;
  uniform       k uniform over 2-10, every operand uniform over 0-29 (nothing weighted: the
                held-out draw the toy issue asks Thinking to reach 80 % on).
Each set is swept greedily at the toy budget; the table gives accuracy (and mean tokens) per λ.
"""

from __future__ import annotations

import random
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

SETS = ("one-digit", "two-digit", "mixed", "longest", "uniform")


@dataclass
class RobustnessArgs:
    per_set: int = 200
    grid: str = "0,0.5,1"
    seed: int = 2026
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "generation budget (default: the toy budget, dami_pref.toy.TOY_BUDGET)"})
    batch_size: int = 128
    output: str = field(default="", metadata={"help": "also write the figures here (JSON)"})


def draw(rng: random.Random, name: str) -> list[int]:
    """One question of the named set."""
    from dami_pref.toy import task

    k = rng.randint(9, 10) if name == "longest" else rng.randint(task.MIN_OPERANDS,
                                                                 task.MAX_OPERANDS)
    if name == "one-digit":
        return [rng.randrange(*task.ONE_DIGIT) for _ in range(k)]
    if name == "two-digit":
        return [rng.randrange(*task.TWO_DIGIT) for _ in range(k)]
    if name == "mixed":
        while True:
            operands = task.mixed_operands(rng, k, rng.choice((0.25, 0.5, 0.75)))
            if 0 < task.large_share(operands) < 1:
                return operands
    return task.uniform_operands(rng) if name == "uniform" else \
        [rng.randrange(task.ONE_DIGIT[0], task.TWO_DIGIT[1]) for _ in range(k)]


def held_out_sets(per_set: int, seed: int) -> dict[str, list]:
    """``per_set`` distinct questions per set, none of them in the committed problem sets."""
    from dami_pref.data.problems import Problem, load_problems
    from dami_pref.toy import toy_problems_path
    from dami_pref.toy.task import difficulty, question_text

    seen = {p.question for split in ("train", "validation", "test")
            for p in load_problems(toy_problems_path(split))}
    rng, sets = random.Random(seed), {}
    for name in SETS:
        rows = []
        while len(rows) < per_set:
            operands = draw(rng, name)
            if question_text(operands) not in seen:
                seen.add(question_text(operands))
                rows.append(Problem(f"{name}-{len(rows):04d}", question_text(operands),
                                    str(sum(operands)), difficulty(operands)))
        sets[name] = rows
    return sets


def set_figures(outcomes: dict, sets: dict[str, list]) -> dict[str, dict[str, dict]]:
    """Accuracy and mean tokens per set and λ."""
    figures: dict[str, dict[str, dict]] = {}
    for name, rows in sets.items():
        ids = {p.id for p in rows}
        figures[name] = {}
        for lam, results in outcomes.items():
            mine = [o for o in results if o.id in ids]
            figures[name][f"{lam:g}"] = {
                "accuracy": sum(o.correct for o in mine) / len(mine),
                "mean_tokens": sum(o.n_tokens for o in mine) / len(mine)}
    return figures


def main(argv: list[str] | None = None) -> int:
    from dami_pref.cli.parsing import parse_args
    from dami_pref.evaluation.sweep import run_sweep
    from dami_pref.runtime import InterpolationRuntime
    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.toy import TOY_BUDGET
    from dami_pref.utils.grid import parse_grid

    args = parse_args(RobustnessArgs, argv, prog="toy_robustness.py", description=__doc__)
    budget = args.max_new_tokens or TOY_BUDGET
    sets = held_out_sets(args.per_set, args.seed)
    problems = [p for rows in sets.values() for p in rows]
    grid = parse_grid(args.grid)
    with tempfile.TemporaryDirectory() as scratch:  # a fresh rollout folder
        outcomes = run_sweep(InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu"),
                             problems, grid,
                             DecodingOptions(max_new_tokens=budget, batch_size=args.batch_size),
                             Path(scratch), pair={"benchmark": "toy_robustness"})
    figures = set_figures(outcomes, sets)
    print(f"{args.per_set} held-out questions per set (seed {args.seed}), greedy, "
          f"{budget} new tokens; accuracy % (mean tokens)")
    print("| questions | " + " | ".join(f"λ={lam:g}" for lam in grid) + " |")
    print("|---|" + "---:|" * len(grid))
    for name, row in figures.items():
        cells = [f"{100 * v['accuracy']:.1f} ({v['mean_tokens']:.0f})" for v in row.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.output:
        from dami_pref.utils.io import atomic_write_json

        atomic_write_json(Path(args.output), {"per_set": args.per_set, "seed": args.seed,
                                              "max_new_tokens": budget, "sets": figures})
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
