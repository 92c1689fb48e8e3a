"""Build the bundled toy Instruct/Thinking pair and its problem sets (seeded, reproducible).

    python data_builders/toy_pair.py                       # rebuild dami_pref/toy/ in place
    python data_builders/toy_pair.py --output /tmp/toy --pretrain_steps 300   # a quick variant
    python data_builders/toy_pair.py --problems_only       # only the problem sets

Writes ``base/``, ``instruct/`` and ``thinking/`` (Hugging Face folders: safetensors, config,
tokenizer with chat template) and ``problems/{train,validation,test}.jsonl``, then runs a greedy
λ sweep of the new pair on the test set and checks the properties README.md lists. About ten
minutes on 2 CPU cores. The same seed and thread count on the same machine rebuild the same
weights; elsewhere floating-point reduction order can differ, giving an equivalent pair rather
than identical bytes.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dami_pref import toy_task
from dami_pref.arguments import parse_args
from dami_pref.errors import DamiPrefError
from dami_pref.io import atomic_write_json, temporary_sibling
from dami_pref.problems import write_jsonl
from dami_pref.toy import TOY_DIR
from dami_pref.toy_builder import (ExampleEncoder, ToyModelShape, TrainPhase, draw_uniform,
                                   make_config, save_model_folder, train_phase, with_carry_practice,
                                   worked_share)
from dami_pref.toy_tokenizer import build_tokenizer


@dataclass
class ToyPairArgs:
    output: str = field(default=str(TOY_DIR), metadata={"help": "folder to (re)build"})
    seed: int = 0
    threads: int = field(default=2, metadata={"help": "torch CPU threads (part of the seed)"})
    operand_limit: int = field(default=toy_task.OPERAND_LIMIT, metadata={
        "help": "operands are drawn from [0, L)"})
    n_train: int = 1500
    n_validation: int = 300
    n_test_per_k: int = 100
    hidden_size: int = 128
    num_layers: int = 4
    intermediate_size: int = 384
    batch_size: int = 64
    pretrain_steps: int = 1500
    pretrain_lr: float = 2e-3
    worked_share_min: float = field(default=0.1, metadata={
        "help": "share of worked solutions in pretraining at k=2 (rising linearly to k=8)"})
    worked_share_max: float = field(default=0.9, metadata={"help": "… and at k=8"})
    pretrain_carry_share: float = field(default=0.0, metadata={
        "help": "share of extra worked solutions whose running sum crosses 100, in pretraining"})
    thinking_carry_share: float = field(default=0.3, metadata={
        "help": "the same, in the Thinking fine-tune (where it fixes the carry past 100 "
                "without making direct answers any better)"})
    instruct_steps: int = 300
    thinking_steps: int = 150
    instruct_lr: float = 1e-4
    thinking_lr: float = 3e-4
    base: str | None = field(default=None, metadata={
        "help": "start from this pretrained base folder instead of pretraining one"})
    problems_only: bool = field(default=False, metadata={"help": "only write the problem sets"})
    check: bool = field(default=True, metadata={"help": "sweep the new pair and check it"})


def write_problem_sets(args: ToyPairArgs, folder: Path) -> dict[str, int]:
    splits = toy_task.generate_splits(seed=args.seed, n_train=args.n_train,
                                      n_validation=args.n_validation,
                                      n_test_per_k=args.n_test_per_k, limit=args.operand_limit)
    for name, rows in splits.items():
        write_jsonl(rows, folder / "problems" / f"{name}.jsonl")
    return {name: len(rows) for name, rows in splits.items()}


def model_card(role: str, args: ToyPairArgs, extra: str = "") -> str:
    return (f"# dami-pref toy {role}\n\nA ~0.8M-parameter Qwen3ForCausalLM trained on sums of "
            f"2-8 integers below {args.operand_limit} by `data_builders/toy_pair.py` "
            f"(seed {args.seed}). Built for tests and demos of dami-pref; it knows nothing "
            f"else.\n\n{extra}\n")


def build(args: ToyPairArgs) -> Path:
    torch.set_num_threads(args.threads)
    out = Path(args.output)
    staging = temporary_sibling(out)  # build aside, swap in when whole
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    counts = write_problem_sets(args, staging)
    if args.problems_only:
        for name in counts:
            (out / "problems").mkdir(parents=True, exist_ok=True)
            (staging / "problems" / f"{name}.jsonl").replace(out / "problems" / f"{name}.jsonl")
        shutil.rmtree(staging)
        return out

    from transformers import Qwen3ForCausalLM

    tokenizer = build_tokenizer()
    encoder = ExampleEncoder(tokenizer)
    shape = ToyModelShape(args.hidden_size, args.num_layers, args.intermediate_size)
    torch.manual_seed(args.seed)
    if args.base:
        base = Qwen3ForCausalLM.from_pretrained(args.base, use_safetensors=True)
        losses = {"pretrain": None}
    else:
        base = Qwen3ForCausalLM(make_config(tokenizer, shape))

        def pretrain_mix(k, rng):
            return rng.random() < worked_share(k, args.worked_share_min, args.worked_share_max)

        draw = with_carry_practice(draw_uniform(args.operand_limit, pretrain_mix),
                                   args.operand_limit, args.pretrain_carry_share)
        losses = {"pretrain": train_phase(
            base, encoder, TrainPhase(args.pretrain_steps, args.pretrain_lr, 100, args.seed + 1),
            args.batch_size, draw, "pretrain base")}
    n_params = sum(p.numel() for p in base.parameters())
    print(f"toy base: {n_params:,} parameters", file=sys.stderr)
    save_model_folder(base, tokenizer, staging / "base", model_card(
        "base", args, "Pretrained on a mix of direct answers and worked solutions; the shared "
        "starting point of the Instruct and Thinking models, and the toy ranker's backbone."))
    cards = {"instruct": "Answers at once with the sum (System 1).",
             "thinking": "Writes its running partial sums inside `<think>…</think>`, then the "
                         "sum (System 2)."}
    for role, steps, lr, thinking, seed in (
            ("instruct", args.instruct_steps, args.instruct_lr, False, 2),
            ("thinking", args.thinking_steps, args.thinking_lr, True, 3)):
        model = Qwen3ForCausalLM(base.config)
        model.load_state_dict(base.state_dict())
        draw = draw_uniform(args.operand_limit, lambda k, rng, t=thinking: t)
        if thinking:
            draw = with_carry_practice(draw, args.operand_limit, args.thinking_carry_share)
        losses[role] = train_phase(model, encoder, TrainPhase(steps, lr, 5, args.seed + seed),
                                   args.batch_size, draw, f"fine-tune {role}")
        save_model_folder(model, tokenizer, staging / role, model_card(role, args, cards[role]))
    atomic_write_json(staging / "build.json", {"args": asdict(args), "parameters": n_params,
                                               "final_losses": losses, "problems": counts})
    if out.exists():
        backup = out.with_name(out.name + ".previous")
        shutil.rmtree(backup, ignore_errors=True)
        keep = {p.name for p in out.iterdir()} - {"base", "instruct", "thinking", "problems",
                                                    "build.json"}
        out.rename(backup)
        staging.rename(out)
        for name in keep:  # e.g. the package's __init__.py
            shutil.move(str(backup / name), str(out / name))
        shutil.rmtree(backup)
    else:
        staging.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(ToyPairArgs, argv, prog="toy_pair.py", description=__doc__)
        out = build(args)
    except DamiPrefError as err:
        print(f"toy_pair.py: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    if args.check and not args.problems_only:
        return check(out)
    return 0


def check(out: Path) -> int:
    """Sweep the new pair on its test set and report the required properties."""
    from dami_pref.cli import main as cli_main
    from dami_pref.toy_builder import check_properties, format_properties

    sweep_dir = Path("outputs") / f"{out.name}_check"
    code = cli_main(["sweep", "--instruct", str(out / "instruct"), "--thinking",
                     str(out / "thinking"), "--problems", str(out / "problems/test.jsonl"),
                     "--output", str(sweep_dir), "--device", "cpu"])
    if code:
        return code
    rows = check_properties(json.loads((sweep_dir / "sweep.json").read_text()))
    print("\n" + format_properties(rows))
    return 0 if all(ok for _, _, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
