"""LaneKeepingHeuristic on frames drawn by hand in the simulator's colours and geometry."""

from __future__ import annotations

import numpy as np
import pytest

from policies.heuristic import FASTER, IDLE, LANE_LEFT, LANE_RIGHT, SLOWER, LaneKeepingHeuristic

ROAD, OUTLINE, WHITE = (100, 100, 100), (60, 60, 60), (255, 255, 255)
EGO, OTHER = (50, 200, 0), (100, 200, 255)
EGO_BACK, EGO_ROW = 11, 31


def _car(frame: np.ndarray, lane_row: int, back: int, colour: tuple[int, int, int]) -> None:
    """A 7x3 px car (outline + 5 px interior) whose interior row is ``lane_row``."""
    frame[lane_row - 1 : lane_row + 2, back : back + 7] = OUTLINE
    frame[lane_row, back + 1 : back + 6] = colour


def draw(ego_lane: int, cars: list[tuple[int, int]], lanes: int = 3) -> np.ndarray:
    """A 64x64 frame centred on the ego car in lane ``ego_lane`` (0 = leftmost = top).

    ``cars``: (lane, back column) of other cars. Lanes are 6 px; the road's outer lines are
    solid, the ones between lanes dashed, as highway-env draws them.
    """
    frame = np.full((64, 64, 3), ROAD, np.uint8)
    top = EGO_ROW - 2 - 6 * ego_lane
    for i in range(lanes + 1):
        row = top + 6 * i
        if i in (0, lanes):
            frame[row, :] = WHITE
        else:
            for start in range(0, 64, 8):
                frame[row, start : start + 6] = WHITE
    _car(frame, EGO_ROW, EGO_BACK, EGO)
    for lane, back in cars:
        _car(frame, EGO_ROW + 6 * (lane - ego_lane), back, OTHER)
    return frame


@pytest.fixture()
def policy() -> LaneKeepingHeuristic:
    return LaneKeepingHeuristic()


def test_clear_road_goes_faster(policy: LaneKeepingHeuristic) -> None:
    rng = np.random.default_rng(0)
    for ego_lane in range(3):
        assert policy.act(draw(ego_lane, []), rng) == FASTER


def test_car_right_ahead_is_not_driven_into(policy: LaneKeepingHeuristic) -> None:
    rng = np.random.default_rng(0)
    action = policy.act(draw(2, [(2, 26)]), rng)
    assert action != FASTER
    assert action == LANE_LEFT, "the left lane is free, so the heuristic should overtake"


def test_blocked_everywhere_slows_down(policy: LaneKeepingHeuristic) -> None:
    rng = np.random.default_rng(0)
    assert policy.act(draw(2, [(2, 26), (1, 14)]), rng) == SLOWER
    assert policy.act(draw(1, [(1, 26), (0, 14), (2, 8)]), rng) == SLOWER


def test_changes_only_into_an_existing_free_lane(policy: LaneKeepingHeuristic) -> None:
    rng = np.random.default_rng(0)
    assert policy.act(draw(1, [(1, 26), (0, 16)]), rng) == LANE_RIGHT
    assert policy.act(draw(0, [(0, 26)]), rng) == LANE_RIGHT, "no lane left of lane 0"


def test_distant_car_ahead_holds_speed(policy: LaneKeepingHeuristic) -> None:
    assert policy.act(draw(1, [(1, 54)]), np.random.default_rng(0)) == IDLE


def test_frame_without_ego_idles(policy: LaneKeepingHeuristic) -> None:
    rng = np.random.default_rng(0)
    assert policy.act(np.zeros((64, 64, 3), np.uint8), rng) == IDLE
    with pytest.raises(ValueError, match="shape"):
        policy.act(np.zeros((64, 64), np.uint8), rng)
