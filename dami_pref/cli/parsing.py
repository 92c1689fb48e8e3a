"""One dataclass per script: ``--config FILE.yaml`` sets values, command-line flags override.

Built on transformers' HfArgumentParser (real boolean flags, ``--a-b`` aliases for ``--a_b``).
Unknown keys, in the YAML file or on the command line, are an error rather than ignored.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import yaml

from ..errors import DamiPrefError

T = TypeVar("T")


def _pop_config(argv: list[str]) -> tuple[str | None, list[str]]:
    rest, config = [], None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config":
            if i + 1 >= len(argv):
                raise DamiPrefError("--config needs a path to a YAML file")
            config, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return config, rest


def load_yaml_config(path: str | Path, cls: type) -> dict:
    """Read a YAML mapping and check every key names a field of ``cls``."""
    path = Path(path)
    if not path.is_file():
        raise DamiPrefError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise DamiPrefError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise DamiPrefError(f"{path}: expected a mapping of option names to values")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DamiPrefError(f"{path}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    return data


def parse_args(cls: type[T], argv: Sequence[str] | None = None, prog: str | None = None,
               description: str | None = None) -> T:
    """Parse ``argv`` (default: sys.argv[1:]) into an instance of the dataclass ``cls``."""
    from transformers import HfArgumentParser

    config, rest = _pop_config(list(sys.argv[1:] if argv is None else argv))
    parser = HfArgumentParser(cls, prog=prog, description=description)
    if config is not None:
        values = load_yaml_config(config, cls)
        for action in parser._actions:  # a YAML value satisfies a required option
            if action.dest in values:
                action.required = False
        parser.set_defaults(**values)
    try:
        (parsed,) = parser.parse_args_into_dataclasses(args=rest)
    except ValueError as err:
        if "not used by the HfArgumentParser" in str(err):
            raise DamiPrefError(f"unknown argument(s): {str(err).split(': ', 1)[1]}; "
                                f"see {prog or 'the script'} --help") from None
        raise DamiPrefError(str(err)) from None
    return parsed
