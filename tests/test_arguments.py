"""Dataclass arguments: YAML config, command-line overrides, unknown keys refused, real booleans."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from dami_pref.cli.parsing import parse_args
from dami_pref.errors import DamiPrefError
from dami_pref.utils.grid import parse_grid


@dataclass
class Args:
    out: str = field(metadata={"help": "required"})
    steps: int = 10
    overwrite: bool = False
    grid: str = "0:1:0.5"


def test_yaml_then_command_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("out: here\nsteps: 3\noverwrite: true\n")
    args = parse_args(Args, ["--config", str(cfg), "--steps", "7"])
    assert (args.out, args.steps, args.overwrite) == ("here", 7, True)
    assert parse_args(Args, ["--out", "x", "--overwrite", "false"]).overwrite is False
    assert parse_args(Args, ["--out", "x", "--overwrite"]).overwrite is True


def test_unknown_keys_are_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("out: here\nstepz: 3\n")
    with pytest.raises(DamiPrefError, match=r"unknown key\(s\) \['stepz'\]"):
        parse_args(Args, ["--config", str(cfg)])
    with pytest.raises(DamiPrefError, match="unknown argument"):
        parse_args(Args, ["--out", "x", "--stepz", "3"])
    with pytest.raises(DamiPrefError, match="config file not found"):
        parse_args(Args, ["--config", str(tmp_path / "none.yaml")])
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(DamiPrefError, match="expected a mapping"):
        parse_args(Args, ["--config", str(tmp_path / "bad.yaml")])


@pytest.mark.parametrize("spec, expected", [
    ("0:1:0.1", [round(0.1 * i, 10) for i in range(11)]),
    ("0:1:0.25", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("1,0,0.5,0.5", [0.0, 0.5, 1.0]),
    ("0.3", [0.3]),
])
def test_parse_grid(spec, expected):
    assert parse_grid(spec) == expected


@pytest.mark.parametrize("spec", ["0:1.5:0.5", "a:b:c", "0:1:0", "", "0,nan", "-0.1,0.5"])
def test_parse_grid_errors(spec):
    with pytest.raises(DamiPrefError):
        parse_grid(spec)


def test_trainer_flags_a_trl_user_knows(tmp_path):
    """The standard TrainingArguments / ModelConfig flags reach the ranker's trainer as given."""
    from dami_pref.ranker.config import ARGUMENT_CLASSES

    cfg = tmp_path / "train.yaml"
    cfg.write_text("pairs: p\noutput_dir: o\nlearning_rate: 1.0e-3\nlora_r: 8\ngrid: 0.5\n")
    script, config, model = parse_args(ARGUMENT_CLASSES, [
        "--config", str(cfg), "--per_device_train_batch_size", "8",
        "--gradient_accumulation_steps", "4", "--learning_rate", "3e-4", "--num_train_epochs", "2",
        "--max_steps", "50", "--lr_scheduler_type", "linear", "--warmup_ratio", "0.1",
        "--bf16", "false", "--fp16", "false", "--gradient_checkpointing", "true",
        "--eval_strategy", "steps", "--eval_steps", "5", "--save_steps", "10",
        "--save_total_limit", "3", "--report_to", "none", "--seed", "7",
        "--resume_from_checkpoint", "true", "--push_to_hub", "false", "--hub_model_id", "you/r",
        "--lora_r", "4", "--lora_alpha", "8", "--lora_target_modules", "q_proj", "v_proj",
        "--model_name_or_path", "some/backbone", "--use_cpu", "true"])
    assert (script.pairs, config.output_dir, config.grid) == ("p", "o", "0.5")  # YAML 0.5 → "0.5"
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps) == (8, 4)
    assert (config.learning_rate, config.num_train_epochs, config.max_steps) == (3e-4, 2, 50)
    assert config.lr_scheduler_type == "linear" and config.warmup_steps == 0.1
    assert config.gradient_checkpointing and not config.bf16 and not config.fp16
    assert (config.eval_steps, config.save_steps, config.save_total_limit) == (5, 10, 3)
    assert (config.seed, config.resume_from_checkpoint, config.hub_model_id) == (7, "true", "you/r")
    assert (model.lora_r, model.lora_alpha, model.model_name_or_path) == (4, 8, "some/backbone")
    assert model.lora_target_modules == ["q_proj", "v_proj"]


@pytest.mark.parametrize("flags, message", [
    (["--learning_rate", "-1"], "--learning_rate must be > 0"),
    (["--max_steps", "0"], "--max_steps must be ≥ 1, or -1"),
    (["--max_length", "0"], "--max_length must be ≥ 1"),
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be ≥ 1"),
    (["--objective", "magic"], "--objective must be one of"),
    (["--lora_r", "0"], "--lora_r must be ≥ 1"),
    (["--use_peft", "false"], "not supported"),
    (["--nonsense", "1"], "unknown argument"),
])
def test_bad_trainer_flags_are_clear_errors(flags, message):
    from dami_pref.ranker.config import ARGUMENT_CLASSES

    with pytest.raises(DamiPrefError, match=message):
        parse_args(ARGUMENT_CLASSES, ["--pairs", "p", *flags])


def test_yaml_values_of_the_wrong_type_are_named(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("out: here\nsteps: many\n")
    with pytest.raises(DamiPrefError, match="steps must be int, got 'many'"):
        parse_args(Args, ["--config", str(cfg)])
