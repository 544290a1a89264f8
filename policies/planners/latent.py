"""MPC over the latent world model: the last K real frames are coded once a decision, then
every candidate sequence is stepped as a state vector (no pixels imagined), scored by the
same expected return as the pixel world-model planner."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import torch

from policies.planners.config import PlannerConfig
from policies.planners.receding import Action, RecedingHorizon
from policies.planners.returns import plan_scores
from world_models.latent import LatentWorldModel


class LatentModelPlanner:
    """Plans over a ``LatentWorldModel``: CEM or MPPI (``config``) over discrete action
    sequences scored in one batched pass of the latent MLP from the state of the last K real
    frames (the first frame repeated before an episode's start, as the world-model env does).
    Re-plans every step (receding horizon); a zoo-style controller for the MPC demo."""

    def __init__(
        self, model: LatentWorldModel, config: PlannerConfig, name: str = "latent_planner"
    ) -> None:
        self.model = model.eval()
        self.config = config
        self.name = name
        self.search = RecedingHorizon(gym.spaces.Discrete(model.n_actions), config)
        self.device = next(model.parameters()).device
        self._frames: list[np.ndarray] = []
        self._state: torch.Tensor | None = None
        self.last_plan: np.ndarray | None = None
        """The best sequence (H,) int64 of the last decision."""
        self.last_candidates: list[tuple[np.ndarray, np.ndarray]] = []
        """Every batch of sequences (P, H) the last decision scored, with their scores (P,):
        the plans it weighed."""
        self.last_latency = 0.0

    def begin_episode(self, frames: list[np.ndarray], actions: list[Action]) -> None:
        """Start from the real frames so far (the actions between them are not needed: the
        state reads motion off the frames)."""
        self._frames = list(frames)
        self.search.reset()
        self.last_plan = None

    def observe(self, frame: np.ndarray, action: Action) -> None:
        """Record the frame the last action led to."""
        self._frames.append(frame)

    def context_frames(self) -> np.ndarray:
        """The last K real frames (K, H, W, 3) uint8 the current state is coded from."""
        k = self.model.context
        recent = self._frames[-k:]
        return np.stack([recent[0]] * (k - len(recent)) + recent)

    def _current_state(self) -> torch.Tensor:
        """The state of the last K real frames, coded once a decision."""
        if self._state is None:
            context = torch.from_numpy(self.context_frames())[None].to(self.device)
            self._state = self.model.encode_frames(context)
        return self._state

    @torch.no_grad()
    def score(self, sequences: np.ndarray) -> np.ndarray:
        """Each sequence's (P, H) score from the current state: its expected discounted
        imagined return, less the risk term of a risk-averse config (``plan_scores``)."""
        if sequences.ndim != 2:
            raise ValueError(f"action sequences must have shape (P, H), got {sequences.shape}")
        plans = torch.from_numpy(np.ascontiguousarray(sequences, np.int64)).to(self.device)
        rewards, ends = self.model.imagine(self._current_state(), plans)
        scores = plan_scores(rewards, ends, self.config).cpu().numpy()
        self.last_candidates.append((np.array(sequences, dtype=np.int64), scores))
        return scores

    @property
    def last_plan_score(self) -> float:
        """The expected imagined return of the last decision's chosen plan."""
        if self.last_plan is None:
            raise ValueError("no decision yet: call act first")
        for sequences, scores in self.last_candidates:
            rows = np.flatnonzero((sequences == self.last_plan).all(axis=1))
            if len(rows):
                return float(scores[rows[0]])
        raise AssertionError("the chosen plan is always among the scored candidates")

    @torch.no_grad()
    def end_probabilities(self, plan: np.ndarray) -> np.ndarray:
        """The model's probability (H,) that each imagined step of ``plan`` (H,) ends the
        episode (a crash), from the current state: how risky the planner judged a plan."""
        sequence = torch.from_numpy(np.ascontiguousarray(plan, np.int64)).reshape(1, -1)
        _, ends = self.model.imagine(self._current_state(), sequence.to(self.device))
        return ends[0].cpu().numpy()

    def act(self, frame: np.ndarray, rng: np.random.Generator) -> Action:
        """Re-plan from the frames ending in ``frame`` and return the first action."""
        if not self._frames:
            self._frames = [frame]
        started = time.perf_counter()
        self._state = None  # the context changed: code it again on the first score
        self.last_candidates = []
        action, self.last_plan = self.search.plan(self.score, rng)
        self.last_latency = time.perf_counter() - started
        return action
