"""Reconstruction and codebook metrics for the tokenizers: PSNR, SSIM, codebook usage.

PSNR and SSIM compare two uint8 videos frame by frame and average the per-frame values, so a
short clip and a long one weigh by their frames, and one perfect frame cannot make the mean
infinite. Both take any leading shape: a frame (H, W, 3), a video (T, H, W, 3) or a batch
(B, T, H, W, 3).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

PSNR_CAP_DB = 100.0
"""The PSNR of a frame reconstructed exactly. It lies above the PSNR of any imperfect 8-bit frame
of up to ~224×224 pixels (one grey level off in one channel of one pixel of a 64×64 frame is
~89 dB), so a capped frame is unmistakable and the mean stays finite."""

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

_SSIM_CHUNK_FRAMES = 256


def _frames(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> tuple[np.ndarray, ...]:
    """Both videos as (N, H, W, 3) uint8 numpy arrays, checked to match."""
    x = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    y = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise ValueError(
            f"PSNR/SSIM take uint8 frames (0..255), got {x.dtype} and {y.dtype}; convert floats "
            "in [-1, 1] with ((x + 1) * 127.5).round().clip(0, 255).astype(np.uint8)"
        )
    if x.shape != y.shape:
        raise ValueError(f"videos differ in shape: {x.shape} and {y.shape}")
    if x.ndim < 3 or x.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (..., H, W, 3), got {x.shape}")
    return x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:])


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Mean over frames of each frame's PSNR in dB (peak 255, MSE over its pixels and RGB
    channels); a frame reconstructed exactly counts as ``PSNR_CAP_DB``.

    a, b: (..., H, W, 3) uint8 of the same shape.
    """
    x, y = _frames(a, b)
    diff = x.astype(np.float64) - y.astype(np.float64)
    mse = (diff * diff).reshape(len(x), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        per_frame = 10.0 * np.log10(255.0**2 / mse)
    return float(np.minimum(per_frame, PSNR_CAP_DB).mean())


def _gaussian_window() -> torch.Tensor:
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    window = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    return window / window.sum()


def _ssim_per_frame(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) SSIM of each frame of (N, H, W, 3) uint8 pairs, the mean over RGB channels."""
    n, height, width, channels = x.shape
    window = _gaussian_window()
    rows, cols = window.view(1, 1, -1, 1), window.view(1, 1, 1, -1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(torch.nn.functional.conv2d(t, rows), cols)

    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2

    def planes(v: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(v)).to(torch.float64)
        return t.permute(0, 3, 1, 2).reshape(-1, 1, height, width)

    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, _SSIM_CHUNK_FRAMES):
        stop = min(n, start + _SSIM_CHUNK_FRAMES)
        p, q = planes(x[start:stop]), planes(y[start:stop])
        mu_p, mu_q = blur(p), blur(q)
        var_p = blur(p * p) - mu_p**2
        var_q = blur(q * q) - mu_q**2
        cov = blur(p * q) - mu_p * mu_q
        ssim_map = ((2 * mu_p * mu_q + c1) * (2 * cov + c2)) / (
            (mu_p**2 + mu_q**2 + c1) * (var_p + var_q + c2)
        )
        per_plane = ssim_map.mean(dim=(1, 2, 3)).view(stop - start, channels)
        out[start:stop] = per_plane.mean(dim=1).numpy()
    return out


def ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Mean over frames of each frame's SSIM (Wang et al. 2004), averaged over the R, G and B
    channels (not on luma).

    Standard constants: an 11×11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, dynamic
    range 255, population (not sample) statistics, and the SSIM map taken only where the window
    fits inside the frame ("valid"), then averaged. This equals scikit-image's
    ``structural_similarity(..., channel_axis=-1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)``.

    a, b: (..., H, W, 3) uint8 of the same shape, H and W at least 11.
    """
    x, y = _frames(a, b)
    if min(x.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs frames of at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels, got "
            f"{x.shape[1]}×{x.shape[2]}"
        )
    return float(_ssim_per_frame(x, y).mean())


@dataclass(frozen=True)
class CodebookUsage:
    """How much of a discrete codebook a set of codes uses.

    ``used_fraction``: distinct codes seen / codebook size. ``perplexity``: exp of the entropy
    of the empirical code distribution, the number of equally likely codes it is worth (1 when
    one code is used, ``codebook_size`` when all are used equally often).
    """

    codebook_size: int
    used: int
    used_fraction: float
    perplexity: float
    tokens: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def codebook_usage(indices: np.ndarray | torch.Tensor, codebook_size: int) -> CodebookUsage:
    """Usage of a codebook of ``codebook_size`` codes by ``indices`` (any shape, integers in
    [0, codebook_size))."""
    values = indices.detach().cpu().numpy() if isinstance(indices, torch.Tensor) else indices
    flat = np.asarray(values).reshape(-1)
    if codebook_size < 1:
        raise ValueError(f"codebook_size must be at least 1, got {codebook_size}")
    if flat.size == 0:
        raise ValueError("codebook_usage needs at least one index")
    if not np.issubdtype(flat.dtype, np.integer):
        raise ValueError(f"indices must be integers, got {flat.dtype}")
    if flat.min() < 0 or flat.max() >= codebook_size:
        raise ValueError(
            f"indices span [{flat.min()}, {flat.max()}], outside the codebook [0, {codebook_size})"
        )
    counts = np.bincount(flat.astype(np.int64), minlength=codebook_size)
    p = counts[counts > 0] / flat.size
    entropy = float(-(p * np.log(p)).sum())
    used = int((counts > 0).sum())
    return CodebookUsage(
        codebook_size=codebook_size,
        used=used,
        used_fraction=used / codebook_size,
        perplexity=math.exp(entropy),
        tokens=int(flat.size),
    )
