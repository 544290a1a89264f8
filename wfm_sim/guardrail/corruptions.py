"""Broken versions of real clips: what a failed generation looks like, to measure the video guard.

Each corruption takes a real clip ``(T, H, W, 3)`` uint8 and the frame ``start`` (>= 1, so the
clip opens on real frames as a generated continuation would) from which it goes wrong:

| name           | what happens from frame ``start`` on                                   |
|----------------|------------------------------------------------------------------------|
| ``tear``         | the right half of the scene slides vertically against the left half    |
| ``shuffle``      | frame ``start`` is cut into patches that are put back in random order   |
| ``noise``        | frame ``start`` is replaced by uniform noise                            |
| ``static_tear``  | like ``tear`` but from frame 0 (every frame torn the same way: no     |
|                |  change in time to see, only the tokenizer can tell)                   |
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def tear(frames: np.ndarray, start: int, rng: np.random.Generator) -> np.ndarray:
    """The right half slides 6..16 pixels up or down (wrapping) from frame ``start`` on."""
    out = frames.copy()
    half = frames.shape[2] // 2
    shift = int(rng.integers(6, 17)) * int(rng.choice([-1, 1]))
    out[start:, :, half:] = np.roll(frames[start:, :, half:], shift, axis=1)
    return out


def static_tear(frames: np.ndarray, start: int, rng: np.random.Generator) -> np.ndarray:
    """``tear`` applied to every frame (``start`` is ignored)."""
    return tear(frames, 0, rng)


def shuffle_patches(
    frames: np.ndarray, start: int, rng: np.random.Generator, patch: int = 16
) -> np.ndarray:
    """Frame ``start``'s ``patch`` x ``patch`` tiles in a random order (never the identity)."""
    out = frames.copy()
    _, height, width, channels = frames.shape
    rows, cols = height // patch, width // patch
    tiles = (
        frames[start, : rows * patch, : cols * patch]
        .reshape(rows, patch, cols, patch, channels)
        .transpose(0, 2, 1, 3, 4)
        .reshape(rows * cols, patch, patch, channels)
    )
    order = rng.permutation(rows * cols)
    while np.array_equal(order, np.arange(rows * cols)):
        order = rng.permutation(rows * cols)
    shuffled = (
        tiles[order]
        .reshape(rows, cols, patch, patch, channels)
        .transpose(0, 2, 1, 3, 4)
        .reshape(rows * patch, cols * patch, channels)
    )
    out[start, : rows * patch, : cols * patch] = shuffled
    return out


def noise(frames: np.ndarray, start: int, rng: np.random.Generator) -> np.ndarray:
    """Frame ``start`` replaced by uniform noise."""
    out = frames.copy()
    out[start] = rng.integers(0, 256, frames.shape[1:], dtype=np.uint8)
    return out


CORRUPTIONS: dict[str, Corruption] = {
    "tear": tear,
    "shuffle": shuffle_patches,
    "noise": noise,
    "static_tear": static_tear,
}
"""Every corruption by name (see the module docstring)."""
