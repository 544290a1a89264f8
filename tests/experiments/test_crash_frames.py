"""The crash-frame measure counts the red of crashed cars only, finds the crash steps with a
full context before them, and scores a model's reconstructions and draws of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import world_models
from experiments.bench.crash_frames import crash_steps, crashed_car_pixels, measure
from wfm_sim.data.footage import Episode

GREY, BLUE, GREEN, RED = (100, 100, 100), (80, 190, 250), (50, 200, 50), (240, 80, 80)


def _frame(colours: list[tuple[int, int, int]]) -> np.ndarray:
    """A grey 64x64 frame with a 2x4 car of each colour, side by side."""
    frame = np.full((64, 64, 3), GREY, dtype=np.uint8)
    for i, colour in enumerate(colours):
        frame[30:32, 8 * i : 8 * i + 4] = colour
    return frame


def _episode(episode_id: int, steps: int, crashed: bool) -> Episode:
    frames = np.stack([_frame([BLUE, GREEN])] * steps + [_frame([RED, RED, BLUE])])
    terminated = np.zeros(steps, dtype=bool)
    terminated[-1] = crashed
    return Episode(
        episode_id, frames, np.full(steps, 3, dtype=np.int64), np.zeros(steps), terminated
    )


def test_crashed_car_pixels_count_the_red_cars_only() -> None:
    assert crashed_car_pixels(_frame([BLUE, GREEN])) == 0
    assert crashed_car_pixels(np.stack([_frame([RED, BLUE]), _frame([RED, RED])])).tolist() == [
        8,
        16,
    ]


def test_crash_steps_take_the_crashed_episodes_with_a_full_context() -> None:
    episodes = [_episode(0, 6, True), _episode(1, 6, False), _episode(2, 2, True)]
    crash, before, actions_before, action = crash_steps(episodes, context=4)
    assert crash.shape == (1, 64, 64, 3) and crashed_car_pixels(crash).tolist() == [16]
    assert before.shape == (1, 4, 64, 64, 3) and crashed_car_pixels(before).sum() == 0
    assert actions_before.shape == (1, 3) and action.tolist() == [3]
    with pytest.raises(ValueError, match="no episode ends in a crash"):
        crash_steps(episodes[1:], context=4)


def test_measure_scores_reconstructions_and_draws_against_the_real_red(
    tiny_checkpoint: Path,
) -> None:
    model = world_models.load_world_model(tiny_checkpoint)
    episodes = [_episode(i, 5 + i, True) for i in range(3)]
    result = measure(model, episodes, [0.4, 1.0])
    assert result["crash_frames"] == 3 and result["crashed_car_pixels"] == 48
    assert result["kept_by_tokenizer"] >= 0.0
    assert set(result["kept_one_step"]) == {"0.4", "1"}
    assert all(0.0 <= p <= 1.0 for p in result["end_probability"].values())
    assert measure(model, episodes, [0.4, 1.0]) == result  # the draws are seeded
