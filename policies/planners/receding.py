"""Receding-horizon search over an env's action space: one plan per decision, the first
action taken, the rest kept to warm-start the next decision (continuous actions)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from policies.planners.config import PlannerConfig
from policies.planners.continuous import plan_continuous
from policies.planners.discrete import ScoreFn, plan

Action = int | np.ndarray
"""An index (``Discrete``) or a float32 vector (``Box``)."""


class RecedingHorizon:
    """Plans over a ``Discrete`` space (categorical CEM/MPPI, started uniform every decision,
    acting on the best sequence found) or a 1-d ``Box`` (Gaussian CEM/MPPI acting on the final
    mean; with ``config.warm_start`` started from the previous mean shifted one step, the
    box's centre appended)."""

    def __init__(self, space: gym.Space, config: PlannerConfig) -> None:
        if isinstance(space, gym.spaces.Box):
            if len(space.shape) != 1:
                raise ValueError(f"continuous planning needs a 1-d Box, got shape {space.shape}")
        elif not isinstance(space, gym.spaces.Discrete):
            raise ValueError(f"planners support Discrete and 1-d Box spaces, got {space}")
        self.space = space
        self.config = config
        self.warm_mean: np.ndarray | None = None
        """(H, A): where the next continuous search starts; None starts at the box's centre."""

    @property
    def continuous(self) -> bool:
        """Whether actions are vectors in a box."""
        return isinstance(self.space, gym.spaces.Box)

    def reset(self) -> None:
        """Forget the warm start (a new episode)."""
        self.warm_mean = None

    def plan(self, score: ScoreFn, rng: np.random.Generator) -> tuple[Action, np.ndarray]:
        """Search once; returns (the action to take now, the plan it starts: the best sequence
        (H,) for discrete actions, the final mean (H, A) for continuous ones)."""
        if isinstance(self.space, gym.spaces.Discrete):
            index, sequence, _ = plan(score, int(self.space.n), self.config, rng)
            return index, sequence
        assert isinstance(self.space, gym.spaces.Box)
        low, high = self.space.low.astype(np.float64), self.space.high.astype(np.float64)
        vector, mean, _ = plan_continuous(score, low, high, self.config, rng, self.warm_mean)
        if self.config.warm_start:
            centre = ((low + high) / 2).astype(np.float32)
            self.warm_mean = np.concatenate([mean[1:], centre[None]])
        return vector, mean
