"""World-model quality on held-out footage: next-frame and 16-step PSNR against the
copy-last-frame baseline, reward error and termination accuracy.

    python -m experiments.bench.world_model_quality [--checkpoint driving] [--footage data/footage/driving]
    python -m experiments.bench.world_model_quality --checkpoint robot --footage data/footage/robot --name world_model_quality_robot
"""

from __future__ import annotations

import argparse

import torch

import world_models
from experiments.bench.common import write_result
from experiments.model_card import held_out_episodes
from wfm_sim.training.evaluate import evaluate_world_model


def main() -> None:
    """Measure and write experiments/results/<name>.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="driving")
    parser.add_argument("--footage", default="data/footage/driving")
    parser.add_argument("--name", default="world_model_quality", help="result file stem")
    args = parser.parse_args()
    torch.set_num_threads(2)
    folder = world_models.checkpoint_path(args.checkpoint)
    model = world_models.load(folder, device="cpu")
    metrics = evaluate_world_model(model, held_out_episodes(folder, args.footage))
    print(write_result(args.name, {"checkpoint": str(args.checkpoint), **metrics}))
    print(metrics)


if __name__ == "__main__":
    main()
