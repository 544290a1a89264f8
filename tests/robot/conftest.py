"""Tiny robot data: Pusher footage (fixed and moving camera) and world models trained on it,
with the same recorder and trainer as driving; only configs differ."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from wfm_sim.sources.recorder import BehaviourFn, RecorderConfig, record_footage
from wfm_sim.training import TrainConfig, train_world_model
from world_models import WorldModelConfig

CAMERA_COLUMNS = ["cam_azimuth", "cam_elevation", "cam_distance"]


def _random_torques(frame: np.ndarray, info: dict, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-2.0, 2.0, 7).astype(np.float32)


def _still(frame: np.ndarray, info: dict, rng: np.random.Generator) -> np.ndarray:
    return np.zeros(7, dtype=np.float32)


ROBOT_BEHAVIOURS: list[tuple[str, BehaviourFn]] = [("random", _random_torques), ("still", _still)]


def robot_recorder_config(out_dir: Path, moving_camera: bool = False) -> RecorderConfig:
    """3 Pusher episodes (100 steps each) in 2 parts."""
    return RecorderConfig(
        out_dir=str(out_dir),
        source="pusher",
        sim={"moving_camera": moving_camera},
        episodes=3,
        episodes_per_part=2,
        fps=20,
        seed=0,
    )


@pytest.fixture(scope="session")
def robot_footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fixed-camera Pusher footage; read-only for tests."""
    out_dir = tmp_path_factory.mktemp("robot_footage")
    return record_footage(robot_recorder_config(out_dir), ROBOT_BEHAVIOURS, progress=False)


@pytest.fixture(scope="session")
def camera_footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Moving-camera Pusher footage; read-only for tests."""
    out_dir = tmp_path_factory.mktemp("camera_footage")
    config = robot_recorder_config(out_dir, moving_camera=True)
    return record_footage(config, ROBOT_BEHAVIOURS, progress=False)


def tiny_robot_model(action_dim: int, low: list[float], high: list[float]) -> WorldModelConfig:
    """A world model small enough to train in seconds, with vector actions."""
    return WorldModelConfig(
        tokenizer_width=16,
        dynamics_width=16,
        head_width=16,
        dynamics_blocks=1,
        context=2,
        n_actions=0,
        action_dim=action_dim,
        action_low=low,
        action_high=high,
    )


@pytest.fixture(scope="session")
def make_robot_train_config(
    make_train_config: Callable[..., TrainConfig],
) -> Callable[..., TrainConfig]:
    """``(footage, run_dir, model, **overrides) -> TrainConfig``: the driving tests' tiny run
    (``make_train_config``) on other footage and model, with a 2-step fine-tune."""

    def make(footage: Path, run_dir: Path, model: WorldModelConfig, **overrides: object):
        return make_train_config(
            run_dir, footage_dir=str(footage), model=model, finetune_steps=2, **overrides
        )

    return make


@pytest.fixture(scope="session")
def robot_checkpoint(
    tmp_path_factory: pytest.TempPathFactory,
    robot_footage: Path,
    make_robot_train_config: Callable[..., TrainConfig],
) -> Path:
    """A tiny robot world model (7 torques in [-2, 2]) trained on ``robot_footage``."""
    model = tiny_robot_model(7, [-2.0] * 7, [2.0] * 7)
    run_dir = tmp_path_factory.mktemp("robot_run")
    return train_world_model(make_robot_train_config(robot_footage, run_dir, model))
