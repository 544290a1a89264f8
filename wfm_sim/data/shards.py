"""Curated shards: WebDataset tar files of clips, grouped by aspect ratio and resolution.

A shard folder holds ``aspect-<a>x<b>/<H>x<W>/shard-00000.tar`` files. Each sample of a shard is
one clip: ``<clip_id>.mp4`` (frames), ``<clip_id>.parquet`` (the clip's per-frame ground truth)
and ``<clip_id>.json`` (its catalog row: caption, scores, cluster, dedup decision). The folder's
``catalog.parquet`` lists every clip the curation saw, kept or not, and which shard holds it.
Training reads shards through ``read_shard_episodes``.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from wfm_sim.data.footage import CorruptFootageError, Episode, episode_from_rows, read_video
from wfm_sim.io import atomic_path

CATALOG_NAME = "catalog.parquet"


@dataclass
class ShardSample:
    """One clip as stored in a shard: its key (clip id), mp4 and Parquet bytes, catalog row."""

    key: str
    mp4: bytes
    parquet: bytes
    meta: dict[str, Any]


def shard_group(height: int, width: int) -> str:
    """The shard sub-folder of a resolution: ``aspect-<a>x<b>/<H>x<W>`` (aspect in lowest terms,
    height first, as the resolution)."""
    divisor = math.gcd(height, width)
    return f"aspect-{height // divisor}x{width // divisor}/{height}x{width}"


def write_shard(path: str | Path, samples: Iterable[ShardSample]) -> int:
    """Write ``samples`` into one tar shard at ``path`` atomically; returns how many."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        writer = wds.TarWriter(stream, encoder=False)
        for sample in samples:
            if "." in sample.key:
                raise ValueError(f"shard key {sample.key!r} must not contain '.'")
            writer.write(
                {
                    "__key__": sample.key,
                    "mp4": sample.mp4,
                    "parquet": sample.parquet,
                    "json": json.dumps(sample.meta, sort_keys=True).encode(),
                }
            )
            count += 1
        writer.close()
    return count


def shard_paths(shards_dir: str | Path, resolution: str | None = None) -> list[Path]:
    """All shard files under ``shards_dir`` (only those of ``resolution`` "HxW" if given)."""
    pattern = f"aspect-*/{resolution}/shard-*.tar" if resolution else "aspect-*/*/shard-*.tar"
    return sorted(Path(shards_dir).glob(pattern))


def iter_shard_samples(paths: Iterable[str | Path]) -> Iterator[ShardSample]:
    """The samples of the given shard files, in order."""
    urls = [str(p) for p in paths]
    if not urls:
        return
    # every rank reads every sample: trainers split batches (wfm_sim.distributed), not files
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False, nodesplitter=None)
    for raw in dataset:
        missing = {"mp4", "parquet", "json"} - set(raw)
        if missing:
            raise CorruptFootageError(
                f"shard sample {raw.get('__key__')} in {raw.get('__url__')} lacks {sorted(missing)}"
            )
        yield ShardSample(
            key=str(raw["__key__"]),
            mp4=raw["mp4"],
            parquet=raw["parquet"],
            meta=json.loads(raw["json"]),
        )


def decode_mp4_bytes(data: bytes, name: str = "clip") -> np.ndarray:
    """Decode mp4 bytes into (T, H, W, 3) uint8 frames (through a temporary file)."""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        handle.write(data)
        handle.flush()
        try:
            return read_video(handle.name)
        except CorruptFootageError as error:
            raise CorruptFootageError(f"{name}: {error}") from error


def read_catalog(shards_dir: str | Path) -> pa.Table:
    """The catalog of a shard folder: one row per clip the curation saw."""
    path = Path(shards_dir) / CATALOG_NAME
    if not path.exists():
        raise FileNotFoundError(
            f"no {CATALOG_NAME} in {shards_dir}; run the curation first "
            "(`python -m experiments.curate`)"
        )
    return pq.read_table(path)


def read_shard_episodes(shards_dir: str | Path, resolution: str | None = None) -> list[Episode]:
    """The curated clips of a shard folder as training episodes, one per clip (or more).

    A clip becomes an ``Episode`` of its frames and the transitions between them; clip ids are
    numbered in shard order. A clip that spans a cut the shot splitter missed is split where its
    ground truth changes episode, so no transition crosses two episodes.
    """
    paths = shard_paths(shards_dir, resolution)
    if not paths:
        where = f" at resolution {resolution}" if resolution else ""
        raise FileNotFoundError(
            f"no shards{where} under {shards_dir}; run the curation first "
            "(`python -m experiments.curate`)"
        )
    episodes: list[Episode] = []
    for sample in iter_shard_samples(paths):
        frames = decode_mp4_bytes(sample.mp4, sample.key)
        truth = pq.read_table(io.BytesIO(sample.parquet)).to_pandas()
        if len(truth) != len(frames):
            raise CorruptFootageError(
                f"shard clip {sample.key}: {len(frames)} frames but {len(truth)} ground-truth rows"
            )
        episode_ids = truth["episode"].to_numpy()
        bounds = np.flatnonzero(np.diff(episode_ids)) + 1
        for start, end in zip(
            np.r_[0, bounds].tolist(), np.r_[bounds, len(truth)].tolist(), strict=True
        ):
            if end - start < 2:
                continue
            rows = truth.iloc[start:end]
            episodes.append(episode_from_rows(len(episodes), frames[start:end], rows))
    return episodes
