"""Clip filters: real driving clips kept; a short, a frozen, a blank and a blurred clip each
dropped for its own reason; scores hand-checked; bad frames refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import ndimage

from wfm_sim.curation.filters import FilterConfig, clip_scores, drop_reason, validate_frames
from wfm_sim.curation.shots import ShotConfig, split_into_clips, true_cuts_from_ground_truth
from wfm_sim.data.footage import read_video


@pytest.fixture(scope="module")
def real_clips(tiny_footage: Path) -> list[np.ndarray]:
    """The tiny footage's clips of at least 8 frames, cut at its true episode boundaries."""
    clips = []
    for parquet in sorted(tiny_footage.glob("part-*.parquet")):
        frames = read_video(parquet.with_suffix(".mp4"))
        cuts = true_cuts_from_ground_truth(pq.read_table(parquet))
        for start, end in split_into_clips(len(frames), cuts, ShotConfig()):
            if end - start >= 8:
                clips.append(frames[start:end])
    assert len(clips) >= 2, "the tiny footage should hold clips of 8 frames or more"
    return clips


@pytest.fixture(scope="module")
def clip(real_clips: list[np.ndarray]) -> np.ndarray:
    """One real highway clip, (T >= 8, 64, 64, 3) uint8."""
    return real_clips[0]


def test_real_clips_are_kept(real_clips: list[np.ndarray]) -> None:
    for frames in real_clips:
        scores = clip_scores(frames)
        assert drop_reason(scores, FilterConfig()) is None, scores


def test_short_clip_is_dropped_as_too_short(clip: np.ndarray) -> None:
    assert drop_reason(clip_scores(clip[:3]), FilterConfig()) == "too short: 3 frames < 8"


def test_frozen_clip_is_dropped_as_static(clip: np.ndarray) -> None:
    frozen = np.repeat(clip[:1], len(clip), axis=0)
    scores = clip_scores(frozen)
    assert scores["motion"] == 0.0
    assert drop_reason(scores, FilterConfig()) == "static: motion 0.00 < 0.5"


def test_blank_clip_is_dropped_as_blank() -> None:
    # a flickering blank screen: each frame one colour, so it moves but shows nothing
    levels = np.arange(16, dtype=np.uint8)[:, None, None, None] * 8
    blank = np.broadcast_to(levels, (16, 64, 64, 3)).copy()
    reason = drop_reason(clip_scores(blank), FilterConfig())
    assert reason == "blank: pixel std 0.0 < 4.0"


def test_frozen_blank_clip_is_reported_static_first(clip: np.ndarray) -> None:
    grey = np.full_like(clip, 100)
    assert (drop_reason(clip_scores(grey), FilterConfig()) or "").startswith("static:")


def test_blurred_clip_is_dropped_as_blurred(clip: np.ndarray) -> None:
    blurred = ndimage.uniform_filter(clip, size=(1, 5, 5, 1))
    scores, sharp = clip_scores(blurred), clip_scores(clip)
    assert scores["sharpness"] < sharp["sharpness"] / 10
    reason = drop_reason(scores, FilterConfig())
    assert reason is not None and reason.startswith("blurred: sharpness ")
    assert reason.endswith(" < 1000.0")


def test_scores_hand_checked() -> None:
    two = np.zeros((2, 5, 5, 3), np.uint8)
    two[1] = 10
    assert clip_scores(two)["motion"] == pytest.approx(10.0)
    assert clip_scores(two[:1])["motion"] == 0.0
    halves = np.zeros((1, 4, 4, 3), np.uint8)
    halves[:, :, 2:] = 255
    assert clip_scores(halves)["pixel_std"] == pytest.approx(127.5, rel=1e-4)
    dot = np.zeros((1, 5, 5, 3), np.uint8)
    dot[0, 2, 2] = 255
    # Laplacian: -4*255 at the dot, 255 at its 4 neighbours, 0 elsewhere: mean 0, so
    # variance = (1020**2 + 4 * 255**2) / 25
    assert clip_scores(dot)["sharpness"] == pytest.approx(52020.0, rel=1e-4)
    assert clip_scores(dot)["frames"] == 1.0


def test_validate_frames_names_the_problem() -> None:
    validate_frames(np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        validate_frames(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        validate_frames(np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        validate_frames(np.zeros((2, 4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        validate_frames(np.zeros((0, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="numpy array"):
        validate_frames([[0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        clip_scores(np.zeros((2, 4, 4, 3), np.float64))


def test_drop_reason_needs_all_scores() -> None:
    with pytest.raises(ValueError, match="sharpness"):
        drop_reason({"frames": 10.0, "motion": 1.0, "pixel_std": 10.0}, FilterConfig())
