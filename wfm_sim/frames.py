"""Frame geometry shared by the recorder, curation and training: resize (and crop) video frames."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def parse_resolution(text: str) -> tuple[int, int]:
    """``"48x64"`` -> ``(48, 64)`` (height, width); a clear error for anything else."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise ValueError(
            f"resolution {text!r} is not of the form HEIGHTxWIDTH, e.g. '48x64'"
        ) from error
    if height <= 0 or width <= 0:
        raise ValueError(f"resolution {text!r} must be positive")
    return height, width


def center_crop_to_aspect(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """The largest centred crop of ``frames`` (T, H, W, C) with the aspect ratio ``width/height``."""
    _, h, w, _ = frames.shape
    if w * height > h * width:  # too wide: crop columns
        new_w = max(1, round(h * width / height))
        left = (w - new_w) // 2
        return frames[:, :, left : left + new_w]
    new_h = max(1, round(w * height / width))
    top = (h - new_h) // 2
    return frames[:, top : top + new_h]


def resize_frames(frames: np.ndarray, height: int, width: int, crop: bool = True) -> np.ndarray:
    """Resize ``frames`` (T, H, W, 3) uint8 to (T, height, width, 3) uint8.

    With ``crop`` the frames are first centre-cropped to the target aspect ratio, so nothing is
    stretched. Downscaling is antialiased (bilinear with a low-pass), as a camera at that
    resolution would see.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if crop:
        frames = center_crop_to_aspect(frames, height, width)
    if frames.shape[1:3] == (height, width):
        return np.ascontiguousarray(frames)
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    resized = F.interpolate(pixels, size=(height, width), mode="bilinear", antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


COLOUR_SPREAD = 40
"""Channel spread (0-255) above which a pixel counts as coloured rather than grey:
highway-env draws the road, its marks and the verge in greys and every vehicle in colour."""


def coloured_patches(frames: torch.Tensor, side: int) -> torch.Tensor:
    """Which of the side x side patches of ``frames`` (B, H, W, 3) uint8 hold a coloured pixel
    (its channels more than ``COLOUR_SPREAD`` apart): (B, side, side) bool, True over cars."""
    channels = frames.float()
    coloured = (channels.amax(dim=-1) - channels.amin(dim=-1) > COLOUR_SPREAD).float()
    patch = coloured.shape[-1] // side
    return F.max_pool2d(coloured[:, None], patch)[:, 0] > 0
