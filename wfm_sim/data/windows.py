"""Training windows over episodes: a context of past frames, then a horizon to predict.

A window anchored at frame t of an episode holds frames t-K+1 .. t+H (K context, H horizon)
and the actions taken from frames t-K+1 .. t+H-1. Context slots before the episode start
repeat its first frame with a padding action (``PAD_ACTION`` for discrete actions, a row of
NaN for vector actions), exactly as a world-model env starts from one frame. Steps past the
episode's end are marked invalid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wfm_sim.data.footage import Episode

PAD_ACTION = 5
"""Action index of context slots before an episode's first frame (one past the real ones)."""


def padding_actions(like: np.ndarray, count: int) -> np.ndarray:
    """``count`` padding actions in the form of ``like`` (an episode's actions): PAD_ACTION
    (count,) int64 for discrete actions, NaN rows (count, A) float32 for vector actions."""
    if like.ndim == 1:
        return np.full(count, PAD_ACTION, dtype=np.int64)
    return np.full((count, like.shape[1]), np.nan, dtype=np.float32)


@dataclass
class WindowBatch:
    """A batch of windows.

    frames: (B, K+H, ...) context then target frames;
    actions: (B, K+H-1) int64 or (B, K+H-1, A) float32, the action taken from each frame
    (padding before the start);
    rewards, terminated, valid: (B, H) for the H transitions after the context.
    """

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    valid: np.ndarray


def split_episodes(
    episodes: Sequence[Episode], held_out_fraction: float, seed: int
) -> tuple[list[Episode], list[Episode]]:
    """Split whole episodes into (train, held_out), deterministically for a seed."""
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_held = max(1, round(held_out_fraction * len(episodes)))
    if n_held >= len(episodes):
        raise ValueError(f"{len(episodes)} episodes are too few to hold out {n_held}")
    held = set(order[:n_held].tolist())
    train = [e for i, e in enumerate(episodes) if i not in held]
    held_out = [e for i, e in enumerate(episodes) if i in held]
    return train, held_out


class WindowSampler:
    """Windows of ``context`` past frames and ``horizon`` future steps, one per transition."""

    def __init__(self, episodes: Sequence[Episode], context: int, horizon: int) -> None:
        if context < 1 or horizon < 1:
            raise ValueError(f"context and horizon must be >= 1, got {context}, {horizon}")
        self.episodes = list(episodes)
        self.context = context
        self.horizon = horizon
        self.anchors = np.array(
            [(e, t) for e, ep in enumerate(self.episodes) for t in range(ep.length)],
            dtype=np.int64,
        ).reshape(-1, 2)
        if len(self.anchors) == 0:
            raise ValueError("no transitions to make windows from: every episode is empty")

    def __len__(self) -> int:
        return len(self.anchors)

    def batch(self, indices: Sequence[int] | np.ndarray) -> WindowBatch:
        """The windows at ``indices`` (into ``range(len(self))``), stacked."""
        parts = [self._window(*self.anchors[i]) for i in indices]
        return WindowBatch(*(np.stack(column) for column in zip(*parts, strict=True)))

    def ending_anchors(self, steps: int) -> np.ndarray:
        """Indices (into ``range(len(self))``) of the windows anchored in the last ``steps``
        transitions of every episode that ended terminated (a crash): the windows that
        predict the approach to the end and the end itself."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        episode, t = self.anchors[:, 0], self.anchors[:, 1]
        lengths = np.array([ep.length for ep in self.episodes], dtype=np.int64)
        ended = np.array([ep.ended_terminated for ep in self.episodes], dtype=bool)
        return np.flatnonzero(ended[episode] & (t >= lengths[episode] - steps))

    def sample(self, batch_size: int, rng: np.random.Generator) -> WindowBatch:
        """``batch_size`` windows drawn uniformly with ``rng``."""
        return self.batch(rng.integers(0, len(self), size=batch_size))

    def _window(self, episode_index: int, t: int) -> tuple[np.ndarray, ...]:
        episode = self.episodes[episode_index]
        k, h, n = self.context, self.horizon, episode.length
        frame_steps = np.arange(t - k + 1, t + h + 1)
        action_steps = frame_steps[:-1]
        frames = episode.frames[np.clip(frame_steps, 0, n)]
        actions = episode.actions[np.clip(action_steps, 0, n - 1)].copy()
        before_start = action_steps < 0
        actions[before_start] = padding_actions(episode.actions, int(before_start.sum()))
        future = np.arange(t, t + h)
        valid = future < n
        clipped = np.clip(future, 0, n - 1)
        rewards = np.where(valid, episode.rewards[clipped], 0.0).astype(np.float32)
        terminated = valid & episode.terminated[clipped]
        return frames, actions, rewards, terminated, valid


def draw_favouring(
    rng: np.random.Generator, size: int, total: int, favoured: np.ndarray, share: float
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` window indices in ``range(total)``: each, with probability ``share``, one of
    ``favoured`` (uniformly), else any window (uniformly). Returns them with importance
    weights (size,) float32, the uniform draw's probability over the mixture's, so a weighted
    mean over the draw estimates the mean over uniformly drawn windows (losses that must stay
    calibrated to the data's own rates use them). ``share`` 0 draws exactly as
    ``rng.integers(0, total, size)`` with unit weights."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), got {share}")
    if share == 0.0:
        return rng.integers(0, total, size=size), np.ones(size, dtype=np.float32)
    if len(favoured) == 0:
        raise ValueError("no favoured windows to draw a share from")
    from_favoured = rng.random(size) < share
    index = np.where(
        from_favoured,
        favoured[rng.integers(0, len(favoured), size=size)],
        rng.integers(0, total, size=size),
    )
    in_favoured = np.isin(index, favoured)
    mixture = (1.0 - share) / total + share * in_favoured / len(favoured)
    return index, ((1.0 / total) / mixture).astype(np.float32)
