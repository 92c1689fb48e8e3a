"""Questions to choose λ for: from the command line, a file, or standard input.

Unlike problem sets, questions need no gold answer. Files: ``.jsonl`` (one object per line with
a question field and optionally an id), ``.json``/``.parquet`` (rows likewise), or ``.txt``
(one question per line). Standard input takes JSON lines or plain lines, whichever it holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DamiPrefError


@dataclass(frozen=True)
class Question:
    id: str
    question: str


def _from_rows(rows: Iterable[tuple[int, dict]], where: str, question_field: str,
               id_field: str) -> list[Question]:
    out = []
    for line_no, row in rows:
        value = row.get(question_field)
        if not isinstance(value, str) or not value.strip():
            raise DamiPrefError(f"{where}, line {line_no}: no {question_field!r} field with text "
                                f"(the row has {sorted(row)})")
        qid = row.get(id_field)
        out.append(Question(str(qid) if qid not in (None, "") else f"q{len(out):05d}", value))
    return out


def _parse_lines(text: str, where: str, question_field: str, id_field: str) -> list[Question]:
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first question
    lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise DamiPrefError(f"{where}: no questions (it is empty)")
    if lines[0][1].lstrip().startswith("{"):
        rows = []
        for line_no, line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DamiPrefError(f"{where}, line {line_no}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DamiPrefError(f"{where}, line {line_no}: expected a JSON object")
            rows.append((line_no, row))
        return _from_rows(rows, where, question_field, id_field)
    return [Question(f"q{i:05d}", line.strip()) for i, (_, line) in enumerate(lines)]


def read_questions(inline: list[str] | None = None, path: str | None = None, stdin=None,
                   question_field: str = "question", id_field: str = "id") -> list[Question]:
    """Questions from exactly one source: ``inline``, a file ``path``, or ``stdin``."""
    if inline:
        return [Question(f"q{i:05d}", q) for i, q in enumerate(inline)]
    if path:
        file = Path(path)
        if not file.is_file():
            raise DamiPrefError(f"questions file not found: {file}")
        if file.suffix.lower() in (".json", ".parquet"):
            from .problems import read_rows

            rows = read_rows(file)
            if not rows:
                raise DamiPrefError(f"{file}: no questions (it is empty)")
            return _from_rows(enumerate(rows, start=1), str(file), question_field, id_field)
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DamiPrefError(f"{file}: not UTF-8 text (byte {err.start}); save it as UTF-8"
                                ) from None
        return _parse_lines(text, str(file), question_field, id_field)
    if stdin is not None:
        try:
            text = stdin.read()
        except UnicodeDecodeError:
            raise DamiPrefError("standard input is not UTF-8 text") from None
        return _parse_lines(text, "standard input", question_field, id_field)
    raise DamiPrefError("give questions with --question, --input FILE, or on standard input")
