"""Reading footage back: episodes agree with the Parquet ground truth; broken parts are named."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from wfm_sim.data import (
    CorruptFootageError,
    Episode,
    episode_lengths,
    episode_returns,
    read_episodes,
)
from wfm_sim.data.footage import read_video


def _copy(footage: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "footage"
    shutil.copytree(footage, copy)
    return copy


def test_episodes_match_the_ground_truth(tiny_footage: Path) -> None:
    episodes = read_episodes(tiny_footage)
    assert [e.episode_id for e in episodes] == list(range(6))
    by_id = {e.episode_id: e for e in episodes}
    seen = 0
    for parquet in sorted(tiny_footage.glob("part-*.parquet")):
        table = pq.read_table(parquet).to_pandas()
        video = read_video(parquet.with_suffix(".mp4"))
        for episode_id, rows in table.groupby("episode"):
            episode = by_id[episode_id]
            assert episode.length == len(rows) - 1
            assert episode.frames.shape == (len(rows), 64, 64, 3)
            np.testing.assert_array_equal(episode.frames, video[rows["frame"].to_numpy()])
            np.testing.assert_array_equal(episode.actions, rows["action"].to_numpy()[:-1])
            np.testing.assert_array_equal(episode.rewards, rows["reward"].to_numpy()[:-1])
            np.testing.assert_array_equal(episode.terminated, rows["terminated"].to_numpy()[:-1])
            assert episode.actions.dtype == np.int64 and episode.rewards.dtype == np.float32
            assert episode.behaviour == rows["behaviour"].iloc[0]
            seen += 1
    assert seen == len(episodes)


def test_episode_lengths_count_frames_without_decoding(tiny_footage: Path) -> None:
    lengths = episode_lengths(tiny_footage)
    assert lengths == {e.episode_id: len(e.frames) for e in read_episodes(tiny_footage)}


def test_episode_returns_sum_each_episodes_rewards_without_decoding(tiny_footage: Path) -> None:
    returns = episode_returns(tiny_footage)
    episodes = read_episodes(tiny_footage)
    assert list(returns) == [e.episode_id for e in episodes]
    for episode in episodes:
        assert returns[episode.episode_id] == pytest.approx(float(episode.rewards.sum()), abs=1e-4)
    assert len(set(returns.values())) > 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_unreadable_video_names_the_file(tiny_footage: Path, tmp_path: Path, damage: str) -> None:
    footage = _copy(tiny_footage, tmp_path)
    mp4 = footage / "part-00001.mp4"
    data = mp4.read_bytes()
    broken = {
        "garbage": np.random.default_rng(0).bytes(len(data)),
        "truncated": data[: len(data) // 2],
        "empty": b"",
    }[damage]
    mp4.write_bytes(broken)
    with pytest.raises(CorruptFootageError, match="part-00001.mp4"):
        read_episodes(footage)


def test_frame_count_disagreeing_with_ground_truth(tiny_footage: Path, tmp_path: Path) -> None:
    footage = _copy(tiny_footage, tmp_path)
    rows = [pq.read_metadata(footage / f"part-0000{k}.parquet").num_rows for k in (0, 1)]
    assert rows[0] != rows[1]
    # Part 1's video under part 0's name: a readable video with the wrong number of frames.
    shutil.copy(footage / "part-00001.mp4", footage / "part-00000.mp4")
    with pytest.raises(CorruptFootageError, match="part-00000.mp4") as caught:
        read_episodes(footage)
    assert f"{rows[1]} frames" in str(caught.value) and f"{rows[0]} rows" in str(caught.value)


@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_folder_without_parts_says_how_to_record(tmp_path: Path, folder: str) -> None:
    path = tmp_path / folder
    if folder == "empty":
        path.mkdir()
    with pytest.raises(FileNotFoundError, match="experiments.record"):
        read_episodes(path)
    with pytest.raises(FileNotFoundError, match="experiments.record"):
        episode_lengths(path)
    with pytest.raises(FileNotFoundError, match="experiments.record"):
        episode_returns(path)


def test_episode_refuses_inconsistent_lengths() -> None:
    with pytest.raises(ValueError, match="episode 3"):
        Episode(3, np.zeros((4, 1)), np.zeros(3), np.zeros(2), np.zeros(3, bool))


def test_with_frames_keeps_the_rest() -> None:
    episode = Episode(1, np.zeros((3, 1)), np.array([0, 4]), np.ones(2), np.array([0, 1], bool))
    latents = np.arange(3 * 2).reshape(3, 2)
    coded = episode.with_frames(latents)
    assert coded.frames is latents and coded.actions is episode.actions and coded.episode_id == 1
