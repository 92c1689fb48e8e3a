"""Roll out every candidate λ on a problem set: the raw material of the preference pairs.

    python data_builders/rollout.py --config configs/rollout_toy.yaml
    python data_builders/rollout.py --problems train.jsonl --preset gsm8k \\
        --instruct Qwen/Qwen3-4B-Instruct-2507 --thinking Qwen/Qwen3-4B-Thinking-2507 \\
        --samples 4 --max_new_tokens 8192 --output outputs/rollouts_gsm8k
    accelerate launch --config_file configs/accelerate/cpu.yaml --num_processes 2 \\
        data_builders/rollout.py --config configs/rollout_toy.yaml        # 2 CPU processes
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml --num_processes 8 \\
        data_builders/rollout.py --config configs/rollout_qwen3_4b.yaml   # one GPU per process

Writes ``--output``: ``manifest.json`` (configuration, fingerprint, progress), ``problems.parquet``,
``units/lambda=…/shard-….parquet`` (one file per finished (λ, shard) unit) and, once every unit
is done, ``rollouts.parquet`` with one row per problem × λ × sample. Kill it at any point and run
the same command again: finished units are kept and only the missing ones are generated.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dami_pref.arguments import parse_args
from dami_pref.commands.common import DecodingArgs, PairArgs, ProblemArgs
from dami_pref.errors import DamiPrefError


@dataclass
class RolloutArgs(PairArgs, DecodingArgs, ProblemArgs):
    output: str = field(default="outputs/rollouts", metadata={"help": "rollout folder"})
    grid: str = field(default="0:1:0.1", metadata={
        "help": "candidate λ values: start:stop:step (stop included) or a comma list"})
    samples: int = field(default=1, metadata={
        "help": "samples per (problem, λ); 1 decodes greedily, more sample with "
                "--sample_temperature/--top_p"})
    sample_temperature: float = field(default=0.7, metadata={
        "help": "temperature used when --samples > 1"})
    seed: int = field(default=0, metadata={"help": "seeds every sample (same seed at every λ)"})
    shard_size: int = field(default=64, metadata={
        "help": "problems per unit of work (the granularity of resuming and of sharding)"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace a folder that holds rollouts made with other settings"})
    progress: bool = True

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise DamiPrefError(f"--samples must be ≥ 1, got {self.samples}")
        if self.shard_size < 1:
            raise DamiPrefError(f"--shard_size must be ≥ 1, got {self.shard_size}")
        if self.temperature != 0.0:  # rollouts take their temperature from --samples
            raise DamiPrefError(
                f"rollout.py decodes greedily with --samples 1 and samples at "
                f"--sample_temperature with --samples > 1; --temperature {self.temperature} "
                f"would be ignored. Use --samples K --sample_temperature {self.temperature}")


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(RolloutArgs, argv, prog="rollout.py", description=__doc__))
    except DamiPrefError as err:
        print(f"rollout.py: error: {err}", file=sys.stderr)
        return 2


def run(args: RolloutArgs) -> int:
    import torch
    from accelerate import PartialState

    from dami_pref.checkpoints import resolve_model_dir
    from dami_pref.generation import DecodingOptions
    from dami_pref.rollouts import (RolloutPlan, RolloutStore, load_rollouts, make_manifest,
                                    pair_identity, run_units)
    from dami_pref.sweep import parse_grid
    from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING
    from dami_pref.rollout_report import frontier_table

    grid = parse_grid(args.grid)
    problems = args.load(default_split="train")
    decoding = DecodingOptions(
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        temperature=0.0 if args.samples == 1 else args.sample_temperature, top_p=args.top_p,
        kv_cache=args.kv_cache_options())
    cpu = args.device == "cpu" or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    instruct = resolve_model_dir(args.instruct or TOY_INSTRUCT)
    thinking = resolve_model_dir(args.thinking or TOY_THINKING)
    pair = pair_identity(instruct, thinking, args.dtype, args.prompt_template,
                         args.chat_template_from, args.memory_mode)
    plan = RolloutPlan(tuple(grid), args.samples, args.shard_size, len(problems))
    manifest = make_manifest(plan, decoding, args.seed, pair, problems, source=asdict(args))
    store = RolloutStore(args.output)
    resume = store.check_compatible(manifest, args.overwrite)  # every process: same verdict
    state.wait_for_everyone()
    if state.is_main_process:
        store.start(manifest, problems, resume)
    state.wait_for_everyone()
    if args.device in ("auto", None) or state.num_processes > 1:
        args.device = str(state.device)
    runtime = args.runtime()
    counts = run_units(runtime, problems, plan, decoding, args.seed, store,
                       rank=state.process_index, world=state.num_processes,
                       progress=args.progress and (state.is_main_process or cpu is False))
    state.wait_for_everyone()
    if state.is_main_process:
        table_path = store.finalize(plan)
        _, problem_table, table = load_rollouts(store.folder)
        print(frontier_table(table, problem_table))
        print(f"\n{table.num_rows} rollouts ({len(problems)} problems × {len(grid)} λ × "
              f"{args.samples} sample(s)); this run generated {counts['generated_tokens']:,} "
              f"tokens in {counts['seconds']:.1f} s on process 0, skipped {counts['skipped']} "
              f"finished unit(s)\nwrote {table_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
