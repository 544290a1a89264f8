"""The recorder: real (non-black) frames, ground truth that lines up with them, resumable parts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from wfm_sim.data.footage import read_episodes, read_video
from wfm_sim.sources.highway import make_driving_env
from wfm_sim.sources.recorder import (
    NO_ACTION,
    RecorderConfig,
    copy_dir,
    episode_seed,
    part_paths,
    record_footage,
)


def _ground_truth(footage: Path) -> pd.DataFrame:
    parts = [pq.read_table(p).to_pandas() for p in sorted(footage.glob("part-*.parquet"))]
    return pd.concat(parts, ignore_index=True)


def _ego_green(frames: np.ndarray) -> np.ndarray:
    """Per frame, the number of pixels in highway-env's ego colour (50, 200, 0)."""
    r, g, b = (frames[..., c].astype(int) for c in range(3))
    return ((g > 150) & (r < 110) & (b < 60)).reshape(len(frames), -1).sum(1)


def _file_ids(paths: list[Path]) -> dict[str, tuple[int, int]]:
    return {p.name: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in paths}


def test_headless_rendering_is_not_the_black_dummy_driver() -> None:
    assert os.environ["SDL_VIDEODRIVER"] != "dummy"


def test_frames_show_the_road_and_the_ego_car(tiny_footage: Path) -> None:
    for mp4 in sorted(tiny_footage.glob("part-*.mp4")):
        frames = read_video(mp4)
        assert frames.shape[1:] == (64, 64, 3) and frames.dtype == np.uint8
        assert frames.std() > 20, f"{mp4.name} looks blank"
        # The ego car is green until it crashes; every frame but a crash frame shows it.
        assert (_ego_green(frames) >= 3).mean() > 0.8, f"{mp4.name}: ego car missing"


def test_recorded_frame_matches_the_simulator(tiny_footage: Path) -> None:
    env = make_driving_env()
    try:
        first, _ = env.reset(seed=episode_seed(0, 0))
    finally:
        env.close()
    recorded = read_video(tiny_footage / "part-00000.mp4")[0]
    # mp4 is lossy (yuv444, crf 12): a few grey levels off on average, never a different scene.
    assert np.abs(recorded.astype(int) - first.astype(int)).mean() < 3.0


def test_parquet_rows_line_up_with_mp4_frames(tiny_footage: Path) -> None:
    parquets = sorted(tiny_footage.glob("part-*.parquet"))
    assert [p.name for p in parquets] == ["part-00000.parquet", "part-00001.parquet"]
    for part, parquet in enumerate(parquets):
        table = pq.read_table(parquet).to_pandas()
        assert len(read_video(parquet.with_suffix(".mp4"))) == len(table)
        np.testing.assert_array_equal(table["frame"], np.arange(len(table)))
        assert (table["part"] == part).all()
        assert sorted(table["episode"].unique()) == [3 * part, 3 * part + 1, 3 * part + 2]


def test_each_episode_is_contiguous_and_ends_with_a_no_action_row(tiny_footage: Path) -> None:
    truth = _ground_truth(tiny_footage)
    crashed_episodes = 0
    for episode, rows in truth.groupby("episode"):
        steps, frames = rows["step"].to_numpy(), rows["frame"].to_numpy()
        np.testing.assert_array_equal(steps, np.arange(len(rows)))
        np.testing.assert_array_equal(frames, frames[0] + np.arange(len(rows)))
        assert rows["behaviour"].iloc[0] == ("random", "idle")[episode % 2]
        assert (rows["sim_seed"] == episode_seed(0, episode)).all()

        last = rows.iloc[-1]
        assert last["action"] == NO_ACTION and np.isnan(last["reward"])
        assert not last["terminated"] and not last["truncated"]
        taken = rows.iloc[:-1]
        assert taken["action"].between(0, 4).all() and np.isfinite(taken["reward"]).all()
        if episode % 2 == 1:
            assert (taken["action"] == 1).all(), "the idle driver only ever idles"

        # Only the final transition can end the episode; it ends it by crash or time limit.
        ended = taken["terminated"].to_numpy() | taken["truncated"].to_numpy()
        np.testing.assert_array_equal(ended, np.arange(len(taken)) == len(taken) - 1)
        np.testing.assert_array_equal(taken["terminated"].iloc[:-1], False)
        assert taken["terminated"].iloc[-1] == last["crashed"]
        crashed_episodes += bool(last["crashed"])
    assert crashed_episodes > 0, "the tiny footage should hold a crash for this test to mean much"


def test_resume_rerecords_only_the_missing_part(
    tiny_footage: Path,
    tmp_path: Path,
    make_recorder_config: Callable[[Path], RecorderConfig],
    behaviours: list,
) -> None:
    footage = tmp_path / "footage"
    shutil.copytree(tiny_footage, footage)  # copy2 keeps mtimes
    part0 = list(part_paths(footage, 0))
    part1_mp4, part1_parquet = part_paths(footage, 1)
    truth_before = pq.read_table(part1_parquet).to_pandas()
    frames_before = read_video(part1_mp4)
    untouched = _file_ids(part0)

    part1_mp4.unlink()
    part1_parquet.unlink()
    # What a run killed while writing part 1 leaves behind (atomic_path's temp names).
    leftovers = [footage / ".part-00001.k1ll3d.tmp.mp4", footage / ".part-00001.k1ll3d.tmp.parquet"]
    for leftover in leftovers:
        leftover.write_bytes(b"half a file")

    record_footage(make_recorder_config(footage), behaviours, progress=False)

    pd.testing.assert_frame_equal(pq.read_table(part1_parquet).to_pandas(), truth_before)
    np.testing.assert_array_equal(read_video(part1_mp4), frames_before)
    assert _file_ids(part0) == untouched
    assert [e.episode_id for e in read_episodes(footage)] == list(range(6))

    # A second full run finds every part and records nothing: its behaviours are never called.
    def refuse(frame: np.ndarray, info: dict, rng: np.random.Generator) -> int:
        raise AssertionError("a complete footage folder must not be re-recorded")

    all_parts = sorted(footage.glob("part-*"))
    before = _file_ids(all_parts)
    record_footage(make_recorder_config(footage), [("refuse", refuse)], progress=False)
    assert _file_ids(all_parts) == before


def test_a_leftover_temp_file_is_not_a_part(tmp_path: Path) -> None:
    (tmp_path / ".part-00000.k1ll3d.tmp.parquet").write_bytes(b"half a file")
    (tmp_path / ".part-00000.k1ll3d.tmp.mp4").write_bytes(b"half a file")
    with pytest.raises(FileNotFoundError, match="no footage parts"):
        read_episodes(tmp_path)


def test_no_behaviours_is_refused(tmp_path: Path) -> None:
    out_dir = tmp_path / "never"
    with pytest.raises(ValueError, match="at least one"):
        record_footage(RecorderConfig(out_dir=str(out_dir), episodes=1), [], progress=False)
    assert not out_dir.exists()


def test_same_seed_same_ground_truth_other_seed_other(
    tiny_footage: Path, tmp_path: Path, behaviours: list
) -> None:
    def first_episode(seed: int) -> pd.DataFrame:
        out_dir = tmp_path / f"seed{seed}"
        config = RecorderConfig(out_dir=str(out_dir), episodes=1, episodes_per_part=1, seed=seed)
        return _ground_truth(record_footage(config, behaviours, progress=False))

    original = _ground_truth(tiny_footage)
    original = original[original["episode"] == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(first_episode(0), original)
    other = first_episode(1)
    assert other["sim_seed"].iloc[0] != original["sim_seed"].iloc[0]
    assert len(other) != len(original) or not np.allclose(other["x"], original["x"])


def test_copies_at_other_resolutions_hold_the_same_drive(tmp_path: Path, behaviours: list) -> None:
    config = RecorderConfig(
        out_dir=str(tmp_path / "footage"),
        episodes=2,
        episodes_per_part=1,
        copies=["32x32", "24x48"],
        copy_parts=1,
    )
    out = record_footage(config, behaviours, progress=False)
    native = read_video(part_paths(out, 0)[0])
    for resolution, shape in (("32x32", (32, 32)), ("24x48", (24, 48))):
        folder = copy_dir(out, resolution)
        copy = read_video(part_paths(folder, 0)[0])
        assert copy.shape == (len(native), *shape, 3)
        pd.testing.assert_frame_equal(
            pq.read_table(part_paths(folder, 0)[1]).to_pandas(),
            pq.read_table(part_paths(out, 0)[1]).to_pandas(),
        )
        assert not part_paths(folder, 1)[0].exists(), "only the first copy_parts parts are copied"
    # The 32x32 copy is the native frames downscaled: upscaled back, it resembles them closely.
    small = read_video(part_paths(copy_dir(out, "32x32"), 0)[0])
    restored = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2).astype(int)
    other_drive = read_video(part_paths(out, 1)[0])[: len(native)].astype(int)
    own_error = np.abs(restored - native.astype(int)).mean()
    assert own_error < np.abs(restored[: len(other_drive)] - other_drive).mean()


def test_a_malformed_copy_resolution_is_refused_before_recording(
    tmp_path: Path, behaviours: list
) -> None:
    config = RecorderConfig(out_dir=str(tmp_path / "f"), episodes=1, copies=["big"], copy_parts=1)
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        record_footage(config, behaviours, progress=False)


class _CountingBehaviour:
    """Drives faster; counts the episodes it was told of and the steps in each."""

    def __init__(self) -> None:
        self.steps_per_episode: list[int] = []

    def begin_episode(self) -> None:
        self.steps_per_episode.append(0)

    def __call__(self, frame: np.ndarray, info: dict, rng: np.random.Generator) -> int:
        self.steps_per_episode[-1] += 1
        return 3


def test_a_behaviour_with_history_is_told_when_each_episode_begins(tmp_path: Path) -> None:
    behaviour = _CountingBehaviour()
    config = RecorderConfig(out_dir=str(tmp_path), episodes=2, episodes_per_part=2, seed=5)
    record_footage(config, [("faster", behaviour)], progress=False)
    lengths = [episode.length for episode in read_episodes(tmp_path)]
    assert behaviour.steps_per_episode == lengths
