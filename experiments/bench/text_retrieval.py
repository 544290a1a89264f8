"""Text-to-clip retrieval and copy robustness of the clip embeddings, on real driving footage.

Every episode of the footage is cut into pieces of at most 32 frames (the clips) and captioned
by ``MetadataCaptioner``; captions are embedded by MiniLM. The video encoder is trained on the
clips of the first 80% of the footage parts (plus random sub-windows of their episodes, each
captioned afresh, so it sees more than one clip per episode) and measured on the clips of the
other 20%:

- recall@1/5/10 of text-to-clip retrieval with each held-out caption as the query (a hit is the
  clip itself or a clip with the identical caption; the strict clip-only recall is reported too)
  against the chance level of a random ranking;
- how close edited copies of a held-out clip embed to it (mp4 re-encoded at crf 30, downscaled
  to 48x48 and 32x32, centre-cropped to 85%, recoloured) against the nearest *other* clip, and
  how often the copy's nearest original is its own.

    python -m experiments.bench.text_retrieval [--footage data/footage/driving] [--steps 400]
"""

from __future__ import annotations

import argparse
import time
from math import comb
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from experiments.bench.common import write_result
from wfm_sim.curation.captions import MetadataCaptioner
from wfm_sim.curation.clips import Clip, ClipSpan, source_name
from wfm_sim.curation.embed import (
    EmbedTrainConfig,
    TextEmbedder,
    embed_videos,
    retrieval_recall_at_k,
    train_video_encoder,
)
from wfm_sim.data.footage import read_video
from wfm_sim.video import reencode


def cut_clips(
    footage: Path, max_frames: int, windows_per_episode: int, rng: np.random.Generator
) -> tuple[list[Clip], list[Clip]]:
    """(pieces, windows) of every episode: pieces tile it in <= max_frames chunks; windows are
    ``windows_per_episode`` random spans of 8..max_frames frames (for training only)."""
    source = source_name(footage)
    pieces: list[Clip] = []
    windows: list[Clip] = []
    for parquet in sorted(footage.glob("part-*.parquet")):
        table = pq.read_table(parquet)
        frames = read_video(parquet.with_suffix(".mp4"))
        part = int(table.column("part")[0].as_py())
        episodes = table.column("episode").to_numpy()
        bounds = np.flatnonzero(np.diff(episodes)) + 1
        for first, end in zip(np.r_[0, bounds], np.r_[bounds, len(episodes)], strict=True):
            first, end = int(first), int(end)
            length = end - first
            pieces_n = -(-length // max_frames)
            edges = np.linspace(first, end, pieces_n + 1).round().astype(int)
            for a, b in zip(edges[:-1], edges[1:], strict=True):
                pieces.append(_clip(source, part, frames, table, int(a), int(b)))
            for _ in range(windows_per_episode):
                span = int(rng.integers(min(8, length), min(max_frames, length) + 1))
                a = first + int(rng.integers(0, length - span + 1))
                windows.append(_clip(source, part, frames, table, a, a + span))
    return pieces, windows


def _clip(source: str, part: int, frames: np.ndarray, table, start: int, end: int) -> Clip:
    height, width = frames.shape[1:3]
    span = ClipSpan(source, part, start, end, height, width)
    return Clip(span, frames[start:end], table.slice(start, end - start))


def copies(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Edited copies of one clip ``(T, H, W, 3) uint8``, keyed by the edit."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    height, width = frames.shape[1:3]

    def resized(size: tuple[int, int]) -> np.ndarray:
        y = F.interpolate(x, size=size, mode="area")
        return y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()

    ch, cw = round(height * 0.85), round(width * 0.85)
    top, left = (height - ch) // 2, (width - cw) // 2
    recoloured = np.clip(((frames / 255.0) ** 0.9 * 1.1 + 0.03) * 255.0, 0, 255)
    return {
        "reencoded_crf30": reencode(frames, crf=30),
        "downscaled_48": resized((48, 48)),
        "downscaled_32": resized((32, 32)),
        "cropped_85pct": np.ascontiguousarray(frames[:, top : top + ch, left : left + cw]),
        "recoloured": recoloured.round().astype(np.uint8),
    }


def copy_similarity(encoder, originals: list[np.ndarray], base: np.ndarray) -> dict[str, dict]:
    """Per edit: cosine of copy to its original, to the nearest other original, and top-1."""
    others = base @ base.T
    np.fill_diagonal(others, -np.inf)
    nearest_other = others.max(axis=1)
    per_edit: dict[str, list[np.ndarray]] = {}
    for frames in originals:
        for name, copy in copies(frames).items():
            per_edit.setdefault(name, []).append(copy)
    result: dict[str, dict] = {
        "nearest_other_clip": {
            "mean": float(nearest_other.mean()),
            "median": float(np.median(nearest_other)),
        }
    }
    for name, clips in per_edit.items():
        embedded = embed_videos(encoder, clips)
        scores = embedded @ base.T
        own = np.diag(scores)
        result[name] = {
            "cos_to_original_mean": float(own.mean()),
            "cos_to_original_min": float(own.min()),
            "own_original_is_nearest": float(
                (scores.argmax(axis=1) == np.arange(len(base))).mean()
            ),
            "closer_than_any_other_clip": float((own > nearest_other).mean()),
        }
    return result


def chance_recall(texts: np.ndarray, k: int, same_caption_at: float | None) -> float:
    """Expected recall@k of a uniformly random ranking under the same hit rule."""
    n = len(texts)
    if same_caption_at is None:
        good = np.ones(n)
    else:
        good = ((texts @ texts.T) >= same_caption_at).sum(axis=1)
    return float(np.mean([1 - comb(n - g, k) / comb(n, k) for g in good.astype(int)]))


def main() -> None:
    """Measure and write experiments/results/text_retrieval.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--footage", default="data/footage/driving")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--windows", type=int, default=6, help="random sub-windows per episode")
    parser.add_argument("--held-out", type=float, default=0.2, help="fraction of parts held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--instance-weight", type=float, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    footage = Path(args.footage)

    started = time.perf_counter()
    pieces, windows = cut_clips(footage, max_frames=32, windows_per_episode=args.windows, rng=rng)
    parts = sorted({c.span.part for c in pieces})
    held_parts = set(parts[len(parts) - max(1, round(len(parts) * args.held_out)) :])
    train = [c for c in pieces + windows if c.span.part not in held_parts]
    test = [c for c in pieces if c.span.part in held_parts]

    captioner = MetadataCaptioner()
    train_captions = captioner.caption_batch(train)
    test_captions = captioner.caption_batch(test)
    embedder = TextEmbedder(device="cpu")
    train_texts = embedder.embed(train_captions)
    test_texts = embedder.embed(test_captions)
    prepared_s = time.perf_counter() - started

    config = EmbedTrainConfig(steps=args.steps, threads=args.threads, seed=args.seed)
    if args.instance_weight is not None:
        config.instance_weight = args.instance_weight
    started = time.perf_counter()
    encoder = train_video_encoder([c.frames for c in train], train_texts, config)
    train_s = time.perf_counter() - started

    test_videos = embed_videos(encoder, [c.frames for c in test])
    recall = {}
    for k in (1, 5, 10):
        recall[f"recall@{k}"] = retrieval_recall_at_k(test_videos, test_texts, k)
        recall[f"recall@{k}_strict"] = retrieval_recall_at_k(
            test_videos, test_texts, k, same_caption_at=None
        )
        recall[f"chance@{k}"] = chance_recall(test_texts, k, 0.9999)
        recall[f"chance@{k}_strict"] = chance_recall(test_texts, k, None)
    train_sample = slice(0, len(test))
    recall["train_recall@5"] = retrieval_recall_at_k(
        embed_videos(encoder, [c.frames for c in train[train_sample]]),
        train_texts[train_sample],
        5,
    )
    copy_scores = copy_similarity(encoder, [c.frames for c in test], test_videos)
    payload = {
        "footage": str(footage),
        "train_clips": len(train),
        "held_out_clips": len(test),
        "held_out_parts": sorted(held_parts),
        "distinct_held_out_captions": len(set(test_captions)),
        "example_captions": test_captions[:5],
        "steps": args.steps,
        "instance_weight": config.instance_weight,
        "threads": args.threads,
        "prepare_seconds": round(prepared_s, 1),
        "train_seconds": round(train_s, 1),
        "retrieval": recall,
        "copies": copy_scores,
    }
    print(write_result("text_retrieval", payload))
    print(recall)
    for name, scores in copy_scores.items():
        print(name, scores)


if __name__ == "__main__":
    main()
