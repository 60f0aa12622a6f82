"""The command line's demo: a real export from the built-in fake tenant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uphance_async.cli import main


def test_demo_exports_every_customer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out" / "customers.jsonl"
    assert main(["demo", "--customers", "345", "--latency", "0", "--output", str(output)]) == 0
    lines = output.read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == 345 == len(set(ids))
    assert ids == sorted(ids)
    assert "exported 345 customers from 4 pages" in capsys.readouterr().out
    assert [p.name for p in output.parent.iterdir()] == ["customers.jsonl"]


def test_demo_refuses_bad_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--concurrency", "0"]) == 2
    assert "--concurrency" in capsys.readouterr().err
