"""Model-predictive control over discrete actions: CEM and MPPI on per-step categorical
distributions, as pure functions of (score function, budget, generator).

A score function maps action sequences ``(P, H)`` int64 to their returns ``(P,)``; it is where
the model lives (the world model's batched imagination, a cloned simulator, or a toy model in
tests). ``WorldModelPlanner`` and ``OraclePlanner`` wrap the planners as zoo-style policies that
re-plan every step (receding horizon).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from envs.core import WorldModelCore
from world_models import WorldModel

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""``action sequences (P, H) int64 -> returns (P,) float``."""


@dataclass
class PlannerConfig:
    """A planner's budget: ``population`` sequences of ``horizon`` steps, ``iterations`` rounds.

    CEM refits each step's categorical to its ``elites`` best sequences; MPPI to all of them,
    weighted by ``exp(return / temperature)``. ``smoothing`` mixes the old distribution in, and
    ``min_probability`` keeps every action possible.
    """

    method: str = "cem"
    horizon: int = 5
    population: int = 64
    elites: int = 8
    iterations: int = 3
    temperature: float = 0.5
    smoothing: float = 0.1
    min_probability: float = 0.01
    discount: float = 0.95

    def __post_init__(self) -> None:
        if self.method not in ("cem", "mppi"):
            raise ValueError(f"planner method must be 'cem' or 'mppi', got {self.method!r}")
        if min(self.horizon, self.population, self.elites, self.iterations) < 1:
            raise ValueError("horizon, population, elites and iterations must all be >= 1")
        if self.elites > self.population:
            raise ValueError(f"elites ({self.elites}) cannot exceed population ({self.population})")


def plan(
    score: ScoreFn, n_actions: int, config: PlannerConfig, rng: np.random.Generator
) -> tuple[int, np.ndarray, np.ndarray]:
    """Search for the best action sequence; returns (first action, best sequence (H,), final
    per-step action probabilities (H, n_actions))."""
    probs = np.full((config.horizon, n_actions), 1.0 / n_actions)
    best_sequence, best_return = np.zeros(config.horizon, dtype=np.int64), -np.inf
    for _ in range(config.iterations):
        sequences = _sample(probs, config.population, rng)
        returns = np.asarray(score(sequences), dtype=np.float64)
        if returns.shape != (len(sequences),):
            raise ValueError(f"score returned shape {returns.shape} for {len(sequences)} sequences")
        top = int(np.argmax(returns))
        if returns[top] > best_return:
            best_return, best_sequence = float(returns[top]), sequences[top].copy()
        if config.method == "cem":
            weights = np.zeros(len(sequences))
            weights[np.argsort(-returns, kind="stable")[: config.elites]] = 1.0
        else:
            weights = np.exp((returns - returns.max()) / config.temperature)
        fitted = _weighted_frequencies(sequences, weights / weights.sum(), n_actions)
        probs = config.smoothing * probs + (1 - config.smoothing) * fitted
        probs = np.maximum(probs, config.min_probability)
        probs /= probs.sum(axis=1, keepdims=True)
    return int(best_sequence[0]), best_sequence, probs


def _sample(probs: np.ndarray, population: int, rng: np.random.Generator) -> np.ndarray:
    cumulative = probs.cumsum(axis=1)
    draws = rng.random((population, probs.shape[0], 1))
    return (draws > cumulative[None]).sum(axis=2).clip(0, probs.shape[1] - 1).astype(np.int64)


def _weighted_frequencies(sequences: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    onehot = np.eye(n)[sequences]  # (P, H, n)
    return np.einsum("p,phn->hn", weights, onehot)


class WorldModelPlanner:
    """Plans in the world model's imagination: every candidate sequence is rolled out from the
    last K real frames in one batched pass, scored by the reward head weighted by the chance
    of not having ended (the termination head), discounted."""

    def __init__(self, model: WorldModel, config: PlannerConfig, name: str = "wfm_planner") -> None:
        self.model = model.eval()
        self.config = config
        self.name = name
        self.device = next(model.parameters()).device
        self._frames: list[np.ndarray] = []
        self._actions: list[int] = []
        self.last_plan: np.ndarray | None = None
        self.last_latency = 0.0

    def begin_episode(self, frames: list[np.ndarray], actions: list[int]) -> None:
        """Start from the real frames so far and the actions between them."""
        self._frames, self._actions = list(frames), list(actions)

    def observe(self, frame: np.ndarray, action: int) -> None:
        """Record the action just taken and the frame it led to."""
        self._actions.append(int(action))
        self._frames.append(frame)

    @torch.no_grad()
    def _rollout(self, sequences: np.ndarray, decode: bool) -> tuple[torch.Tensor, list]:
        """Imagine every sequence (P, H) from the last K real frames (one batched core of P,
        started from the shared context): discounted returns weighted by the chance of not
        having ended, and, with ``decode``, the imagined frames of each step."""
        k = self.model.config.context
        frames = torch.from_numpy(np.stack(self._frames[-k:]))
        n = len(frames)
        context_actions = torch.tensor(self._actions[len(self._actions) - (n - 1) :])
        core = WorldModelCore(self.model, batch_size=len(sequences))
        core.reset(frames[None], context_actions[None].long().reshape(1, n - 1))
        plan_actions = torch.from_numpy(sequences)
        alive = torch.ones(len(sequences), device=self.device)
        total = torch.zeros(len(sequences), device=self.device)
        decoded = []
        for t in range(sequences.shape[1]):
            imagined = core.advance(plan_actions[:, t])
            total += alive * (self.config.discount**t) * imagined.reward
            alive = alive * (1 - imagined.end_probability)
            if decode:
                decoded.append(self.model.tokenizer.decode(imagined.latent).cpu().numpy())
        return total, decoded

    def score(self, sequences: np.ndarray) -> np.ndarray:
        """Expected discounted imagined return of each sequence ``(P, H)`` from the context."""
        return self._rollout(sequences, decode=False)[0].cpu().numpy()

    def imagine(self, sequence: np.ndarray) -> np.ndarray:
        """The frames (H, H_px, W_px, 3) uint8 the world model imagines for one sequence (H,)."""
        _, frames = self._rollout(np.asarray(sequence, dtype=np.int64)[None], decode=True)
        return np.stack([f[0] for f in frames])

    def act(self, frame: np.ndarray, rng: np.random.Generator) -> int:
        """Re-plan from the context ending in ``frame`` and return the first action."""
        if not self._frames:
            self._frames = [frame]
        started = time.perf_counter()
        action, self.last_plan, _ = plan(self.score, self.model.config.n_actions, self.config, rng)
        self.last_latency = time.perf_counter() - started
        return action


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


class OraclePlanner:
    """The same planner scored by the real simulator: each candidate sequence is played on a
    clone of the real env's state. The upper bound a world-model planner is judged against."""

    def __init__(self, env: gym.Env, config: PlannerConfig, name: str = "oracle_planner") -> None:
        self.env = env
        self.config = config
        self.name = name
        self.last_latency = 0.0

    def score(self, sequences: np.ndarray) -> np.ndarray:
        """Discounted real return of each sequence from the env's current state."""
        returns = np.zeros(len(sequences))
        for i, sequence in enumerate(sequences):
            clone = clone_simulator(self.env)
            for t, action in enumerate(sequence):
                _, reward, terminated, truncated, _ = clone.step(int(action))
                returns[i] += (self.config.discount**t) * float(reward)
                if terminated or truncated:
                    break
        return returns

    def act(self, frame: np.ndarray, rng: np.random.Generator) -> int:
        """Re-plan from the real env's current state and return the first action."""
        started = time.perf_counter()
        n_actions = int(self.env.action_space.n)  # type: ignore[attr-defined]
        action, _, _ = plan(self.score, n_actions, self.config, rng)
        self.last_latency = time.perf_counter() - started
        return action
