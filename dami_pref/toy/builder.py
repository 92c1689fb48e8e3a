"""Building the toy pair: pretrain one tiny Qwen3 base on arithmetic, fine-tune two endpoints.

The base sees direct answers and worked solutions (running partial sums in a thinking span,
carrying steps checked), with worked solutions more common the harder a question looks (more
operands, larger operands), and a verification pass after a few of them. Two light fine-tunes
of that base give the pair: **Instruct** only ever answers directly; **Thinking** always works
first and always verifies. Interpolated models inherit the base's graded preference for working
out, so they start thinking on the hardest questions first as λ grows, and the habit of
verifying, which the base barely has, arrives only near λ=1: mid λ thinks in the concise style.
"""

from __future__ import annotations

import math
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..utils.io import atomic_write_json, temporary_sibling, write_jsonl
from . import task as toy_task
from .recipe import ToyRecipe
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


def hardness(operands: list[int], size_weight: float) -> float:
    """How hard a question looks, 0 to 1: a mix of its k and its share of two-digit operands."""
    span = toy_task.MAX_OPERANDS - toy_task.MIN_OPERANDS
    by_k = (len(operands) - toy_task.MIN_OPERANDS) / span
    return (1 - size_weight) * by_k + size_weight * toy_task.large_share(operands)


class ExampleEncoder:
    """Renders (question, completion) into token ids and a loss mask over the completion."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.end = tokenizer.convert_tokens_to_ids(END)

    def encode(self, question: str, completion: str) -> tuple[list[int], list[int]]:
        prompt = self.tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                                    tokenize=False, add_generation_prompt=True)
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = self.tokenizer(completion, add_special_tokens=False)["input_ids"] + [self.end]
        return prompt_ids + answer_ids, [0] * len(prompt_ids) + [1] * len(answer_ids)


# (question, completion text) for one training example
ExampleDraw = Callable[[random.Random], tuple[str, str]]


def pretraining_draw(worked_min: float, worked_max: float, size_weight: float,
                     verify_share: float, k_decay: float) -> ExampleDraw:
    """The base's mixture: worked solutions more often the harder the question looks. A few
    worked solutions are verified, always on a question that asks for it (``12+7+19?``): the
    base learns the skill of verifying but never the habit on a plain question, so only the
    Thinking fine-tune makes it a habit, and interpolated models pick it up late."""

    def draw(rng: random.Random) -> tuple[str, str]:
        operands = toy_task.draw_operands(rng, k_decay)
        question = toy_task.question_text(operands)
        worked = worked_min + (worked_max - worked_min) * hardness(operands, size_weight)
        if rng.random() < worked:
            if rng.random() < verify_share:
                return question + toy_task.VERIFY_REQUEST, toy_task.thinking_completion(
                    operands, verify=True)
            return question, toy_task.thinking_completion(operands)
        return question, toy_task.direct_completion(operands)

    return draw


def instruct_draw(k_decay: float) -> ExampleDraw:
    def draw(rng: random.Random) -> tuple[str, str]:
        operands = toy_task.draw_operands(rng, k_decay)
        return toy_task.question_text(operands), toy_task.direct_completion(operands)

    return draw


def thinking_draw(verify_share: float, k_decay: float) -> ExampleDraw:
    """Worked solutions, most of them verified: the Thinking model verifies when greedy, but
    its preference is a mild one, as the interpolation paper finds for real pairs' styles, so
    interpolated models take up the habit only near λ=1."""

    def draw(rng: random.Random) -> tuple[str, str]:
        operands = toy_task.draw_operands(rng, k_decay)
        verify = rng.random() < verify_share
        return toy_task.question_text(operands), toy_task.thinking_completion(operands, verify)

    return draw


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
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False,
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


def write_problem_sets(args: ToyRecipe, folder: Path) -> dict[str, int]:
    splits = toy_task.generate_splits(seed=args.seed, n_train=args.n_train,
                                      n_validation=args.n_validation,
                                      n_test=args.n_test, k_decay=args.k_decay)
    for name, rows in splits.items():
        write_jsonl(rows, folder / "problems" / f"{name}.jsonl")
    return {name: len(rows) for name, rows in splits.items()}


def model_card(role: str, args: ToyRecipe, extra: str = "") -> str:
    low, high = toy_task.ONE_DIGIT[0], toy_task.TWO_DIGIT[1] - 1
    return (f"# dami-pref toy {role}\n\nA ~0.8M-parameter Qwen3ForCausalLM trained on sums of "
            f"{toy_task.MIN_OPERANDS}-{toy_task.MAX_OPERANDS} integers from {low} to {high}, "
            f"one- and two-digit operands mixed, by "
            f"`data_builders/toy_pair.py` (seed {args.seed}). Built for tests and demos of "
            f"dami-pref; it knows nothing else.\n\n{extra}\n")


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
    draw = pretraining_draw(args.worked_share_min, args.worked_share_max, args.size_weight,
                            args.verify_share, args.k_decay)
    loss = train_phase(base, ExampleEncoder(tokenizer),
                       TrainPhase(args.pretrain_steps, args.pretrain_lr, 100, args.seed + 1),
                       args.batch_size, draw, "pretrain base")
    return base, {"pretrain": loss}


def fine_tune_pair(args: ToyRecipe, base, tokenizer, staging: Path) -> dict[str, float]:
    """Instruct (direct answers) and Thinking (verified worked solutions), each from the base."""
    from transformers import Qwen3ForCausalLM

    encoder = ExampleEncoder(tokenizer)
    cards = {"instruct": "Answers at once with the sum (System 1).",
             "thinking": "Writes its running partial sums inside `<think>…</think>`, checks "
                         "each carrying step, verifies the whole pass once more, then answers "
                         "(System 2)."}
    losses = {}
    for role, steps, lr, draw, seed in (
            ("instruct", args.instruct_steps, args.instruct_lr, instruct_draw(args.k_decay), 2),
            ("thinking", args.thinking_steps, args.thinking_lr,
             thinking_draw(args.thinking_verify_share, args.k_decay), 3)):
        model = Qwen3ForCausalLM(base.config)
        model.load_state_dict(base.state_dict())
        losses[role] = train_phase(model, encoder, TrainPhase(steps, lr, 10, args.seed + seed),
                                   args.fine_tune_batch_size, draw, f"fine-tune {role}")
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
