"""The policy interface shared by every zoo member, and the trivial policies built on it.

A policy maps one pixel observation, ``(64, 64, 3) uint8``, to a discrete action. Acting on
pixels alone is what lets the same policy drive the real simulator and a world model that
imagines frames of the same format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar, runtime_checkable

import gymnasium as gym
import numpy as np

NUM_ACTIONS = 5
"""Size of the driving action space, Discrete(5): LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER."""


ActionT_co = TypeVar("ActionT_co", covariant=True)


@runtime_checkable
class Policy(Protocol[ActionT_co]):
    """Anything with a unique ``name`` that acts on one frame.

    ``act`` receives the observation, ``(H, W, 3) uint8``, and the generator that is the only
    source of the policy's randomness, so a seeded rollout is reproducible. It returns an
    action of the env's space: an index for driving (``Policy[int]``), a torque vector for
    the robot (``Policy[np.ndarray]``).
    """

    name: str

    def act(self, observation: np.ndarray, rng: np.random.Generator) -> ActionT_co: ...


def _check_action(action: int, num_actions: int) -> int:
    if not 0 <= action < num_actions:
        raise ValueError(f"action {action} is outside Discrete({num_actions})")
    return int(action)


class ConstantPolicy:
    """Always takes the same action: the floor of the zoo (e.g. ``always_faster`` crashes often)."""

    def __init__(self, action: int, name: str, num_actions: int = NUM_ACTIONS) -> None:
        self.action = _check_action(action, num_actions)
        self.name = name

    def act(self, observation: np.ndarray, rng: np.random.Generator) -> int:
        """Return the fixed action whatever the frame."""
        return self.action

    def __repr__(self) -> str:
        return f"ConstantPolicy(action={self.action}, name={self.name!r})"


class RandomPolicy:
    """Uniform over the action space, drawn from the caller's generator."""

    def __init__(self, name: str = "random", num_actions: int = NUM_ACTIONS) -> None:
        if num_actions < 1:
            raise ValueError(f"num_actions must be at least 1, got {num_actions}")
        self.name = name
        self.num_actions = num_actions

    def act(self, observation: np.ndarray, rng: np.random.Generator) -> int:
        """Return an action drawn uniformly from ``rng``."""
        return int(rng.integers(self.num_actions))


class EpsilonGreedy:
    """Wrap ``inner``: with probability ``epsilon`` act uniformly at random instead.

    Degrading a good policy by a known amount gives zoo members of intermediate quality whose
    ranking is known in advance, which is what a world-model policy ranking is tested against.
    """

    def __init__(
        self, inner: Policy[int], epsilon: float, name: str, num_actions: int = NUM_ACTIONS
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
        self.inner = inner
        self.epsilon = float(epsilon)
        self.name = name
        self.num_actions = num_actions

    def act(self, observation: np.ndarray, rng: np.random.Generator) -> int:
        """One uniform draw decides exploration; the inner policy acts otherwise."""
        if rng.random() < self.epsilon:
            return int(rng.integers(self.num_actions))
        return self.inner.act(observation, rng)

    def __repr__(self) -> str:
        return f"EpsilonGreedy({self.inner.name!r}, epsilon={self.epsilon}, name={self.name!r})"


def episode_returns(policy: Policy, env: gym.Env, seeds: Sequence[int]) -> list[float]:
    """Undiscounted return of one episode per seed, ``env.reset(seed=s)`` and ``rng(s)``.

    Seeding both the env and the policy's generator from the same seed makes every entry
    reproducible, so policies compared on the same seeds meet the same traffic.
    """
    returns = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        observation, _ = env.reset(seed=int(seed))
        total, done = 0.0, False
        while not done:
            observation, reward, terminated, truncated, _ = env.step(policy.act(observation, rng))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns
