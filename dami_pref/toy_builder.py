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
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import toy_task
from .toy_tokenizer import END


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

    from .io import atomic_write_text

    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        do_sample=False)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    atomic_write_text(folder / "README.md", card)


def check_properties(report: dict) -> list[tuple[str, str, bool]]:
    """The properties the toy pair must have, read off a greedy sweep report of its test set.

    Returns (property, measured value, holds) rows, so a rebuild shows at once what moved.
    """
    rows = {round(r["lambda"], 6): r for r in report["lambdas"]}
    if 0.0 not in rows or 1.0 not in rows:
        raise ValueError("the sweep must include λ=0 and λ=1")
    instruct, thinking, oracle = rows[0.0], rows[1.0], report["oracle"]
    acc_t = thinking["accuracy_by_difficulty"]
    acc_i = instruct["accuracy_by_difficulty"]
    lo, hi = str(toy_task.MIN_OPERANDS), str(toy_task.MAX_OPERANDS)
    mixed = [lam for lam, r in rows.items() if 0.0 < r["think_rate"] < 1.0]
    token_ratio = thinking["mean_tokens"] / max(instruct["mean_tokens"], 1e-9)
    oracle_lams = oracle["mean_lambda_by_difficulty"]
    return [
        ("Thinking accuracy ≥ 97% on every k", f"min {100 * min(acc_t.values()):.1f}%",
         min(acc_t.values()) >= 0.97),
        ("Instruct accuracy ≥ 90% at k=2", f"{100 * acc_i[lo]:.1f}%", acc_i[lo] >= 0.90),
        ("Instruct accuracy ≤ 40% at k=8", f"{100 * acc_i[hi]:.1f}%", acc_i[hi] <= 0.40),
        ("Thinking tokens ≥ 4× Instruct's", f"{token_ratio:.1f}×", token_ratio >= 4),
        ("≥ 3 grid points with think rate strictly in (0, 100%)",
         f"{len(mixed)}: {', '.join(f'{x:g}' for x in sorted(mixed))}", len(mixed) >= 3),
        ("oracle reaches Thinking's accuracy", f"{100 * oracle['accuracy']:.1f}% vs "
         f"{100 * thinking['accuracy']:.1f}%", oracle["accuracy"] >= thinking["accuracy"]),
        ("oracle tokens ≤ 50% of Thinking's", f"{100 * oracle['tokens_relative_to_thinking']:.0f}%",
         oracle["tokens_relative_to_thinking"] <= 0.5),
        ("oracle λ differs between difficulty levels",
         " ".join(f"k{k}:{v:.2f}" for k, v in oracle_lams.items()),
         len({round(v, 2) for v in oracle_lams.values()}) > 1),
    ]


def format_properties(rows: list[tuple[str, str, bool]]) -> str:
    lines = ["| required property | measured | holds |", "|---|---|:-:|"]
    lines += [f"| {name} | {value} | {'yes' if ok else 'NO'} |" for name, value, ok in rows]
    return "\n".join(lines)
