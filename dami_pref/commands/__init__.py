"""The ``dami-pref`` subcommands: one module each, each with one dataclass of arguments."""
