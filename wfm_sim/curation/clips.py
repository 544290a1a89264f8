"""Clips: the unit every curation stage works on.

A clip is a span ``[start, end)`` of frames of one footage part, cut by shot splitting. On disk a
clip is ``<clip_id>.mp4`` (its frames) plus ``<clip_id>.parquet`` (its rows of the footage's
per-frame ground truth), written atomically, so later stages read clips without touching the
long footage again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wfm_sim.io import atomic_path
from wfm_sim.video import read_video, write_mp4

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def source_name(footage_dir: str | Path) -> str:
    """A short, file-name-safe, stable name for a footage folder (its path, slashes as ``_``)."""
    parts = Path(footage_dir).parts[-3:]
    return _UNSAFE.sub("_", "_".join(p for p in parts if p not in ("/", ".")))


@dataclass(frozen=True)
class ClipSpan:
    """Where a clip comes from: frames ``[start, end)`` of footage part ``part`` of ``source``.

    ``height``/``width`` are the clip's resolution in pixels.
    """

    source: str
    part: int
    start: int
    end: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"clip span [{self.start}, {self.end}) is empty or negative")

    @property
    def clip_id(self) -> str:
        """Unique, file-name-safe id: ``<source>-p<part>-<start>-<end>``."""
        return f"{self.source}-p{self.part:05d}-{self.start:06d}-{self.end:06d}"

    @property
    def length(self) -> int:
        """Number of frames."""
        return self.end - self.start

    @property
    def resolution(self) -> str:
        """``"<height>x<width>"``, the key clips are sharded by."""
        return f"{self.height}x{self.width}"

    def to_row(self) -> dict:
        """A flat dict for catalogs (Parquet rows)."""
        return {
            "clip_id": self.clip_id,
            "source": self.source,
            "part": self.part,
            "start": self.start,
            "end": self.end,
            "height": self.height,
            "width": self.width,
        }

    @classmethod
    def from_row(cls, row: dict) -> ClipSpan:
        """Inverse of ``to_row`` (extra keys are ignored)."""
        return cls(
            source=str(row["source"]),
            part=int(row["part"]),
            start=int(row["start"]),
            end=int(row["end"]),
            height=int(row["height"]),
            width=int(row["width"]),
        )


@dataclass
class Clip:
    """A clip's frames ``(T, H, W, 3) uint8`` and its ground-truth rows (one per frame)."""

    span: ClipSpan
    frames: np.ndarray
    ground_truth: pa.Table


def clip_paths(clip_dir: str | Path, clip_id: str) -> tuple[Path, Path]:
    """The (mp4, parquet) paths of a stored clip."""
    stem = Path(clip_dir) / clip_id
    return stem.with_suffix(".mp4"), stem.with_suffix(".parquet")


def write_clip(clip_dir: str | Path, clip: Clip, fps: int = 5, crf: int = 12) -> None:
    """Store a clip (mp4 first, Parquet last, each atomically), so a stored Parquet marks it done."""
    mp4_path, parquet_path = clip_paths(clip_dir, clip.span.clip_id)
    write_mp4(mp4_path, clip.frames, fps=fps, crf=crf)
    with atomic_path(parquet_path) as tmp:
        pq.write_table(clip.ground_truth, tmp)


def read_clip(clip_dir: str | Path, span: ClipSpan) -> Clip:
    """Load a stored clip; raises ``CorruptFootageError`` if its mp4 cannot be decoded."""
    mp4_path, parquet_path = clip_paths(clip_dir, span.clip_id)
    return Clip(span=span, frames=read_video(mp4_path), ground_truth=pq.read_table(parquet_path))
