"""``dami-pref sweep``: every λ of a grid over a problem set, with the oracle and a Pareto plot."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .common import DecodingArgs, EngineArgs, ProblemArgs, pair_identity_of


@dataclass
class SweepArgs(EngineArgs, DecodingArgs, ProblemArgs):
    grid: str = field(default="0:1:0.1", metadata={
        "help": "λ values: start:stop:step (stop included) or a comma list"})
    output: str = field(default="outputs/sweep", metadata={
        "help": "folder for sweep.json, sweep.md, pareto.png and the rollouts they read "
                "(rollouts/: a killed sweep resumes from them)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    overwrite: bool = field(default=False, metadata={"help": "replace an earlier sweep.json"})


def run(args: SweepArgs) -> int:
    from ..evaluation.sweep import (format_difficulty_table, format_table, oracle_line,
                                    run_sweep, sweep_report)
    from ..utils.grid import parse_grid
    from ..utils.io import (atomic_write_json, atomic_write_text, check_results_folder,
                            outputs_together)
    from ..utils.plots import pareto_plot

    grid = parse_grid(args.grid)
    check_results_folder(args.output, "sweep.json", args.overwrite)
    problems = args.load()  # fail on bad problems before loading any model
    decoding = args.decoding()
    output = Path(args.output)
    runtime = args.runtime()
    runtime.check_questions([p.question for p in problems], decoding.max_new_tokens,
                            labels=[f"{args.problems or 'the toy problems'}: problem {p.id!r}"
                                    for p in problems])  # before the rollout folder exists
    pair = pair_identity_of(args, runtime.instruct_path, runtime.thinking_path)
    outcomes = run_sweep(runtime, problems, grid, decoding, output / "rollouts", pair=pair,
                         overwrite=args.overwrite, progress=args.progress, source=asdict(args))
    report = sweep_report(outcomes, config=asdict(args))
    table, by_difficulty, oracle = format_table(report), format_difficulty_table(report), \
        oracle_line(report)
    frontier = [(row["lambda"], row["accuracy"], row["mean_tokens"]) for row in report["lambdas"]]
    with outputs_together():  # the plot, the table and sweep.json land together or not at all
        plot = pareto_plot(frontier, output / "pareto.png",
                           title=f"λ sweep on {len(problems)} problems",
                           points=[("oracle λ*(q)", report["oracle"]["accuracy"],
                                    report["oracle"]["mean_tokens"])])
        atomic_write_text(output / "sweep.md", f"{table}\n\n{by_difficulty}\n\n{oracle}\n")
        json_path = atomic_write_json(output / "sweep.json", report)
    print(table, by_difficulty, oracle, sep="\n\n")
    print(f"\nwrote {json_path}, {output / 'sweep.md'} and {plot}")
    return 0
