"""The counterfactual camera bench: its camera paths, the actions that name them, and a replay
that reproduces the recorded physics while drawing it from other poses."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.bench.camera_counterfactual import counterfactual_poses, replay, with_camera_path
from wfm_sim.data import Episode
from wfm_sim.sources.pusher import RobotPixelObservation, RobotSimConfig, make_robot_env

LOW = np.array([50.0, -78.0, 1.4], np.float32)
HIGH = np.array([130.0, -48.0, 1.85], np.float32)


def test_stop_holds_the_pivot_and_reverse_mirrors_the_recorded_path_within_bounds() -> None:
    recorded = np.array([[92.0, -60.0, 1.5], [96.0, -58.0, 1.6], [140.0, -50.0, 1.8]])
    pivot = np.array([90.0, -61.0, 1.5])
    stop = counterfactual_poses(recorded, pivot, "stop", LOW, HIGH)
    np.testing.assert_allclose(stop, np.tile(pivot, (3, 1)))
    reverse = counterfactual_poses(recorded, pivot, "reverse", LOW, HIGH)
    np.testing.assert_allclose(reverse[0], [88.0, -62.0, 1.5])
    np.testing.assert_allclose(reverse[1], [84.0, -64.0, 1.4])
    np.testing.assert_allclose(reverse[2], [50.0, -72.0, 1.4])  # azimuth 40 clipped to 50
    with pytest.raises(ValueError, match="unknown camera path"):
        counterfactual_poses(recorded, pivot, "spin", LOW, HIGH)


def test_with_camera_path_replaces_only_the_poses_of_imagined_frames() -> None:
    actions = np.zeros((6, 10), np.float32)
    actions[:, 0] = 1.0
    actions[:, -3:] = np.arange(6)[:, None]
    window = Episode(3, np.zeros((7, 2, 2, 3), np.uint8), actions, np.zeros(6), np.zeros(6, bool))
    told = with_camera_path(window, context=4, poses=np.full((3, 3), 70.0, np.float32))
    np.testing.assert_array_equal(told.actions[:3], actions[:3])  # the context's own poses
    assert (told.actions[3:, -3:] == 70.0).all() and (told.actions[:, 0] == 1.0).all()
    assert (window.actions[3:, -3:] != 70.0).all()  # input untouched


def test_replay_reproduces_the_episode_and_draws_it_from_the_poses_asked() -> None:
    config = RobotSimConfig(moving_camera=True)
    env = make_robot_env(config)
    assert isinstance(env, RobotPixelObservation)
    try:
        frame, info = env.reset(seed=11)
        torques = np.random.default_rng(0).uniform(-1, 1, (4, 7)).astype(np.float32)
        frames, poses = [frame], []
        for torque in torques:
            frame, _, _, _, info = env.step(torque)
            frames.append(frame)
            poses.append([info["cam_azimuth"], info["cam_elevation"], info["cam_distance"]])
        actions = np.concatenate([torques, np.array(poses, np.float32)], axis=1)
        episode = Episode(0, np.stack(frames), actions, np.zeros(4), np.zeros(4, bool))
        elsewhere = np.array([70.0, -70.0, 1.5])
        replayed, drawn = replay(env, 11, episode, {2: [elsewhere, np.array(poses[1])]})
    finally:
        env.close()
    np.testing.assert_array_equal(replayed, episode.frames)
    assert [len(drawn[t]) for t in range(5)] == [0, 0, 2, 0, 0]
    np.testing.assert_array_equal(drawn[2][1], episode.frames[2])  # its own pose: same frame
    assert np.abs(drawn[2][0].astype(int) - episode.frames[2].astype(int)).mean() > 1.0
