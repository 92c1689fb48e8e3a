"""The ``dami-pref`` command: ``dami-pref <command> [--config FILE.yaml] [--option value ...]``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .arguments import parse_args
from .errors import DamiPrefError

# command -> (module in dami_pref.commands, its arguments dataclass, one-line help)
COMMANDS = {
    "sweep": ("sweep", "SweepArgs", "run every λ of a grid over a problem set; table, JSON, plot"),
    "merge": ("merge", "MergeArgs", "write the static model at one λ as a Hugging Face folder"),
    "lmc": ("lmc", "LmcArgs", "per-layer cosine similarity of the Instruct/Thinking pair"),
    "select": ("select", "SelectArgs", "choose λ per question with a trained ranker"),
    "export": ("export", "ExportArgs", "write a Hub-ready ranker folder (and --push it)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: dami-pref <command> [options]   (dami-pref {__version__})", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, _, text) in COMMANDS.items()]
    lines += ["", "Run `dami-pref <command> --help` for a command's options; every command "
              "also reads --config FILE.yaml."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(__version__)
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"dami-pref: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, class_name, text = COMMANDS[name]
    module = importlib.import_module(f".commands.{module_name}", __package__)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars say what is happening
    import warnings

    # deprecation notices from inside the libraries are for their maintainers, not our users
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        args = parse_args(getattr(module, class_name), argv[1:], prog=f"dami-pref {name}",
                          description=text)
        return int(module.run(args) or 0)
    except DamiPrefError as err:
        print(f"dami-pref {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dami-pref {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
