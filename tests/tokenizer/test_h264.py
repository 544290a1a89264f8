"""H.264 at a target rate: the bits it reports are the stream's, reachable targets are hit,
more bits buy more PSNR, and unreachable targets are reported, not hidden."""

from __future__ import annotations

import numpy as np
import pytest

from wfm_sim.tokenizer.h264 import RATE_TOLERANCE, h264_at_bpp, h264_encode
from wfm_sim.tokenizer.metrics import psnr


def _moving_scene(frames: int = 9, height: int = 32, width: int = 32) -> np.ndarray:
    """(T, H, W, 3) uint8: coloured stripes drifting right over light noise, like a road."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    video = []
    for t in range(frames):
        phase = 2 * np.pi * (x - 2 * t) / 11
        base = np.stack(
            [100 + 60 * np.sin(phase), 120 + 50 * np.cos(phase + y / 7), 90 + 40 * np.sin(y / 5)],
            axis=-1,
        )
        video.append(base + rng.normal(0, 6, base.shape))
    return np.clip(np.stack(video), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return _moving_scene()


def test_round_trip_keeps_shape_and_reports_stream_bits(scene: np.ndarray) -> None:
    frames, achieved = h264_at_bpp(scene, 0.5)
    assert frames.shape == scene.shape and frames.dtype == np.uint8
    assert achieved == pytest.approx(0.5, rel=RATE_TOLERANCE)
    assert psnr(scene, frames) > 25


@pytest.mark.parametrize("target", [0.2, 1.0])
def test_reachable_targets_are_hit_within_tolerance(scene: np.ndarray, target: float) -> None:
    result = h264_encode(scene, target, pixel_format="yuv420p")
    assert result.on_target
    assert abs(result.bits_per_pixel / target - 1) <= RATE_TOLERANCE
    # The mp4 file holds the same stream plus container headers.
    assert result.file_bits_per_pixel > result.bits_per_pixel


def test_more_bits_buy_more_psnr(scene: np.ndarray) -> None:
    low = h264_encode(scene, 0.15, pixel_format="yuv444p")
    high = h264_encode(scene, 0.8, pixel_format="yuv444p")
    assert high.bits_per_pixel > low.bits_per_pixel
    assert high.psnr > low.psnr + 2
    assert high.psnr == pytest.approx(psnr(scene, high.frames))


def test_unreachable_target_reports_what_qp_51_needs(scene: np.ndarray) -> None:
    result = h264_encode(scene, 0.001, pixel_format="yuv420p")
    assert not result.on_target
    assert result.bits_per_pixel > 0.001
    assert result.qp >= 49 and result.frames.shape == scene.shape


def test_odd_sizes_are_not_resized() -> None:
    clip = _moving_scene(frames=3, height=15, width=21)
    result = h264_encode(clip, 1.0)
    assert result.frames.shape == clip.shape
    assert result.pixel_format == "yuv444p"  # 4:2:0 needs even sides


def test_bad_inputs_say_what_is_wrong(scene: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        h264_encode(scene.astype(np.float32), 0.1)
    with pytest.raises(ValueError, match="positive"):
        h264_encode(scene, 0.0)
    with pytest.raises(ValueError, match="even"):
        h264_encode(_moving_scene(3, 15, 21), 0.1, pixel_format="yuv420p")
