"""The video guard: real footage passes; malformed, NaN, blank, corrupt and torn clips do not."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from wfm_sim.data.footage import read_episodes
from wfm_sim.guardrail import (
    VideoCalibrationConfig,
    VideoGuard,
    VideoGuardConfig,
    VideoGuardThresholds,
    calibrate_video_guard,
    evaluate_video_guard,
    read_refusal_log,
    reconstruction_errors,
    temporal_residuals,
)
from wfm_sim.guardrail.corruptions import CORRUPTIONS, noise, shuffle_patches, tear
from wfm_sim.guardrail.video_guard import shipped_thresholds_path
from world_models import WorldModel


@pytest.fixture(scope="module")
def real_clips(tiny_footage: Path) -> list[np.ndarray]:
    """Real highway footage recorded for the tests: one clip per episode, 64x64 uint8."""
    clips = [e.frames for e in read_episodes(tiny_footage) if len(e.frames) >= 4]
    assert len(clips) >= 4
    return clips


@pytest.fixture(scope="module")
def guard(driving_model: WorldModel) -> VideoGuard:
    """The guard with the thresholds shipped for the zoo's driving model."""
    return VideoGuard(VideoGuardConfig(world_model="driving"), model=driving_model)


def _with_thresholds(guard: VideoGuard, model: WorldModel, **changes: Any) -> VideoGuard:
    thresholds = dataclasses.replace(guard.thresholds, **changes)
    return VideoGuard(guard.config, model=model, thresholds=thresholds)


def test_real_footage_passes(guard: VideoGuard, real_clips: list[np.ndarray]) -> None:
    for clip in real_clips:
        decision = guard.check(clip)
        assert decision.allowed, decision.reason
        assert decision.score <= 1.0 and set(decision.scores) == {"reconstruction", "temporal"}


def test_float_frames_in_range_pass(
    guard: VideoGuard, driving_model: WorldModel, real_clips: list[np.ndarray]
) -> None:
    clip = real_clips[0]
    assert guard.check(clip.astype(np.float32) / 255.0).allowed
    assert guard.check(torch.from_numpy(clip)).allowed
    minus_one_to_one = VideoGuard(
        dataclasses.replace(guard.config, float_range=(-1.0, 1.0)),
        model=driving_model,
        thresholds=guard.thresholds,
    )
    assert minus_one_to_one.check(clip.astype(np.float32) / 127.5 - 1.0).allowed


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_frames_are_refused(
    guard: VideoGuard, real_clips: list[np.ndarray], bad: float
) -> None:
    clip = real_clips[0].astype(np.float32) / 255.0
    clip[2, 10, 20, 1] = bad
    decision = guard.check(clip)
    assert not decision.allowed and decision.stage == "finite"
    assert "[2]" in decision.reason


def test_floats_outside_their_range_are_refused(
    guard: VideoGuard, real_clips: list[np.ndarray]
) -> None:
    decision = guard.check(real_clips[0].astype(np.float32))  # 0..255 given as floats
    assert not decision.allowed and decision.stage == "finite" and "[0.0, 1.0]" in decision.reason


MALFORMED: list[Callable[[np.ndarray], Any]] = [
    lambda c: c[:, :32, :32],  # wrong resolution
    lambda c: c[..., 0],  # no channel axis
    lambda c: c[0],  # one frame without the time axis
    lambda c: c[:0],  # no frames
    lambda c: c.astype(np.int32),  # neither uint8 nor float
    lambda c: c.tolist(),  # not an array
]


@pytest.mark.parametrize("make", MALFORMED)
def test_malformed_arrays_are_refused(
    guard: VideoGuard, real_clips: list[np.ndarray], make: Callable[[np.ndarray], Any]
) -> None:
    decision = guard.check(make(real_clips[0]))
    assert not decision.allowed and decision.stage == "format"


def test_blank_frames_are_refused(guard: VideoGuard, real_clips: list[np.ndarray]) -> None:
    clip = real_clips[0].copy()
    clip[3] = 97
    clip[3, 0, 0] = 99  # near-constant, not exactly
    decision = guard.check(clip)
    assert not decision.allowed and decision.stage == "blank" and "[3]" in decision.reason


@pytest.mark.parametrize("value", [0, 255])
def test_all_black_or_saturated_frames_are_corrupt(
    guard: VideoGuard, real_clips: list[np.ndarray], value: int
) -> None:
    clip = real_clips[0].copy()
    clip[1:3] = value
    decision = guard.check(clip)
    assert not decision.allowed and decision.stage == "corrupt" and "[1, 2]" in decision.reason


@pytest.mark.parametrize("name", ["tear", "shuffle", "noise"])
def test_broken_scenes_are_refused(
    guard: VideoGuard, real_clips: list[np.ndarray], name: str
) -> None:
    rng = np.random.default_rng(0)
    for clip in real_clips:
        broken = CORRUPTIONS[name](clip, len(clip) // 2, rng)
        assert not np.array_equal(broken, clip)
        decision = guard.check(broken)
        assert not decision.allowed, f"{name}: {decision.reason}"
        assert decision.stage in ("tokenizer", "temporal") and decision.score > 1.0


def test_each_calibrated_score_refuses_on_its_own(
    guard: VideoGuard, driving_model: WorldModel, real_clips: list[np.ndarray]
) -> None:
    rng = np.random.default_rng(1)
    temporal_only = _with_thresholds(guard, driving_model, reconstruction=1e9)
    tokenizer_only = _with_thresholds(guard, driving_model, temporal=1e9)
    for clip in real_clips:
        assert temporal_only.check(clip).allowed and tokenizer_only.check(clip).allowed
        torn = tear(clip, len(clip) // 2, rng)
        decision = temporal_only.check(torn)
        assert not decision.allowed and decision.stage == "temporal"
        for broken in (noise(clip, 1, rng), shuffle_patches(clip, 1, rng)):
            decision = tokenizer_only.check(broken)
            assert not decision.allowed and decision.stage == "tokenizer"


def test_temporal_residual_forgives_camera_motion_only(real_clips: list[np.ndarray]) -> None:
    frame = real_clips[0][0]
    panned = np.stack([np.roll(frame, (2 * t, -3 * t), axis=(0, 1)) for t in range(4)])
    np.testing.assert_allclose(temporal_residuals(panned, max_shift=8), 0.0, atol=1e-6)
    assert (temporal_residuals(panned, max_shift=1) > 1.0).all()  # beyond the search
    assert temporal_residuals(panned[:1], max_shift=8).shape == (0,)


def test_reconstruction_errors_rank_real_below_noise(
    driving_model: WorldModel, real_clips: list[np.ndarray]
) -> None:
    clip = real_clips[0]
    errors = reconstruction_errors(driving_model.tokenizer, clip, batch_size=3)
    assert errors.shape == (len(clip),)
    np.testing.assert_allclose(errors, reconstruction_errors(driving_model.tokenizer, clip))
    noisy = np.random.default_rng(0).integers(0, 256, clip.shape, dtype=np.uint8)
    assert reconstruction_errors(driving_model.tokenizer, noisy).min() > 10 * errors.max()


def test_refusals_are_logged_with_the_clip_id(
    driving_model: WorldModel,
    real_clips: list[np.ndarray],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = tmp_path / "video_refusals.jsonl"
    guard = VideoGuard(VideoGuardConfig(log_path=str(log)), model=driving_model)
    with caplog.at_level(logging.WARNING, logger="wfm_sim.guardrail"):
        guard.check(real_clips[0], clip_id="ok")
        guard.check(noise(real_clips[0], 2, np.random.default_rng(0)), clip_id="clip-7")
    (record,) = read_refusal_log(log)
    assert record["clip_id"] == "clip-7" and record["guard"] == "video"
    assert record["stage"] == "tokenizer" and record["scores"]["reconstruction"] > 10
    assert len(caplog.records) == 1


def test_thresholds_of_another_tokenizer_are_refused(driving_model: WorldModel) -> None:
    thresholds = VideoGuardThresholds.load(shipped_thresholds_path("driving"))
    stale = dataclasses.replace(thresholds, tokenizer_sha256="0" * 64)
    with pytest.raises(ValueError, match="re-calibrate"):
        VideoGuard(model=driving_model, thresholds=stale)
    with pytest.raises(FileNotFoundError, match="calibrate"):
        VideoGuard(VideoGuardConfig(thresholds_path="/nonexistent.json"), model=driving_model)


def test_calibration_sets_thresholds_from_real_scores(
    driving_model: WorldModel, real_clips: list[np.ndarray], tmp_path: Path
) -> None:
    loosest = calibrate_video_guard(
        real_clips, model=driving_model, config=VideoCalibrationConfig(100.0, 1.0), progress=False
    )
    reconstruction = np.concatenate(
        [reconstruction_errors(driving_model.tokenizer, c) for c in real_clips]
    )
    temporal = np.concatenate([temporal_residuals(c, 8) for c in real_clips])
    assert loosest.reconstruction == pytest.approx(reconstruction.max())
    assert loosest.temporal == pytest.approx(temporal.max())
    assert loosest.calibration["frames"] == len(reconstruction)
    guard = VideoGuard(model=driving_model, thresholds=loosest)
    assert all(guard.check(c).allowed for c in real_clips)  # the max itself passes

    median = calibrate_video_guard(
        real_clips, model=driving_model, config=VideoCalibrationConfig(50.0, 1.0), progress=False
    )
    assert median.reconstruction == pytest.approx(np.median(reconstruction))
    strict = VideoGuard(model=driving_model, thresholds=median)
    assert not all(strict.check(c).allowed for c in real_clips)

    path = loosest.save(tmp_path / "thresholds.json")
    assert VideoGuardThresholds.load(path) == loosest
    with pytest.raises(ValueError, match="margin"):
        VideoCalibrationConfig(margin=0.9)


def test_evaluation_reports_pass_and_refusal_rates(
    guard: VideoGuard, real_clips: list[np.ndarray]
) -> None:
    report = evaluate_video_guard(
        guard, real_clips, np.random.default_rng(0), ("tear", "noise"), progress=False
    )
    assert set(report) == {"real", "tear", "noise"}
    assert report["real"] == {"clips": len(real_clips), "pass_rate": 1.0, "stages": {}}
    assert report["noise"]["refusal_rate"] == 1.0
    assert report["noise"]["stages"] == {"tokenizer": len(real_clips)}
    with pytest.raises(ValueError, match="unknown corruptions"):
        evaluate_video_guard(guard, real_clips, np.random.default_rng(0), ("melt",))


def test_shipped_thresholds_were_measured_on_held_out_footage() -> None:
    shipped = VideoGuardThresholds.load(shipped_thresholds_path("driving"))
    assert shipped.calibration["frames"] > 1000
    evaluation = shipped.evaluation
    assert evaluation["held_out_episodes"] == evaluation["real"]["clips"] > 0
    assert set(evaluation) >= {"real", "tear", "shuffle", "noise"}
