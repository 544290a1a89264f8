"""The clip search engine: free text, a clip id or an mp4 in; the top-k clips out.

:class:`ClipSearchEngine` composes a :class:`~wfm_sim.search.index.ClipIndex` with the
embedders the clips were indexed with. It never embeds anything itself: the text and video
embedders are plain callables, so the real model, a smaller one, or a stand-in in a test plug
in the same way::

    engine = ClipSearchEngine(index, embed_text=model.embed_text, embed_video=model.embed_video)
    engine.by_text("a car cuts in from the left lane", k=5)
    engine.by_clip("highway-env-p00003-000040-000056", k=5)   # the clip itself is left out
    engine.by_video_file("my_drive.mp4", k=5)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from wfm_sim.data.footage import read_video as read_mp4
from wfm_sim.search.index import ClipIndex, SearchHit

TextEmbedder = Callable[[list[str]], np.ndarray]
"""``texts (list of Q str) -> (Q, D)`` embeddings."""
VideoEmbedder = Callable[[np.ndarray], np.ndarray]
"""``frames (T, H, W, 3) uint8 -> (D,)`` embedding."""
VideoReader = Callable[[Path], np.ndarray]
"""``path -> frames (T, H, W, 3) uint8``."""


class ClipSearchEngine:
    """Answer text, clip and video queries with the ``k`` most similar indexed clips.

    Args:
        index: the clips, embedded with the same model as ``embed_text`` / ``embed_video``.
        embed_text: ``texts -> (Q, D)``.
        embed_video: ``frames (T, H, W, 3) uint8 -> (D,)``.
        read_video: ``path -> frames``; the project's mp4 reader by default.
    """

    def __init__(
        self,
        index: ClipIndex,
        embed_text: TextEmbedder,
        embed_video: VideoEmbedder,
        read_video: VideoReader = read_mp4,
    ) -> None:
        self.index = index
        self.embed_text = embed_text
        self.embed_video = embed_video
        self.read_video = read_video

    def by_text(self, query: str, k: int = 10, filter: str = "") -> list[SearchHit]:
        """The ``k`` clips whose embeddings are closest to the text ``query``'s."""
        return self.by_texts([query], k, filter)[0]

    def by_texts(self, queries: list[str], k: int = 10, filter: str = "") -> list[list[SearchHit]]:
        """:meth:`by_text` for several queries at once (one embedder call, one search)."""
        if not queries or not all(isinstance(q, str) and q.strip() for q in queries):
            raise ValueError(f"text queries must be non-empty strings, got {queries!r}")
        vectors = np.asarray(self.embed_text(list(queries)), dtype=np.float32)
        if vectors.shape != (len(queries), self.index.dim):
            raise ValueError(
                f"embed_text returned shape {vectors.shape} for {len(queries)} texts; the index "
                f"needs ({len(queries)}, {self.index.dim}): use the model the clips were indexed with"
            )
        return self.index.search(vectors, k, filter)

    def by_clip(self, clip_id: str, k: int = 10, filter: str = "") -> list[SearchHit]:
        """The ``k`` clips most similar to the indexed clip ``clip_id``, leaving it out."""
        hits = self.index.search(self.index.vector_of(clip_id), k + 1, filter)[0]
        return [hit for hit in hits if hit.clip_id != clip_id][:k]

    def by_frames(self, frames: np.ndarray, k: int = 10, filter: str = "") -> list[SearchHit]:
        """The ``k`` clips most similar to a video given as frames (T, H, W, 3) uint8."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be (T, H, W, 3) uint8, got shape {frames.shape} {frames.dtype}"
            )
        vector = np.asarray(self.embed_video(frames), dtype=np.float32)
        if vector.shape != (self.index.dim,):
            raise ValueError(
                f"embed_video returned shape {vector.shape}; the index needs ({self.index.dim},): "
                "use the model the clips were indexed with"
            )
        return self.index.search(vector, k, filter)[0]

    def by_video_file(self, path: str | Path, k: int = 10, filter: str = "") -> list[SearchHit]:
        """The ``k`` clips most similar to the video in ``path`` (an mp4 by default)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"query video {path} does not exist; pass an mp4 file path")
        return self.by_frames(self.read_video(path), k, filter)
