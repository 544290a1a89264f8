"""Shot boundaries: cuts found exactly at the tiny footage's episode boundaries and nowhere
inside an episode, each cue fires on the jump it is for, clips bounded and covering, scores
hand-checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wfm_sim.curation.shots import (
    ShotConfig,
    cut_evidence,
    cut_precision_recall,
    detect_cuts,
    split_into_clips,
    true_cuts_from_ground_truth,
)
from wfm_sim.data.footage import read_video

Part = tuple[np.ndarray, pa.Table, np.ndarray]
"""(frames, ground truth, detected cuts) of one footage part."""


@pytest.fixture(scope="module")
def parts(tiny_footage: Path) -> list[Part]:
    """Every part of the tiny footage with the cuts detected in it (default config)."""
    out = []
    for parquet in sorted(tiny_footage.glob("part-*.parquet")):
        frames = read_video(parquet.with_suffix(".mp4"))
        out.append((frames, pq.read_table(parquet), detect_cuts(frames, ShotConfig())))
    return out


@pytest.fixture(scope="module")
def episodes(parts: list[Part]) -> list[np.ndarray]:
    """The frames of each episode of the tiny footage, cut by the ground truth."""
    out = []
    for frames, truth, _ in parts:
        episode = truth.column("episode").to_numpy()
        out += [frames[episode == e] for e in np.unique(episode)]
    return out


@pytest.fixture(scope="module")
def long_episode(episodes: list[np.ndarray]) -> np.ndarray:
    """The longest episode of the tiny footage: smooth driving, no cut inside."""
    frames = max(episodes, key=len)
    assert len(frames) >= 12, "tiny footage should hold an episode of at least 12 frames"
    return frames


def test_cuts_found_exactly_at_episode_boundaries(parts: list[Part]) -> None:
    total = 0
    for _, truth, detected in parts:
        true_cuts = true_cuts_from_ground_truth(truth)
        total += len(true_cuts)
        np.testing.assert_array_equal(detected, true_cuts)
        scores = cut_precision_recall(detected, true_cuts, tolerance=0)
        assert scores["precision"] == scores["recall"] == 1.0
        assert detected.dtype == np.int64
    assert total >= 2, "the tiny footage should hold episode boundaries to find"


def test_crash_frame_is_not_a_cut(parts: list[Part]) -> None:
    crashes = 0
    for _, truth, detected in parts:
        crashed = truth.column("crashed").to_numpy()
        for cut in true_cuts_from_ground_truth(truth):
            if crashed[cut - 1]:  # the red, overlapping last frame of a crashed episode
                crashes += 1
                assert cut - 1 not in detected and cut in detected
    assert crashes >= 1, "the tiny footage should hold a crash"


def test_no_cut_inside_an_episode(episodes: list[np.ndarray]) -> None:
    for frames in episodes:
        if len(frames) >= 2:
            assert detect_cuts(frames, ShotConfig()).size == 0


def test_appearance_cue_fires_on_a_new_palette(long_episode: np.ndarray) -> None:
    half = len(long_episode) // 2
    frames = np.concatenate([long_episode[:half], 255 - long_episode[half:]])
    evidence = cut_evidence(frames, ShotConfig())
    assert np.flatnonzero(evidence["appearance"]).tolist() == [half - 1]
    assert detect_cuts(frames, ShotConfig()).tolist() == [half]


def test_pan_cue_fires_when_the_background_jumps(long_episode: np.ndarray) -> None:
    half = len(long_episode) // 2
    frames = long_episode.copy()
    frames[half:] = np.roll(long_episode[half:], 16, axis=1)  # the road jumps 16 of 64 rows
    evidence = cut_evidence(frames, ShotConfig())
    assert np.flatnonzero(evidence["pan"]).tolist() == [half - 1]
    assert detect_cuts(frames, ShotConfig()).tolist() == [half]


def test_objects_cue_fires_when_a_car_appears_mid_frame(long_episode: np.ndarray) -> None:
    start = 2 * len(long_episode) // 3  # on screen in under half the frames: not the subject
    frames = long_episode.copy()
    frames[start:, 8:10, 28:36] = (100, 200, 255)  # a blue car out of nowhere, far from edges
    evidence = cut_evidence(frames, ShotConfig())
    assert np.flatnonzero(evidence["objects"]).tolist() == [start - 1]
    assert detect_cuts(frames, ShotConfig()).tolist() == [start]


def test_time_limit_prior_adds_cuts_only_where_shots_run_too_long(
    long_episode: np.ndarray, parts: list[Part]
) -> None:
    limit = 5
    expected = list(range(limit, len(long_episode), limit))
    found = detect_cuts(long_episode, ShotConfig(max_shot_frames=limit))
    assert found.tolist() == expected
    frames, _, detected = parts[0]
    loose = detect_cuts(frames, ShotConfig(max_shot_frames=len(frames)))
    np.testing.assert_array_equal(loose, detected)


def test_detect_cuts_rejects_bad_frames() -> None:
    with pytest.raises(ValueError, match="uint8"):
        detect_cuts(np.zeros((4, 8, 8, 3), np.float32), ShotConfig())
    with pytest.raises(ValueError, match="shape"):
        detect_cuts(np.zeros((4, 8, 8), np.uint8), ShotConfig())
    assert detect_cuts(np.zeros((1, 8, 8, 3), np.uint8), ShotConfig()).size == 0


def test_split_into_clips_bounded_even_and_covering() -> None:
    config = ShotConfig(min_clip_frames=8, max_clip_frames=32)
    clips = split_into_clips(100, np.array([30, 90]), config)
    assert clips == [(0, 30), (30, 60), (60, 90), (90, 100)]
    for num_frames, cuts in [(200, []), (97, [3, 40, 41]), (65, [33]), (1, [])]:
        clips = split_into_clips(num_frames, np.array(cuts, dtype=np.int64), config)
        assert clips[0][0] == 0 and clips[-1][1] == num_frames
        assert all(a[1] == b[0] for a, b in zip(clips[:-1], clips[1:], strict=True))
        assert all(0 < end - start <= 32 for start, end in clips)
        assert set(cuts) <= {start for start, _ in clips}
    lengths = [end - start for start, end in split_into_clips(200, np.array([], np.int64), config)]
    assert len(lengths) == 7 and max(lengths) - min(lengths) <= 1  # even pieces, no tiny tail
    # a 3-frame shot is returned as it is (filtering drops it, with the reason)
    assert split_into_clips(97, np.array([3, 30]), config)[:2] == [(0, 3), (3, 30)]


def test_split_into_clips_rejects_cuts_outside_the_footage() -> None:
    config = ShotConfig()
    with pytest.raises(ValueError, match="1..9"):
        split_into_clips(10, np.array([0]), config)
    with pytest.raises(ValueError, match="1..9"):
        split_into_clips(10, np.array([10]), config)
    assert split_into_clips(10, np.array([5, 5, 2]), config) == [(0, 2), (2, 5), (5, 10)]
    assert split_into_clips(0, np.array([], np.int64), config) == []


def test_precision_recall_hand_checked() -> None:
    detected, truth = np.array([10, 20, 31, 50]), np.array([10, 21, 30, 40])
    exact = cut_precision_recall(detected, truth, tolerance=0)
    assert (exact["tp"], exact["fp"], exact["fn"]) == (1, 3, 3)
    assert exact["precision"] == exact["recall"] == exact["f1"] == 0.25
    near = cut_precision_recall(detected, truth, tolerance=1)
    assert (near["tp"], near["fp"], near["fn"]) == (3, 1, 1)
    assert near["precision"] == near["recall"] == pytest.approx(0.75)


def test_precision_recall_matches_one_to_one() -> None:
    two_for_one = cut_precision_recall(np.array([10, 11]), np.array([10]), tolerance=1)
    assert (two_for_one["tp"], two_for_one["fp"], two_for_one["fn"]) == (1, 1, 0)
    one_for_two = cut_precision_recall(np.array([10]), np.array([9, 11]), tolerance=1)
    assert (one_for_two["tp"], one_for_two["fp"], one_for_two["fn"]) == (1, 0, 1)
    chain = cut_precision_recall(np.array([6, 7]), np.array([5, 6]), tolerance=1)
    assert chain["tp"] == 2
    nothing = cut_precision_recall(np.array([]), np.array([3]))
    assert (nothing["precision"], nothing["recall"], nothing["f1"]) == (1.0, 0.0, 0.0)
    assert cut_precision_recall(np.array([]), np.array([]))["f1"] == 1.0
    with pytest.raises(ValueError, match="tolerance"):
        cut_precision_recall(np.array([1]), np.array([1]), tolerance=-1)


def test_true_cuts_from_ground_truth() -> None:
    table = pa.table({"frame": [0, 1, 2, 3, 4, 5], "episode": [7, 7, 8, 8, 8, 9]})
    assert true_cuts_from_ground_truth(table).tolist() == [2, 5]
    shuffled = table.take([5, 0, 3, 1, 4, 2])
    assert true_cuts_from_ground_truth(shuffled).tolist() == [2, 5]
    with pytest.raises(ValueError, match="episode"):
        true_cuts_from_ground_truth(pa.table({"frame": [0, 1]}))


def test_config_rejects_impossible_clip_bounds() -> None:
    with pytest.raises(ValueError, match="min_clip_frames"):
        ShotConfig(min_clip_frames=40, max_clip_frames=32)
