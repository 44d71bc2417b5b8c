"""The code stays as `ruff check` and `ruff format` want it (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
RUFF = [sys.executable, "-m", "ruff"]


def test_ruff_finds_nothing_to_fix() -> None:
    check = subprocess.run([*RUFF, "check", "src", "tests", "bench"], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_the_code_is_formatted() -> None:
    formatted = subprocess.run(
        [*RUFF, "format", "--check", "src", "tests", "bench"], cwd=ROOT, capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout
