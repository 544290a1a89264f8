"""BENCHMARKS.md's small-footage RL comparison: the share of return and of real interactions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.bench import summarize


def _write(path: Path, real_interactions: int, returns: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    run = {
        "total_steps": 20_000,
        "real_interactions": real_interactions,
        "train_seconds": 1.0,
        "real_return_mean": sum(returns) / len(returns),
        "real_returns": returns,
        "machine": {"cpus": 2, "commit": "abc1234"},
    }
    path.write_text(json.dumps(run))


def test_the_small_footage_run_is_weighed_against_the_real_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    assert "Not measured yet" in summarize._rl_small_footage_section()[0]
    _write(tmp_path / "rl" / "real_ppo.json", 20_000, [20.0, 22.0])
    _write(tmp_path / "rl_small_footage" / "wfm_ppo.json", 1_985, [10.0, 12.0])
    text = "\n".join(summarize._rl_small_footage_section())
    assert "1,985 (9.9% of the real run's)" in text
    assert "52% of the real-trained return with 9.9% of its real interactions" in text
