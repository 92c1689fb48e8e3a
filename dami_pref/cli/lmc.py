"""``dami-pref lmc``: per-layer cosine similarity of a pair, the first check on a new pair."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..utils.options import between
from .common import PairArgs


@dataclass
class LmcArgs(PairArgs):
    warn_below: float = field(default=0.95, metadata={**between(-1, 1),
        "help": "warn below this cosine"})


def run(args: LmcArgs) -> int:
    report = args.runtime().lmc_report(warn_below=args.warn_below)
    print("| parameter group | cosine | ‖T−I‖/‖I‖ |\n|---|---:|---:|")
    for row in report:
        print(f"| {row.group} | {row.cosine:.5f} | {row.relative_distance:.4f} |")
    print(f"\nlowest cosine: {min(r.cosine for r in report):.5f}")
    return 0
