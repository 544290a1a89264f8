"""The oracle planner: the same search scored by the real simulator, each candidate sequence
played on a clone of the real env's current state. The upper bound a world-model planner is
judged against, with the same budget."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from policies.planners.config import PlannerConfig
from policies.planners.receding import Action, RecedingHorizon

_RENDER_KWARGS = frozenset(
    {"render_mode", "width", "height", "camera_id", "camera_name", "default_camera_config"}
)
"""``gym.make`` arguments that only concern rendering: a clone for stepping leaves them out."""


def clone_simulator(env: gym.Env) -> gym.Env:
    """A deep copy of the real highway env's simulator state, without its pygame viewer (which
    cannot be copied); the copy is for stepping, not rendering."""
    inner = env.unwrapped
    viewer = getattr(inner, "viewer", None)
    inner.viewer = None  # type: ignore[attr-defined]
    try:
        return copy.deepcopy(inner)
    finally:
        inner.viewer = viewer  # type: ignore[attr-defined]


class MujocoClone:
    """A second, render-free instance of a MuJoCo env (same id and physics arguments) whose
    ``MjData`` is overwritten with the real env's on every ``synced()``.

    ``mj_copyData`` copies all of it: positions, velocities, time, controls, the solver's warm
    start and the derived quantities (body positions) the reward reads, so stepping the clone
    gives exactly the rewards the real env would, and the real env is never touched.
    """

    def __init__(self, env: gym.Env) -> None:
        real = env.unwrapped
        if not isinstance(real, MujocoEnv) or real.spec is None:
            raise ValueError(f"MujocoClone needs a MuJoCo env made by gym.make, got {real}")
        kwargs = {k: v for k, v in real.spec.kwargs.items() if k not in _RENDER_KWARGS}
        sim = gym.make(real.spec.id, **kwargs).unwrapped
        assert isinstance(sim, MujocoEnv)
        if (sim.model.nq, sim.model.nv, sim.model.nu) != (
            real.model.nq,
            real.model.nv,
            real.model.nu,
        ):
            raise ValueError(f"the clone of {real.spec.id} was built with another model")
        self.real = real
        self.sim = sim

    def synced(self) -> MujocoEnv:
        """The clone, set to the real env's exact current state."""
        mujoco.mj_copyData(self.sim.data, self.sim.model, self.real.data)
        return self.sim


@dataclass(frozen=True)
class PlayedPlan:
    """A plan played on a simulator clone: per step (H,) its reward and whether it ended the
    episode (a crash), which steps were played (none after the episode stopped), and whether
    the episode ran on past the plan's last step (no end and no time limit within it)."""

    rewards: np.ndarray
    ended: np.ndarray
    played: np.ndarray
    outlasted: bool


def play_plan(sim: Any, plan: np.ndarray, continuous: bool = False) -> PlayedPlan:
    """Step ``sim`` (a clone, stepped in place) through ``plan`` (H,) or (H, A) until the plan
    or the episode ends."""
    horizon = len(plan)
    rewards = np.zeros(horizon)
    ended, played = np.zeros(horizon, bool), np.zeros(horizon, bool)
    for t, action in enumerate(plan):
        _, reward, terminated, truncated, _ = sim.step(action if continuous else int(action))
        rewards[t], ended[t], played[t] = float(reward), terminated, True
        if terminated or truncated:
            return PlayedPlan(rewards, ended, played, outlasted=False)
    return PlayedPlan(rewards, ended, played, outlasted=True)


def plan_returns(
    rewards: np.ndarray, played: np.ndarray, outlasted: np.ndarray, config: PlannerConfig
) -> np.ndarray:
    """The real return (N,) of plans played (rewards and played steps (N, H), ``outlasted``
    (N,)) as a planner scores a plan: discounted rewards of the steps played, plus the
    terminal value (discounted as step H) when the episode outlasts the plan."""
    horizon = rewards.shape[1]
    discounts = config.discount ** np.arange(horizon)
    earned = (np.where(played, rewards, 0.0) * discounts).sum(axis=1)
    return earned + np.where(outlasted, config.discount**horizon * config.terminal_value, 0.0)


def _clone_maker(env: gym.Env) -> Callable[[], Any]:
    """A function returning a steppable copy of ``env``'s current state: a synced MuJoCo clone,
    or a deep copy of any other simulator."""
    if isinstance(env.unwrapped, MujocoEnv):
        return MujocoClone(env).synced
    return lambda: clone_simulator(env)


class OraclePlanner:
    """The planner scored by the real simulator, for discrete (highway-env) or continuous
    (MuJoCo) actions: each candidate sequence is played on a clone of the real env's state and
    scored by the true discounted reward. Re-plans every step (receding horizon)."""

    def __init__(self, env: gym.Env, config: PlannerConfig, name: str = "oracle_planner") -> None:
        self.env = env
        self.config = config
        self.name = name
        self.search = RecedingHorizon(env.action_space, config)
        self._clone = _clone_maker(env)
        self.last_latency = 0.0

    def begin_episode(self, frames: list[np.ndarray], actions: list[Action]) -> None:
        """Forget the last plan (the state itself always comes from the real env)."""
        self.search.reset()

    def score(self, sequences: np.ndarray) -> np.ndarray:
        """Discounted real return of each sequence (P, H) or (P, H, A) from the env's state,
        plus the terminal value for a sequence the episode outlasts (``plan_returns``)."""
        continuous = self.search.continuous
        played = [play_plan(self._clone(), sequence, continuous) for sequence in sequences]
        return plan_returns(
            np.stack([p.rewards for p in played]),
            np.stack([p.played for p in played]),
            np.array([p.outlasted for p in played]),
            self.config,
        )

    def act(self, frame: np.ndarray, rng: np.random.Generator) -> Action:
        """Re-plan from the real env's current state and return the first action."""
        started = time.perf_counter()
        action, _ = self.search.plan(self.score, rng)
        self.last_latency = time.perf_counter() - started
        return action
