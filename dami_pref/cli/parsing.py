"""Command lines and YAML configs parsed by TRL's ``TrlParser``, with clear errors.

``--config FILE.yaml`` sets values and command-line flags override them, as in TRL's scripts.
Before TRL sees a YAML file, its values are checked against the fields' types (a number where a
string is expected, such as ``grid: 0.5``, is taken as that string; a string where a number is
expected is an error naming the key), and unknown keys are refused, so every mistake is one
clear line rather than a traceback or a silently wrong value.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path

import yaml

from ..errors import DamiPrefError, OptionError, first_line
from .argv import attach_negative_values

INF = float("inf")
# Allowed ranges of the numeric options, by name across every command: (low, high, low
# included, high included). Checked after parsing, and shown in --help.
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    **{name: (1, INF, True, True) for name in (
        "max_new_tokens", "batch_size", "kv_cache_group_size", "limit", "validation_limit",
        "live_limit", "live_batch_size", "samples", "shard_size", "conf_answer_tokens", "threads",
        "n_train", "n_validation", "n_test", "hidden_size", "num_layers",
        "intermediate_size", "pretrain_steps", "fine_tune_batch_size", "check_max_new_tokens")},
    **{name: (0, INF, True, True) for name in (
        "temperature", "kv_cache_residual_length", "cost_tolerance", "instruct_steps",
        "thinking_steps", "k_decay")},
    **{name: (0, INF, False, True) for name in (
        "sample_temperature", "pretrain_lr", "instruct_lr", "thinking_lr")},
    **{name: (0, 1, True, True) for name in (
        "acc_tolerance", "worked_share_min", "worked_share_max", "size_weight",
        "verify_share", "thinking_verify_share")},
    **{name: (0, 1, True, False) for name in ("validation_fraction",)},
    "top_p": (0, 1, False, True),
    "warn_below": (-1, 1, True, True),
}


def range_text(low: float, high: float, low_in: bool, high_in: bool) -> str:
    if high == INF:
        return f"≥ {low:g}" if low_in else f"> {low:g}"
    return f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def check_ranges(parsed) -> None:
    """Every numeric option within its range and finite; an OptionError naming the flag."""
    for f in dataclasses.fields(parsed):
        value = getattr(parsed, f.name, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        flag = (f.metadata.get("aliases") or [f"--{f.name}"])[0]  # the flag users type
        if value != value or value in (INF, -INF):
            raise OptionError(f"{flag} must be a finite number, got {value}")
        if f.name not in RANGES:
            continue
        low, high, low_in, high_in = RANGES[f.name]
        inside = (value >= low if low_in else value > low) and \
            (value <= high if high_in else value < high)
        if not inside:
            raise OptionError(f"{flag} must be {range_text(*RANGES[f.name])}, got {value:g}")


def _show_ranges(parser) -> None:
    for action in parser._actions:
        name = action.dest
        if name in RANGES and action.help not in (None, argparse.SUPPRESS) \
                and "range:" not in action.help:
            action.help = f"{action.help} (range: {range_text(*RANGES[name])})"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Yes/no options read as flags (``--generate``, which still takes ``--generate false``),
    and a default shown once: the help's own words win, and an empty or unset default, or an
    off flag, is not printed."""

    @staticmethod
    def _is_flag(action) -> bool:
        return action.nargs == "?" and action.const is True

    def _format_args(self, action, default_metavar):
        return "" if self._is_flag(action) else super()._format_args(action, default_metavar)

    def _format_action_invocation(self, action):
        if action.option_strings and self._is_flag(action):
            return ", ".join(action.option_strings)
        return super()._format_action_invocation(action)

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if "default:" in text or action.required or default is None or default is False \
                or default == "" or default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


def main_options_first(parser, classes) -> None:
    """Help and usage list the required options, then the command's own, then the shared
    groups (for ``train``: the ranker's before the ~150 of ``TrainingArguments``)."""
    own = [name for cls in classes for name in vars(cls).get("__annotations__", {})]
    rank = {name: i for i, name in enumerate(own)}

    def key(action) -> tuple[int, int]:
        if action.dest == "help":
            return (0, 0)
        return (1 if action.required else 2, rank.get(action.dest, len(rank)))

    parser._actions.sort(key=key)
    for group in parser._action_groups:
        group._group_actions.sort(key=key)


# Every command takes --output and --overwrite; train's TRL names, and merge's --out, stay.
OUTPUT_ALIASES = {"output": ("--output_dir",), "out": ("--output", "--output_dir"),
                  "output_dir": ("--output",), "overwrite": ("--overwrite_output_dir",),
                  "overwrite_output_dir": ("--overwrite",)}


def add_output_aliases(parser) -> None:
    """One spelling of the output flags across commands, the other kept as an alias."""
    for action in list(parser._actions):
        for alias in OUTPUT_ALIASES.get(action.dest, ()):
            if alias not in parser._option_string_actions:
                action.option_strings.append(alias)
                parser._option_string_actions[alias] = action


def _one_line_error(message: str):
    raise OptionError(message)


def parse_args(classes, argv: Sequence[str] | None = None, prog: str | None = None,
               description: str | None = None):
    """Parse ``argv`` (default: sys.argv[1:]) into one dataclass, or a tuple for several."""
    from trl import TrlParser

    several = isinstance(classes, tuple)
    classes = classes if several else (classes,)
    config_path, rest = _pop_config(list(sys.argv[1:] if argv is None else argv))
    parser = TrlParser(classes, prog=prog, description=description,
                       formatter_class=HelpFormatter)
    _show_ranges(parser)
    main_options_first(parser, classes)
    add_output_aliases(parser)
    parser.error = _one_line_error  # argparse would print the whole usage before it
    if config_path is not None:
        parser.set_defaults_with_config(**load_yaml_config(config_path, classes))
    try:
        parsed = parser.parse_args_into_dataclasses(args=attach_negative_values(parser, rest))
    except ValueError as err:
        if "not used by the HfArgumentParser" in str(err):
            raise DamiPrefError(f"unknown argument(s): {str(err).split(': ', 1)[1]}; "
                                f"see {prog or 'the script'} --help") from None
        raise DamiPrefError(first_line(err, 1000)) from None
    for item in parsed:
        if dataclasses.is_dataclass(item) and not _is_training_arguments(item):
            check_ranges(item)
    return tuple(parsed) if several else parsed[0]


def _is_training_arguments(item) -> bool:
    """TrainingArguments subclasses validate themselves (RankerConfig.__post_init__)."""
    from transformers import TrainingArguments

    return isinstance(item, TrainingArguments)


def _pop_config(argv: list[str]) -> tuple[str | None, list[str]]:
    rest, config, i = [], None, 0
    while i < len(argv):
        if argv[i] == "--config":
            if i + 1 >= len(argv):
                raise DamiPrefError("--config needs a path to a YAML file")
            config, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith("--config="):
            config = argv[i].split("=", 1)[1]
        else:
            rest.append(argv[i])
        i += 1
    return config, rest


def load_yaml_config(path: str | Path, classes: tuple[type, ...]) -> dict:
    """A YAML mapping of option names to values, checked and coerced to the fields' types."""
    path = Path(path)
    if not path.is_file():
        raise DamiPrefError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise DamiPrefError(f"{path}: not valid YAML ({first_line(err, 1000)})") from None
    if not isinstance(data, dict):
        raise DamiPrefError(f"{path}: expected a mapping of option names to values")
    hints = {}
    for cls in classes:
        types_of = typing.get_type_hints(cls)
        hints.update({f.name: types_of[f.name] for f in dataclasses.fields(cls) if f.init})
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise DamiPrefError(f"{path}: unknown key(s) {unknown}; see --help for the options")
    return {key: coerce(value, hints[key], f"{path}: {key}") for key, value in data.items()}


def coerce(value, hint, where: str):
    """``value`` as the annotated type, or a DamiPrefError saying what was expected."""
    allowed = _base_types(hint)
    if value is None:
        if type(None) in allowed:
            return None
        raise DamiPrefError(f"{where} may not be empty")
    if bool in allowed and isinstance(value, bool):
        return value
    if int in allowed and isinstance(value, int) and not isinstance(value, bool):
        return value
    if float in allowed and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if str in allowed and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    if list in allowed and isinstance(value, (list, str)):
        return value if isinstance(value, list) else [value]
    if dict in allowed and isinstance(value, dict):
        return value
    if int in allowed and isinstance(value, float) and value.is_integer():
        return int(value)
    names = sorted(t.__name__ for t in allowed if t is not type(None))
    raise DamiPrefError(f"{where} must be {' or '.join(names)}, got {value!r}")


def _base_types(hint) -> set[type]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_base_types(arg) for arg in typing.get_args(hint)))
    if origin in (list, tuple):
        return {list}
    if origin is dict:
        return {dict}
    if origin is typing.Literal:
        return {type(arg) for arg in typing.get_args(hint)}
    if hint is typing.Any:
        return {str, int, float, bool, list, dict, type(None)}
    if isinstance(hint, type) and issubclass(hint, str):  # enums of strings
        return {str}
    return {hint} if isinstance(hint, type) else {str}
