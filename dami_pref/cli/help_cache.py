"""``--help``, unknown options and bad values answered at once for commands whose arguments
need the heavy libraries to exist: ``train``'s are ``TrainingArguments``, whose import alone
costs seconds.

The first full parse of such a command stores its help text and option names in the user's
cache folder (``DAMI_PREF_CACHE``, else ``$XDG_CACHE_HOME/dami-pref``, else
``~/.cache/dami-pref``), under a key made of the versions of the libraries that define the
options and of the files that declare them, so an upgrade or an edit is never answered stale.
It also stores each option's flags, type and choices, so that a value the real parser would
refuse (``--learning_rate abc``, ``--objective nope``, ``--warmup_ratio 2``) is refused at once,
with the real parser's words: its type and choice errors, then the ranker's option rules
(``ranker/option_checks.py``) on the values given on the command line. Anything the cache cannot
judge (a value a --config file sets, a type it does not know) goes through the real parser,
which judges every command line that passes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

COMMANDS_WITH_HEAVY_ARGUMENTS = ("train",)
LIBRARIES = ("dami-pref", "transformers", "trl", "peft", "accelerate")
DECLARED_IN = ("cli/train.py", "cli/parsing.py", "cli/argv.py", "cli/help_cache.py",
               "ranker/config.py", "ranker/option_checks.py")
TYPES = {int: "int", float: "float", str: "str"}


class _Undecided(Exception):
    """A value the cache cannot judge: the real parser will."""


class _Refused(Exception):
    """argparse's error message, raised instead of printing the usage."""


def cache_file(command: str) -> Path:
    root = os.environ.get("DAMI_PREF_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dami-pref"
    digest = hashlib.sha256()
    for name in LIBRARIES:
        try:
            digest.update(f"{name}={metadata.version(name)};".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=none;".encode())
    package = Path(__file__).resolve().parents[1]
    for relative in DECLARED_IN:
        digest.update((package / relative).read_bytes())
    return Path(root) / f"help-{command}-{digest.hexdigest()[:16]}.json"


def answer(command: str, argv: Sequence[str], prog: str) -> int | None:
    """The exit status when the cache answers this command line, else None (parse it)."""
    if command not in COMMANDS_WITH_HEAVY_ARGUMENTS:
        return None
    try:
        entry = json.loads(cache_file(command).read_text())
    except (OSError, ValueError):
        return None
    if any(a in ("-h", "--help") for a in argv):
        sys.stdout.write(entry["help"])
        return 0
    known = entry["options"] + ["--config"]
    actions = entry.get("actions", [])
    described = {flag for spec in actions for flag in spec["flags"]} | {"--config"}
    undecided = False
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if not flag.startswith("--"):
            continue
        matches = [option for option in known if option.startswith(flag)]
        if not matches:
            print(f"{prog}: error: unknown argument(s): {flag}; see {prog} --help",
                  file=sys.stderr)
            return 2
        if flag not in described and not (len(matches) == 1 and matches[0] in described):
            undecided = True  # ambiguous, or an option the cache could not describe
    return None if undecided else _judge_values(actions, argv, prog)


def _judge_values(actions: list[dict], argv: Sequence[str], prog: str) -> int | None:
    """2 with the real parser's one-line error when a value on the command line breaks its
    type, its choices or the ranker's option rules; None when all pass or cannot be judged."""
    from ..errors import OptionError
    from ..ranker.option_checks import check_ranker_options
    from .argv import attach_negative_values

    try:
        parser = _light_parser(actions)
        given, _ = parser.parse_known_args(attach_negative_values(parser, list(argv)))
        check_ranker_options({k: v for k, v in vars(given).items() if k != "config"})
    except _Undecided:
        return None
    except (_Refused, OptionError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return None


def _light_parser(actions: list[dict]):
    """An argparse parser with the stored options' flags, types and choices, and no defaults:
    its namespace holds only what the command line gave. Its converters are TRL's own (a light
    import), so a refusal reads as the real parser's."""
    import argparse

    try:
        from trl.scripts._hf_argparser import _accept_none, string_to_bool
    except ImportError:  # TRL moved them: leave every value to the real parser
        raise _Undecided("converters") from None
    converters = {name: kind for kind, name in TYPES.items()} | {"bool": string_to_bool}
    converters |= {f"{name}_or_none": _accept_none(kind) for kind, name in TYPES.items()}

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise _Refused(message)

    parser = Parser(add_help=False, argument_default=argparse.SUPPRESS)
    parser.add_argument("--config")
    for spec in actions:
        kind = converters.get(spec["type"])
        if spec["action"] in ("store_true", "store_false", "store_const"):
            parser.add_argument(*spec["flags"], dest=spec["dest"], action=spec["action"],
                                **({"const": spec["const"]} if spec["action"] ==
                                   "store_const" else {}))
            continue
        if kind is None and spec["choices"] is None:
            kind = _undecided
        parser.add_argument(*spec["flags"], dest=spec["dest"], nargs=spec["nargs"],
                            const=spec["const"], type=kind, choices=spec["choices"])
    return parser


def _undecided(value):
    raise _Undecided(value)


def _type_name(converter) -> str | None:
    """The stored name of an option's converter; None for one the cache does not know."""
    name = getattr(converter, "__name__", "")
    if converter in TYPES:
        return TYPES[converter]
    if name == "string_to_bool":
        return "bool"
    if "_accept_none" in getattr(converter, "__qualname__", "") and name in TYPES.values():
        return f"{name}_or_none"
    return None


def _action_specs(parser) -> list[dict]:
    """What the light parser needs of each option: flags, dest, type, nargs, const, choices."""
    names = {"_StoreAction": "store", "_StoreTrueAction": "store_true",
             "_StoreFalseAction": "store_false", "_StoreConstAction": "store_const"}
    specs = []
    for action in parser._actions:
        kind = names.get(type(action).__name__)
        if not action.option_strings or kind is None:
            continue
        type_name = _type_name(action.type)
        choices = list(action.choices) if action.choices is not None else None
        if choices and type_name is None and not all(isinstance(c, str) for c in choices):
            choices = None  # compared after a conversion the cache does not know: undecided
        spec = {"flags": list(action.option_strings), "dest": action.dest, "action": kind,
                "type": type_name, "nargs": action.nargs, "const": action.const,
                "choices": choices}
        try:
            json.dumps(spec)
        except (TypeError, ValueError):
            continue  # an option the cache cannot describe: the real parser judges it
        specs.append(spec)
    return specs


def remember(command: str, parser) -> None:
    """Store the parser's help and options; a cache that cannot be written is skipped."""
    if command not in COMMANDS_WITH_HEAVY_ARGUMENTS:
        return
    path = cache_file(command)
    if path.is_file():
        return
    from ..utils.io import atomic_write_json

    entry = {"help": parser.format_help(), "options": sorted(parser._option_string_actions),
             "actions": _action_specs(parser)}
    try:
        atomic_write_json(path, entry)
    except OSError:
        pass
