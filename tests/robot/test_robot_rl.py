"""The RL script on the robot task, in a tiny config: PPO with vector actions trains in the
robot world model and is evaluated in the real MuJoCo Pusher; DQN is refused there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.train_rl import RLConfig, train_rl
from tests.tiny_rl import tiny_rl_config


def test_ppo_trains_in_the_robot_world_model_and_runs_in_the_real_pusher(
    robot_checkpoint: Path, tmp_path: Path
) -> None:
    config = tiny_rl_config(tmp_path, task="robot", checkpoint=str(robot_checkpoint))
    result = train_rl(config)
    stored = json.loads((tmp_path / "rl" / "wfm_ppo.json").read_text())
    assert stored["task"] == "robot" and len(stored["real_returns"]) == 1
    # a Pusher episode is 100 steps of negative reward (distances and torque cost)
    assert -1000 < result["real_returns"][0] < 0


def test_dqn_is_refused_for_vector_actions() -> None:
    with pytest.raises(ValueError, match="DQN needs discrete actions"):
        RLConfig(task="robot", algorithm="dqn")


def test_the_task_picks_its_committed_world_model() -> None:
    assert RLConfig(task="robot").checkpoint == "robot"
    assert RLConfig().checkpoint == "driving"
