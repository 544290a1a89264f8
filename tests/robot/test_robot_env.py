"""WFM-Robot-v0: Pusher footage through the driving code, configs only; continuous actions."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.vector import WFMVectorEnv
from experiments.bench.world_model_quality import unseen_episodes
from tests.robot.conftest import CAMERA_COLUMNS, tiny_robot_model
from wfm_sim.data import WindowSampler, read_episodes
from wfm_sim.training import TrainConfig, train_world_model
from world_models import CheckpointMismatchError


def test_robot_footage_has_vector_actions_and_ground_truth(robot_footage: Path) -> None:
    table = pq.read_table(robot_footage / "part-00000.parquet").to_pandas()
    assert {"object_x", "goal_y", "tip_z", *CAMERA_COLUMNS} <= set(table.columns)
    episodes = read_episodes(robot_footage)
    assert [e.episode_id for e in episodes] == [0, 1, 2]
    for episode in episodes:
        assert episode.actions.shape == (episode.length, 7)
        assert episode.actions.dtype == np.float32
        assert np.abs(episode.actions).max() <= 2.0
        assert episode.frames.shape[1:] == (64, 64, 3) and episode.frames.std() > 10
    still = episodes[1]
    assert still.behaviour == "still" and not still.actions.any()


def test_windows_pad_vector_actions_with_nan_rows(robot_footage: Path) -> None:
    episode = read_episodes(robot_footage)[0]
    first = WindowSampler([episode], context=3, horizon=2).batch([0])
    assert first.actions.shape == (1, 4, 7)
    assert np.isnan(first.actions[0, :2]).all()
    np.testing.assert_array_equal(first.actions[0, 2:], episode.actions[:2])


def test_camera_columns_extend_each_action_with_the_next_pose(camera_footage: Path) -> None:
    episode = read_episodes(camera_footage, condition_columns=CAMERA_COLUMNS)[0]
    table = pq.read_table(camera_footage / "part-00000.parquet").to_pandas()
    rows = table[table["episode"] == 0].sort_values("step")
    assert episode.actions.shape == (episode.length, 10)
    np.testing.assert_allclose(episode.actions[:, 7:], rows[CAMERA_COLUMNS].to_numpy()[1:])
    assert np.ptp(episode.actions[:, 7], axis=0) > 1.0, "the camera should move"


def test_both_envs_come_from_the_same_factory(
    robot_checkpoint: Path, tiny_checkpoint: Path
) -> None:
    robot = gym.make(envs.ROBOT_ID, checkpoint=str(robot_checkpoint), device="cpu")
    driving = gym.make(envs.DRIVING_ID, checkpoint=str(tiny_checkpoint), device="cpu")
    assert type(robot.unwrapped) is type(driving.unwrapped)
    assert robot.action_space == gym.spaces.Box(-2.0, 2.0, (7,), np.float32)
    assert driving.action_space == gym.spaces.Discrete(5)
    assert robot.spec is not None and robot.spec.max_episode_steps == 100


def test_robot_env_passes_both_checkers(robot_checkpoint: Path) -> None:
    env = gym.make(envs.ROBOT_ID, checkpoint=str(robot_checkpoint), device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)
    # The only advice left is to normalise the box to [-1, 1]: Pusher's torques are [-2, 2]
    # and the world-model env keeps the real simulator's action space on purpose.
    messages = [str(w.message) for w in caught if "normalized" not in str(w.message)]
    assert not messages


def test_same_seed_and_actions_give_the_same_episode(robot_checkpoint: Path) -> None:
    def rollout() -> list[np.ndarray]:
        env = gym.make(envs.ROBOT_ID, checkpoint=str(robot_checkpoint), device="cpu")
        obs, _ = env.reset(seed=5)
        frames = [obs]
        for t in range(4):
            obs, *_ = env.step(np.full(7, 0.5 * (-1) ** t, dtype=np.float32))
            frames.append(obs)
        return frames

    np.testing.assert_array_equal(np.stack(rollout()), np.stack(rollout()))


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.full(7, np.nan, dtype=np.float32), "NaN"),
        (np.full(7, 2.5, dtype=np.float32), "outside"),
        (np.zeros(6, dtype=np.float32), "shape"),
        ("left", "not a vector"),
    ],
)
def test_bad_vector_actions_are_refused(robot_checkpoint: Path, action: Any, message: str) -> None:
    env = gym.make(envs.ROBOT_ID, checkpoint=str(robot_checkpoint), device="cpu")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_a_driving_checkpoint_is_refused_by_the_robot_env(tiny_checkpoint: Path) -> None:
    with pytest.raises(CheckpointMismatchError, match="5 discrete actions.*7-d vector actions"):
        gym.make(envs.ROBOT_ID, checkpoint=str(tiny_checkpoint), device="cpu")


def test_vector_env_steps_a_batch_of_vector_actions(robot_checkpoint: Path) -> None:
    venv = gym.make_vec(envs.ROBOT_ID, num_envs=3, checkpoint=str(robot_checkpoint), device="cpu")
    assert isinstance(venv, WFMVectorEnv) and venv.max_episode_steps == 100
    obs, _ = venv.reset(seed=1)
    assert obs.shape == (3, 64, 64, 3)
    obs, rewards, terminated, truncated, _ = venv.step(np.zeros((3, 7), dtype=np.float32))
    assert obs.shape == (3, 64, 64, 3) and rewards.shape == (3,) and np.isfinite(rewards).all()
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros(3, dtype=np.float32))


def test_camera_conditioned_model_takes_torques_and_a_pose(
    tmp_path: Path,
    camera_footage: Path,
    make_robot_train_config: Callable[..., TrainConfig],
) -> None:
    low, high = [-2.0] * 7 + [0.0, -90.0, 0.5], [2.0] * 7 + [180.0, 0.0, 3.0]
    model = tiny_robot_model(10, low, high)
    config = make_robot_train_config(
        camera_footage, tmp_path / "run", model, condition_columns=CAMERA_COLUMNS
    )
    checkpoint = train_world_model(config)
    env = gym.make(envs.ROBOT_ID, checkpoint=str(checkpoint), action_dim=10, device="cpu")
    assert env.action_space.shape == (10,)
    obs, _ = env.reset(seed=0)
    pose = np.array([0.0] * 7 + [90.0, -60.0, 1.6], dtype=np.float32)
    next_obs, reward, *_ = env.step(pose)
    assert next_obs.shape == obs.shape and np.isfinite(reward)
    with pytest.raises(CheckpointMismatchError, match="10-d vector actions"):
        gym.make(envs.ROBOT_ID, checkpoint=str(checkpoint), device="cpu")
    unseen = unseen_episodes(checkpoint, camera_footage)
    assert unseen[0].actions.shape == (unseen[0].length, 10), "read with the camera columns"
