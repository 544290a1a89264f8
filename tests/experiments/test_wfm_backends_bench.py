"""The backend bench's own measures: the ego-motion shift it reads from frame pairs, the
Fréchet distance between embedding sets, the pre-training gain table, and the synthetic-yield
bench skipping a backend that is not trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import envs.core
from experiments.bench import summarize, synthetic_yield
from experiments.bench.wfm_backends import ego_shifts, frechet_distance


def _scrolling_clip(rng: np.random.Generator, dy: int, dx: int, frames: int) -> np.ndarray:
    """A textured scene seen through a 48x48 window moving (dy, dx) pixels a frame."""
    scene = rng.integers(0, 256, (120, 120, 3)).astype(np.uint8)
    return np.stack(
        [scene[20 + t * dy : 68 + t * dy, 20 + t * dx : 68 + t * dx] for t in range(frames)]
    )


def test_ego_shifts_recover_a_known_scroll() -> None:
    # a window moving (dy, dx) over the scene moves the image content by (-dy, -dx)
    rng = np.random.default_rng(0)
    clips = np.stack([_scrolling_clip(rng, 0, 3, 5), _scrolling_clip(rng, 2, -1, 5)])
    shifts = ego_shifts(clips, max_shift=4)
    assert shifts.shape == (2, 4, 2)
    np.testing.assert_array_equal(shifts[0], np.tile([0.0, -3.0], (4, 1)))
    np.testing.assert_array_equal(shifts[1], np.tile([-2.0, 1.0], (4, 1)))


def test_ego_shifts_of_a_still_clip_are_zero() -> None:
    rng = np.random.default_rng(1)
    still = np.repeat(_scrolling_clip(rng, 0, 0, 1), 3, axis=0)[None]
    np.testing.assert_array_equal(ego_shifts(still), np.zeros((1, 2, 2)))


def test_frechet_distance_is_zero_for_the_same_set_and_the_mean_gap_for_a_shifted_one() -> None:
    rng = np.random.default_rng(2)
    a = rng.standard_normal((400, 6))
    assert abs(frechet_distance(a, a)) < 1e-6
    offset = np.array([1.0, -2.0, 0.0, 0.5, 0.0, 0.0])
    assert np.isclose(frechet_distance(a, a + offset), float(offset @ offset), atol=1e-6)
    assert frechet_distance(a, 3 * a) > frechet_distance(a, 1.5 * a) > 0


def _row(psnr: float, fd: float) -> dict[str, float]:
    return {
        "next_frame_psnr": psnr,
        "rollout16_psnr_mean": psnr - 2,
        "rollout16_ssim_mean": 0.5,
        "ego_shift_error_px": 2.0,
        "frechet_distance": fd,
    }


def test_pretraining_gain_is_pretrained_minus_scratch() -> None:
    backends = {
        "maskgit": _row(30.0, 0.0),
        "diffusion": _row(22.0, 0.3),
        "diffusion_scratch": _row(23.5, 0.1),
        "autoregressive": _row(25.0, 0.2),
    }
    lines = summarize._pretraining_gain(backends)
    rows = [line for line in lines if line.startswith("| diffusion")]
    assert rows == ["| diffusion | -1.50 dB | -1.50 dB | +0.000 | +0.00 | +0.200 |"]
    assert not any(line.startswith("| autoregressive") for line in lines)  # no scratch row
    assert summarize._pretraining_gain({"maskgit": _row(30.0, 0.0)}) == []


def test_synthetic_yield_lists_an_untrained_backend_without_running_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(envs.core, "POST_TRAIN_DIR", tmp_path / "post_train")
    result = synthetic_yield.measure(
        "episodes_diffusion",
        synthetic_yield.GENERATOR_OVERRIDES["episodes_diffusion"],
        2,
        tmp_path / "work",
    )
    assert result["trained"] is False and "make post-train" in result["why"]
    assert not (tmp_path / "work" / "episodes_diffusion").exists()


def test_synthetic_yield_lists_a_missing_diffusion_checkpoint_as_not_trained(
    tmp_path: Path,
) -> None:
    overrides = [
        *synthetic_yield.GENERATOR_OVERRIDES["text2world_diffusion"],
        f"diffusion.checkpoint={tmp_path / 'absent'}",
    ]
    result = synthetic_yield.measure("text2world_diffusion", overrides, 2, tmp_path / "work")
    assert result["trained"] is False and "make train-diffusion" in result["why"]
