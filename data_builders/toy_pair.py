"""Build the bundled toy Instruct/Thinking pair and its problem sets (seeded, reproducible).

The same command as ``dami-pref toy``.

    python data_builders/toy_pair.py                       # rebuild dami_pref/toy/ in place
    python data_builders/toy_pair.py --output /tmp/toy --pretrain_steps 300   # a quick variant
    python data_builders/toy_pair.py --problems_only       # only the problem sets

Writes ``base/``, ``instruct/`` and ``thinking/`` (Hugging Face folders: safetensors, config,
tokenizer with chat template) and ``problems/{train,validation,test}.jsonl``, then runs a greedy
λ sweep of the new pair on the test set and checks the properties README.md lists. The same
seed and thread count on the same machine rebuild the same weights; elsewhere floating-point
reduction order can differ, giving an equivalent pair rather than identical bytes.
"""

from __future__ import annotations

import sys

from dami_pref.cli import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("toy", argv, prog="data_builders/toy_pair.py")


if __name__ == "__main__":
    sys.exit(main())
