"""Errors meant for the user: the CLI prints their message and exits non-zero, no traceback."""


class DamiPrefError(Exception):
    """A problem with the user's input or environment, with a message saying what to fix."""


class PairMismatchError(DamiPrefError):
    """The Instruct and Thinking checkpoints cannot be interpolated (architecture, shapes, vocab)."""


class ProblemsError(DamiPrefError):
    """A problem set cannot be read: missing file, malformed row, missing field."""


class OptionError(DamiPrefError, ValueError):
    """An option's value is outside its allowed range."""
