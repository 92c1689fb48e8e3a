"""``dami-pref merge``: the static model at one λ as a standard Hugging Face folder."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MergeArgs:
    lam: float = field(metadata={"aliases": ["--lambda"], "help": "λ in [0, 1] (0 = Instruct)"})
    output: str = field(metadata={"aliases": ["--out"],
                                  "help": "folder to write (built under a temporary name)"})
    instruct: str | None = field(default=None, metadata={
        "help": "Instruct checkpoint: folder or Hub id (default: the bundled toy pair)"})
    thinking: str | None = field(default=None, metadata={
        "help": "Thinking checkpoint: folder or Hub id (default: the bundled toy pair)"})
    dtype: str = field(default="auto", metadata={
        "help": "storage dtype: auto (as the checkpoints), float32, bfloat16 or float16; "
                "blends are computed in float32"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty --output"})
    trust_remote_code: bool = field(default=False, metadata={"help": "see transformers"})


def run(args: MergeArgs) -> int:
    from ..runtime.merge import merge_pair
    from .common import bundled

    out = merge_pair(args.lam, args.output, args.instruct or bundled("instruct"),
                     args.thinking or bundled("thinking"), dtype=args.dtype,
                     overwrite=args.overwrite, trust_remote_code=args.trust_remote_code)
    print(f"wrote the model at λ={args.lam:g} to {out}")
    return 0
