"""Option rules, declared once next to each option, and the one function that checks them.

A command's option is a dataclass field; its metadata holds its ``help``, and where a value has a
rule, its ``range`` (``at_least(1)``, ``between(0, 1)``) or its ``one_of`` choices. Rules the
library shares with the command line live in ``utils/limits.py``. The command line, a
``--config`` file, the library's settings and the help all read that declaration:
:func:`check_options` checks values against it (one line naming the flag), and
:func:`parser_dataclass` gives TRL's parser the same fields with the range written into the help
(a help lists its choices in its own words), the output flags' other spellings as aliases, and
the options in the order the help lists them.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Iterable, Sequence

from ..errors import OptionError

INF = float("inf")
RANGE, ONE_OF = "range", "one_of"  # metadata keys only this module reads
OWN_KEYS = (RANGE, ONE_OF)

# Every command takes --output and --overwrite; train's TRL names, and merge's and export's
# --out, stay.
OUTPUT_ALIASES = {"output": ("--output_dir",), "output_dir": ("--output",),
                  "overwrite": ("--overwrite_output_dir",),
                  "overwrite_output_dir": ("--overwrite",)}


def at_least(low: float, *, included: bool = True) -> dict:
    """Metadata of a number that must be ≥ ``low`` (> ``low`` when not ``included``)."""
    return {RANGE: (low, INF, included, True)}


def between(low: float, high: float, low_in: bool = True, high_in: bool = True) -> dict:
    """Metadata of a number in [low, high]; ``low_in`` / ``high_in`` say which ends belong."""
    return {RANGE: (low, high, low_in, high_in)}


def one_of(*choices: str) -> dict:
    """Metadata of an option whose value is one of ``choices``."""
    return {ONE_OF: tuple(choices)}


def range_text(low: float, high: float, low_in: bool, high_in: bool) -> str:
    if high == INF:
        return f"≥ {low:g}" if low_in else f"> {low:g}"
    return f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def flag_of(field: dataclasses.Field) -> str:
    """The flag users type for a field."""
    return (field.metadata.get("aliases") or [f"--{field.name}"])[0]


def check_options(parsed) -> None:
    """Every numeric option finite and within its declared range, every option with choices
    one of them; an OptionError naming the flag."""
    for field in dataclasses.fields(parsed):
        check_value(flag_of(field), getattr(parsed, field.name, None), field.metadata)


def check_value(flag: str, value, rules: typing.Mapping) -> None:
    """One value against its declared rules (a field's metadata, or an entry of
    ``utils/limits.py``): its choices, then, for a number, finite and in range."""
    choices = rules.get(ONE_OF)
    if choices is not None and value is not None and value not in choices:
        raise OptionError(f"{flag} must be one of {list(choices)}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if value != value or value in (INF, -INF):
        raise OptionError(f"{flag} must be a finite number, got {value}")
    rule = rules.get(RANGE)
    if rule is None:
        return
    low, high, low_in, high_in = rule
    inside = (value >= low if low_in else value > low) and \
        (value <= high if high_in else value < high)
    if not inside:
        where = "" if high == INF else "in "
        raise OptionError(f"{flag} must be {where}{range_text(*rule)}, got {value:g}")


def parser_dataclass(classes: Sequence[type]) -> type:
    """The commands' options as TRL's parser reads them, in one dataclass: this module's keys
    out of the metadata (the parser hands the rest to argparse), the range in the help, the
    output aliases no other flag spells, and the order of the help (required, then the
    command's own, then the shared groups). Parsed values go back into each class
    (:func:`back_to`)."""
    own = [name for cls in classes for name in vars(cls).get("__annotations__", {})]
    rank = {name: i for i, name in enumerate(own)}
    hints = {name: hint for cls in classes for name, hint in typing.get_type_hints(cls).items()}
    fields = sorted((f for cls in classes for f in dataclasses.fields(cls) if f.init),
                    key=lambda f: (0 if _required(f) else 1, rank.get(f.name, len(rank))))
    taken = own_flags(classes)
    return dataclasses.make_dataclass(
        "_".join(cls.__name__ for cls in classes),
        [(f.name, hints[f.name], _parser_field(f, taken)) for f in fields], kw_only=True)


def back_to(cls: type, parsed) -> object:
    """A parsed :func:`parser_dataclass` instance as ``cls`` (whose own checks then run)."""
    return cls(**{f.name: getattr(parsed, f.name) for f in dataclasses.fields(cls) if f.init})


def flags_of(field: dataclasses.Field) -> set[str]:
    """Every spelling of a field's flag, as HfArgumentParser adds them."""
    return {f"--{field.name}", f"--{field.name.replace('_', '-')}",
            *field.metadata.get("aliases", ())}


def own_flags(classes: Iterable[type]) -> set[str]:
    """Every flag the fields of ``classes`` spell themselves (before output aliases)."""
    return {flag for cls in classes for f in dataclasses.fields(cls) for flag in flags_of(f)}


def value_flags(classes: Iterable[type]) -> set[str]:
    """The flags that take exactly one value (not the yes/no flags, not the lists)."""
    flags = set()
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kinds = set(typing.get_args(hints[f.name]) or (hints[f.name],)) - {type(None)}
            if not (bool in kinds or any(typing.get_origin(k) is list or k is list
                                         for k in kinds)):
                flags |= flags_of(f)
    return flags


def _required(field: dataclasses.Field) -> bool:
    return bool(field.metadata.get("required")) or (
        field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING)


def _parser_field(field: dataclasses.Field, taken: set[str]) -> dataclasses.Field:
    metadata = {k: v for k, v in field.metadata.items() if k not in OWN_KEYS}
    help_text = metadata.get("help")
    rule = field.metadata.get(RANGE)
    if rule is not None and isinstance(help_text, str) and help_text != argparse.SUPPRESS \
            and "range:" not in help_text:
        metadata["help"] = f"{help_text} (range: {range_text(*rule)})"
    aliases = [a for a in OUTPUT_ALIASES.get(field.name, ()) if a not in taken]
    if aliases:
        metadata["aliases"] = [*metadata.get("aliases", ()), *aliases]
        taken.update(aliases)
    kwargs = {"default": field.default} if field.default is not dataclasses.MISSING else {}
    if field.default_factory is not dataclasses.MISSING:
        kwargs["default_factory"] = field.default_factory
    return dataclasses.field(metadata=metadata, **kwargs)
