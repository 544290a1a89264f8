"""Rebuild the guardrails' shipped artefacts, or try a prompt.

    python -m wfm_sim.guardrail train-prompt-classifier            # prompts.json -> prompt_classifier.*
    python -m wfm_sim.guardrail calibrate-video-guard              # driving footage -> video_guard_driving.json
    python -m wfm_sim.guardrail check-prompt "a red car overtakes on a rainy highway"

``train-prompt-classifier`` is deterministic for a seed: run on the shipped ``prompts.json``
with the defaults it reproduces the shipped weights. ``calibrate-video-guard`` calibrates on
the footage episodes the world model was trained on and, when its checkpoint lists held-out
episodes (``training.json``), measures the pass rate on those and the refusal rate on
corrupted copies of them, stored with the thresholds under ``evaluation``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

import world_models
from wfm_sim.guardrail.classifier import (
    DEFAULT_CLASSIFIER,
    DEFAULT_PROMPTS,
    PromptClassifierTrainConfig,
    load_prompt_examples,
    save_prompt_classifier,
    train_prompt_classifier,
)
from wfm_sim.guardrail.prompt_guard import PromptGuard, PromptGuardConfig
from wfm_sim.guardrail.video_calibration import (
    VideoCalibrationConfig,
    calibrate_video_guard,
    evaluate_video_guard,
    footage_clips,
)
from wfm_sim.guardrail.video_guard import (
    VideoGuard,
    VideoGuardConfig,
    shipped_thresholds_path,
)


def _train_prompt_classifier(args: argparse.Namespace) -> None:
    config = PromptClassifierTrainConfig(
        seed=args.seed, l2=args.l2, threshold=args.threshold, held_out_fraction=args.held_out
    )
    result = train_prompt_classifier(
        load_prompt_examples(args.prompts), config, source=args.prompts
    )
    path = save_prompt_classifier(result.classifier, args.out)
    print(json.dumps(result.metrics, indent=2))
    print(f"prompt classifier written to {path} (+ .json)")


def _held_out_ids(world_model: str) -> list[int]:
    training = world_models.checkpoint_path(world_model) / "training.json"
    if not training.exists():
        return []
    return [int(i) for i in json.loads(training.read_text()).get("held_out_episode_ids", [])]


def _calibrate_video_guard(args: argparse.Namespace) -> None:
    model = world_models.load_world_model(args.world_model)
    held_out = _held_out_ids(args.world_model)
    _, clips = footage_clips(args.footage, exclude=held_out)
    config = VideoCalibrationConfig(args.percentile, args.margin, args.max_shift)
    thresholds = calibrate_video_guard(clips, args.world_model, model, config)
    thresholds.calibration["footage"] = str(args.footage)
    thresholds.calibration["episodes"] = "all but the world model's held-out episodes"
    if held_out:
        _, test_clips = footage_clips(args.footage, include=held_out)
        guard = VideoGuard(VideoGuardConfig(world_model=args.world_model), model, thresholds)
        rates = evaluate_video_guard(guard, test_clips, np.random.default_rng(args.seed))
        thresholds.evaluation = {"held_out_episodes": len(test_clips), "seed": args.seed, **rates}
    out = args.out or shipped_thresholds_path(args.world_model)
    thresholds.save(out)
    print(
        json.dumps(
            {
                "reconstruction": thresholds.reconstruction,
                "temporal": thresholds.temporal,
                "evaluation": thresholds.evaluation,
            },
            indent=2,
        )
    )
    print(f"video-guard thresholds written to {out}")


def _check_prompt(args: argparse.Namespace) -> None:
    decision = PromptGuard(PromptGuardConfig(log_path=args.log)).check(args.prompt)
    print(decision.refusal_message or f"allowed: {decision.reason}")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run one command."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        prog="python -m wfm_sim.guardrail",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train-prompt-classifier", help="train the prompt classifier")
    train.add_argument("--prompts", type=Path, default=DEFAULT_PROMPTS)
    train.add_argument("--out", type=Path, default=DEFAULT_CLASSIFIER, help="output stem")
    defaults = PromptClassifierTrainConfig()
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--l2", type=float, default=defaults.l2)
    train.add_argument("--threshold", type=float, default=defaults.threshold)
    train.add_argument("--held-out", type=float, default=defaults.held_out_fraction)
    train.set_defaults(run=_train_prompt_classifier)

    calibrate = commands.add_parser("calibrate-video-guard", help="calibrate on real footage")
    calibrate.add_argument("--footage", type=Path, default=Path("data/footage/driving"))
    calibrate.add_argument("--world-model", default="driving")
    calibrate.add_argument(
        "--out", type=Path, default=None, help="default: the shipped thresholds of the zoo model"
    )
    calibration = VideoCalibrationConfig()
    calibrate.add_argument("--percentile", type=float, default=calibration.percentile)
    calibrate.add_argument("--margin", type=float, default=calibration.margin)
    calibrate.add_argument("--max-shift", type=int, default=calibration.max_shift)
    calibrate.add_argument("--seed", type=int, default=0, help="seed of the corruptions")
    calibrate.set_defaults(run=_calibrate_video_guard)

    check = commands.add_parser("check-prompt", help="screen one prompt")
    check.add_argument("prompt")
    check.add_argument("--log", default=None, help="refusal log (JSON lines)")
    check.set_defaults(run=_check_prompt)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
