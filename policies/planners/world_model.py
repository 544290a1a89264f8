"""MPC in the world model's imagination: every candidate sequence rolled out in one batched
pass from the last real frames, scored by the learned reward and termination heads."""

from __future__ import annotations

import time

import numpy as np
import torch

from envs.core import WorldModelCore, action_space_of
from policies.planners.config import PlannerConfig
from policies.planners.receding import Action, RecedingHorizon
from policies.planners.returns import plan_scores
from world_models import WorldModel


class WorldModelPlanner:
    """Plans in the world model's imagination, for discrete or vector-action models alike:
    every candidate sequence is rolled out from the last K real frames in one batched pass,
    scored by the reward head weighted by the chance of not having ended (the termination
    head), discounted, plus the config's ``terminal_value`` weighted by the chance of still
    running at the horizon. Re-plans every step (receding horizon)."""

    def __init__(
        self,
        model: WorldModel,
        config: PlannerConfig,
        name: str = "wfm_planner",
        temperature: float = 1.0,
    ) -> None:
        self.model = model.eval()
        self.config = config
        self.name = name
        self.temperature = temperature
        """Token temperature of the imagined frames (``WorldModelCore``'s)."""
        self.device = next(model.parameters()).device
        self.search = RecedingHorizon(action_space_of(model.config), config)
        self._action_shape: tuple[int, ...] = (
            (model.config.action_dim,) if model.config.continuous_actions else ()
        )
        self._action_dtype = np.float32 if model.config.continuous_actions else np.int64
        self._frames: list[np.ndarray] = []
        self._actions: list[Action] = []
        self.last_plan: np.ndarray | None = None
        """The plan of the last decision: the best sequence (H,) int64, or the mean (H, A) float32."""
        self.last_latency = 0.0

    def begin_episode(self, frames: list[np.ndarray], actions: list[Action]) -> None:
        """Start from the real frames so far and the actions between them; forget the last
        plan (no warm start across episodes)."""
        self._frames, self._actions = list(frames), list(actions)
        self.search.reset()
        self.last_plan = None

    def observe(self, frame: np.ndarray, action: Action) -> None:
        """Record the action just taken and the frame it led to."""
        self._actions.append(np.asarray(action, self._action_dtype))
        self._frames.append(frame)

    def _sequences(self, sequences: np.ndarray) -> torch.Tensor:
        if (
            sequences.ndim != 2 + len(self._action_shape)
            or sequences.shape[2:] != self._action_shape
        ):
            expected = "(P, H, A)" if self._action_shape else "(P, H)"
            raise ValueError(
                f"action sequences must have shape {expected} with actions of shape "
                f"{self._action_shape}, got {sequences.shape}"
            )
        return torch.from_numpy(np.ascontiguousarray(sequences, self._action_dtype))

    @torch.no_grad()
    def _rollout(self, sequences: np.ndarray, decode: bool) -> tuple[torch.Tensor, list]:
        """Imagine every sequence (P, H) or (P, H, A) from the last K real frames (one batched
        core of P, started from the shared context): discounted returns weighted by the chance
        of not having ended (the terminal value included), and, with ``decode``, the imagined
        frames of each step (with a risk-averse config, the scores of ``plan_scores``)."""
        plan_actions = self._sequences(sequences)
        k = self.model.config.context
        frames = torch.from_numpy(np.stack(self._frames[-k:]))
        n = len(frames)
        taken = self._actions[len(self._actions) - (n - 1) :] if n > 1 else []
        context = np.asarray(taken, self._action_dtype).reshape(n - 1, *self._action_shape)
        core = WorldModelCore(self.model, len(plan_actions), self.temperature)
        core.reset(frames[None], torch.from_numpy(context)[None])
        rewards, ends, decoded = [], [], []
        for t in range(plan_actions.shape[1]):
            imagined = core.advance(plan_actions[:, t])
            rewards.append(imagined.reward)
            ends.append(imagined.end_probability)
            if decode:
                decoded.append(self.model.tokenizer.decode(imagined.latent).cpu().numpy())
        total = plan_scores(torch.stack(rewards, 1), torch.stack(ends, 1), self.config)
        return total, decoded

    def score(self, sequences: np.ndarray) -> np.ndarray:
        """Each sequence's (P, H) or (P, H, A) score: its expected discounted imagined return
        (less the risk term of a risk-averse config, ``plan_scores``)."""
        return self._rollout(sequences, decode=False)[0].cpu().numpy()

    def imagine(self, sequence: np.ndarray) -> np.ndarray:
        """The frames (H, H_px, W_px, 3) uint8 the world model imagines for one sequence."""
        _, frames = self._rollout(np.asarray(sequence)[None], decode=True)
        return np.stack([f[0] for f in frames])

    def act(self, frame: np.ndarray, rng: np.random.Generator) -> Action:
        """Re-plan from the context ending in ``frame`` and return the first action."""
        if not self._frames:
            self._frames = [frame]
        started = time.perf_counter()
        action, self.last_plan = self.search.plan(self.score, rng)
        self.last_latency = time.perf_counter() - started
        return action
