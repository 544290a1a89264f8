"""Clip quality filters: score each clip's frames and decide keep or drop, with a reason.

A world model learns nothing from a clip that is too short to hold a transition, that does
not move (a frozen encoder), that shows one flat colour (a black or blank render) or that is
blurred (a bad resize or encode). Each check is a number from ``clip_scores`` and a threshold
in ``FilterConfig``; ``drop_reason`` names the first failed check in words, so the catalog
says why every dropped clip went.

Corrupt clips (mp4s that do not decode) never get here: the caller catches
``CorruptFootageError`` from reading and drops them as corrupt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R 601 luma weights: RGB -> grey."""

_LAPLACIAN = np.array([[[0, 1, 0], [1, -4, 1], [0, 1, 0]]], dtype=np.float32)
"""The 3x3 Laplacian, applied to each frame on its own: (1, 3, 3) over (T, H, W)."""


@dataclass
class FilterConfig:
    """Thresholds below which a clip is dropped.

    Tuned on the driving footage (64x64): its real clips score motion >= 1.5, pixel std ~36
    and sharpness >= 10,000, while a repeated frame scores motion 0, a one-colour clip pixel
    std 0 and the same clips box-blurred (5x5) sharpness <= 310 (<= 410 at 48x64). Copies
    resized to 48..96 pixels keep sharpness >= 1,500; 2x upscales (~560) count as blurred.
    """

    min_frames: int = 8
    """Fewer frames are too short to train on."""
    min_motion: float = 0.5
    """Mean absolute difference between consecutive frames (0..255) below this is static."""
    min_pixel_std: float = 4.0
    """Grey-level standard deviation within a frame (0..255), averaged, below this is blank."""
    min_sharpness: float = 1000.0
    """Variance of the grey image's Laplacian (0..255 scale), averaged, below this is blurred."""


def validate_frames(frames: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``frames`` is a non-empty (T, H, W, 3) uint8 array."""
    if not isinstance(frames, np.ndarray):
        raise ValueError(
            f"frames must be a numpy array (T, H, W, 3) uint8, got {type(frames).__name__}"
        )
    if frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8 (0..255), got {frames.dtype}; convert with "
            "np.clip(x * 255, 0, 255).astype(np.uint8) for floats in [0, 1]"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got {frames.shape}")
    if 0 in frames.shape:
        raise ValueError(f"frames must not be empty, got shape {frames.shape}")


def clip_scores(frames: np.ndarray) -> dict[str, float]:
    """Quality scores of one clip.

    ``frames``: (T, H, W, 3) uint8. Returns ``frames`` (T), ``motion`` (mean absolute
    difference between consecutive frames, 0..255; 0 for one frame), ``pixel_std`` (grey
    standard deviation within each frame, averaged over frames: ~0 for a blank clip) and
    ``sharpness`` (variance of the Laplacian of each grey frame, averaged: low when blurred).
    """
    validate_frames(frames)
    pixels = frames.astype(np.float32)
    grey = pixels @ _GREY  # (T, H, W)
    motion = float(np.abs(np.diff(pixels, axis=0)).mean()) if len(frames) > 1 else 0.0
    pixel_std = float(grey.reshape(len(grey), -1).std(axis=1).mean())
    laplacian = ndimage.correlate(grey, _LAPLACIAN, mode="reflect")
    sharpness = float(laplacian.reshape(len(grey), -1).var(axis=1).mean())
    return {
        "frames": float(len(frames)),
        "motion": motion,
        "pixel_std": pixel_std,
        "sharpness": sharpness,
    }


def drop_reason(scores: dict[str, float], config: FilterConfig) -> str | None:
    """``None`` to keep the clip, else why it is dropped: the first failed check of too short,
    static, blank and blurred, e.g. ``"static: motion 0.01 < 0.5"``.

    ``scores`` as ``clip_scores`` returns them. The word before the colon is the kind of drop,
    for counting.
    """
    missing = {"frames", "motion", "pixel_std", "sharpness"} - set(scores)
    if missing:
        raise ValueError(f"scores lack {sorted(missing)}; compute them with clip_scores(frames)")
    if scores["frames"] < config.min_frames:
        return f"too short: {int(scores['frames'])} frames < {config.min_frames}"
    if scores["motion"] < config.min_motion:
        return f"static: motion {scores['motion']:.2f} < {config.min_motion}"
    if scores["pixel_std"] < config.min_pixel_std:
        return f"blank: pixel std {scores['pixel_std']:.1f} < {config.min_pixel_std}"
    if scores["sharpness"] < config.min_sharpness:
        return f"blurred: sharpness {scores['sharpness']:.1f} < {config.min_sharpness}"
    return None
