"""``dami-pref rollout``: every candidate λ on a problem set, the raw material of the pairs.

Resumable and sharded: processes started with ``accelerate launch`` split the shards, and a
killed run picks up where it stopped (see :mod:`dami_pref.data.rollouts`).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field

from ..errors import DamiPrefError
from ..utils.options import at_least
from .common import DecodingArgs, EngineArgs, ProblemArgs, pair_identity_of


@dataclass
class RolloutArgs(EngineArgs, DecodingArgs, ProblemArgs):
    output: str = field(default="outputs/rollouts", metadata={"help": "rollout folder"})
    grid: str = field(default="0:1:0.1", metadata={
        "help": "candidate λ values: start:stop:step (stop included) or a comma list"})
    samples: int = field(default=1, metadata={**at_least(1),
        "help": "samples per (problem, λ); 1 decodes greedily, more sample with "
                "--sample_temperature/--top_p"})
    sample_temperature: float = field(default=0.7, metadata={**at_least(0, included=False),
        "help": "temperature used when --samples > 1"})
    # rollouts take their temperature from --samples: not shown, and refused when given
    temperature: float = field(default=0.0, metadata={**at_least(0), "help": argparse.SUPPRESS})
    seed: int = field(default=0, metadata={"help": "seeds every sample (same seed at every λ)"})
    shard_size: int = field(default=64, metadata={**at_least(1),
        "help": "problems per unit of work (the granularity of resuming and of sharding)"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace a folder that holds rollouts made with other settings"})
    progress: bool = field(default=True, metadata={
        "help": "progress bars on standard error"})

    def __post_init__(self) -> None:
        if self.temperature != 0.0:  # rollouts take their temperature from --samples
            raise DamiPrefError(
                f"rollouts decode greedily with --samples 1 and sample at "
                f"--sample_temperature with --samples > 1; --temperature {self.temperature} "
                f"would be ignored. Use --samples K --sample_temperature {self.temperature}")

    def rollout_decoding(self):
        from ..runtime.generation import DecodingOptions

        return DecodingOptions(
            max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
            temperature=0.0 if self.samples == 1 else self.sample_temperature, top_p=self.top_p,
            kv_cache=self.kv_cache_options())


def run(args: RolloutArgs) -> int:
    import torch
    from accelerate import PartialState

    from ..data.frontier import format_frontier, table_frontier
    from ..data.rollouts import drive_rollouts, load_rollouts, open_rollouts
    from ..runtime.checkpoints import resolve_model_dir
    from ..utils.grid import parse_grid
    from ..utils.io import check_location

    grid = parse_grid(args.grid)
    check_location(args.output)
    problems = args.load(default_split="train")
    decoding = args.rollout_decoding()
    cpu = args.device == "cpu" or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    args.instruct, args.thinking = args.pair()  # the manifest records them by name
    pair = pair_identity_of(args, resolve_model_dir(args.instruct),
                            resolve_model_dir(args.thinking))
    plan, manifest, store, resume = open_rollouts(  # every process: the same verdict
        problems, grid, decoding, args.output, pair=pair, seed=args.seed, samples=args.samples,
        shard_size=args.shard_size, source=asdict(args), overwrite=args.overwrite)
    if args.device in ("auto", None) or state.num_processes > 1:
        args.device = str(state.device)
    runtime = args.runtime()  # a pair that fails to load leaves no folder behind
    runtime.check_questions([p.question for p in problems], decoding.max_new_tokens,
                            labels=[f"{args.problems or 'the toy problems'}: problem {p.id!r}"
                                    for p in problems])
    state.wait_for_everyone()
    counts = drive_rollouts(runtime, problems, plan, decoding, args.seed, store, manifest, resume,
                            rank=state.process_index, world=state.num_processes,
                            barrier=state.wait_for_everyone,
                            progress=args.progress and (state.is_main_process or cpu is False))
    if state.is_main_process:
        table_path = counts["table"]
        _, _, table = load_rollouts(store.folder)
        print(format_frontier(table_frontier(table), ("accuracy", "mean_tokens", "think_rate",
                                                      "unfinished_rate", "rows")))
        print(f"\n{table.num_rows} rollouts ({len(problems)} problems × {len(grid)} λ × "
              f"{args.samples} sample(s)); this run generated {counts['generated_tokens']:,} "
              f"tokens in {counts['seconds']:.1f} s on process 0, skipped {counts['skipped']} "
              f"finished unit(s)\nwrote {table_path}")
    return 0
