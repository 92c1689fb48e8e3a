"""The bundled toy Instruct/Thinking pair, its base, and its problem sets.

Everything about the toy lives here: the task (``task.py``), the character tokenizer
(``tokenizer.py``), the builder (``builder.py``), the properties it must have
(``properties.py``), and the committed models and problem sets it produces. Built by
``dami-pref toy`` (or ``data_builders/toy_pair.py``) and shipped with the package, so every
command has a working default with no download. Nothing in the library treats these folders
specially.
"""

from pathlib import Path

TOY_DIR = Path(__file__).resolve().parent
TOY_BASE = TOY_DIR / "base"
TOY_INSTRUCT = TOY_DIR / "instruct"
TOY_THINKING = TOY_DIR / "thinking"
TOY_PROBLEMS = TOY_DIR / "problems"
# The generation budget the toy configs use: the Thinking model's longest verified traces
# exceed it, as a real Thinking model's hardest questions exceed a real budget. Chosen on
# validation: the middle of the budgets (190-240) at which every property holds there.
TOY_BUDGET = 220
# The best static λ on the validation set at TOY_BUDGET (most accurate, then fewest tokens).
TOY_BEST_STATIC_LAMBDA = 0.6


def toy_problems_path(split: str = "test") -> Path:
    """Path of a toy problem set: ``train``, ``validation`` or ``test``."""
    return TOY_PROBLEMS / f"{split}.jsonl"
