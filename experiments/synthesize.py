"""Generate synthetic footage through the guardrails, for curation and training.

    python -m experiments.synthesize generator=diffusion n_clips=32 \
        prompts='["The ego car drives fast in the left lane in light traffic."]' \
        out_dir=data/synthetic/diffusion
    python -m experiments.synthesize generator=diffusion diffusion.start_from_footage=true
    python -m experiments.synthesize generator=world_model n_clips=48 out_dir=data/synthetic/wm
    python -m experiments.curate footage_dirs='[data/footage/driving,data/synthetic/wm]'

Prompts pass the prompt guard first (refused ones are logged and skipped); every clip passes
the video guard (rejected ones are logged with their reason and not written). The output
folder is footage (``experiments.synthetic`` describes it); a killed run resumes from its
done parts. ``summary.json`` in it counts what was generated, refused, rejected and written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from tqdm.auto import tqdm

from experiments.config import to_dataclass
from experiments.synthetic import (
    GENERATORS,
    SYNTHETIC_SCHEMA,
    ClipGenerator,
    ClipRequest,
    DiffusionClipGenerator,
    DiffusionSynthesisConfig,
    WorldModelClipGenerator,
    WorldModelSynthesisConfig,
    write_synthetic_part,
)
from wfm_sim.curation.embed import TextEmbedder
from wfm_sim.guardrail import PromptGuard, PromptGuardConfig, VideoGuard, VideoGuardConfig
from wfm_sim.io import write_json_atomic
from wfm_sim.sources.recorder import episode_seed

logger = logging.getLogger("experiments.synthesize")

_RUNTIME_KEYS = frozenset({"device", "threads", "batch_size"})
"""Config keys that change only how fast a run goes: a resume may change them."""


@dataclass
class SynthesizeConfig:
    """A synthetic-data run: which generator, how many clips, from which prompts, where to.

    ``n_clips`` clips are generated (and screened; the rejected ones are not written) in parts
    of ``clips_per_part``, each part one batch and one mp4 + Parquet pair. Clip i draws
    everything from the seed ``episode_seed(seed, i)``. ``prompts`` condition the diffusion
    generator (an empty string asks for unconditional generation); the world model is driven
    by policies and ignores them. The guards' configs give their thresholds and refusal log.
    """

    generator: str = "diffusion"
    n_clips: int = 16
    prompts: list[str] = field(default_factory=list)
    out_dir: str = "data/synthetic/driving"
    clips_per_part: int = 8
    seed: int = 0
    fps: int = 5
    crf: int = 12
    device: str = "cpu"
    threads: int = 1
    diffusion: DiffusionSynthesisConfig = field(default_factory=DiffusionSynthesisConfig)
    world_model: WorldModelSynthesisConfig = field(default_factory=WorldModelSynthesisConfig)
    prompt_guard: PromptGuardConfig = field(default_factory=PromptGuardConfig)
    video_guard: VideoGuardConfig = field(default_factory=VideoGuardConfig)

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ValueError(f"generator must be one of {GENERATORS}, got {self.generator!r}")
        if min(self.n_clips, self.clips_per_part, self.fps) < 1:
            raise ValueError("n_clips, clips_per_part and fps must be >= 1")
        if self.generator == "diffusion" and not self.prompts:
            raise ValueError(
                "the diffusion generator needs prompts; pass prompts=[...] (an empty string "
                "'' asks for unconditional generation)"
            )
        if tuple(self.video_guard.float_range) != (0.0, 1.0):
            raise ValueError(
                "video_guard.float_range must be [0.0, 1.0]: generators hand the guard uint8 "
                f"frames or floats in [0, 1], got {self.video_guard.float_range}"
            )


def screen_prompts(
    prompts: Sequence[str], guard: PromptGuard
) -> tuple[list[str], list[dict[str, str]]]:
    """(allowed prompts in order, refusals as {prompt, stage, reason}); ``guard.check`` logs
    each refusal."""
    allowed, refused = [], []
    for prompt in prompts:
        decision = guard.check(prompt)
        if decision.allowed:
            allowed.append(prompt)
        else:
            refused.append({"prompt": prompt, "stage": decision.stage, "reason": decision.reason})
    return allowed, refused


def clip_requests(n_clips: int, seed: int, prompts: Sequence[str] | None) -> list[ClipRequest]:
    """The ``n_clips`` requests, clip i seeded ``episode_seed(seed, i)`` and prompted by
    ``prompts[i % len(prompts)]``; ``prompts=None`` for a generator that takes none. An empty
    list (every prompt refused) gives no requests."""
    if prompts is not None and not prompts:
        return []
    return [
        ClipRequest(i, episode_seed(seed, i), prompts[i % len(prompts)] if prompts else "")
        for i in range(n_clips)
    ]


def record_path(out_dir: Path, part: int) -> Path:
    """The record of a synthetic part (its presence marks the part done)."""
    return out_dir / f"part-{part:05d}.json"


def _comparable(config: SynthesizeConfig) -> dict[str, Any]:
    """The config as JSON data without the keys that only change speed."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in _RUNTIME_KEYS}
        return value

    return json.loads(json.dumps(strip(dataclasses.asdict(config))))


def _claim_out_dir(out_dir: Path, config: SynthesizeConfig) -> None:
    """Write ``footage.json`` for a new folder; refuse to resume one made with another config."""
    manifest = out_dir / "footage.json"
    current = _comparable(config)
    if manifest.exists():
        saved = json.loads(manifest.read_text()).get("synthesis")
        if saved != current:
            changed = sorted(
                k for k in set(saved or {}) | set(current) if (saved or {}).get(k) != current.get(k)
            )
            raise ValueError(
                f"{out_dir} holds synthetic footage made with another config (differs in "
                f"{changed}); use another out_dir, or delete it to start over"
            )
        return
    write_json_atomic(
        manifest,
        {
            "source": "synthetic",
            "generator": config.generator,
            "synthesis": current,
            "schema": SYNTHETIC_SCHEMA.names,
        },
    )


@dataclass
class SynthesisResult:
    """Where the footage is and what happened (``summary``, also in ``summary.json``)."""

    out_dir: Path
    summary: dict[str, Any]


def make_generator(config: SynthesizeConfig, embedder: TextEmbedder | None) -> ClipGenerator:
    """The generator ``config.generator`` names, loaded."""
    if config.generator == "diffusion":
        return DiffusionClipGenerator(
            config.diffusion, embedder or TextEmbedder(device=config.device), config.device
        )
    return WorldModelClipGenerator(config.world_model, config.device)


def synthesize(
    config: SynthesizeConfig,
    generator: ClipGenerator | None = None,
    prompt_guard: PromptGuard | None = None,
    video_guard: VideoGuard | None = None,
    progress: bool = True,
) -> SynthesisResult:
    """Generate, screen and write ``config.n_clips`` clips into ``config.out_dir``; resumes a
    killed run (parts with a record are kept; the prompts are screened again, so a refused
    prompt is logged once per run). ``generator`` and the guards are built from ``config``
    unless given (the generator and video guard only when some part is left to generate)."""
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _claim_out_dir(out_dir, config)
    uses_prompts = (
        generator.uses_prompts if generator is not None else config.generator == "diffusion"
    )
    embedder: TextEmbedder | None = None
    prompts_summary: dict[str, Any] | None = None
    allowed: list[str] = []
    if uses_prompts:
        if prompt_guard is None:
            embedder = TextEmbedder(device=config.device)
            prompt_guard = PromptGuard(config.prompt_guard, embedder=embedder)
        allowed, refused = screen_prompts(config.prompts, prompt_guard)
        prompts_summary = {
            "given": len(config.prompts),
            "allowed": len(allowed),
            "refused": len(refused),
            "refusals": refused,
        }
        if not allowed:
            logger.warning("every prompt was refused by the prompt guard: no clip is generated")
    requests = clip_requests(config.n_clips, config.seed, allowed if uses_prompts else None)
    parts = [
        requests[i : i + config.clips_per_part]
        for i in range(0, len(requests), config.clips_per_part)
    ]
    todo = [k for k in range(len(parts)) if not record_path(out_dir, k).exists()]
    bar = tqdm(total=len(requests), desc=f"synthesizing ({config.generator})", disable=not progress)
    bar.update(sum(len(parts[k]) for k in range(len(parts)) if k not in todo))
    began = time.perf_counter()
    try:
        if todo and generator is None:
            generator = make_generator(config, embedder)
        if todo and video_guard is None:
            video_guard = VideoGuard(config.video_guard)
        for part in todo:
            assert generator is not None and video_guard is not None
            _generate_part(out_dir, part, parts[part], generator, video_guard, config)
            bar.update(len(parts[part]))
    finally:
        bar.close()
    summary = _summary(
        out_dir, config, len(parts), todo, prompts_summary, time.perf_counter() - began
    )
    write_json_atomic(out_dir / "summary.json", summary)
    return SynthesisResult(out_dir, summary)


def _generate_part(
    out_dir: Path,
    part: int,
    requests: Sequence[ClipRequest],
    generator: ClipGenerator,
    video_guard: VideoGuard,
    config: SynthesizeConfig,
) -> None:
    """Generate, screen and write one part, then its record."""
    began = time.perf_counter()
    clips = generator.generate(requests)
    if [c.request.index for c in clips] != [r.index for r in requests]:
        raise ValueError(
            f"generator {generator.name} returned clips {[c.request.index for c in clips]} "
            f"for requests {[r.index for r in requests]}: one clip per request, in order"
        )
    kept, rejected = [], []
    for clip in clips:
        decision = video_guard.check(
            clip.frames, clip_id=f"{out_dir.name}/episode-{clip.request.index}"
        )
        if decision.allowed:
            kept.append(clip)
        else:
            rejected.append(
                {"episode": clip.request.index, "stage": decision.stage, "reason": decision.reason}
            )
    frames = write_synthetic_part(out_dir, part, kept, generator, config.fps, config.crf)
    write_json_atomic(
        record_path(out_dir, part),
        {
            "part": part,
            "generated": [r.index for r in requests],
            "written": [c.request.index for c in kept],
            "rejected": rejected,
            "frames_written": frames,
            "seconds": round(time.perf_counter() - began, 3),
        },
    )


def _totals(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts over part records; ``clips_per_second`` over the parts' own time (generation,
    screening and writing; not loading the models)."""
    generated = sum(len(r["generated"]) for r in records)
    written = sum(len(r["written"]) for r in records)
    seconds = sum(r["seconds"] for r in records)
    rejected = Counter(x["stage"] for r in records for x in r["rejected"])
    return {
        "parts": len(records),
        "generated": generated,
        "written": written,
        "rejected": dict(sorted(rejected.items())),
        "frames_written": sum(r["frames_written"] for r in records),
        "pass_rate": round(written / generated, 4) if generated else None,
        "seconds": round(seconds, 2),
        "clips_per_second": round(generated / seconds, 3) if seconds > 0 else None,
    }


def _summary(
    out_dir: Path,
    config: SynthesizeConfig,
    n_parts: int,
    todo: list[int],
    prompts: dict[str, Any] | None,
    seconds: float,
) -> dict[str, Any]:
    records = [json.loads(record_path(out_dir, k).read_text()) for k in range(n_parts)]
    return {
        "generator": config.generator,
        "checkpoint": config.diffusion.checkpoint
        if config.generator == "diffusion"
        else config.world_model.checkpoint,
        "backend": "diffusion" if config.generator == "diffusion" else config.world_model.backend,
        "out_dir": str(out_dir),
        "n_clips": config.n_clips,
        "prompts": prompts,
        "this_run": {**_totals([records[k] for k in todo]), "wall_seconds": round(seconds, 2)},
        "total": _totals(records),
    }


ConfigStore.instance().store(name="synthesize_schema", node=SynthesizeConfig)


@hydra.main(version_base=None, config_path="conf", config_name="synthesize")
def main(cfg: DictConfig) -> None:
    """Generate (or resume), then print the summary."""
    result = synthesize(to_dataclass(cfg, SynthesizeConfig))
    print(json.dumps(result.summary, indent=2))
    print(f"synthetic footage in {result.out_dir}")


if __name__ == "__main__":
    main()
