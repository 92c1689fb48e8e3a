"""Command-line tokens made ready for argparse."""

from __future__ import annotations

import re


def attach_negative_values(takes_value: set[str], argv: list[str]) -> list[str]:
    """``--grid -0.1,1`` as ``--grid=-0.1,1`` for the flags that take one value: argparse takes
    a value that starts with "-" and is not a plain number for an option, and answers "expected
    one argument"; this way the value reaches its own check, which names it."""
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else None
        if token in takes_value and following is not None and \
                re.match(r"^-[\d.]", following):
            out.append(f"{token}={following}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out
