"""Training the ranker under Accelerate (CPU, multi-GPU, DeepSpeed ZeRO-2/3 alike).

The loop is plain Accelerate: a seedable sampler (same order in every run and after a resume),
gradient accumulation, clipping, warm-up then cosine decay, ``save_state`` checkpoints, and
validation metrics reduced across processes as sums. A non-finite loss stops the run before any
further checkpoint is written, so the last good checkpoint survives.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import DamiPrefError
from ..utils.devices import parse_dtype, peak_memory_bytes
from .config import TrainArgs
from .data import ProblemExample, RankerCollator, load_examples
from .encoding import QuestionEncoder
from .losses import pairwise_bce, pred_mse, route_bce
from .metrics import SUMS, batch_sums, finish
from .model import OBJECTIVES, LoraSettings, RankerSpec, build_ranker


# -- logging through Accelerate's trackers ----------------------------------------------------
def stdout_tracker_class():
    from accelerate.tracking import GeneralTracker, on_main_process

    class StdoutTracker(GeneralTracker):
        """Prints metrics as one JSON line per log call (main process only)."""

        name = "stdout"
        requires_logging_directory = False

        def __init__(self, run_name: str = "ranker") -> None:
            super().__init__()
            self.run_name = run_name

        @property
        def tracker(self):
            return None

        @on_main_process
        def store_init_configuration(self, values: dict) -> None:
            pass

        @on_main_process
        def log(self, values: dict, step: int | None = None, **kwargs) -> None:
            from tqdm.auto import tqdm

            tqdm.write(json.dumps({"step": step, **{k: round(v, 6) if isinstance(v, float)
                                                    else v for k, v in values.items()}}))

    return StdoutTracker


def make_trackers(spec: str) -> list:
    trackers = []
    for name in [s.strip() for s in spec.split(",") if s.strip()]:
        if name == "stdout":
            trackers.append(stdout_tracker_class()())
        elif name in ("tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml"):
            trackers.append(name)
        elif name != "none":
            raise DamiPrefError(f"unknown tracker {name!r} in --report_to")
    return trackers


# -- the loss for one batch --------------------------------------------------------------------
def batch_loss(model, batch: dict[str, torch.Tensor], objective: str,
               margin: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    if objective == "pref":
        p = batch["pair_problem"]
        scores = outputs["scores"]
        loss = pairwise_bce(scores[p, batch["pair_chosen"]], scores[p, batch["pair_rejected"]],
                            p, scores.shape[0], margin=margin, weights=batch["pair_weight"])
    elif objective == "pred":
        loss = pred_mse(outputs["pred"], batch["oracle_lambda"])
    else:
        loss = route_bce(outputs["route"], (batch["oracle_lambda"] > 0.5).float())
    return loss, outputs


# -- evaluation ------------------------------------------------------------------------------
def eval_batches(n_examples: int, rank: int, world: int, batch_size: int) -> list[list[int]]:
    """This process's evaluation batches: every world-th example, and as many batches as
    every other process, padded with empty batches.

    Under ZeRO-3 each forward pass gathers parameters from every process, so a process that ran
    out of batches early would leave the others waiting for ever.
    """
    mine = list(range(rank, n_examples, world))
    longest = -(-n_examples // world) if n_examples else 0
    steps = -(-longest // batch_size)
    return [mine[s * batch_size:(s + 1) * batch_size] for s in range(steps)]


@torch.no_grad()
def evaluate(model, examples: list[ProblemExample], collator: RankerCollator, accelerator,
             objective: str, batch_size: int) -> dict[str, float]:
    """Each process scores its own share (every world-th problem); sums are reduced."""
    model.eval()
    unwrapped = accelerator.unwrap_model(model)
    grid = unwrapped.grid
    sums = torch.zeros(len(SUMS), device=accelerator.device)
    for indices in eval_batches(len(examples), accelerator.process_index,
                                accelerator.num_processes, batch_size):
        # An empty batch still runs a forward pass (on the first example) so that every
        # process takes part in the same collective calls; its result is not counted.
        chosen = [examples[i] for i in indices] or examples[:1]
        batch = {k: v.to(accelerator.device) for k, v in collator(chosen).items()}
        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        if indices:
            sums += batch_sums(outputs, batch, objective, grid.to(accelerator.device))
    model.train()
    return finish(accelerator.reduce(sums, reduction="sum").cpu())


# -- checkpoints -----------------------------------------------------------------------------
def checkpoint_root(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + "-checkpoints")


def latest_checkpoint(output: str | Path) -> Path | None:
    root = checkpoint_root(output)
    done = [p for p in root.glob("step-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1])) if done else None


def save_checkpoint(accelerator, output: str | Path, state: dict, keep: int) -> Path:
    root = checkpoint_root(output)
    target = root / f"step-{state['global_step']}"
    accelerator.save_state(str(target))
    if accelerator.is_main_process:
        (target / "trainer_state.json").write_text(json.dumps(state))  # written last: complete
        finished = sorted((p for p in root.glob("step-*")
                           if (p / "trainer_state.json").is_file()),
                          key=lambda p: int(p.name.split("-")[1]))
        for old in finished[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return target


# -- the whole run ---------------------------------------------------------------------------
def make_accelerator(args: TrainArgs):
    """An Accelerator for this run: CPU, GPUs or DeepSpeed, as ``accelerate launch`` set it up."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    # Under DeepSpeed, Accelerate must set up DeepSpeed itself (its CPU accelerator included).
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    cpu = (args.device == "cpu" or not torch.cuda.is_available()) and not deepspeed
    if deepspeed and not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        # Accelerate finds no backend for DeepSpeed on a CPU, so it would count one process
        # while DeepSpeed counts them all, and DeepSpeed's train_batch_size check fails. Naming
        # gloo makes both see the same world.
        from accelerate import PartialState

        PartialState(backend="gloo")
    return Accelerator(
        cpu=cpu, gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=make_trackers(args.report_to) or None,
        project_dir=str(checkpoint_root(args.output)),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))


def training_examples(args: TrainArgs, n_processes: int
                      ) -> tuple[list[ProblemExample], list[ProblemExample], list[float], dict]:
    """(train examples, validation examples, grid, pairs summary), subsampled and checked."""
    from ..utils.grid import parse_grid

    grid = parse_grid(args.grid) if args.grid else None
    examples, grid, summary = load_examples(args.pairs, grid, args.pair_weighting)
    train_examples = examples["train"]
    if args.max_train_problems is not None and args.max_train_problems < len(train_examples):
        import random

        keep = sorted(random.Random(args.seed).sample(range(len(train_examples)),
                                                      args.max_train_problems))
        train_examples = [train_examples[i] for i in keep]
    if args.objective == "pref":
        train_examples = [e for e in train_examples if e.pairs]
    if len(train_examples) < args.batch_size * n_processes:
        raise DamiPrefError(f"{len(train_examples)} training problems are fewer than one batch "
                            f"({args.batch_size} × {n_processes} processes); "
                            "lower --batch_size or build more pairs")
    val_examples = [e for e in examples["validation"] if e.pairs or args.objective != "pref"]
    return train_examples, val_examples, grid, summary


def ranker_for(args: TrainArgs, grid: list[float]):
    """A fresh ranker (backbone with LoRA, new head) and its tokenizer and spec."""
    from ..toy import TOY_BASE

    targets: list[str] | str = args.lora_target_modules
    if targets != "all-linear":
        targets = [t.strip() for t in str(targets).split(",") if t.strip()]
    spec = RankerSpec(backbone=args.backbone or str(TOY_BASE), grid=grid,
                      objective=args.objective, prompt_template=args.prompt_template,
                      chat_template=args.chat_template, max_length=args.max_length,
                      head_width=args.head_width,
                      lora=LoraSettings(args.lora_r, args.lora_alpha, args.lora_dropout, targets))
    model, tokenizer = build_ranker(spec, parse_dtype(args.dtype), args.trust_remote_code,
                                    seed=args.seed)
    context = getattr(model.backbone.config, "max_position_embeddings", None)
    if context and spec.max_length > context:
        raise DamiPrefError(f"--max_length {spec.max_length} is longer than the backbone's "
                            f"context ({context} positions in {spec.backbone}); questions are "
                            f"cut from the left to --max_length, so set it to {context} or less")
    if args.gradient_checkpointing:
        model.backbone.gradient_checkpointing_enable()
        model.backbone.enable_input_require_grads()
    return model, tokenizer, spec


def make_optimizer(model, args: TrainArgs) -> torch.optim.Optimizer:
    """AdamW with the LoRA weights at ``learning_rate`` and the head at its own rate."""
    head_params = [p for p in model.head.parameters() if p.requires_grad]
    head_ids = {id(p) for p in head_params}
    lora_params = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    return torch.optim.AdamW([
        {"params": lora_params, "lr": args.learning_rate},
        {"params": head_params, "lr": args.head_learning_rate or args.learning_rate}],
        weight_decay=args.weight_decay)


@dataclass
class Run:
    """What the loop needs, prepared by Accelerate."""

    args: TrainArgs
    accelerator: object
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loader: object
    scheduler: object
    collator: RankerCollator
    val_examples: list[ProblemExample]
    total_steps: int


def start_state(run: Run) -> dict:
    """A fresh loop state (clearing old checkpoints), or the newest checkpoint's with --resume."""
    args, accelerator = run.args, run.accelerator
    state = {"global_step": 0, "epoch": 0, "batches_in_epoch": 0, "history": []}
    if not args.resume and accelerator.is_main_process:
        shutil.rmtree(checkpoint_root(args.output), ignore_errors=True)  # a fresh run
    accelerator.wait_for_everyone()
    if args.resume:
        found = latest_checkpoint(args.output)
        if found is None:
            raise DamiPrefError(f"--resume: no checkpoint in {checkpoint_root(args.output)}")
        accelerator.load_state(str(found))
        state = json.loads((found / "trainer_state.json").read_text())
        accelerator.print(f"resumed from {found} (step {state['global_step']})")
    return state


def micro_step(run: Run, batch: dict, state: dict, last_good: Path | None) -> float:
    """Forward, backward and (when the accumulation is complete) an optimizer step.

    Returns the loss averaged over processes. A non-finite loss on any process stops the run
    before anything else is written, naming the last good checkpoint.
    """
    accelerator, args = run.accelerator, run.args
    with accelerator.accumulate(run.model):
        loss, _ = batch_loss(run.model, batch, args.objective, args.margin)
        # one all-reduce per micro-batch: (loss, is it non-finite) summed over processes
        finite = torch.isfinite(loss.detach())
        stats = accelerator.reduce(torch.stack([
            torch.where(finite, loss.detach(), torch.zeros_like(loss)).float(),
            (~finite).float()]), "sum")
        if stats[1].item() > 0:
            raise DamiPrefError(
                f"the loss became non-finite at step {state['global_step'] + 1} "
                f"(epoch {state['epoch']}); training stopped. The last good checkpoint "
                f"is {last_good or 'none (none was saved yet)'}; lower "
                "--learning_rate and run again (with --resume to continue from it)")
        accelerator.backward(loss)
        if accelerator.sync_gradients and args.max_grad_norm > 0:
            accelerator.clip_grad_norm_(run.model.parameters(), args.max_grad_norm)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
    return stats[0].item() / accelerator.num_processes


def after_optimizer_step(run: Run, state: dict, step_loss: float, last_good: Path | None
                         ) -> Path | None:
    """Count the step, then evaluate and checkpoint on their cadence; returns the last good."""
    args, accelerator = run.args, run.accelerator
    run.scheduler.step()
    state["global_step"] += 1
    state["history"].append(step_loss)
    step = state["global_step"]
    if step % args.eval_every == 0 or step == run.total_steps:
        metrics = evaluate(run.model, run.val_examples, run.collator, accelerator,
                           args.objective, args.eval_batch_size)
        accelerator.log({"train_loss": step_loss, "lr": run.scheduler.get_last_lr()[0],
                         **{f"val_{k}": v for k, v in metrics.items()}}, step=step)
    if step % args.save_every == 0 and step < run.total_steps:
        last_good = save_checkpoint(accelerator, args.output, state, args.keep_checkpoints)
    return last_good


def train_loop(run: Run, state: dict) -> dict:
    """Epochs of micro-batches until ``total_steps`` optimizer steps; resumes mid-epoch."""
    from tqdm.auto import tqdm

    accelerator, args = run.accelerator, run.args
    last_good = latest_checkpoint(args.output)
    bar = tqdm(total=run.total_steps, initial=state["global_step"],
               desc=f"ranker ({args.objective})", dynamic_ncols=True,
               disable=not (args.progress and accelerator.is_main_process))
    run.model.train()
    running, micro = 0.0, 0
    try:
        while state["global_step"] < run.total_steps:
            run.loader.set_epoch(state["epoch"])
            batches = (accelerator.skip_first_batches(run.loader, state["batches_in_epoch"])
                       if state["batches_in_epoch"] else run.loader)
            for batch in batches:
                running += micro_step(run, batch, state, last_good)
                state["batches_in_epoch"] += 1
                micro += 1
                if not accelerator.sync_gradients:
                    continue
                step_loss, running, micro = running / micro, 0.0, 0
                last_good = after_optimizer_step(run, state, step_loss, last_good)
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}")
                if state["global_step"] >= run.total_steps:
                    break
            else:
                state["epoch"] += 1
                state["batches_in_epoch"] = 0
    finally:
        bar.close()
    return state


def prepare_run(args: TrainArgs, accelerator, model, tokenizer, spec: RankerSpec,
                train_examples: list[ProblemExample], val_examples: list[ProblemExample]) -> Run:
    """DataLoader, optimizer and scheduler, prepared by Accelerate; trackers started."""
    from torch.utils.data import DataLoader
    from transformers import get_cosine_schedule_with_warmup

    encoder = QuestionEncoder(tokenizer, spec.prompt_template, spec.max_length,
                              spec.chat_template)
    collator = RankerCollator(encoder, spec.grid)
    loader = DataLoader(train_examples, batch_size=args.batch_size, shuffle=True,
                        collate_fn=collator, drop_last=True)
    optimizer = make_optimizer(model, args)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = max(len(loader) // args.gradient_accumulation_steps, 1)
    total_steps = args.max_steps or math.ceil(args.epochs * steps_per_epoch)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(args.warmup_ratio * total_steps),
                                                total_steps)
    accelerator.register_for_checkpointing(scheduler)
    accelerator.init_trackers("dami_pref_ranker", config={
        k: v for k, v in asdict(args).items() if isinstance(v, (int, float, str, bool))})
    return Run(args, accelerator, model, optimizer, loader, scheduler, collator, val_examples,
               total_steps)


def train(args: TrainArgs) -> dict:
    """Train a ranker and write its folder; returns the final metrics and timings."""
    from accelerate.utils import set_seed

    if args.objective not in OBJECTIVES:
        raise DamiPrefError(f"unknown objective {args.objective!r}; choose one of {OBJECTIVES}")
    accelerator = make_accelerator(args)
    set_seed(args.seed)
    train_examples, val_examples, grid, summary = training_examples(
        args, accelerator.num_processes)
    model, tokenizer, spec = ranker_for(args, grid)
    run = prepare_run(args, accelerator, model, tokenizer, spec, train_examples, val_examples)
    state = start_state(run)
    started = time.perf_counter()
    state = train_loop(run, state)
    seconds = time.perf_counter() - started
    peak_memory = peak_memory_bytes(accelerator.device)
    final = evaluate(run.model, val_examples, run.collator, accelerator, args.objective,
                     args.eval_batch_size)
    summary_record = {
        "objective": args.objective, "steps": state["global_step"],
        "train_problems": len(train_examples), "validation_problems": len(val_examples),
        "train_pairs": sum(len(e.pairs) for e in train_examples),
        "pairs_source": str(args.pairs),
        "rollout_fingerprint": summary.get("rollout_fingerprint"),
        "final_train_loss": state["history"][-1] if state["history"] else None,
        "validation": final, "seconds": seconds, "processes": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type).split(".")[-1],
        "peak_memory_bytes": peak_memory, "seed": args.seed}
    save_trained(run, tokenizer, spec, summary_record, summary.get("lambda_mean_cost"))
    return {"validation": final, "seconds": seconds, "steps": state["global_step"],
            "losses": state["history"], "distributed_type": summary_record["distributed_type"],
            "processes": accelerator.num_processes, "peak_memory_bytes": peak_memory}


def save_trained(run: Run, tokenizer, spec: RankerSpec, training: dict,
                 lambda_costs: dict | None) -> None:
    """Write the ranker folder from the main process (ZeRO-3 partitions gathered first)."""
    from .checkpoint import save_ranker

    accelerator = run.accelerator
    full_state = accelerator.get_state_dict(run.model)  # gathers ZeRO-3 partitions
    if accelerator.is_main_process:
        save_ranker(run.args.output, accelerator.unwrap_model(run.model), tokenizer, spec,
                    training=training, lambda_costs=lambda_costs, state_dict=full_state)
    accelerator.wait_for_everyone()
    accelerator.end_training()
