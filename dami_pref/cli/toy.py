"""``dami-pref toy``: rebuild the bundled toy pair and its problem sets (seeded), then check it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..toy import TOY_BUDGET, TOY_DIR
from ..toy.recipe import ToyRecipe
from ..utils.options import at_least


@dataclass
class ToyArgs(ToyRecipe):
    output: str = field(default=str(TOY_DIR), metadata={"help": "folder to (re)build"})
    problems_only: bool = field(default=False, metadata={"help": "only write the problem sets"})
    check: bool = field(default=True, metadata={"help": "sweep the new pair and check it"})
    check_split: str = field(default="test", metadata={
        "help": "problem set the check sweeps: test, or validation while designing"})
    check_max_new_tokens: int = field(default=TOY_BUDGET, metadata={**at_least(1),
        "help": "generation budget of the check (the toy configs' max_new_tokens)"})


def run(args: ToyArgs) -> int:
    from ..toy.builder import build
    from ..utils.io import check_location

    check_location(args.output)
    out = build(args, args.output, problems_only=args.problems_only)
    print(f"wrote {out}")
    if args.check and not args.problems_only:
        return check(out, args.check_split, args.check_max_new_tokens)
    return 0


def check(out: Path, split: str = "test", max_new_tokens: int = TOY_BUDGET) -> int:
    """Sweep the new pair on a problem set and report the required properties."""
    from ..data.problems import load_problems
    from ..toy.properties import check_properties, format_properties
    from . import run_command

    problems_file = out / "problems" / f"{split}.jsonl"
    sweep_dir = Path("outputs") / f"{out.name}_check_{split}"
    code = run_command("sweep", ["--instruct", str(out / "instruct"), "--thinking",
                                 str(out / "thinking"), "--problems", str(problems_file),
                                 "--output", str(sweep_dir), "--max_new_tokens",
                                 str(max_new_tokens), "--device", "cpu", "--overwrite"])
    if code:
        return code
    questions = {p.id: p.question for p in load_problems(problems_file)}
    rows = check_properties(json.loads((sweep_dir / "sweep.json").read_text()), questions)
    print("\n" + format_properties(rows))
    return 0 if all(ok for _, _, ok in rows) else 1
