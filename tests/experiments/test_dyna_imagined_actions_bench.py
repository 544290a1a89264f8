"""The bench that rates each constant action in a Dyna run's world models: every model of the
run is driven, each action from the same starts, and its BENCHMARKS lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from experiments.bench import dyna_imagined_actions, summarize
from wfm_sim.sources import ACTION_NAMES


def _dyna_run(folder: Path, checkpoint: str) -> Path:
    """A Dyna run's metrics.json whose starting and round-1 models are ``checkpoint``."""
    folder.mkdir(parents=True)
    run = {
        "config": {"initial_checkpoint": checkpoint},
        "loops": [
            {
                "seed": 2,
                "rounds": [
                    {"round": 0, "checkpoint": checkpoint},
                    {"round": 1, "checkpoint": checkpoint},
                ],
            }
        ],
    }
    (folder / "metrics.json").write_text(json.dumps(run))
    return folder


def test_every_model_of_the_run_rates_every_constant_action(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    folder = _dyna_run(tmp_path / "dyna", str(tiny_checkpoint))
    result = dyna_imagined_actions.measure(folder, envs=2, seed=5)
    assert [row["model"] for row in result["models"]] == [
        "starting model (round 0)",
        "seed 2 round 1",
    ]
    first, second = (row["mean_returns"] for row in result["models"])
    assert list(first) == list(ACTION_NAMES)
    assert all(math.isfinite(v) for v in first.values())
    assert first == second  # the same model from the same starts and draws


def test_a_missing_dyna_run_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make rl-dyna-fresh"):
        dyna_imagined_actions.measure(tmp_path, envs=2, seed=0)


def test_the_ratings_are_tabled_with_each_models_best_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    assert summarize._dyna_imagined_actions_lines() == []
    means = {"LANE_LEFT": 18.3, "IDLE": 19.2, "LANE_RIGHT": 16.2, "FASTER": 25.1, "SLOWER": 21.4}
    later = {**means, "FASTER": 19.0}
    result = {
        "dyna_results": "experiments/results/rl_dyna_fresh",
        "envs": 32,
        "seed": 123,
        "models": [
            {"model": "starting model (round 0)", "checkpoint": "a", "mean_returns": means},
            {"model": "seed 2 round 1", "checkpoint": "b", "mean_returns": later},
        ],
        "machine": {"cpus": 2, "commit": "abc1234"},
    }
    (tmp_path / "dyna_imagined_actions.json").write_text(json.dumps(result))
    text = "\n".join(summarize._dyna_imagined_actions_lines())
    assert "| starting model (round 0) | 18.30 | 19.20 | 16.20 | **25.10** | 21.40 |" in text
    assert "| seed 2 round 1 | 18.30 | 19.20 | 16.20 | 19.00 | **21.40** |" in text
    assert "32 imagined episodes" in text
