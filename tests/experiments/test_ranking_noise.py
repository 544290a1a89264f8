"""The ranking-noise bench: each imagined draw is ranked on its own, and the mean of the draws
is what the ranking report measures with ``wfm_samples`` set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import experiments.bench.ranking_noise as ranking_noise
from experiments.tasks import get_task
from policies import ConstantPolicy, RandomPolicy


@pytest.fixture
def small_zoo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three policies and 6-step episodes in place of the driving zoo."""
    zoo = [ConstantPolicy(4, "always_slower"), ConstantPolicy(3, "always_faster"), RandomPolicy()]
    task = dataclasses.replace(get_task("driving"), load_zoo=lambda: zoo, episode_steps=6)
    monkeypatch.setattr(ranking_noise, "get_task", lambda name: task)


@pytest.mark.usefixtures("small_zoo")
def test_draws_are_ranked_one_by_one_and_averaged(tiny_checkpoint: Path) -> None:
    result = ranking_noise.measure(
        str(tiny_checkpoint), samples=3, termination="never", episodes=2, seed=5, warmup=1
    )
    assert result["samples_per_start"] == 3 and len(result["seeds"]) == 2
    spread = result["single_draw"]["spearman"]
    assert len(spread["per_draw"]) == 3 and spread["min"] <= spread["max"]
    for returns in result["mean_returns"].values():
        assert len(returns["imagined_per_draw"]) == 3
        assert returns["imagined"] == pytest.approx(np.mean(returns["imagined_per_draw"]))
    # the draws differ: the model's randomness changes imagined returns
    random_draws = result["mean_returns"]["random"]["imagined_per_draw"]
    assert len(set(np.round(random_draws, 6))) > 1
    assert set(result["mean_of_draws"]) >= {"spearman", "mmrv"}


@pytest.mark.usefixtures("small_zoo")
def test_temperature_reaches_the_imagined_frames(tiny_checkpoint: Path) -> None:
    result = ranking_noise.measure(
        str(tiny_checkpoint), 3, "never", episodes=2, seed=5, warmup=1, temperature=0.0
    )
    assert result["temperature"] == 0.0
    # At temperature 0 every draw takes the most likely frames: a constant policy's imagined
    # episodes are the same in every draw, while the random policy still acts differently.
    for name in ("always_slower", "always_faster"):
        draws = result["mean_returns"][name]["imagined_per_draw"]
        assert max(draws) - min(draws) < 1e-6
    random_draws = result["mean_returns"]["random"]["imagined_per_draw"]
    assert len(set(np.round(random_draws, 6))) > 1


@pytest.mark.usefixtures("small_zoo")
def test_the_end_reading_reaches_the_termination_head(tiny_checkpoint: Path) -> None:
    by_reading = {
        reading: ranking_noise.measure(
            str(tiny_checkpoint), 1, "never", episodes=2, seed=5, warmup=1, end_reading=reading
        )
        for reading in ("drawn", "expected")
    }
    assert by_reading["expected"]["end_reading"] == "expected"
    # the same frames and rewards either way; only the end probabilities weighing them differ
    drawn, expected = (by_reading[r]["mean_returns"]["always_slower"] for r in by_reading)
    assert drawn["imagined"] != pytest.approx(expected["imagined"], abs=1e-7)
