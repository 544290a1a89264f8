"""BENCHMARKS.md shows the family-tokenizer driving model only once it has been measured."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from experiments.bench import summarize

COMMITTED = Path(__file__).resolve().parents[2] / "experiments" / "results"


def test_the_family_model_section_appears_with_its_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    assert summarize._family_model_section() == []
    shutil.copy(
        COMMITTED / "world_model_quality.json", tmp_path / "world_model_quality_family.json"
    )
    text = "\n".join(summarize._family_model_section())
    assert "dv_1x4x4" in text and "| next frame |" in text
    assert "Not measured yet: run `python -m experiments.rank_policies checkpoint=" in text
    shutil.copytree(COMMITTED / "ranking", tmp_path / "ranking_family")
    text = "\n".join(summarize._family_model_section())
    assert "| spearman |" in text and "Not measured yet" not in text
