"""Tiny tokenizers (8-wide, ~20k parameters) and a tiny curated shard folder for the tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from wfm_sim.data.shards import ShardSample, shard_group, write_shard
from wfm_sim.tokenizer import VideoTokenizer, VideoTokenizerConfig
from wfm_sim.video import write_mp4


@pytest.fixture(scope="session")
def make_tokenizer() -> Callable[..., VideoTokenizer]:
    """``(**config fields) -> VideoTokenizer`` of width 8 with fixed random weights, eval mode."""

    def make(**fields: object) -> VideoTokenizer:
        torch.manual_seed(0)
        config = VideoTokenizerConfig(width=8, **fields)  # type: ignore[arg-type]
        return VideoTokenizer(config).eval()

    return make


def random_video(batch: int, frames: int, seed: int = 0, size: int = 64) -> torch.Tensor:
    """(batch, frames, size, size, 3) uint8 noise."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (batch, frames, size, size, 3), dtype=np.uint8))


def _moving_square_clip(rng: np.random.Generator, frames: int) -> np.ndarray:
    clip = np.full((frames, 64, 64, 3), 90, np.uint8)
    x, y, colour = rng.integers(0, 48), rng.integers(0, 48), rng.integers(0, 256, 3)
    for t in range(frames):
        clip[t, y : y + 12, (x + 2 * t) % 52 : (x + 2 * t) % 52 + 12] = colour
    return clip


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shard folder of 6 clips (5-11 frames of a moving square) at 64x64."""
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    samples = []
    for i, frames in enumerate([5, 7, 9, 11, 6, 9]):
        path = root / f"clip{i}.mp4"
        write_mp4(path, _moving_square_clip(rng, frames))
        samples.append(ShardSample(f"clip{i:03d}", path.read_bytes(), b"", {"clip": i}))
        path.unlink()
    write_shard(root / shard_group(64, 64) / "shard-00000.tar", samples)
    return root
