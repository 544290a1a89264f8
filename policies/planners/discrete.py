"""CEM and MPPI over discrete actions: a categorical distribution per step, refitted to the
best sampled sequences, as a pure function of (score function, action count, budget, rng)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from policies.planners.config import PlannerConfig

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""``action sequences (P, H) int64 or (P, H, A) float32 -> returns (P,) float``."""


def plan(
    score: ScoreFn, n_actions: int, config: PlannerConfig, rng: np.random.Generator
) -> tuple[int, np.ndarray, np.ndarray]:
    """Search for the best action sequence; returns (first action, best sequence (H,), final
    per-step action probabilities (H, n_actions)). A population that covers every sequence
    scores each once (the probabilities are then the best sequence's one-hot rows)."""
    probs = np.full((config.horizon, n_actions), 1.0 / n_actions)
    if config.population >= n_actions**config.horizon:
        sequences = all_sequences(n_actions, config.horizon)
        best = sequences[int(np.argmax(checked_returns(score, sequences)))]
        return int(best[0]), best.copy(), np.eye(n_actions)[best]
    best_sequence, best_return = np.zeros(config.horizon, dtype=np.int64), -np.inf
    for _ in range(config.iterations):
        sequences = _sample(probs, config.population, rng)
        returns = checked_returns(score, sequences)
        top = int(np.argmax(returns))
        if returns[top] > best_return:
            best_return, best_sequence = float(returns[top]), sequences[top].copy()
        fitted = _weighted_frequencies(sequences, refit_weights(returns, config), n_actions)
        probs = config.smoothing * probs + (1 - config.smoothing) * fitted
        probs = np.maximum(probs, config.min_probability)
        probs /= probs.sum(axis=1, keepdims=True)
    return int(best_sequence[0]), best_sequence, probs


def all_sequences(n_actions: int, horizon: int) -> np.ndarray:
    """Every sequence of ``horizon`` actions out of ``n_actions`` (n**H, H) int64, in
    lexicographic order (the first action varies slowest)."""
    grids = np.meshgrid(*[np.arange(n_actions)] * horizon, indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)


def checked_returns(score: ScoreFn, sequences: np.ndarray) -> np.ndarray:
    """``score(sequences)`` as float64 (P,), or a ``ValueError`` naming the wrong shape."""
    returns = np.asarray(score(sequences), dtype=np.float64)
    if returns.shape != (len(sequences),):
        raise ValueError(f"score returned shape {returns.shape} for {len(sequences)} sequences")
    return returns


def refit_weights(returns: np.ndarray, config: PlannerConfig) -> np.ndarray:
    """Weights (P,) summing to 1 that refit the distribution: uniform over the ``elites`` best
    (CEM, ties broken by order) or ``exp((return - max) / temperature)`` (MPPI)."""
    if config.method == "cem":
        weights = np.zeros(len(returns))
        weights[np.argsort(-returns, kind="stable")[: config.elites]] = 1.0
    else:
        weights = np.exp((returns - returns.max()) / config.temperature)
    return weights / weights.sum()


def _sample(probs: np.ndarray, population: int, rng: np.random.Generator) -> np.ndarray:
    cumulative = probs.cumsum(axis=1)
    draws = rng.random((population, probs.shape[0], 1))
    return (draws > cumulative[None]).sum(axis=2).clip(0, probs.shape[1] - 1).astype(np.int64)


def _weighted_frequencies(sequences: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    onehot = np.eye(n)[sequences]  # (P, H, n)
    return np.einsum("p,phn->hn", weights, onehot)
