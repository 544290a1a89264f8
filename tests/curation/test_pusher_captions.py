"""Captions of robot-arm (Pusher) clips from fingertip, puck and goal positions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from wfm_sim.curation.clips import Clip, ClipSpan
from wfm_sim.curation.pipeline import make_captioner
from wfm_sim.curation.pusher_captions import PusherCaptioner, PusherFacts

FRAMES = 11


def _clip(tip: np.ndarray, puck: np.ndarray, goal=(0.45, -0.05), episode=None) -> Clip:
    """A clip of FRAMES grey frames whose ground truth moves the tip and puck as given."""
    columns = {
        "tip_x": tip[:, 0],
        "tip_y": tip[:, 1],
        "object_x": puck[:, 0],
        "object_y": puck[:, 1],
        "goal_x": np.full(FRAMES, goal[0]),
        "goal_y": np.full(FRAMES, goal[1]),
    }
    if episode is not None:
        columns["episode"] = np.asarray(episode)
    frames = np.full((FRAMES, 8, 8, 3), 120, dtype=np.uint8)
    return Clip(ClipSpan("robot", 0, 0, FRAMES, 8, 8), frames, pa.table(columns))


def _line(start, end) -> np.ndarray:
    return np.linspace(start, end, FRAMES)


def test_a_push_toward_the_goal_that_lands_on_it() -> None:
    tip = _line((0.8, -0.6), (0.45, -0.1))
    puck = np.vstack([np.tile((0.3, -0.3), (5, 1)), _line((0.3, -0.3), (0.44, -0.06))[5:]])
    caption = PusherCaptioner().caption(_clip(tip, puck))
    assert "reaches the puck" in caption
    assert "pushes it toward the goal, leaving it on the goal" in caption


def test_a_push_away_from_the_goal() -> None:
    tip = _line((0.3, -0.2), (0.1, -0.5))
    puck = _line((0.35, -0.15), (0.15, -0.45))
    assert "pushes it away from the goal" in PusherCaptioner().caption(_clip(tip, puck))


def test_a_still_arm_and_an_arm_that_misses_the_puck() -> None:
    puck = np.tile((0.2, -0.4), (FRAMES, 1))
    still = PusherCaptioner().caption(_clip(np.tile((0.8, -0.6), (FRAMES, 1)), puck))
    assert still == "The robot arm stays still; the puck stays far from the goal."
    missing = PusherCaptioner().caption(_clip(_line((0.8, -0.6), (0.8, 0.0)), puck))
    assert "without reaching the puck" in missing and "pushes" not in missing


def test_speed_words_follow_the_tip_travel_per_frame() -> None:
    puck = np.tile((0.2, -0.4), (FRAMES, 1))
    slow = _line((0.8, -0.6), (0.8, -0.55))  # 5 mm a frame
    fast = _line((0.8, -0.6), (0.8, -0.2))  # 40 mm a frame
    assert "moves slowly" in PusherCaptioner().caption(_clip(slow, puck))
    assert "moves fast" in PusherCaptioner().caption(_clip(fast, puck))


def test_motion_across_an_episode_change_is_not_counted() -> None:
    tip = np.vstack([np.tile((0.8, -0.6), (5, 1)), np.tile((0.2, 0.2), (6, 1))])
    puck = np.tile((0.2, -0.4), (FRAMES, 1))
    facts = PusherFacts.from_table(_clip(tip, puck, episode=[0] * 5 + [1] * 6).ground_truth)
    assert facts.tip_path == 0.0 and facts.episodes == 2
    caption = PusherCaptioner().describe(facts, FRAMES)
    assert caption.endswith("then the footage cuts to 1 other episode(s).")


def test_without_ground_truth_the_pixels_say_whether_anything_moves() -> None:
    frames = np.full((4, 8, 8, 3), 100, dtype=np.uint8)
    still = Clip(ClipSpan("robot", 0, 0, 4, 8, 8), frames, None)
    assert "stays still" in PusherCaptioner().caption(still)
    frames = frames.copy()
    frames[1::2] = 180
    moving = Clip(ClipSpan("robot", 0, 0, 4, 8, 8), frames, None)
    assert PusherCaptioner().caption(moving) == "The robot arm moves."


def test_driving_ground_truth_is_refused_by_name() -> None:
    frames = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    table = pa.table({"speed": [20.0] * 3, "lane": [1] * 3})
    with pytest.raises(ValueError, match="tip_x"):
        PusherCaptioner().caption(Clip(ClipSpan("d", 0, 0, 3, 8, 8), frames, table))


def test_captioners_are_chosen_by_name() -> None:
    assert isinstance(make_captioner("pusher"), PusherCaptioner)
    with pytest.raises(ValueError, match="unknown captioner 'carla'"):
        make_captioner("carla")
