"""Training a ranker: the pairs, a fresh ranker and :class:`RankerTrainer`, put together.

This is the body of ``train/pref.py`` and ``dami-pref train``; ``accelerate launch`` (CPU, GPUs,
DeepSpeed ZeRO-2/3) or ``--deepspeed ds.json`` set the hardware up, as for any ``Trainer``.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..errors import DamiPrefError, first_line
from ..utils.devices import parse_dtype, peak_memory_bytes
from ..utils.io import check_location
from .config import RankerConfig, RankerModelConfig, RankerScriptArguments
from .data import ProblemExample, RankerCollator, load_examples
from .encoding import QuestionEncoder
from .model import LoraSettings, RankerSpec, build_ranker
from .integrations import check_integrations, tensorboard_logs
from .safe_resume import (check_checkpoint_files, deepspeed_loads_weights_only,
                          newest_complete_checkpoint)
from .trainer import RankerTrainer, checkpoint_root


def training_examples(script: RankerScriptArguments, config: RankerConfig, n_processes: int
                      ) -> tuple[list[ProblemExample], list[ProblemExample], list[float], dict]:
    """(train examples, validation examples, grid, pairs summary), subsampled and checked."""
    from ..utils.grid import parse_grid

    grid = parse_grid(config.grid) if config.grid else None
    examples, grid, summary = load_examples(script.pairs, grid, config.pair_weighting)
    train_examples = examples["train"]
    if script.max_train_problems is not None and script.max_train_problems < len(train_examples):
        import random

        keep = sorted(random.Random(config.seed).sample(range(len(train_examples)),
                                                        script.max_train_problems))
        train_examples = [train_examples[i] for i in keep]
    if config.objective == "pref":
        train_examples = [e for e in train_examples if e.pairs]
    batch = config.per_device_train_batch_size
    if len(train_examples) < batch * n_processes:
        raise DamiPrefError(f"{len(train_examples)} training problems are fewer than one batch "
                            f"({batch} × {n_processes} processes); lower "
                            "--per_device_train_batch_size or build more pairs")
    val_examples = [e for e in examples["validation"] if e.pairs or config.objective != "pref"]
    if not val_examples:
        raise DamiPrefError(f"{script.pairs}: no validation problems to evaluate on; build the "
                            "pairs with --validation_fraction above 0")
    return train_examples, val_examples, grid, summary


def ranker_for(config: RankerConfig, model_args: RankerModelConfig, grid: list[float]):
    """A fresh ranker (the classifier with LoRA from TRL's ``get_peft_config``)."""
    from trl import get_peft_config

    if not model_args.model_name_or_path:
        raise DamiPrefError("model_name_or_path is required: the ranker's backbone (a folder "
                            "or Hub id)")
    peft_config = get_peft_config(model_args)
    spec = RankerSpec(backbone=model_args.model_name_or_path, grid=list(grid),
                      objective=config.objective, prompt_template=config.prompt_template,
                      chat_template=config.chat_template, max_length=config.max_length,
                      lora=LoraSettings(model_args.lora_r, model_args.lora_alpha,
                                        model_args.lora_dropout,
                                        model_args.lora_target_modules or "all-linear"))
    model, tokenizer = build_ranker(spec, parse_dtype(model_args.dtype),
                                    model_args.trust_remote_code, seed=config.seed,
                                    peft_config=peft_config)
    context = getattr(model.backbone.config, "max_position_embeddings", None)
    if context and spec.max_length > context:
        raise DamiPrefError(f"--max_length {spec.max_length} is longer than the backbone's "
                            f"context ({context} positions in {spec.backbone}); questions are "
                            f"cut from the left to --max_length, so set it to {context} or less")
    return model, tokenizer, spec


def run_identity(script: RankerScriptArguments, config: RankerConfig, spec: RankerSpec,
                 summary: dict) -> dict:
    """What a checkpoint must share with the run that resumes it."""
    return {"rollout_fingerprint": summary.get("rollout_fingerprint"), "pairs": str(script.pairs),
            "max_train_problems": script.max_train_problems, "grid": list(spec.grid),
            "objective": spec.objective, "backbone": spec.backbone, "lora": asdict(spec.lora),
            "max_length": spec.max_length,
            "per_device_train_batch_size": config.per_device_train_batch_size,
            "gradient_accumulation_steps": config.gradient_accumulation_steps,
            "processes": config.world_size, "seed": config.seed}


def resolve_resume(config: RankerConfig, identity: dict) -> str | None:
    """The checkpoint to resume from (``true``: the newest), checked against this run; or None
    for a fresh run, after checking that it would overwrite nothing unasked."""
    from .checkpoint import read_ranker_config

    output, root = Path(config.output_dir), checkpoint_root(config.output_dir)
    for folder in (output, root):
        check_location(folder)
    wanted = config.resume_from_checkpoint
    if wanted in (None, "", "false", "False"):
        busy = [str(p) for p in (output, root) if p.exists() and any(p.iterdir())]
        if busy and not config.overwrite_output_dir:
            raise DamiPrefError(f"{busy[0]} already holds a ranker or checkpoints; pass "
                                "--resume_from_checkpoint true to continue, or "
                                "--overwrite_output_dir to start again")
        if busy and config.process_index == 0:
            shutil.rmtree(root, ignore_errors=True)  # the new run's checkpoints start afresh
        return None
    found = newest_complete_checkpoint(root) if wanted in ("true", "True") else wanted
    if not found and wanted in ("true", "True") and not (output.is_dir()
                                                         and any(output.iterdir())):
        print(f"no checkpoint in {root} yet: starting afresh", file=sys.stderr)
        return None  # killed before the first checkpoint: the same command starts over
    if not found or not Path(found).is_dir():
        raise DamiPrefError(f"--resume_from_checkpoint: no checkpoint found "
                            f"({found or f'none in {root}'})")
    saved = read_ranker_config(found).get("training", {}).get("run", {})
    differ = sorted(k for k in identity if saved.get(k) != identity[k])
    if differ:
        raise DamiPrefError(f"{found} was made by another run (different: {', '.join(differ)}, "
                            f"e.g. {differ[0]}={saved.get(differ[0])!r} there, "
                            f"{identity[differ[0]]!r} now); resume with the same data and "
                            "settings, or start again with --overwrite_output_dir")
    return found


def check_hub_access(config: RankerConfig) -> None:
    """Before any training: a ``--push_to_hub`` run must be able to reach the Hub and log in."""
    from transformers.utils.hub import hf_api

    try:
        hf_api().whoami(token=config.hub_token)
    except Exception as err:  # noqa: BLE001 - offline, no token and bad token alike
        raise DamiPrefError(f"--push_to_hub: cannot reach the Hugging Face Hub as a logged-in "
                            f"user ({type(err).__name__}: {first_line(err)}); log "
                            "in (`hf auth login` or HF_TOKEN) or drop --push_to_hub; the ranker "
                            "folder can be uploaded later with dami-pref export --push") from None


def finished_at(checkpoint: str | None) -> int | None:
    """The step a checkpoint was saved at, when it is its run's last step (nothing to train)."""
    import json

    if checkpoint is None:
        return None
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    if state.get("max_steps") and state["global_step"] >= state["max_steps"]:
        return int(state["global_step"])
    return None


def run_trainer(config: RankerConfig, model, tokenizer, spec: RankerSpec, summary: dict,
                train_examples: list[ProblemExample], val_examples: list[ProblemExample],
                identity: dict, resume: str | None):
    """Build the trainer and train (or, from a finished checkpoint, only reload)."""
    collator = RankerCollator(QuestionEncoder(tokenizer, spec.prompt_template, spec.max_length,
                                              spec.chat_template), spec.grid)
    trainer = RankerTrainer(model, config, spec=spec, train_dataset=train_examples,
                            eval_dataset=val_examples, collator=collator, tokenizer=tokenizer,
                            lambda_costs=summary.get("lambda_mean_cost"))
    trainer.training_summary = {"run": identity}
    started = time.perf_counter()
    if finished_at(resume):  # the run had ended: only the final ranker folder is missing
        from transformers import TrainerState

        trainer._load_from_checkpoint(resume)
        trainer.state = TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))
        training_loss = None
    else:
        with deepspeed_loads_weights_only():
            training_loss = trainer.train(resume_from_checkpoint=resume).training_loss
    seconds = time.perf_counter() - started
    return trainer, training_loss, seconds


def operating_point_of(trainer: RankerTrainer, examples: list[ProblemExample],
                       target: str) -> dict:
    """The default β, chosen on the validation problems (see :mod:`.operating_point`)."""
    import numpy as np

    from .operating_point import choose_operating_point
    from .selection import normalized_costs

    grid = list(trainer.spec.grid)
    return choose_operating_point(trainer.validation_scores(examples),
                                  np.array([e.acc for e in examples], dtype=float),
                                  np.array([e.cost for e in examples], dtype=float),
                                  normalized_costs(trainer.lambda_costs, grid), grid, target)


def train(script: RankerScriptArguments, config: RankerConfig,
          model_args: RankerModelConfig) -> dict:
    """Train a ranker and write its folder; returns the final metrics and timings."""
    check_integrations(config.report_to)
    train_examples, val_examples, grid, summary = training_examples(script, config,
                                                                    config.world_size)
    model, tokenizer, spec = ranker_for(config, model_args, grid)
    identity = run_identity(script, config, spec, summary)
    resume = resolve_resume(config, identity)
    if config.push_to_hub:
        check_hub_access(config)
    if resume:
        check_checkpoint_files(resume)
    output = Path(config.output_dir)
    fresh = not output.exists()
    try:
        with tensorboard_logs(output, config.report_to, announce=config.process_index == 0):
            trainer, training_loss, seconds = run_trainer(config, model, tokenizer, spec,
                                                          summary, train_examples, val_examples,
                                                          identity, resume)
    except BaseException:
        if fresh and output.is_dir() and not any(output.iterdir()):
            output.rmdir()  # Trainer made it; leave nothing behind
        raise
    final = trainer.ranker_metrics(val_examples)
    trainer.operating_point = operating_point_of(trainer, val_examples, config.operating_target)
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    trainer.training_summary = {
        "run": identity, "objective": spec.objective, "steps": trainer.state.global_step,
        "train_problems": len(train_examples), "validation_problems": len(val_examples),
        "train_pairs": sum(len(e.pairs) for e in train_examples), "pairs_source": script.pairs,
        "rollout_fingerprint": summary.get("rollout_fingerprint"), "pair": summary.get("pair"),
        "final_train_loss": losses[-1] if losses else training_loss,
        "validation": final, "operating_point": trainer.operating_point, "seconds": seconds,
        "processes": config.world_size,
        "distributed_type": str(trainer.accelerator.distributed_type).split(".")[-1],
        "peak_memory_bytes": peak_memory_bytes(config.device), "seed": config.seed}
    trainer.save_model()  # with --push_to_hub, Trainer then uploads the folder and its card
    return {**{k: trainer.training_summary[k] for k in
               ("validation", "operating_point", "seconds", "steps", "distributed_type",
                "processes", "peak_memory_bytes")},
            "losses": losses, "log_history": trainer.state.log_history}
