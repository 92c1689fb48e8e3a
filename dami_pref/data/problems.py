"""Problem sets: rows of (id, question, answer[, difficulty]) from files, folders or the Hub.

Every source ends as a list of :class:`Problem`. Column names are mapped with a
:class:`FieldMap`; presets cover GSM8K (``question``/``answer`` with ``#### 42``) and MATH-style
sets (``problem``/``solution`` with ``\\boxed{}``). Gold answers are kept raw: grading extracts
the final answer from either form, so the original text stays available.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ProblemsError
from ..utils.hub import looks_like_hub_id


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str  # raw gold field; grading.gold_answer extracts the final answer
    difficulty: int | str | None = None


@dataclass(frozen=True)
class FieldMap:
    """Which source columns hold each field. ``id=None`` numbers rows instead."""

    id: str | None = "id"
    question: str = "question"
    answer: str = "answer"
    difficulty: str | None = "difficulty"  # optional: absent columns give None


PRESETS: dict[str, FieldMap] = {
    "default": FieldMap(),
    "gsm8k": FieldMap(id=None, question="question", answer="answer", difficulty=None),
    "math": FieldMap(id=None, question="problem", answer="solution", difficulty="level"),
    # HuggingFaceH4/MATH-500: the final answer has its own column beside the worked solution
    "math500": FieldMap(id="unique_id", question="problem", answer="answer", difficulty="level"),
    # AIME sets such as HuggingFaceH4/aime_2024: id, problem, integer answer
    "aime": FieldMap(id="id", question="problem", answer="answer", difficulty=None),
}


def field_map(preset: str = "default", **overrides: str | None) -> FieldMap:
    """A preset's field map with some columns renamed (None values leave the preset's)."""
    if preset not in PRESETS:
        raise ProblemsError(f"unknown problems preset {preset!r}; choose one of {sorted(PRESETS)}")
    base = PRESETS[preset]
    changes = {k: v for k, v in overrides.items() if v is not None}
    return FieldMap(**{**base.__dict__, **changes})


def _rows_from_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ProblemsError(f"{path}, line {line_no}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ProblemsError(f"{path}, line {line_no}: expected a JSON object, "
                                    f"got {type(row).__name__}")
            rows.append(row)
    return rows


def _rows_from_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ProblemsError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    if isinstance(data, dict):  # {"data": [...]} or {"rows": [...]}
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise ProblemsError(f"{path}: expected a JSON list of objects "
                                "(or an object holding exactly one such list)")
        data = lists[0]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ProblemsError(f"{path}: expected a JSON list of objects")
    return data


def _rows_from_datasets(source: str, split: str | None, is_disk: bool) -> list[dict[str, Any]]:
    import datasets

    try:
        if is_disk:
            loaded = datasets.load_from_disk(source)
        else:
            loaded = datasets.load_dataset(source, split=split)
    except Exception as err:  # noqa: BLE001 - the datasets library raises many kinds
        where = "folder" if is_disk else "Hub dataset"
        raise ProblemsError(f"cannot load problems from {where} {source!r}: {err}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            raise ProblemsError(f"{source} holds splits {list(loaded)}; choose one with --split")
        if split not in loaded:
            raise ProblemsError(f"{source} has no split {split!r}; it has {list(loaded)}")
        loaded = loaded[split]
    return list(loaded)


def read_rows(source: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """Raw rows from a .jsonl/.json/.parquet file, a save_to_disk folder or a Hub dataset id."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _rows_from_datasets(str(path), split, is_disk=True)
    if path.is_file():
        suffix = path.suffix.lower()
        try:
            if suffix == ".jsonl":
                return _rows_from_jsonl(path)
            if suffix == ".json":
                return _rows_from_json(path)
        except UnicodeDecodeError as err:
            raise ProblemsError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at "
                                f"offset {err.start}); save the file as UTF-8") from None
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                return pq.read_table(path).to_pylist()
            except Exception as err:  # noqa: BLE001
                raise ProblemsError(f"{path}: not a readable parquet file ({err})") from None
        raise ProblemsError(f"{path}: unsupported problems file type {suffix!r} "
                            "(use .jsonl, .json, .parquet or a datasets folder)")
    text = str(source)
    if looks_like_hub_id(text):
        if not split:  # guessing would roll out (or train on) the wrong split without a word
            raise ProblemsError(f"{text} looks like a Hub dataset id: name its split with "
                                "--split (e.g. --split train for rollouts, --split test for "
                                "evaluation)")
        return _rows_from_datasets(text, split, is_disk=False)
    raise ProblemsError(f"problems file not found: {source}")


def to_problems(rows: list[dict[str, Any]], fields: FieldMap, source: str) -> list[Problem]:
    """Map raw rows to problems, naming the row and column of anything missing."""
    if not rows:
        raise ProblemsError(f"{source}: no problems (the source is empty)")
    problems, seen = [], set()
    for index, row in enumerate(rows):
        where = f"{source}, row {index + 1}"
        for name, column in (("question", fields.question), ("answer", fields.answer)):
            value = row.get(column)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise ProblemsError(f"{where}: missing field {column!r} (the {name}); "
                                    f"the row has {sorted(row)}")
        if fields.id is None:
            problem_id = f"{index:06d}"
        else:
            if row.get(fields.id) in (None, ""):
                raise ProblemsError(f"{where}: missing field {fields.id!r} (the id); pass "
                                    "--id_field to name another column, or a preset that "
                                    "numbers rows")
            problem_id = str(row[fields.id])
        if problem_id in seen:
            raise ProblemsError(f"{where}: duplicate id {problem_id!r}")
        seen.add(problem_id)
        difficulty = row.get(fields.difficulty) if fields.difficulty else None
        problems.append(Problem(problem_id, str(row[fields.question]), str(row[fields.answer]),
                                difficulty))
    return problems


def load_problems(source: str | Path, *, fields: FieldMap | None = None, split: str | None = None,
                  limit: int | None = None, seed: int | None = None) -> list[Problem]:
    """Load and map a problem set; ``limit`` keeps a seeded random subset (first rows if no seed).

    The subset keeps the source order, so the same (limit, seed) always yields the same rows.
    """
    problems = to_problems(read_rows(source, split), fields or FieldMap(), str(source))
    if limit is not None and limit < len(problems):
        if limit <= 0:
            raise ProblemsError(f"--limit must be positive, got {limit}")
        if seed is None:
            problems = problems[:limit]
        else:
            keep = sorted(random.Random(seed).sample(range(len(problems)), limit))
            problems = [problems[i] for i in keep]
    return problems
