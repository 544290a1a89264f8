"""Curated shards: clips written to WebDataset tars come back as the same training episodes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from wfm_sim.video import write_mp4
from wfm_sim.data import CorruptFootageError, read_episodes
from wfm_sim.data.footage import read_video
from wfm_sim.data.shards import (
    ShardSample,
    iter_shard_samples,
    read_shard_episodes,
    shard_group,
    shard_paths,
    write_shard,
)


def _sample(footage: Path, key: str, start: int, end: int, tmp_path: Path) -> ShardSample:
    frames = read_video(footage / "part-00000.mp4")[start:end]
    truth = pq.read_table(footage / "part-00000.parquet").slice(start, end - start)
    write_mp4(tmp_path / f"{key}.mp4", frames)
    buffer = io.BytesIO()
    pq.write_table(truth, buffer)
    return ShardSample(key, (tmp_path / f"{key}.mp4").read_bytes(), buffer.getvalue(), {"k": key})


def test_shard_groups_name_aspect_and_resolution() -> None:
    assert shard_group(64, 64) == "aspect-1x1/64x64"
    assert shard_group(24, 48) == "aspect-1x2/24x48"


def test_clips_come_back_as_episodes_split_at_missed_cuts(
    tiny_footage: Path, tmp_path: Path
) -> None:
    truth = pq.read_table(tiny_footage / "part-00000.parquet").to_pandas()
    first_end = int((truth["episode"] == 0).sum())  # frames of episode 0
    samples = [
        _sample(tiny_footage, "whole-episode-0", 0, first_end, tmp_path),
        _sample(tiny_footage, "spans-a-cut", first_end - 4, first_end + 6, tmp_path),
    ]
    shards = tmp_path / "shards"
    assert write_shard(shards / shard_group(64, 64) / "shard-00000.tar", samples) == 2
    assert shard_paths(shards) == [shards / "aspect-1x1/64x64/shard-00000.tar"]
    assert [s.meta for s in iter_shard_samples(shard_paths(shards))] == [
        {"k": "whole-episode-0"},
        {"k": "spans-a-cut"},
    ]

    episodes = read_shard_episodes(shards, resolution="64x64")
    assert [len(e.frames) for e in episodes] == [first_end, 4, 6]
    original = read_episodes(tiny_footage)[0]
    np.testing.assert_array_equal(episodes[0].actions, original.actions)
    np.testing.assert_array_equal(episodes[0].terminated, original.terminated)
    assert np.abs(episodes[0].frames.astype(int) - original.frames.astype(int)).mean() < 3
    for episode in episodes:
        assert (episode.actions >= 0).all(), "no transition crosses an episode boundary"


def test_missing_or_broken_shards_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run the curation"):
        read_shard_episodes(tmp_path, resolution="64x64")
    with pytest.raises(ValueError, match="must not contain"):
        write_shard(tmp_path / "aspect-1x1/8x8/shard-00000.tar", [ShardSample("a.b", b"", b"", {})])
    assert not list(tmp_path.rglob("*.tar")), "a failed shard write leaves no shard behind"
    broken = ShardSample("clip", b"not an mp4", b"", {})
    write_shard(tmp_path / "aspect-1x1/8x8/shard-00000.tar", [broken])
    with pytest.raises(CorruptFootageError, match="clip"):
        read_shard_episodes(tmp_path)
