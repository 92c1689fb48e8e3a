"""Building the toy pair: pretrain one tiny Qwen3 base on arithmetic, fine-tune two endpoints.

The base sees direct answers and worked solutions (running partial sums in a thinking span),
with worked solutions more common the more operands a question has. Two light fine-tunes of that
base give the pair: **Instruct** only ever answers directly, **Thinking** always works first.
Because the base's own preference for working out rises with k, interpolated models start
thinking on the hardest questions first as λ grows, so the cheapest sufficient λ varies from
question to question, which is the situation DAMI is built for.
"""

from __future__ import annotations

import math
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..utils.io import atomic_write_json, temporary_sibling, write_jsonl
from . import task as toy_task
from .tokenizer import END, build_tokenizer


@dataclass
class ToyModelShape:
    hidden_size: int = 128
    num_layers: int = 4
    intermediate_size: int = 384
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 512


@dataclass
class TrainPhase:
    steps: int
    lr: float
    warmup: int
    seed: int


def make_config(tokenizer, shape: ToyModelShape):
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads, num_key_value_heads=shape.num_kv_heads,
        head_dim=shape.hidden_size // shape.num_heads,
        max_position_embeddings=shape.max_positions, tie_word_embeddings=True,
        rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None)


def worked_share(k: int, at_min: float, at_max: float) -> float:
    """Share of worked (thinking) solutions in pretraining for a question with k operands."""
    span = toy_task.MAX_OPERANDS - toy_task.MIN_OPERANDS
    return at_min + (at_max - at_min) * (k - toy_task.MIN_OPERANDS) / span


class ExampleEncoder:
    """Renders (operands, thinking?) into token ids and a loss mask over the answer only."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.end = tokenizer.convert_tokens_to_ids(END)

    def encode(self, operands: list[int], thinking: bool) -> tuple[list[int], list[int]]:
        question = toy_task.question_text(operands)
        prompt = self.tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                                    tokenize=False, add_generation_prompt=True)
        answer = (toy_task.thinking_completion(operands) if thinking
                  else toy_task.direct_completion(operands))
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.end]
        return prompt_ids + answer_ids, [0] * len(prompt_ids) + [1] * len(answer_ids)


# (operands, thinking?) for one training example
ExampleDraw = Callable[[random.Random], tuple[list[int], bool]]


def draw_uniform(limit: int, choose_thinking: Callable[[int, random.Random], bool]) -> ExampleDraw:
    """k uniform over 2..8, operands uniform over [0, limit): the task's own distribution."""
    ks = list(range(toy_task.MIN_OPERANDS, toy_task.MAX_OPERANDS + 1))

    def draw(rng: random.Random) -> tuple[list[int], bool]:
        operands = toy_task.random_operands(rng, rng.choice(ks), limit)
        return operands, choose_thinking(len(operands), rng)

    return draw


def with_carry_practice(draw: ExampleDraw, limit: int, share: float) -> ExampleDraw:
    """Mix in worked solutions whose running sum crosses 100.

    Under uniform operands a three-digit running sum is rare (a few percent of k=8 questions),
    and a base trained on the task's own distribution keeps slipping on that carry. These extra
    examples are worked solutions only (6 to 8 operands from the upper half of the range), so
    they teach the Thinking skill without making direct answers any better.
    """
    if share <= 0:
        return draw  # leaves the random stream exactly as without practice

    def mixed(rng: random.Random) -> tuple[list[int], bool]:
        if rng.random() < share:
            k = rng.randint(toy_task.MAX_OPERANDS - 2, toy_task.MAX_OPERANDS)
            return [rng.randrange(limit // 2, limit) for _ in range(k)], True
        return draw(rng)

    return mixed


def make_batch(encoder: ExampleEncoder, rng: random.Random, batch_size: int, draw: ExampleDraw):
    rows = [encoder.encode(*draw(rng)) for _ in range(batch_size)]
    width = max(len(ids) for ids, _ in rows)
    pad = encoder.tokenizer.pad_token_id
    input_ids = torch.full((batch_size, width), pad, dtype=torch.long)
    attention = torch.zeros((batch_size, width), dtype=torch.long)
    labels = torch.full((batch_size, width), -100, dtype=torch.long)
    for row, (ids, mask) in enumerate(rows):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention[row, :len(ids)] = 1
        labels[row, :len(ids)] = torch.tensor([t if m else -100 for t, m in zip(ids, mask)])
    return input_ids, attention, labels


def train_phase(model, encoder: ExampleEncoder, phase: TrainPhase, batch_size: int,
                draw: ExampleDraw, label: str) -> float:
    """AdamW with warm-up and cosine decay; returns the last loss. Shows a progress bar."""
    from tqdm.auto import tqdm

    rng = random.Random(phase.seed)
    torch.manual_seed(phase.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=phase.lr, weight_decay=0.01,
                                  betas=(0.9, 0.98))

    def schedule(step: int) -> float:
        warm = min(1.0, (step + 1) / max(phase.warmup, 1))
        return warm * 0.5 * (1 + math.cos(math.pi * min(step, phase.steps) / phase.steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    loss_value, started = float("nan"), time.perf_counter()
    bar = tqdm(range(phase.steps), desc=label, dynamic_ncols=True)
    for step in bar:
        input_ids, attention, labels = make_batch(encoder, rng, batch_size, draw)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if step % 20 == 0 or step == phase.steps - 1:
            bar.set_postfix(loss=f"{loss_value:.4f}",
                            s=f"{time.perf_counter() - started:.0f}")
    model.eval()
    return loss_value


def save_model_folder(model, tokenizer, folder, card: str) -> None:
    """A standard Hugging Face folder: safetensors, config, generation config, tokenizer."""
    from transformers import GenerationConfig

    from ..utils.io import atomic_write_text

    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        do_sample=False)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    atomic_write_text(folder / "README.md", card)


@dataclass
class ToyRecipe:
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


def write_problem_sets(args: ToyRecipe, folder: Path) -> dict[str, int]:
    splits = toy_task.generate_splits(seed=args.seed, n_train=args.n_train,
                                      n_validation=args.n_validation,
                                      n_test_per_k=args.n_test_per_k, limit=args.operand_limit)
    for name, rows in splits.items():
        write_jsonl(rows, folder / "problems" / f"{name}.jsonl")
    return {name: len(rows) for name, rows in splits.items()}


def model_card(role: str, args: ToyRecipe, extra: str = "") -> str:
    return (f"# dami-pref toy {role}\n\nA ~0.8M-parameter Qwen3ForCausalLM trained on sums of "
            f"2-8 integers below {args.operand_limit} by `data_builders/toy_pair.py` "
            f"(seed {args.seed}). Built for tests and demos of dami-pref; it knows nothing "
            f"else.\n\n{extra}\n")


def build(args: ToyRecipe, output: str | Path, problems_only: bool = False) -> Path:
    """Build the problem sets and the pair under a temporary name, then swap them into
    ``output`` (files of ``output`` that the build does not make, such as a package's
    ``__init__.py``, are kept)."""
    torch.set_num_threads(args.threads)
    out = Path(output)
    staging = temporary_sibling(out)  # build aside, swap in when whole
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    counts = write_problem_sets(args, staging)
    if problems_only:
        for name in counts:
            (out / "problems").mkdir(parents=True, exist_ok=True)
            (staging / "problems" / f"{name}.jsonl").replace(out / "problems" / f"{name}.jsonl")
        shutil.rmtree(staging)
        return out
    tokenizer = build_tokenizer()
    base, losses = pretrained_base(args, tokenizer)
    n_params = sum(p.numel() for p in base.parameters())
    print(f"toy base: {n_params:,} parameters", file=sys.stderr)
    save_model_folder(base, tokenizer, staging / "base", model_card(
        "base", args, "Pretrained on a mix of direct answers and worked solutions; the shared "
        "starting point of the Instruct and Thinking models, and the toy ranker's backbone."))
    losses.update(fine_tune_pair(args, base, tokenizer, staging))
    atomic_write_json(staging / "build.json", {"args": {"output": str(out), **asdict(args)},
                                               "parameters": n_params,
                                               "final_losses": losses, "problems": counts})
    swap_in(staging, out, built={"base", "instruct", "thinking", "problems", "build.json"})
    return out


def pretrained_base(args: ToyRecipe, tokenizer):
    """The shared base: pretrained here, or loaded from ``args.base``."""
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(args.seed)
    if args.base:
        return Qwen3ForCausalLM.from_pretrained(args.base, use_safetensors=True), \
            {"pretrain": None}
    shape = ToyModelShape(args.hidden_size, args.num_layers, args.intermediate_size)
    base = Qwen3ForCausalLM(make_config(tokenizer, shape))

    def pretrain_mix(k, rng):
        return rng.random() < worked_share(k, args.worked_share_min, args.worked_share_max)

    draw = with_carry_practice(draw_uniform(args.operand_limit, pretrain_mix),
                               args.operand_limit, args.pretrain_carry_share)
    loss = train_phase(base, ExampleEncoder(tokenizer),
                       TrainPhase(args.pretrain_steps, args.pretrain_lr, 100, args.seed + 1),
                       args.batch_size, draw, "pretrain base")
    return base, {"pretrain": loss}


def fine_tune_pair(args: ToyRecipe, base, tokenizer, staging: Path) -> dict[str, float]:
    """Instruct (direct answers) and Thinking (worked solutions), each from the base."""
    from transformers import Qwen3ForCausalLM

    encoder = ExampleEncoder(tokenizer)
    cards = {"instruct": "Answers at once with the sum (System 1).",
             "thinking": "Writes its running partial sums inside `<think>…</think>`, then the "
                         "sum (System 2)."}
    losses = {}
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
    return losses


def swap_in(staging: Path, out: Path, built: set[str]) -> None:
    """Replace ``out`` by ``staging``, carrying over the files of ``out`` it did not build."""
    from ..utils.io import replace_folder

    if out.exists():
        for item in out.iterdir():
            if item.name not in built and not (staging / item.name).exists():
                shutil.copytree(item, staging / item.name) if item.is_dir() \
                    else shutil.copy2(item, staging / item.name)
    replace_folder(staging, out)
