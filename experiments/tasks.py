"""The tasks the experiments run on, by name: which real simulator, which world-model env, which
policy zoo. Ranking, MPC and RL take ``task=driving`` or ``task=robot`` and share every line
of their loops; only this table differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

import envs
from policies import Policy


@dataclass(frozen=True)
class Task:
    """One task: its world-model env id and committed checkpoint, the matching real env (pixel
    observations), the zoo of policies ranked on it, the real episode length and a neutral
    warm-up action."""

    name: str
    wfm_env_id: str
    checkpoint: str
    make_real_env: Callable[[], gym.Env]
    load_zoo: Callable[[], Sequence[Policy]]
    episode_steps: int
    neutral_action: Any


def _driving_zoo() -> Sequence[Policy]:
    from policies import load_driving_zoo

    return load_driving_zoo()


def _robot_zoo() -> Sequence[Policy]:
    from policies.robot import load_robot_zoo

    return load_robot_zoo()


def _real_driving() -> gym.Env:
    from wfm_sim.sources import make_driving_env

    return make_driving_env()


def _real_robot() -> gym.Env:
    from wfm_sim.sources.pusher import make_robot_env

    return make_robot_env()


TASKS: dict[str, Task] = {
    "driving": Task("driving", envs.DRIVING_ID, "driving", _real_driving, _driving_zoo, 30, 1),
    "robot": Task(
        "robot",
        envs.ROBOT_ID,
        "robot",
        _real_robot,
        _robot_zoo,
        100,
        np.zeros(7, dtype=np.float32),
    ),
}
"""``driving``: highway-fast and WFM-Driving-v0 (IDLE is neutral); ``robot``: MuJoCo Pusher
and WFM-Robot-v0 (zero torque is neutral)."""


def get_task(name: str) -> Task:
    """The task called ``name``, or a ``ValueError`` listing the known ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]
