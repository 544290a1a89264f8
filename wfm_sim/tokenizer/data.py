"""Training clips for tokenizers: curated shard clips, split by clip into train and held-out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wfm_sim.data.shards import decode_mp4_bytes, iter_shard_samples, shard_paths


def tokenizer_clips(
    shards_dir: str | Path,
    resolution: str = "64x64",
    held_out_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, held-out) clips (T, H, W, 3) uint8 of the curated shards at ``resolution``.

    Whole clips go to one side, chosen by a seeded permutation of the sorted clip ids, so the
    split is the same on every call and no held-out frame has a near-copy in training. At
    least one clip is held out when there are two or more.
    """
    paths = shard_paths(shards_dir, resolution)
    if not paths:
        raise FileNotFoundError(
            f"no shards at resolution {resolution} under {shards_dir}; run the curation first "
            "(`python -m experiments.curate`)"
        )
    clips = {s.key: decode_mp4_bytes(s.mp4, s.key) for s in iter_shard_samples(paths)}
    keys = sorted(clips)
    held = held_out_clip_ids(keys, held_out_fraction, seed)
    train = [clips[k] for k in keys if k not in held]
    held_out = [clips[k] for k in keys if k in held]
    return train, held_out


def held_out_clip_ids(keys: list[str], held_out_fraction: float, seed: int) -> set[str]:
    """The held-out clip ids of the split every model trained on curated shards shares: a
    seeded permutation of the sorted ids, at least one held out when there are two or more."""
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    keys = sorted(keys)
    order = np.random.default_rng(seed).permutation(len(keys))
    n_held = round(held_out_fraction * len(keys))
    if held_out_fraction > 0 and len(keys) >= 2:
        n_held = min(max(1, n_held), len(keys) - 1)
    return {keys[i] for i in order[:n_held]}
