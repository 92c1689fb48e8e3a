"""A fresh held-out problem set from the toy distribution: a new seed, no committed question.

    python data_builders/toy_held_out.py --seed 7 --n 900 --output outputs/toy/held_out.jsonl
    dami-pref eval --config configs/toy/eval.yaml --test_problems outputs/toy/held_out.jsonl \
        --output outputs/toy/eval_held_out --modes offline

The committed test set is stratified by (k, share of two-digit operands); this one is a plain
draw from the task's distribution (``dami_pref.toy.task.draw_operands``), with every question of
the committed train, validation and test sets left out, as the test set leaves out the others.
It checks that figures measured on the test set are not a property of that one draw.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class HeldOutArgs:
    seed: int = 7
    n: int = 900
    output: str = field(default="outputs/toy/held_out.jsonl", metadata={
        "help": "JSONL problem file to write ({id, question, answer, difficulty} rows)"})


def held_out_rows(seed: int, n: int) -> list[dict]:
    from dami_pref.data.problems import load_problems
    from dami_pref.toy import toy_problems_path
    from dami_pref.toy.task import draw_operands, make_row, question_text

    seen = {p.question for split in ("train", "validation", "test")
            for p in load_problems(toy_problems_path(split))}
    rng, rows = random.Random(seed), []
    for _ in range(200 * n):
        if len(rows) == n:
            break
        operands = draw_operands(rng)
        if question_text(operands) not in seen:
            seen.add(question_text(operands))
            rows.append(make_row(f"held-out-s{seed}", len(rows), operands))
    if len(rows) < n:
        from dami_pref.errors import DamiPrefError

        raise DamiPrefError(f"only {len(rows)} distinct new toy questions could be drawn; ask "
                            "for fewer with --n")
    return rows


def main(argv: list[str] | None = None) -> int:
    from dami_pref.cli.parsing import parse_args
    from dami_pref.errors import DamiPrefError
    from dami_pref.utils.io import write_jsonl

    args = parse_args(HeldOutArgs, argv, prog="toy_held_out.py", description=__doc__)
    out = Path(args.output)
    try:
        if out.is_dir():
            raise DamiPrefError(f"--output {out} is a folder; name a .jsonl file")
        rows = held_out_rows(args.seed, args.n)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(rows, out)
    except (DamiPrefError, OSError) as err:
        print(f"toy_held_out.py: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(rows)} problems to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
