"""Synthetic data from each generator through the guardrails: how many generated clips the
video post-guard lets through (and why it rejects the others), and how fast clips come.

    python -m experiments.bench.synthetic_yield [--clips 16] [--work data/synthetic/bench]

Each generator runs ``experiments.synthesize`` with the shipped config (experiments/conf/
synthesize.yaml) into a fresh folder under ``--work``: the diffusion WFM's Text2World clips
from the shipped prompts, and action-conditioned episodes driven by the zoo policies on each
backend of WFM-Driving-v0 (a generator whose checkpoint is missing is listed as not trained).
Writes experiments/results/synthetic_yield.json.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from hydra import compose, initialize

import experiments.synthesize  # noqa: F401  (registers the synthesize config schema)
from envs.core import ENV_BACKENDS, backend_checkpoint
from experiments.bench.common import write_result
from experiments.config import to_dataclass
from experiments.synthesize import SynthesizeConfig, synthesize

GENERATOR_OVERRIDES: dict[str, list[str]] = {
    "text2world_diffusion": ["generator=diffusion"],
    **{
        f"episodes_{backend}": ["generator=world_model", f"world_model.backend={backend}"]
        for backend in ENV_BACKENDS
    },
}
"""Each measured generator's overrides of the shipped synthesize config."""


def measure(name: str, overrides: list[str], clips: int, work: Path) -> dict[str, Any]:
    """Run one generator afresh; its summary's counts, or why it could not run."""
    out_dir = work / name
    shutil.rmtree(out_dir, ignore_errors=True)  # a resumed run would only re-read its parts
    with initialize(version_base=None, config_path="../conf"):
        cfg = compose("synthesize", [*overrides, f"n_clips={clips}", f"out_dir={out_dir}"])
    config = to_dataclass(cfg, SynthesizeConfig)
    if config.generator == "world_model":
        try:
            backend_checkpoint(config.world_model.checkpoint, config.world_model.backend)
        except FileNotFoundError as missing:
            return {"trained": False, "why": str(missing)}
    elif not (Path(config.diffusion.checkpoint) / "config.json").exists():
        why = f"no diffusion checkpoint at {config.diffusion.checkpoint} (make train-diffusion)"
        return {"trained": False, "why": why}
    summary = synthesize(config).summary
    return {
        "trained": True,
        "checkpoint": summary["checkpoint"],
        "backend": summary["backend"],
        **summary["total"],
    }


def main() -> None:
    """Measure every generator and write experiments/results/synthetic_yield.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=16, help="clips per generator")
    parser.add_argument("--work", default="data/synthetic/bench")
    args = parser.parse_args()
    results = {
        name: measure(name, overrides, args.clips, Path(args.work))
        for name, overrides in GENERATOR_OVERRIDES.items()
    }
    for name, result in results.items():
        print(name, {k: v for k, v in result.items() if k != "why"})
    print(write_result("synthetic_yield", {"clips_per_generator": args.clips, **results}))


if __name__ == "__main__":
    main()
