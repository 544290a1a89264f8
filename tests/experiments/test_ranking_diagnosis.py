"""The ranking diagnosis scores real episodes with the world model's heads: one step scored on
a real context is the same whether teacher-forced or open-loop, and a constant policy agrees
with itself on any frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import world_models
from experiments.bench.ranking_diagnosis import (
    along_real_actions,
    one_step_cars_kept,
    open_loop_returns,
    other_car_pixels,
    teacher_forced_return,
)
from experiments.rank_policies import MatchedStart
from policies.base import ConstantPolicy, RandomPolicy


def _episode(
    steps: int, seed: int, context: int
) -> tuple[MatchedStart, list[np.ndarray], list[int]]:
    """A start of ``context`` frames (the model's full context) and ``steps`` more frames."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (context + steps, 64, 64, 3), dtype=np.uint8)
    start = MatchedStart(seed, frames[:context], [1] * (context - 1))
    return start, list(frames[context - 1 :]), [int(a) for a in rng.integers(0, 5, steps)]


def test_one_step_scores_agree_between_teacher_forced_and_open_loop(
    tiny_checkpoint: Path,
) -> None:
    model = world_models.load(tiny_checkpoint)
    start, frames, actions = _episode(1, seed=0, context=model.config.context)
    forced = teacher_forced_return(model, start, np.stack(frames), actions)
    imagined, _ = open_loop_returns(model, [start], [(frames, actions)], ConstantPolicy(1, "idle"))
    assert imagined[0] == pytest.approx(forced, abs=1e-5)


def test_longer_episodes_differ_once_the_model_sees_its_own_frames(
    tiny_checkpoint: Path,
) -> None:
    model = world_models.load(tiny_checkpoint)
    start, frames, actions = _episode(6, seed=1, context=model.config.context)
    forced = teacher_forced_return(model, start, np.stack(frames), actions)
    imagined, agreement = open_loop_returns(
        model, [start], [(frames, actions)], ConstantPolicy(3, "faster")
    )
    assert imagined[0] != pytest.approx(forced, abs=1e-6)
    assert agreement == 1.0  # a constant policy ignores the frame


def test_a_random_policy_agrees_with_itself_under_the_same_draws(tiny_checkpoint: Path) -> None:
    model = world_models.load(tiny_checkpoint)
    start, frames, actions = _episode(5, seed=2, context=model.config.context)
    _, agreement = open_loop_returns(model, [start], [(frames, actions)], RandomPolicy("random"))
    assert agreement == 1.0


def test_other_car_pixels_count_coloured_cars_but_not_the_ego_road_or_markings() -> None:
    frame = np.full((64, 64, 3), 100, dtype=np.uint8)  # grey road
    frame[10, :] = 255  # white lane marking
    frame[30:32, 20:24] = (50, 200, 60)  # the green ego: 8 pixels
    frame[40:42, 40:44] = (90, 190, 230)  # a blue car: 8 pixels
    frame[50:52, 5:8] = (200, 110, 120)  # a red (crashed) car: 6 pixels
    assert other_car_pixels(frame) == 14
    assert other_car_pixels(np.stack([frame, frame * 0 + 100])).tolist() == [14, 0]


def test_along_real_actions_compares_imagined_to_real_frames_and_crashes(
    tiny_checkpoint: Path,
) -> None:
    model = world_models.load(tiny_checkpoint)
    start, frames, actions = _episode(4, seed=3, context=model.config.context)
    along = along_real_actions(model, [start], [(frames, actions)], [True], temperature=1.0)
    real = int(other_car_pixels(np.stack(frames[1:])).sum())
    assert real > 0 and along.cars_kept >= 0.0
    assert along.crashes_caught is not None and 0.0 < along.crashes_caught < 1.0
    again = along_real_actions(model, [start], [(frames, actions)], [True], temperature=1.0)
    assert along == again  # drawn from the start's seed
    no_crash = along_real_actions(model, [start], [(frames, actions)], [False], temperature=1.0)
    assert no_crash.crashes_caught is None and no_crash.cars_kept == along.cars_kept


def test_one_step_cars_kept_draws_each_next_frame_from_the_real_frames_before_it(
    tiny_checkpoint: Path,
) -> None:
    model = world_models.load(tiny_checkpoint)
    short = [_episode(1, seed=4 + i, context=model.config.context) for i in range(2)]
    starts = [start for start, _, _ in short]
    episodes = [(frames, actions) for _, frames, actions in short]
    along = along_real_actions(model, starts, episodes, [False, False], temperature=1.0)
    # one step from the real start, with the same draws: both measures see the same frames
    assert along.cars_kept_one_step == pytest.approx(along.cars_kept)
    # longer: the open loop draws from its own frames, the one-step measure from real ones
    start, frames, actions = _episode(5, seed=6, context=model.config.context)
    longer = along_real_actions(model, [start], [(frames, actions)], [False], temperature=1.0)
    assert longer.cars_kept_one_step != pytest.approx(longer.cars_kept)
    again = one_step_cars_kept(model, [start], [(frames, actions)], temperature=1.0)
    assert again == longer.cars_kept_one_step


def test_the_diagnosis_scores_with_the_ranking_reports_settings() -> None:
    from omegaconf import OmegaConf

    from experiments.bench.ranking_diagnosis import report_settings
    from experiments.tasks import get_task

    settings = report_settings(get_task("driving"))
    report = OmegaConf.load(Path(__file__).parents[2] / "experiments/conf/rank_policies.yaml")
    assert settings.temperature == report.temperature
    assert settings.end_reading == report.end_reading
    assert settings.wfm_samples == report.wfm_samples


def test_the_end_reading_reaches_every_score(tiny_checkpoint: Path) -> None:
    model = world_models.load(tiny_checkpoint)
    start, frames, actions = _episode(3, seed=4, context=model.config.context)
    policy = ConstantPolicy(1, "idle")
    by_reading = {
        reading: (
            teacher_forced_return(model, start, np.stack(frames), actions, reading),
            open_loop_returns(model, [start], [(frames, actions)], policy, reading)[0][0],
            along_real_actions(
                model, [start], [(frames, actions)], [True], 1.0, reading
            ).crashes_caught,
        )
        for reading in ("drawn", "expected")
    }
    for drawn, expected in zip(by_reading["drawn"], by_reading["expected"], strict=True):
        assert drawn != pytest.approx(expected, abs=1e-7)


def test_recalibration_keeps_its_centre_and_the_order_and_slope_one_changes_nothing() -> None:
    from experiments.bench.ranking_diagnosis import recalibrated_end_probabilities

    p = np.array([0.001, 0.02, 0.05, 0.3, 0.9])
    assert np.allclose(recalibrated_end_probabilities(p, 1.0, -2.0), p, atol=1e-9)
    stretched = recalibrated_end_probabilities(p, 2.0, np.log(0.05 / 0.95))
    assert stretched[2] == pytest.approx(0.05)
    assert np.all(np.diff(stretched) > 0) and stretched[0] < p[0] and stretched[3] > p[3]


def _imagined(reward: float, end_probability: float, members: int = 2, steps: int = 10):
    from experiments.rank_policies import ImaginedEpisodes

    return ImaginedEpisodes(
        returns=[0.0] * members,
        ended=[0.0] * members,
        steps=members * steps,
        rewards=np.full((members, steps), reward),
        end_probabilities=np.full((members, steps), end_probability),
    )


def test_the_recalibration_bound_finds_a_fix_where_one_exists() -> None:
    from experiments.bench.ranking_diagnosis import recalibration_bound

    # the better real driver earns more a step but the head gives it a higher end floor, so
    # unchanged it ranks below; flattening the logits towards a low centre restores the order
    real = {"careful": [10.0, 10.0], "reckless": [5.0, 5.0]}
    closed = {"careful": _imagined(1.0, 0.2), "reckless": _imagined(0.6, 0.05)}
    bound = recalibration_bound(real, closed)
    by_hand = [sum(r * (1 - h) ** t for t in range(10)) for r, h in ((1.0, 0.2), (0.6, 0.05))]
    assert by_hand[0] < by_hand[1]
    assert bound["unchanged"]["mmrv"] > 0 and bound["unchanged"]["spearman"] == pytest.approx(-1)
    assert bound["best"]["mmrv"] == 0.0 and bound["best"]["spearman"] == pytest.approx(1)
    assert bound["best"]["slope"] < 1.0
