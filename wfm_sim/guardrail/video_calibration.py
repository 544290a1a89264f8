"""Calibrating the video guard on real footage, and measuring it on real and broken clips.

clips = footage_clips("data/footage/driving", exclude=held_out_ids)
thresholds = calibrate_video_guard(clips, world_model="driving")
guard = VideoGuard(VideoGuardConfig(world_model="driving"), thresholds=thresholds)
rates = evaluate_video_guard(guard, held_out_clips, np.random.default_rng(0))
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import world_models
from wfm_sim.data.footage import read_episodes
from wfm_sim.guardrail.corruptions import CORRUPTIONS
from wfm_sim.guardrail.video_guard import (
    VideoGuard,
    VideoGuardThresholds,
    reconstruction_errors,
    temporal_residuals,
    tokenizer_fingerprint,
)
from world_models import WorldModel


def footage_clips(
    footage_dir: str | Path,
    include: Collection[int] | None = None,
    exclude: Collection[int] = (),
) -> tuple[list[int], list[np.ndarray]]:
    """(episode ids, frames ``(T_i, H, W, 3)`` uint8) of the episodes of a footage folder,
    only those in ``include`` (all when None) and not in ``exclude``; one clip per episode."""
    episodes = [
        e
        for e in read_episodes(footage_dir)
        if (include is None or e.episode_id in include) and e.episode_id not in exclude
    ]
    return [e.episode_id for e in episodes], [e.frames for e in episodes]


@dataclass
class VideoCalibrationConfig:
    """How thresholds are set from real footage: the ``percentile`` of the real scores times
    ``margin`` (>= 1, so real footage at that percentile passes with room to spare); the
    temporal score searches global shifts of up to ``max_shift`` pixels."""

    percentile: float = 99.9
    margin: float = 1.1
    max_shift: int = 8

    def __post_init__(self) -> None:
        if not 50.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must be in [50, 100], got {self.percentile}")
        if self.margin < 1.0:
            raise ValueError(
                f"margin must be >= 1 (a threshold below real footage), got {self.margin}"
            )
        if self.max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {self.max_shift}")


def calibrate_video_guard(
    clips: Sequence[np.ndarray],
    world_model: str = "driving",
    model: WorldModel | None = None,
    config: VideoCalibrationConfig | None = None,
    progress: bool = True,
) -> VideoGuardThresholds:
    """Thresholds from real footage: a high percentile of the per-frame reconstruction errors
    and of the per-pair temporal residuals of ``clips`` (each ``(T_i, H, W, 3)`` uint8, one
    clip per episode so that no pair spans a cut), times a margin (``config``).

    ``world_model`` names the model whose tokenizer is used (``model`` may be passed loaded).
    """
    config = config or VideoCalibrationConfig()
    if not clips:
        raise ValueError("calibration needs real clips")
    model = model if model is not None else world_models.load_world_model(world_model)
    tokenizer = model.tokenizer.eval()
    reconstruction, temporal = [], []
    for clip in tqdm(clips, desc="scoring real footage", disable=not progress):
        if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
            raise ValueError(
                f"calibration clips must be (T, H, W, 3) uint8, got {clip.shape} {clip.dtype}"
            )
        reconstruction.append(reconstruction_errors(tokenizer, clip))
        temporal.append(temporal_residuals(clip, config.max_shift))
    rec, tmp = np.concatenate(reconstruction), np.concatenate(temporal)
    if len(tmp) == 0:
        raise ValueError("calibration needs clips of at least 2 frames for the temporal score")
    quantiles = [50.0, 99.0, 99.9, 100.0]
    return VideoGuardThresholds(
        world_model=world_model,
        tokenizer_sha256=tokenizer_fingerprint(tokenizer),
        reconstruction=float(np.percentile(rec, config.percentile) * config.margin),
        temporal=float(np.percentile(tmp, config.percentile) * config.margin),
        max_shift=config.max_shift,
        percentile=config.percentile,
        margin=config.margin,
        calibration={
            "clips": len(clips),
            "frames": len(rec),
            "pairs": len(tmp),
            "reconstruction_percentiles": _percentiles(rec, quantiles),
            "temporal_percentiles": _percentiles(tmp, quantiles),
        },
    )


def _percentiles(values: np.ndarray, quantiles: list[float]) -> dict[str, float]:
    return {f"p{q:g}": round(float(np.percentile(values, q)), 4) for q in quantiles}


def evaluate_video_guard(
    guard: VideoGuard,
    clips: Sequence[np.ndarray],
    rng: np.random.Generator,
    corruptions: Sequence[str] = tuple(CORRUPTIONS),
    progress: bool = True,
) -> dict[str, dict[str, float | int | dict[str, int]]]:
    """Pass rate on real ``clips`` and refusal rate on each corruption of them.

    Every clip of at least 2 frames is checked as is and, for each corruption, broken from a
    frame drawn uniformly in ``[1, T)``. Returns ``{"real": {"clips", "pass_rate", "stages"},
    <corruption>: {"clips", "refusal_rate", "stages"}}``, ``stages`` counting the stage that
    decided each refusal. Nothing is logged (``VideoGuard.decide``).
    """
    usable = [clip for clip in clips if len(clip) >= 2]
    if not usable:
        raise ValueError("evaluation needs clips of at least 2 frames")
    unknown = sorted(set(corruptions) - set(CORRUPTIONS))
    if unknown:
        raise ValueError(f"unknown corruptions {unknown}; known: {sorted(CORRUPTIONS)}")
    outcomes: dict[str, list[tuple[bool, str]]] = {"real": []}
    for clip in tqdm(usable, desc="checking clips", disable=not progress):
        decision = guard.decide(clip)
        outcomes["real"].append((decision.allowed, decision.stage))
        for name in corruptions:
            start = int(rng.integers(1, len(clip)))
            broken = CORRUPTIONS[name](clip, start, rng)
            decision = guard.decide(broken)
            outcomes.setdefault(name, []).append((decision.allowed, decision.stage))
    report: dict[str, dict[str, float | int | dict[str, int]]] = {}
    for name, results in outcomes.items():
        allowed = np.array([a for a, _ in results])
        stages: dict[str, int] = {}
        for a, stage in results:
            if not a:
                stages[stage] = stages.get(stage, 0) + 1
        key = "pass_rate" if name == "real" else "refusal_rate"
        rate = allowed.mean() if name == "real" else 1.0 - allowed.mean()
        report[name] = {"clips": len(results), key: round(float(rate), 4), "stages": stages}
    return report
