"""Action post-training takes a robot's vector actions through the same code as driving's
discrete ones: a pre-trained WFM post-trained on Pusher footage (7 torques in [-2, 2]) exports
an action model that ``WFM-Robot-v0`` steps on either backend, with a Box action space that
passes the checkers and refuses out-of-space actions."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from tests.tiny_wfms import save_tiny_pretrained, tiny_post_train_config
from wfm_sim.training.post_training import post_train
from world_models.action_model import ActionModel

BACKENDS = ("diffusion", "autoregressive")
LOW, HIGH = [-2.0] * 7, [2.0] * 7


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    return save_tiny_pretrained(tmp_path_factory.mktemp("pretrained"))


@pytest.fixture(scope="module", params=BACKENDS)
def robot_run(
    request: pytest.FixtureRequest,
    pretrained: dict[str, tuple[Path, Path]],
    robot_footage: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, Path]:
    """(backend, export folder) of a 6-step post-training run on the robot footage."""
    config = tiny_post_train_config(
        request.param,
        pretrained,
        robot_footage,
        tmp_path_factory.mktemp(f"robot_{request.param}"),
        n_actions=0,
        action_dim=7,
        action_low=LOW,
        action_high=HIGH,
        steps=6,
        batch=4,
        checkpoint_every=3,
    )
    return request.param, post_train(config)


def _make(export: Path, backend: str) -> gym.Env:
    return gym.make(envs.ROBOT_ID, checkpoint=str(export), backend=backend, device="cpu")


def test_robot_export_takes_vector_actions(robot_run: tuple[str, Path]) -> None:
    _, export = robot_run
    model = ActionModel.load(export)
    assert model.config.continuous_actions and model.config.action_features == 8
    assert (model.config.action_low, model.config.action_high) == (LOW, HIGH)


def test_robot_env_on_a_post_trained_backend_passes_the_checkers(
    robot_run: tuple[str, Path],
) -> None:
    backend, export = robot_run
    env = _make(export, backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)
    # only the advice to normalise the box: the env keeps Pusher's [-2, 2] torques on purpose
    assert not [str(w.message) for w in caught if "normalized" not in str(w.message)]
    assert env.action_space == gym.spaces.Box(-2.0, 2.0, (7,), np.float32)
    obs, _ = env.reset(seed=0)
    first, reward, *_ = env.step(np.full(7, 1.5, np.float32))
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8 and np.isfinite(reward)
    env.reset(seed=0)
    again, *_ = env.step(np.full(7, 1.5, np.float32))
    assert np.array_equal(first, again), "the same seed and actions give the same frame"


@pytest.mark.parametrize(
    "action", [np.full(7, 3.0, np.float32), np.full(7, np.nan, np.float32), np.zeros(5)]
)
def test_robot_env_refuses_out_of_space_actions(
    robot_run: tuple[str, Path], action: np.ndarray
) -> None:
    backend, export = robot_run
    env = _make(export, backend)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)
