"""Shot-boundary detection on recorded footage: precision/recall of ``detect_cuts`` against the
episode boundaries of the ground truth, at tolerance 0 and 1 frame, and detection speed.

Two settings are scored: the frames alone (the default ``ShotConfig``), and the frames plus
the shot-length prior curation runs with (``shots.max_shot_frames`` of curate.yaml: the
simulator's time limit), which recovers episodes that end by truncation without any visual
event.

    python -m experiments.bench.shot_boundaries [--footage data/footage/driving] [--parts N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from experiments.bench.common import write_result
from wfm_sim.curation.shots import (
    CUES,
    ShotConfig,
    cut_evidence,
    detect_cuts,
    pooled_cut_precision_recall,
    true_cuts_from_ground_truth,
)
from wfm_sim.data.footage import read_video

TOLERANCES = (0, 1)


def curation_shot_limit() -> int | None:
    """The shot-length prior curation runs with (``shots.max_shot_frames`` of
    experiments/conf/curate.yaml: the source's longest episode, a known property of the
    footage source, not its boundaries)."""
    config = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "curate.yaml")
    return OmegaConf.select(config, "shots.max_shot_frames")


def _score(detected: list[np.ndarray], truth: list[np.ndarray]) -> dict[str, Any]:
    """Totals over parts (a part's frame indices never match another part's)."""
    out: dict[str, Any] = {}
    for tolerance in TOLERANCES:
        scores = pooled_cut_precision_recall(zip(detected, truth, strict=True), tolerance)
        out[f"tolerance_{tolerance}"] = {
            **{key: round(scores[key], 4) for key in ("precision", "recall", "f1")},
            **{key: int(scores[key]) for key in ("tp", "fp", "fn")},
        }
    return out


def main() -> None:
    """Measure and write experiments/results/shot_boundaries.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--footage", default="data/footage/driving")
    parser.add_argument("--parts", type=int, default=0, help="score only the first N parts")
    args = parser.parse_args()
    footage_dir = Path(args.footage)
    parquets = sorted(footage_dir.glob("part-*.parquet"))
    if args.parts:
        parquets = parquets[: args.parts]
    if not parquets:
        raise FileNotFoundError(f"no footage parts in {footage_dir}; record some first")
    config = ShotConfig()
    limit = curation_shot_limit()
    with_prior = dataclasses.replace(config, max_shot_frames=limit)

    truth, vision, prior = [], [], []
    cue_hits = {cue: {"true": 0, "false": 0} for cue in CUES}
    frames_total, seconds = 0, 0.0
    for parquet in tqdm(parquets, desc="parts"):
        frames = read_video(parquet.with_suffix(".mp4"))
        true = true_cuts_from_ground_truth(pq.read_table(parquet))
        start = time.perf_counter()
        found = detect_cuts(frames, config)
        seconds += time.perf_counter() - start
        frames_total += len(frames)
        truth.append(true)
        vision.append(found)
        prior.append(detect_cuts(frames, with_prior) if limit else found)
        evidence = cut_evidence(frames, config)
        for cue in CUES:
            fired = np.flatnonzero(evidence[cue]) + 1
            hits = np.isin(fired, true)
            cue_hits[cue]["true"] += int(hits.sum())
            cue_hits[cue]["false"] += int((~hits).sum())

    result = {
        "footage": str(footage_dir),
        "parts": len(parquets),
        "frames": frames_total,
        "true_cuts": int(sum(len(t) for t in truth)),
        "frames_per_second": round(frames_total / seconds, 1),
        "config": dataclasses.asdict(config),
        "frames_only": _score(vision, truth),
        "with_time_limit": {"max_shot_frames": limit, **_score(prior, truth)},
        "cue_hits": cue_hits,
    }
    print(write_result("shot_boundaries", result))
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=1))


if __name__ == "__main__":
    main()
