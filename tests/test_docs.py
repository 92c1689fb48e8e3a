"""The front door and the manual stay true: README is short, the docs site builds in strict mode,
every Python block of README.md and docs/ runs as written, every `dami-pref` command line in
them parses, and the architecture page names every module.

A Python block may need something a reader would have made first; an HTML comment on the line
before it says what (``<!-- needs: ranker -->``, ``export``, ``server`` or ``vllm``), and the
test makes it: a quick ranker at ``outputs/toy/ranker``, its export at
``outputs/toy/ranker_hub``, a server on loopback, or the vLLM environment.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- needs: (\w+) -->\n)?```(\w+)\n(.*?)```", re.S)


def blocks(language: str) -> list[tuple[str, str | None, str]]:
    """(where, what it needs, code) of every block of one language."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in BLOCK.finditer(text):
            if match.group(2) == language:
                line = text[:match.start()].count("\n") + 1
                found.append((f"{page.relative_to(ROOT)}:{line}", match.group(1), match.group(3)))
    return found


PYTHON = blocks("python")


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, len(lines)
    assert len(PYTHON) >= 5  # the collector sees the examples


def test_the_docs_site_builds_in_strict_mode(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()


def test_the_architecture_page_names_every_module():
    page = (ROOT / "docs" / "architecture.md").read_text()
    modules = [p.relative_to(ROOT / "dami_pref") for p in (ROOT / "dami_pref").glob("*/*.py")
               if p.stem not in ("__init__", "__main__")]
    missing = [str(m) for m in modules if f"`{m}`" not in page]
    assert not missing, f"docs/architecture.md lacks {missing}"


def command_lines() -> list[tuple[str, list[str]]]:
    """Every `dami-pref COMMAND ...` line of the shell blocks, continuations joined."""
    found = []
    for where, _, code in blocks("bash"):
        for line in code.replace("\\\n", " ").splitlines():
            line = re.split(r"\s(?:\||&&|>|2>)\s", line.strip())[0]
            if line.startswith("dami-pref ") and "$" not in line:
                found.append((where, shlex.split(line, comments=True)[1:]))
    return found


@pytest.mark.parametrize("where,argv", command_lines(), ids=lambda v: v if isinstance(v, str)
                         else " ".join(v)[:60])
def test_every_command_line_in_the_docs_parses(where, argv):
    import importlib

    from dami_pref.cli import COMMANDS
    from dami_pref.cli.parsing import parse_args

    assert argv and argv[0] in COMMANDS, f"{where}: unknown command {argv[:1]}"
    module_name, class_name, _ = COMMANDS[argv[0]]
    module = importlib.import_module(f"dami_pref.cli.{module_name}")
    cwd = os.getcwd()
    os.chdir(ROOT)  # --config paths are relative to the checkout
    try:
        parse_args(getattr(module, class_name), argv[1:], prog=f"dami-pref {argv[0]}")
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def workspace(session_ranker, tmp_path_factory) -> Path:
    """A folder laid out as the main job leaves it: a ranker and its export under outputs/toy."""
    from dami_pref.ranker.export import export_ranker

    root = tmp_path_factory.mktemp("docs_workspace")
    ranker = root / "outputs" / "toy" / "ranker"
    shutil.copytree(session_ranker, ranker)
    export_ranker(ranker, root / "outputs" / "toy" / "ranker_hub")
    return root


def run_block(code: str, cwd: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]


def python_params():
    marks = {"vllm": [pytest.mark.vllm, pytest.mark.slow], "server": [pytest.mark.slow]}
    return [pytest.param(where, needs, code, id=where, marks=marks.get(needs, []))
            for where, needs, code in PYTHON]


@pytest.mark.parametrize("where,needs,code", python_params())
def test_every_python_block_runs(where, needs, code, workspace, tmp_path):
    assert needs in (None, "ranker", "export", "server", "vllm"), f"{where}: needs {needs}?"
    if needs != "server":
        run_block(code, workspace)
        return
    from helpers import start_server

    proc, base = start_server(workspace / "outputs" / "toy" / "ranker")
    try:
        run_block(code.replace("http://127.0.0.1:8000", base), workspace)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

