"""The robot simulator: real frames of the table, ground truth in info, a seeded camera path,
and a scripted pusher that goes for the object."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from wfm_sim.sources.pusher import (
    ROBOT_GROUND_TRUTH,
    RobotPixelObservation,
    RobotSimConfig,
    make_robot_env,
    pusher_expert,
    random_arm,
)


def _rollout(config: RobotSimConfig, seed: int, steps: int) -> tuple[np.ndarray, list[dict]]:
    """Frames (steps + 1, S, S, 3) and infos of a still arm (zero torques) from ``seed``."""
    env = make_robot_env(config)
    try:
        frame, info = env.reset(seed=seed)
        frames, infos = [frame], [info]
        for _ in range(steps):
            frame, _, _, _, info = env.step(np.zeros(7, dtype=np.float32))
            frames.append(frame)
            infos.append(info)
    finally:
        env.close()
    return np.stack(frames), infos


def _grey_fraction(frame: np.ndarray) -> float:
    """Fraction of pixels in the table's grey: channels within 12 levels, brightness 60-220."""
    rgb = frame.astype(int)
    flat = (rgb.max(-1) - rgb.min(-1)) < 12
    return float((flat & (rgb.mean(-1) > 60) & (rgb.mean(-1) < 220)).mean())


def _red_pixels(frame: np.ndarray) -> int:
    """Pixels of the red goal."""
    r, g, b = (frame[..., c].astype(int) for c in range(3))
    return int(((r > 150) & (g < 80) & (b < 80)).sum())


def test_frames_show_the_table_and_the_goal() -> None:
    env = make_robot_env()
    try:
        assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        assert env.action_space.shape == (7,) and env.action_space.dtype == np.float32
        frame, _ = env.reset(seed=0)
        frame, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    finally:
        env.close()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert frame.std() > 20, "frame looks blank"
    assert _grey_fraction(frame) > 0.3, "the grey table is not in view"
    assert _red_pixels(frame) >= 4, "the red goal is not in view"
    assert isinstance(reward, float) and not terminated and not truncated


def test_info_carries_ground_truth_that_matches_the_state() -> None:
    _, infos = _rollout(RobotSimConfig(), seed=1, steps=2)
    for info in infos:
        for key in ROBOT_GROUND_TRUTH:
            assert isinstance(info[key], float), f"info[{key!r}] missing or not a float"
        state = info["state"]
        assert state.shape == (23,) and state.dtype == np.float64
        np.testing.assert_allclose(state[14:17], [info["tip_x"], info["tip_y"], info["tip_z"]])
        np.testing.assert_allclose(state[17:19], [info["object_x"], info["object_y"]])
        np.testing.assert_allclose(state[20:22], [info["goal_x"], info["goal_y"]])
        # Pusher's reward terms are 3-D distances (the goal disc lies below the object's centre).
        assert info["reward_dist"] == pytest.approx(-np.linalg.norm(state[17:20] - state[20:23]))
        assert info["reward_near"] == pytest.approx(
            -0.5 * np.linalg.norm(state[17:20] - state[14:17])
        )
    assert infos[0]["reward_ctrl"] == 0.0 and infos[-1]["reward_ctrl"] == 0.0  # still arm


def test_same_seed_same_frames_other_seed_other_scene() -> None:
    config = RobotSimConfig(moving_camera=True)
    first, infos = _rollout(config, seed=5, steps=3)
    again, _ = _rollout(config, seed=5, steps=3)
    other, other_infos = _rollout(config, seed=6, steps=0)
    np.testing.assert_array_equal(first, again)
    assert infos[0]["object_x"] != other_infos[0]["object_x"]
    assert infos[0]["cam_azimuth"] != other_infos[0]["cam_azimuth"]
    assert not np.array_equal(first[0], other[0])


def test_fixed_camera_stays_at_the_configured_pose() -> None:
    config = RobotSimConfig(azimuth=80.0, elevation=-65.0, distance=1.7)
    frames, infos = _rollout(config, seed=2, steps=4)
    poses = {(i["cam_azimuth"], i["cam_elevation"], i["cam_distance"]) for i in infos}
    assert poses == {(80.0, -65.0, 1.7)}
    # A still arm in a still scene under a still camera: the frames barely change.
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() < 1.0


def test_moving_camera_drifts_inside_its_ranges_and_changes_the_view() -> None:
    config = RobotSimConfig(moving_camera=True)
    moving, infos = _rollout(config, seed=3, steps=8)
    fixed, _ = _rollout(RobotSimConfig(), seed=3, steps=0)
    poses = np.array([[i["cam_azimuth"], i["cam_elevation"], i["cam_distance"]] for i in infos])
    bounds = np.array([config.azimuth_range, config.elevation_range, config.distance_range])
    assert ((poses >= bounds[:, 0]) & (poses <= bounds[:, 1])).all()
    steps = np.abs(np.diff(poses, axis=0))
    assert (steps[:, :2].max(0) > 0.01).all(), "azimuth and elevation should drift"
    assert steps[:, 0].max() < 1.0 and steps[:, 1].max() < 1.0, "the camera should move smoothly"
    assert np.abs(moving[-1].astype(int) - moving[0].astype(int)).mean() > 1.0
    assert np.abs(moving[0].astype(int) - fixed[0].astype(int)).mean() > 1.0
    assert _grey_fraction(moving[-1]) > 0.3 and _red_pixels(moving[-1]) >= 4


def test_bad_camera_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        make_robot_env(RobotSimConfig(elevation_range=[-50.0, -70.0]))


def test_random_arm_stays_in_the_action_space() -> None:
    space = gym.spaces.Box(-2.0, 2.0, (7,), np.float32)
    rng = np.random.default_rng(0)
    frame = np.zeros((64, 64, 3), np.uint8)
    actions = np.stack([random_arm(0.5)(frame, {}, rng) for _ in range(50)])
    assert all(space.contains(a) for a in actions)
    assert np.abs(actions).max() <= 1.0 and actions.std() > 0.3
    np.testing.assert_array_equal(random_arm(0.0)(frame, {}, rng), np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="outside"):
        random_arm(1.5)


def _tip_to_object(state: np.ndarray) -> float:
    return float(np.linalg.norm(state[14:16] - state[17:19]))


def test_expert_reaches_for_the_object_from_info_alone() -> None:
    # Raw Pusher without rendering: the expert needs nothing but info["state"].
    space = gym.spaces.Box(-2.0, 2.0, (7,), np.float32)
    frame = np.zeros((64, 64, 3), np.uint8)
    rng = np.random.default_rng(0)
    distances = {}
    for name, behaviour in [("expert", pusher_expert()), ("still", random_arm(0.0))]:
        env = gym.make("Pusher-v5")
        state, _ = env.reset(seed=1)
        start = _tip_to_object(state)
        for _ in range(35):
            action = behaviour(frame, {"state": state}, rng)
            assert space.contains(action), f"{name} action {action} is outside the action space"
            state, *_ = env.step(action)
        env.close()
        distances[name] = start - _tip_to_object(state)
    assert distances["expert"] > 0.2, f"expert closed only {distances['expert']:.3f} m"
    assert distances["expert"] > distances["still"] + 0.2


def test_noisy_expert_is_seeded_and_clipped() -> None:
    expert = pusher_expert(noise=5.0)
    frame = np.zeros((64, 64, 3), np.uint8)
    state = np.zeros(23)
    state[14:17] = [0.821, -0.6, 0.0]
    state[17:20] = [0.4, -0.25, -0.275]
    state[20:23] = [0.45, -0.05, -0.323]
    first = expert(frame, {"state": state}, np.random.default_rng(7))
    again = expert(frame, {"state": state}, np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first).max() <= 2.0 and (np.abs(first) == 2.0).any()
    with pytest.raises(ValueError, match="state"):
        expert(frame, {"state": state[:7]}, np.random.default_rng(0))


def test_faster_camera_speed_sweeps_further_and_a_bad_range_is_refused() -> None:
    slow = RobotSimConfig(moving_camera=True, camera_speed_range=[0.01, 0.01])
    fast = RobotSimConfig(moving_camera=True, camera_speed_range=[0.1, 0.1])
    sweeps = []
    for config in (slow, fast):
        _, infos = _rollout(config, seed=4, steps=6)
        azimuths = np.array([i["cam_azimuth"] for i in infos])
        sweeps.append(np.abs(np.diff(azimuths)).sum())
    assert sweeps[1] > 3 * sweeps[0]
    with pytest.raises(ValueError, match="camera_speed_range"):
        make_robot_env(RobotSimConfig(moving_camera=True, camera_speed_range=[0.2, 0.1]))


def test_render_from_draws_other_poses_without_moving_the_episodes_camera() -> None:
    config = RobotSimConfig(moving_camera=True)
    plain, _ = _rollout(config, seed=5, steps=2)
    env = make_robot_env(config)
    try:
        frame, info = env.reset(seed=5)
        assert isinstance(env, RobotPixelObservation)
        own_pose = (info["cam_azimuth"], info["cam_elevation"], info["cam_distance"])
        np.testing.assert_array_equal(env.render_from(*own_pose), frame)
        elsewhere = env.render_from(own_pose[0] + 30.0, own_pose[1], own_pose[2])
        assert np.abs(elsewhere.astype(int) - frame.astype(int)).mean() > 1.0
        frames = [frame]
        for _ in range(2):
            frames.append(env.step(np.zeros(7, dtype=np.float32))[0])
    finally:
        env.close()
    np.testing.assert_array_equal(np.stack(frames), plain)


def test_camera_turns_redraw_the_speed_every_few_steps_and_bad_turns_are_refused() -> None:
    steady = RobotSimConfig(moving_camera=True, camera_speed_range=[0.05, 0.1])
    turning = RobotSimConfig(
        moving_camera=True, camera_speed_range=[0.05, 0.1], camera_turn_steps=[3, 3]
    )
    paths = []
    for config in (steady, turning):
        _, infos = _rollout(config, seed=6, steps=24)
        paths.append(np.array([[i["cam_azimuth"], i["cam_elevation"]] for i in infos]))
    np.testing.assert_allclose(paths[0][:4], paths[1][:4])  # one start, one first leg
    assert not np.allclose(paths[0][4:], paths[1][4:])
    bounds = np.array([turning.azimuth_range, turning.elevation_range])
    assert ((paths[1] >= bounds[:, 0]) & (paths[1] <= bounds[:, 1])).all()
    reversals = [int((np.diff(np.sign(np.diff(p[:, 0]))) != 0).sum()) for p in paths]
    assert reversals[1] >= 2 and reversals[1] > reversals[0]
    with pytest.raises(ValueError, match="camera_turn_steps"):
        make_robot_env(RobotSimConfig(moving_camera=True, camera_turn_steps=[0, 4]))
