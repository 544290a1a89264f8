"""CEM and MPPI over continuous actions in a box: a Gaussian per step and action dimension,
sampled, clipped to the box and refitted to the best sequences, as a pure function of
(score function, bounds, budget, rng)."""

from __future__ import annotations

import numpy as np

from policies.planners.config import PlannerConfig
from policies.planners.discrete import ScoreFn, checked_returns


def plan_continuous(
    score: ScoreFn,
    low: np.ndarray,
    high: np.ndarray,
    config: PlannerConfig,
    rng: np.random.Generator,
    initial_mean: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search for the best sequence of actions in the box [``low``, ``high``] (A,).

    Each iteration draws ``population`` sequences (P, H, A) from N(mean, std) per step and
    dimension, clipped to the box; the first is the mean itself, so a good warm start is never
    lost to sampling. The mean and std are refitted to the ``elites`` best sequences, weighted
    equally (CEM) or by ``exp((return - max) / temperature)`` (MPPI as in TD-MPC2: over the
    elites only, since exponential weights over every sample average away the narrow ridges
    of coupled actions), mixed with the old ones by ``smoothing``, the std kept at or above
    ``min_std`` times the half-width. The search starts from ``initial_mean`` (H, A)
    (default: the box's centre) with std ``init_std`` times the half-width.

    Returns (the action to take (A,), the plan (H, A), the best sequence scored (H, A)), all
    float32. The plan is the final mean and the action its first step: averaging the elites
    cancels the sampling noise that the single best sample carries (noise that costs control
    reward on a robot), where a categorical's best sample is the only action it can name.
    """
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    if low.ndim != 1 or low.shape != high.shape or not (low < high).all():
        raise ValueError(f"bounds must be two (A,) arrays with low < high; got {low}, {high}")
    shape = (config.horizon, len(low))
    half_width = (high - low) / 2
    if initial_mean is None:
        mean = np.broadcast_to((low + high) / 2, shape).copy()
    elif np.shape(initial_mean) != shape:
        raise ValueError(f"initial_mean must have shape (horizon, A) = {shape}")
    else:
        mean = np.clip(np.asarray(initial_mean, np.float64), low, high)
    std = np.broadcast_to(config.init_std * half_width, shape).copy()
    best_sequence, best_return = mean.astype(np.float32), -np.inf
    for _ in range(config.iterations):
        noise = rng.standard_normal((config.population, *shape))
        sequences = np.clip(mean + std * noise, low, high).astype(np.float32)
        sequences[0] = mean
        returns = checked_returns(score, sequences)
        top = int(np.argmax(returns))
        if returns[top] > best_return:
            best_return, best_sequence = float(returns[top]), sequences[top].copy()
        weights = _elite_weights(returns, config)
        fitted_mean = np.einsum("p,pha->ha", weights, sequences)
        spread = (sequences - fitted_mean[None]) ** 2
        fitted_std = np.sqrt(np.einsum("p,pha->ha", weights, spread))
        mean = config.smoothing * mean + (1 - config.smoothing) * fitted_mean
        std = config.smoothing * std + (1 - config.smoothing) * fitted_std
        std = np.maximum(std, config.min_std * half_width)
    plan = mean.astype(np.float32)
    return plan[0].copy(), plan, best_sequence


def _elite_weights(returns: np.ndarray, config: PlannerConfig) -> np.ndarray:
    """Weights (P,) summing to 1, zero outside the ``elites`` best (ties broken by order)."""
    elites = np.argsort(-returns, kind="stable")[: config.elites]
    weights = np.zeros(len(returns))
    if config.method == "cem":
        weights[elites] = 1.0
    else:
        weights[elites] = np.exp((returns[elites] - returns[elites[0]]) / config.temperature)
    return weights / weights.sum()
