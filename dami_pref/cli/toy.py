"""``dami-pref toy``: rebuild the bundled toy pair and its problem sets (seeded), then check it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..toy import TOY_DIR
from ..toy.builder import ToyRecipe


@dataclass
class ToyArgs(ToyRecipe):
    output: str = field(default=str(TOY_DIR), metadata={"help": "folder to (re)build"})
    problems_only: bool = field(default=False, metadata={"help": "only write the problem sets"})
    check: bool = field(default=True, metadata={"help": "sweep the new pair and check it"})


def run(args: ToyArgs) -> int:
    from ..toy.builder import build
    from ..utils.io import check_location

    check_location(args.output)
    out = build(args, args.output, problems_only=args.problems_only)
    print(f"wrote {out}")
    if args.check and not args.problems_only:
        return check(out)
    return 0


def check(out: Path) -> int:
    """Sweep the new pair on its test set and report the required properties."""
    from ..toy.properties import check_properties, format_properties
    from . import run_command

    sweep_dir = Path("outputs") / f"{out.name}_check"
    code = run_command("sweep", ["--instruct", str(out / "instruct"), "--thinking",
                                 str(out / "thinking"), "--problems",
                                 str(out / "problems/test.jsonl"), "--output", str(sweep_dir),
                                 "--device", "cpu", "--overwrite"])
    if code:
        return code
    rows = check_properties(json.loads((sweep_dir / "sweep.json").read_text()))
    print("\n" + format_properties(rows))
    return 0 if all(ok for _, _, ok in rows) else 1
