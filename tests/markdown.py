"""The repository's tracked Markdown files, which the doc tests read."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tracked_markdown() -> list[Path]:
    """Every Markdown file git tracks (README, BENCHMARKS, model cards, reports); skips the
    calling test outside a git checkout."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [ROOT / name for name in tracked.stdout.split()]
