"""The examples run: the README's main job and the torch-free demonstration.

Each runs as a user runs it, in a subprocess from the repository root; the
digits example is shortened to a few epochs (its accuracy check still holds).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_digits_example_trains_checkpoints_and_reports_the_cost():
    pytest.importorskip("torch", reason="needs torch")
    pytest.importorskip("sklearn", reason="needs scikit-learn (its digits data set)")
    pytest.importorskip("tqdm", reason="needs tqdm")
    out = _run(str(EXAMPLES / "digits.py"), "--epochs", "4")
    assert "best model reloaded from disk: validation accuracy" in out
    assert "fastignite (pure)" in out and "hand-written loop" in out


def test_demo_runs_without_torch_in_its_code():
    out = _run(str(EXAMPLES / "demo.py"))
    assert "stopped at epoch" in out and "per-iteration dispatch cost" in out
