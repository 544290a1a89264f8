"""Captions: crashes named iff they happen, lane changes named, traffic counted from pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wfm_sim.curation.captions import (
    Captioner,
    MetadataCaptioner,
    caption_clips,
    observe_frame,
)
from wfm_sim.curation.clips import Clip, ClipSpan
from wfm_sim.data.footage import read_video

ROAD, WHITE, OUTLINE = (100, 100, 100), (255, 255, 255), (60, 60, 60)
GREEN, BLUE, RED = (50, 200, 0), (100, 200, 255), (255, 100, 100)
LANE_TOPS = (23, 29, 35, 41)
"""Rows of the four lane lines of a synthetic 3-lane road 6 px per lane, as highway-env draws it."""


def _car(frame: np.ndarray, row: int, col: int, colour: tuple[int, int, int]) -> None:
    """A highway-env car: a 7x3 dark outline around a 5x1 coloured body centred at (row, col)."""
    frame[row - 1 : row + 2, col - 3 : col + 4] = OUTLINE
    frame[row, col - 2 : col + 3] = colour


def _frame(
    others: list[tuple[int, int]] = (),  # type: ignore[assignment]
    ego_lane: int = 1,
    crashed: bool = False,
) -> np.ndarray:
    """A synthetic 64x64 frame: ego car in ``ego_lane`` at row 32, other cars at (row, col)."""
    frame = np.full((64, 64, 3), ROAD, np.uint8)
    shift = 32 - (LANE_TOPS[ego_lane] + 3)  # the camera follows the ego car
    for row in LANE_TOPS:
        frame[row + shift, :] = WHITE
    _car(frame, 32, 16, RED if crashed else GREEN)
    for row, col in others:
        _car(frame, row, col, BLUE)
    return frame


def _clip(frames: np.ndarray, table: pa.Table | None = None, start: int = 0) -> Clip:
    span = ClipSpan("test", 0, start, start + len(frames), frames.shape[1], frames.shape[2])
    return Clip(span, frames, table if table is not None else pa.table({}))


def _truth(lane: list[int], speed: list[float], crashed: list[bool]) -> pa.Table:
    n = len(lane)
    return pa.table(
        {
            "episode": [0] * n,
            "step": list(range(n)),
            "action": [1] * (n - 1) + [-1],
            "crashed": crashed,
            "speed": speed,
            "lane": lane,
        }
    )


def _episode_clips(footage: Path) -> list[tuple[Clip, bool, bool]]:
    """(clip, crashed, lane changed) for every episode of a footage folder."""
    clips = []
    for parquet in sorted(footage.glob("part-*.parquet")):
        table = pq.read_table(parquet)
        frames = read_video(parquet.with_suffix(".mp4"))
        episodes = table.column("episode").to_numpy()
        for episode in np.unique(episodes):
            rows = np.flatnonzero(episodes == episode)
            start, end = int(rows[0]), int(rows[-1]) + 1
            truth = table.slice(start, end - start)
            lanes = truth.column("lane").to_numpy()
            crashed = bool(truth.column("crashed").to_numpy().any())
            clips.append(
                (_clip(frames[start:end], truth, start), crashed, bool(np.any(np.diff(lanes))))
            )
    return clips


def test_observe_frame_counts_the_cars_drawn() -> None:
    lane_centres = (26, 32, 38)
    for n in range(7):
        others = [(lane_centres[i % 3], 30 + 12 * (i // 3)) for i in range(n)]
        obs = observe_frame(_frame(others=others))
        assert obs.others == n
        assert obs.ego_row == pytest.approx(32) and obs.ego_col == pytest.approx(16)
        assert not obs.ego_crashed


def test_observe_frame_reads_the_lane_and_a_crash() -> None:
    for lane in range(3):
        obs = observe_frame(_frame(ego_lane=lane))
        assert (obs.lane, obs.lanes) == (lane, 3)
    crashed = observe_frame(_frame(crashed=True))
    assert crashed.ego_crashed and crashed.others == 0


def test_traffic_words_follow_the_pixels() -> None:
    captioner = MetadataCaptioner()
    empty = captioner.caption(_clip(np.stack([_frame()] * 4)))
    cars = [(26, 40), (32, 50), (38, 30), (26, 58)]
    dense = captioner.caption(_clip(np.stack([_frame(others=cars)] * 4)))
    assert "empty road" in empty
    assert "dense traffic" in dense


def test_caption_names_lane_changes_speed_and_crash_from_ground_truth() -> None:
    frames = np.stack([_frame()] * 6)
    truth = _truth(
        lane=[2, 2, 1, 1, 0, 0],
        speed=[30.0, 30.0, 30.0, 29.0, 29.0, 15.0],
        crashed=[False] * 5 + [True],
    )
    caption = MetadataCaptioner().caption(_clip(frames, truth))
    assert "fast" in caption and "km/h" in caption
    assert "right lane" in caption  # where it starts
    assert "changes lane to the left twice" in caption
    assert caption.endswith("then crashes.")

    calm = _truth(lane=[1] * 6, speed=[25.0] * 6, crashed=[False] * 6)
    calm_caption = MetadataCaptioner().caption(_clip(frames, calm))
    assert "crash" not in calm_caption and "changes lane" not in calm_caption
    assert "middle lane" in calm_caption and "moderate speed" in calm_caption


def test_caption_from_pixels_only_when_ground_truth_is_missing() -> None:
    lanes = [1, 1, 0, 0]
    frames = np.stack(
        [_frame(ego_lane=lane) for lane in lanes] + [_frame(ego_lane=0, crashed=True)]
    )
    caption = MetadataCaptioner().caption(_clip(frames))
    assert "km/h" not in caption
    assert "middle lane" in caption and "changes lane to the left" in caption
    assert "crashes" in caption
    no_crash = MetadataCaptioner().caption(_clip(frames[:-1]))
    assert "crash" not in no_crash


def test_real_footage_captions_mention_crashes_and_lane_changes(tiny_footage: Path) -> None:
    captioner = MetadataCaptioner()
    episodes = _episode_clips(tiny_footage)
    # A crash ends an episode, so its clip without the last frame shows no crash.
    before_end = []
    for clip, crashed, _ in episodes:
        if crashed and len(clip.frames) > 2:
            truth = clip.ground_truth.slice(0, len(clip.frames) - 1)
            changed = bool(np.any(np.diff(truth.column("lane").to_numpy())))
            before_end.append((Clip(clip.span, clip.frames[:-1], truth), False, changed))
    assert any(crashed for _, crashed, _ in episodes) and before_end
    for clip, crashed, lane_changed in episodes + before_end:
        caption = captioner.caption(clip)
        assert ("crash" in caption) == crashed, caption
        if lane_changed:
            assert "changes lane" in caption or "weaves" in caption, caption
        pixels_only = captioner.caption(_clip(clip.frames))
        assert ("crash" in pixels_only) == crashed, pixels_only
        assert "km/h" in caption and "km/h" not in pixels_only


def test_captions_are_deterministic_and_paraphrase_is_optional(tiny_footage: Path) -> None:
    clips = [clip for clip, _, _ in _episode_clips(tiny_footage)]
    plain = MetadataCaptioner()
    assert caption_clips(plain, clips) == [plain.caption(c) for c in clips]
    assert all(c.startswith("The ego car drives") for c in caption_clips(plain, clips))
    varied = MetadataCaptioner(paraphrase=True)
    assert caption_clips(varied, clips) == caption_clips(MetadataCaptioner(paraphrase=True), clips)
    assert isinstance(plain, Captioner)


def test_caption_clips_uses_plain_caption_without_a_batch_method() -> None:
    class Constant:
        def caption(self, clip: Clip) -> str:
            return f"{len(clip.frames)} frames"

    clips = [_clip(np.stack([_frame()] * n)) for n in (1, 3)]
    assert caption_clips(Constant(), clips) == ["1 frames", "3 frames"]


def test_caption_rejects_ground_truth_of_another_length() -> None:
    truth = _truth(lane=[1, 1], speed=[25.0, 25.0], crashed=[False, False])
    with pytest.raises(ValueError, match="3 frames but 2 ground-truth rows"):
        MetadataCaptioner().caption(_clip(np.stack([_frame()] * 3), truth))
