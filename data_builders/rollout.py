"""Roll out every candidate λ on a problem set: the raw material of the preference pairs.

The same command as ``dami-pref rollout``; this script is what ``accelerate launch`` starts.

    python data_builders/rollout.py --config configs/toy/rollout.yaml
    python data_builders/rollout.py --problems train.jsonl --preset gsm8k \\
        --instruct Qwen/Qwen3-4B-Instruct-2507 --thinking Qwen/Qwen3-4B-Thinking-2507 \\
        --samples 4 --max_new_tokens 8192 --output outputs/rollouts_gsm8k
    accelerate launch --config_file configs/accelerate/cpu.yaml --num_processes 2 \\
        data_builders/rollout.py --config configs/toy/rollout.yaml          # 2 CPU processes
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml --num_processes 8 \\
        data_builders/rollout.py --config configs/qwen3_4b/rollout.yaml     # one GPU per process

Writes ``--output``: ``manifest.json`` (configuration, fingerprint, progress), ``problems.parquet``,
``units/lambda=…/shard-….parquet`` (one file per finished (λ, shard) unit) and, once every unit
is done, ``rollouts.parquet`` with one row per problem × λ × sample. Kill it at any point and run
the same command again: finished units are kept and only the missing ones are generated.
"""

from __future__ import annotations

import sys

from dami_pref.cli import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("rollout", argv, prog="data_builders/rollout.py")


if __name__ == "__main__":
    sys.exit(main())
