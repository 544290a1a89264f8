"""BENCHMARKS.md sets the report's ranking beside the same ranking on more starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from experiments.bench import summarize

COMMITTED = Path(__file__).resolve().parents[2] / "experiments" / "results"


def _copy_rankings(into: Path) -> None:
    for folder in ("ranking", "ranking64"):
        (into / folder).mkdir()
        shutil.copy(COMMITTED / folder / "metrics.json", into / folder / "metrics.json")


def test_the_wide_ranking_is_quoted_beside_the_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    assert summarize._wide_ranking_section() == ["Not measured yet: run `make rank-wide`."]
    _copy_rankings(tmp_path)
    wide = json.loads((tmp_path / "ranking64" / "metrics.json").read_text())
    text = "\n".join(summarize._wide_ranking_section())
    assert f"{wide['metrics']['spearman']['value']:.3f} and " in text
    assert f"× {wide['extra']['episodes_per_policy']} matched episodes" in text


def _refused_with(tmp_path: Path, key: str, value: Any, message: str) -> None:
    """The wide ranking's ``extra[key]`` set to ``value`` makes the section refuse it."""
    _copy_rankings(tmp_path)
    path = tmp_path / "ranking64" / "metrics.json"
    wide = json.loads(path.read_text())
    wide["extra"][key] = value
    path.write_text(json.dumps(wide))
    with pytest.raises(ValueError, match=message):
        summarize._wide_ranking_section()


def test_a_wide_ranking_from_other_starts_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    seeds = json.loads((COMMITTED / "ranking64" / "metrics.json").read_text())["extra"]["seeds"]
    _refused_with(tmp_path, "seeds", [seed + 1 for seed in seeds], "report's")


@pytest.mark.parametrize(
    ("setting", "value"), [("end_reading", "other"), ("salient_priority", 7.0)]
)
def test_a_wide_ranking_with_other_drawing_settings_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, value: Any
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    _refused_with(tmp_path, setting, value, f"report ran with {setting}")
