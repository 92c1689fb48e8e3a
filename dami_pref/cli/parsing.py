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
from ..utils.options import back_to, check_options, parser_dataclass, value_flags


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


def _one_line_error(message: str):
    raise OptionError(message)


def parse_args(classes, argv: Sequence[str] | None = None, prog: str | None = None,
               description: str | None = None):
    """Parse ``argv`` (default: sys.argv[1:]) into one dataclass, or a tuple for several."""
    several = isinstance(classes, tuple)
    classes = classes if several else (classes,)
    config_path, rest = _pop_config(list(sys.argv[1:] if argv is None else argv))
    parser, shadow = build_parser(classes, prog, description)
    if config_path is not None:
        parser.set_defaults_with_config(**load_yaml_config(config_path, classes))
    try:
        [parsed] = parser.parse_args_into_dataclasses(
            args=attach_negative_values(value_flags([shadow]), rest))
    except ValueError as err:
        if "not used by the HfArgumentParser" in str(err):
            raise DamiPrefError(f"unknown argument(s): {str(err).split(': ', 1)[1]}; "
                                f"see {prog or 'the script'} --help") from None
        raise DamiPrefError(first_line(err, 1000)) from None
    try:  # the classes' own checks run here (TrainingArguments' among them)
        items = [back_to(cls, parsed) for cls in classes]
    except DamiPrefError:
        raise
    except ValueError as err:
        raise DamiPrefError(first_line(err, 1000)) from None
    for item in items:
        if not _is_training_arguments(item):  # TrainingArguments check themselves (post_init)
            check_options(item)
    return tuple(items) if several else items[0]


def build_parser(classes: tuple[type, ...], prog: str | None = None,
                 description: str | None = None):
    """TRL's parser over the commands' options (see :func:`options.parser_dataclass`), with the
    toolkit's help formatter and one-line errors; and the dataclass it parses into."""
    from trl import TrlParser

    shadow = parser_dataclass(classes)
    parser = TrlParser((shadow,), prog=prog, description=description,
                       formatter_class=HelpFormatter)
    parser.error = _one_line_error  # argparse would print the whole usage before it
    return parser, shadow


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
