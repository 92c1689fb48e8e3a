"""Errors meant for the user: the CLI prints their message and exits non-zero, no traceback."""


class DamiPrefError(Exception):
    """A problem with the user's input or environment, with a message saying what to fix."""


class PairMismatchError(DamiPrefError):
    """The Instruct and Thinking checkpoints cannot be interpolated (architecture, shapes, vocab)."""


class ProblemsError(DamiPrefError):
    """A problem set cannot be read: missing file, malformed row, missing field."""


class OptionError(DamiPrefError, ValueError):
    """An option's value is outside its allowed range."""


def first_line(err: BaseException, width: int = 160) -> str:
    """The first line of an error's message (for one-line reports), or "no message"."""
    lines = str(err).strip().splitlines()
    return lines[0][:width] if lines else "no message"
