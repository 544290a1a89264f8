"""World-model quality on held-out footage: next-frame and 16-step PSNR against the
copy-last-frame baseline, reward error and termination accuracy.

    python -m experiments.bench.world_model_quality [--checkpoint driving] [--footage data/footage/driving]
    python -m experiments.bench.world_model_quality --checkpoint robot --footage data/footage/robot --name world_model_quality_robot

``--unseen-footage DIR`` measures on every episode of footage recorded after training instead
(e.g. ``make record-robot-unseen``), read with the checkpoint's condition columns: models
trained on different splits of the same footage (raw against curated) are then compared on
the same episodes, none of which either saw.
``--behaviour NAME`` keeps only the episodes recorded by that behaviour (e.g. ``still``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import world_models
from experiments.bench.common import write_result
from experiments.model_card import held_out_episodes
from wfm_sim.data import Episode, read_episodes
from wfm_sim.training.evaluate import evaluate_world_model


def unseen_episodes(checkpoint: Path, footage_dir: str | Path) -> list[Episode]:
    """Every episode of footage the checkpoint never trained on, its actions extended with the
    ground-truth columns the checkpoint was trained to condition on (a camera pose)."""
    training = json.loads((checkpoint / "training.json").read_text())
    return read_episodes(footage_dir, training["train_config"].get("condition_columns", []))


def main() -> None:
    """Measure and write experiments/results/<name>.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="driving")
    parser.add_argument("--footage", default="data/footage/driving")
    parser.add_argument("--unseen-footage", default="", help="measure on all of this footage")
    parser.add_argument("--behaviour", default="", help="only episodes of this behaviour")
    parser.add_argument("--name", default="world_model_quality", help="result file stem")
    args = parser.parse_args()
    torch.set_num_threads(2)
    folder = world_models.checkpoint_path(args.checkpoint)
    model = world_models.load(folder, device="cpu")
    if args.unseen_footage:
        episodes = unseen_episodes(folder, args.unseen_footage)
        measured_on = {"unseen_footage": args.unseen_footage}
    else:
        episodes = held_out_episodes(folder, args.footage)
        measured_on = {"held_out_of": args.footage}
    if args.behaviour:
        episodes = [e for e in episodes if e.behaviour == args.behaviour]
        if not episodes:
            parser.error(f"no episode of behaviour {args.behaviour!r} in that footage")
        measured_on["behaviour"] = args.behaviour
    metrics = evaluate_world_model(model, episodes)
    print(write_result(args.name, {"checkpoint": str(args.checkpoint), **measured_on, **metrics}))
    print(metrics)


if __name__ == "__main__":
    main()
