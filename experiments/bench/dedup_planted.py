"""Semantic dedup on planted near-duplicates: precision and recall per ε and per kind of copy,
and the blockwise result checked against the exact brute-force computation.

    python -m experiments.bench.dedup_planted [--work data/curated/driving] [--originals 300]

Takes curated clips from the parts the video encoder never trained on, plants copies of each
(re-encoded at a low H.264 quality, downscaled, cropped, recoloured, shifted in time by two
frames), embeds originals and copies with the curation's encoder and dedups them. A planted
copy is found when it is dropped; a drop is correct when it drops a planted copy. Originals
dropped (as duplicates of look-alike originals) count against precision. The k-means
partition's drops are also scored against exact brute force over all pairs (one cluster),
which no pair escapes by falling into two clusters.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from experiments.bench.common import write_result
from wfm_sim.curation.clips import ClipSpan, read_clip
from wfm_sim.curation.dedup import DedupConfig, brute_force_dedup, semantic_dedup
from wfm_sim.curation.embed import embed_videos, load_video_encoder
from wfm_sim.data.shards import read_catalog
from wfm_sim.frames import resize_frames
from wfm_sim.video import reencode

EPSILONS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1)


def _crop(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    dy, dx = h // 10, w // 10
    return resize_frames(frames[:, dy : h - dy, dx : w - dx], h, w, crop=False)


def _recolour(frames: np.ndarray) -> np.ndarray:
    gains = np.array([1.15, 0.9, 1.05], dtype=np.float32)
    return np.clip(frames.astype(np.float32) * gains + 8, 0, 255).astype(np.uint8)


COPIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "reencoded_crf32": lambda f: reencode(f, crf=32),
    "downscaled_32x32": lambda f: resize_frames(f, 32, 32),
    "cropped_80pct": _crop,
    "recoloured": _recolour,
    "time_shifted_2": lambda f: f[2:],
}
"""How each planted copy is made from its original's frames (T, H, W, 3) uint8."""


def _quality(kind: str) -> float:
    """Copies rank below originals at equal resolution (the original is the better copy)."""
    return 1.0 if kind == "original" else 0.0


def _scores(keep: np.ndarray, duplicate_of: np.ndarray, group: np.ndarray, kind: list[str]):
    """Precision: the fraction of removed clips that are planted copies. Recall: the fraction of
    planted copies removed. ``attributed_to_own_group``: removed copies whose named duplicate is
    their own original or a sibling copy (a copy can be near several look-alikes; dedup names
    the highest-priority one above the threshold)."""
    planted = np.array([k != "original" for k in kind])
    removed = ~keep
    own_group = removed & (group[np.maximum(duplicate_of, 0)] == group)
    per_kind = {
        name: float(removed[np.array(kind) == name].mean()) for name in COPIES if name in set(kind)
    }
    return {
        "precision": float((removed & planted).sum() / max(1, removed.sum())),
        "recall": float((removed & planted).sum() / max(1, planted.sum())),
        "removed": int(removed.sum()),
        "originals_removed": int((removed & ~planted).sum()),
        "attributed_to_own_group": float(own_group.sum() / max(1, (removed & planted).sum())),
        "recall_per_copy": per_kind,
    }


def _against_all_pairs(keep: np.ndarray, all_pairs_keep: np.ndarray) -> dict[str, float]:
    """The clustered dedup's drops scored against exact brute force over all pairs (one
    cluster: no pair is missed for falling into two k-means clusters). Precision: the
    fraction of its drops that the all-pairs dedup makes too; recall: the fraction of the
    all-pairs drops it makes."""
    dropped, reference = ~keep, ~all_pairs_keep
    both = int((dropped & reference).sum())
    return {
        "precision": both / max(1, int(dropped.sum())),
        "recall": both / max(1, int(reference.sum())),
        "all_pairs_removed": int(reference.sum()),
    }


def _pixel_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference (grey levels) over the frames two same-size clips share."""
    n = min(len(a), len(b))
    return float(np.abs(a[:n].astype(np.int16) - b[:n].astype(np.int16)).mean())


def _natural_duplicates(result, frames: list[np.ndarray], kind: list[str], gap: float) -> dict:
    """Originals dropped as duplicates of another original that differs from it by no more
    pixels than a re-encoded copy differs from its original (``gap``, the 95th percentile over
    the planted re-encodes): near-identical drives the footage itself holds (empty roads
    scroll periodically). Precision counting them as right drops is ``precision_with_natural``."""
    planted = np.array([k != "original" for k in kind])
    removed = ~result.keep
    natural = [
        i
        for i in np.flatnonzero(removed & ~planted)
        if frames[i].shape == frames[result.duplicate_of[i]].shape
        and _pixel_gap(frames[i], frames[result.duplicate_of[i]]) <= gap
    ]
    return {
        "natural_duplicates": len(natural),
        "precision_with_natural": float(
            ((removed & planted).sum() + len(natural)) / max(1, removed.sum())
        ),
    }


def main() -> None:
    """Measure and write experiments/results/dedup_planted.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="data/curated/driving")
    parser.add_argument("--originals", type=int, default=300)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    work = Path(args.work)
    split = json.loads((work / "encoder" / "split.json").read_text())
    catalog = read_catalog(work / "shards").to_pandas()
    pool = catalog[
        catalog["drop_reason"].isna()
        & catalog["part"].isin(split["held_out_parts"])
        & (catalog["height"] == 64)
        & ((catalog["end"] - catalog["start"]) >= 8)
    ]
    rng = np.random.default_rng(args.seed)
    chosen = pool.iloc[rng.permutation(len(pool))[: args.originals]]
    frames: list[np.ndarray] = []
    group: list[int] = []
    kind: list[str] = []
    for index, row in enumerate(tqdm(chosen.to_dict("records"), desc="planting copies")):
        original = read_clip(work / "clips", ClipSpan.from_row(row)).frames
        for name, make in [("original", lambda f: f), *COPIES.items()]:
            frames.append(make(original))
            group.append(index)
            kind.append(name)
    encoder = load_video_encoder(work / "encoder" / "video_encoder")
    started = time.perf_counter()
    embeddings = embed_videos(encoder, frames)
    embed_seconds = time.perf_counter() - started
    priority = np.array(
        [[f.shape[1] * f.shape[2], _quality(k)] for f, k in zip(frames, kind, strict=True)]
    )
    groups = np.array(group)
    reencode_gap = float(
        np.percentile(
            [
                _pixel_gap(frames[i], frames[i - 1])
                for i, k in enumerate(kind)
                if k == "reencoded_crf32"
            ],
            95,
        )
    )
    per_epsilon = {}
    for epsilon in EPSILONS:
        config = DedupConfig(clusters=args.clusters, epsilon=epsilon, block_size=256)
        blockwise = semantic_dedup(embeddings, priority, config)
        exact = brute_force_dedup(embeddings, priority, blockwise.cluster, config)
        one_cluster = np.zeros(len(frames), dtype=np.int64)
        all_pairs = brute_force_dedup(embeddings, priority, one_cluster, config)
        per_epsilon[str(epsilon)] = {
            **_scores(blockwise.keep, blockwise.duplicate_of, groups, kind),
            **_natural_duplicates(blockwise, frames, kind, reencode_gap),
            "equals_brute_force": bool(
                np.array_equal(blockwise.keep, exact.keep)
                and np.array_equal(blockwise.duplicate_of, exact.duplicate_of)
            ),
            "against_all_pairs": _against_all_pairs(blockwise.keep, all_pairs.keep),
        }
    similarity = embeddings @ embeddings.T
    originals = np.flatnonzero(np.array(kind) == "original")
    copy_to_original = {
        name: float(
            np.mean(
                [
                    similarity[i, originals[groups[i]]]
                    for i in np.flatnonzero(np.array(kind) == name)
                ]
            )
        )
        for name in COPIES
    }
    other = similarity[np.ix_(originals, originals)]
    np.fill_diagonal(other, -1.0)
    payload = {
        "originals": len(chosen),
        "copies_per_original": list(COPIES),
        "clips": len(frames),
        "encoder": str(work / "encoder" / "video_encoder"),
        "embed_seconds": round(embed_seconds, 2),
        "per_epsilon": per_epsilon,
        "mean_cosine_copy_to_original": copy_to_original,
        "mean_max_cosine_original_to_other_originals": float(other.max(1).mean()),
        "reencode_pixel_gap_p95": reencode_gap,
    }
    print(write_result("dedup_planted", payload))
    print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
