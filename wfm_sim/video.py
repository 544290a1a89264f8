"""Video files: decode an mp4 into frames and write frames as an mp4 (H.264, any size).

The one place the project talks to ffmpeg, below every layer, so the recorder, the data readers
and curation share it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np

from wfm_sim.io import atomic_path


class CorruptFootageError(ValueError):
    """A footage part cannot be decoded or disagrees with its ground truth."""


def read_video(path: str | Path) -> np.ndarray:
    """Decode a whole mp4 into (T, H, W, 3) uint8, or raise ``CorruptFootageError``."""
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        width, height = meta["size"]
        frames = [np.frombuffer(buffer, np.uint8).reshape(height, width, 3) for buffer in reader]
    except (OSError, RuntimeError, StopIteration, ValueError) as error:
        raise CorruptFootageError(
            f"cannot decode footage video {path}: {error}; delete the part's .mp4 and .parquet "
            "and re-run the recorder to record it again"
        ) from error
    if not frames:
        raise CorruptFootageError(f"footage video {path} holds no frames")
    return np.stack(frames)


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 5, crf: int = 12) -> None:
    """Write ``frames`` (T, H, W, 3) uint8 as an H.264 mp4 (yuv444, any size) atomically."""
    with atomic_path(path) as tmp:
        writer = imageio.get_writer(
            tmp,
            format="FFMPEG",
            fps=fps,
            codec="libx264",
            quality=None,
            pixelformat="yuv444p",
            macro_block_size=1,
            ffmpeg_params=["-crf", str(crf)],
        )
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()


def reencode(frames: np.ndarray, crf: int) -> np.ndarray:
    """``frames`` (T, H, W, 3) uint8 after an H.264 round trip at quality ``crf``: what a
    re-uploaded copy of a video looks like."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "copy.mp4"
        write_mp4(path, frames, crf=crf)
        return read_video(path)
