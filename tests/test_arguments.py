"""Dataclass arguments: YAML config, command-line overrides, unknown keys refused, real booleans."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from dami_pref.cli.parsing import parse_args
from dami_pref.errors import DamiPrefError
from dami_pref.utils.grid import parse_grid


@dataclass
class Args:
    out: str = field(metadata={"help": "required"})
    steps: int = 10
    overwrite: bool = False
    grid: str = "0:1:0.5"


def test_yaml_then_command_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("out: here\nsteps: 3\noverwrite: true\n")
    args = parse_args(Args, ["--config", str(cfg), "--steps", "7"])
    assert (args.out, args.steps, args.overwrite) == ("here", 7, True)
    assert parse_args(Args, ["--out", "x", "--overwrite", "false"]).overwrite is False
    assert parse_args(Args, ["--out", "x", "--overwrite"]).overwrite is True


def test_unknown_keys_are_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("out: here\nstepz: 3\n")
    with pytest.raises(DamiPrefError, match=r"unknown key\(s\) \['stepz'\]"):
        parse_args(Args, ["--config", str(cfg)])
    with pytest.raises(DamiPrefError, match="unknown argument"):
        parse_args(Args, ["--out", "x", "--stepz", "3"])
    with pytest.raises(DamiPrefError, match="config file not found"):
        parse_args(Args, ["--config", str(tmp_path / "none.yaml")])
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(DamiPrefError, match="expected a mapping"):
        parse_args(Args, ["--config", str(tmp_path / "bad.yaml")])


@pytest.mark.parametrize("spec, expected", [
    ("0:1:0.1", [round(0.1 * i, 10) for i in range(11)]),
    ("0:1:0.25", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("1,0,0.5,0.5", [0.0, 0.5, 1.0]),
    ("0.3", [0.3]),
])
def test_parse_grid(spec, expected):
    assert parse_grid(spec) == expected


@pytest.mark.parametrize("spec", ["0:1.5:0.5", "a:b:c", "0:1:0", "", "0,nan", "-0.1,0.5"])
def test_parse_grid_errors(spec):
    with pytest.raises(DamiPrefError):
        parse_grid(spec)
