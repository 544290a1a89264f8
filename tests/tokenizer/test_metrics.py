"""Tokenizer metrics against hand-computed values: PSNR from a known MSE, SSIM from its
closed form and a slow window-by-window reference, codebook usage of known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wfm_sim.tokenizer.metrics import PSNR_CAP_DB, codebook_usage, psnr, ssim

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _noise_video(seed: int, shape: tuple[int, ...] = (3, 16, 16, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _reference_ssim_frame(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of one (H, W, 3) frame written out window by window (Wang et al. 2004)."""
    offsets = np.arange(11) - 5.0
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    weights = np.outer(g, g) / np.outer(g, g).sum()
    values = []
    for c in range(3):
        a, b = x[..., c].astype(np.float64), y[..., c].astype(np.float64)
        for i in range(a.shape[0] - 10):
            for j in range(a.shape[1] - 10):
                pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
                ma, mb = (weights * pa).sum(), (weights * pb).sum()
                va = (weights * (pa - ma) ** 2).sum()
                vb = (weights * (pb - mb) ** 2).sum()
                cov = (weights * (pa - ma) * (pb - mb)).sum()
                values.append(
                    (2 * ma * mb + C1) * (2 * cov + C2) / ((ma**2 + mb**2 + C1) * (va + vb + C2))
                )
    return float(np.mean(values))


def test_identical_videos_give_the_psnr_cap_and_ssim_one() -> None:
    video = _noise_video(0)
    assert psnr(video, video) == PSNR_CAP_DB
    assert ssim(video, video) == pytest.approx(1.0, abs=1e-12)


def test_psnr_of_a_known_mse() -> None:
    a = np.full((2, 8, 8, 3), 100, np.uint8)
    b = a + np.uint8(5)  # MSE 25 on every frame
    expected = 10 * math.log10(255**2 / 25)
    assert psnr(a, b) == pytest.approx(expected)
    assert psnr(a, b) == pytest.approx(34.151, abs=1e-3)


def test_psnr_averages_per_frame_and_caps_exact_frames() -> None:
    a = np.full((2, 8, 8, 3), 100, np.uint8)
    b = a.copy()
    b[1, :, :, 0] = 110  # frame 1: MSE 100 / 3 over its pixels and channels
    frame1 = 10 * math.log10(255**2 / (100 / 3))
    assert psnr(a, b) == pytest.approx((PSNR_CAP_DB + frame1) / 2)


def test_ssim_of_constant_frames_is_the_luminance_term() -> None:
    a = np.full((1, 16, 16, 3), 100, np.uint8)
    b = np.full((1, 16, 16, 3), 120, np.uint8)
    expected = (2 * 100 * 120 + C1) / (100**2 + 120**2 + C1)  # no variance, no covariance
    assert ssim(a, b) == pytest.approx(expected, rel=1e-9)


def test_ssim_of_a_constant_shift_keeps_structure_and_costs_luminance() -> None:
    a = np.random.default_rng(1).integers(40, 200, size=(1, 11, 11, 3), dtype=np.uint8)
    b = a + np.uint8(30)
    # One window: equal variances, covariance = variance, so only the luminance term is left.
    offsets = np.arange(11) - 5.0
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    mu = (w[..., None] * a[0].astype(np.float64)).sum(axis=(0, 1))
    expected = np.mean((2 * mu * (mu + 30) + C1) / (mu**2 + (mu + 30) ** 2 + C1))
    assert ssim(a, b) == pytest.approx(expected, rel=1e-9)
    assert ssim(a, b) < 1


def test_ssim_matches_the_window_by_window_reference() -> None:
    a = _noise_video(2, (2, 15, 14, 3))
    b = np.clip(a.astype(int) + np.random.default_rng(3).integers(-40, 40, a.shape), 0, 255)
    b = b.astype(np.uint8)
    expected = np.mean([_reference_ssim_frame(a[t], b[t]) for t in range(2)])
    assert ssim(a, b) == pytest.approx(expected, rel=1e-9)
    assert ssim(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-9)


def test_ssim_matches_scikit_image_when_installed() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    a = _noise_video(4, (1, 32, 32, 3))
    b = np.clip(a.astype(int) + 25, 0, 255).astype(np.uint8)
    expected = metrics.structural_similarity(
        a[0],
        b[0],
        channel_axis=-1,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim(a, b) == pytest.approx(expected, rel=1e-6)


def test_batches_average_over_all_frames() -> None:
    a, b = _noise_video(5, (2, 3, 16, 16, 3)), _noise_video(6, (2, 3, 16, 16, 3))
    flat_a, flat_b = a.reshape(6, 16, 16, 3), b.reshape(6, 16, 16, 3)
    assert psnr(a, b) == pytest.approx(
        np.mean([psnr(x, y) for x, y in zip(flat_a, flat_b, strict=True)])
    )
    assert ssim(a, b) == pytest.approx(
        np.mean([ssim(x, y) for x, y in zip(flat_a, flat_b, strict=True)])
    )


def test_bad_inputs_say_what_is_wrong() -> None:
    video = _noise_video(7)
    with pytest.raises(ValueError, match="uint8"):
        psnr(video.astype(np.float32), video.astype(np.float32))
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(video, video[:2])
    with pytest.raises(ValueError, match="at least 11"):
        ssim(video[:, :8, :8], video[:, :8, :8])


def test_codebook_usage_of_known_distributions() -> None:
    uniform = codebook_usage(np.arange(16).repeat(3), 16)
    assert uniform.used == 16 and uniform.used_fraction == 1.0
    assert uniform.perplexity == pytest.approx(16)

    single = codebook_usage(torch.full((2, 5, 4, 4), 7, dtype=torch.int64), 1000)
    assert single.used == 1 and single.used_fraction == 1 / 1000
    assert single.perplexity == pytest.approx(1.0) and single.tokens == 160

    skewed = codebook_usage(np.array([0, 1, 1, 1]), 8)  # p = (1/4, 3/4)
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert skewed.used_fraction == 2 / 8
    assert skewed.perplexity == pytest.approx(math.exp(entropy))
    assert set(skewed.to_dict()) == {
        "codebook_size",
        "used",
        "used_fraction",
        "perplexity",
        "tokens",
    }


def test_codebook_usage_rejects_out_of_range_indices() -> None:
    with pytest.raises(ValueError, match="outside the codebook"):
        codebook_usage(np.array([0, 8]), 8)
