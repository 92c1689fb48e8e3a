"""``python -m dami_pref.cli <command> ...``, e.g. under ``accelerate launch -m``."""

import sys

from . import main

sys.exit(main())
