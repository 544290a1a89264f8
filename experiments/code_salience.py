"""Measure which tokens of a discrete world model show cars, and store it in its checkpoint.

    python -m experiments.code_salience --checkpoint world_models/zoo/driving
        --footage data/footage/salience [--episodes 200]

Each token's salience is the share of the patches its tokenizer codes as that token that
hold a coloured pixel (a car, not the grey road), over the footage's frames
(``world_models.model.measure_code_salience``). A ranking or env drawing with
``salient_priority`` keeps the draws of salient tokens before the surer road's. Training
measures it on its own footage; this adds it to a checkpoint trained before that, writing
``salience.safetensors`` beside the weights (atomically; the weights stay as they are).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import world_models
from wfm_sim.data import read_episodes
from wfm_sim.training.world_model import tokenize_frames
from world_models.model import SALIENCE_FILE, measure_code_salience


def measure_into(checkpoint: str, footage: str, episodes: int) -> Path:
    """Measure the salience of ``checkpoint``'s tokens on the first ``episodes`` episodes of
    ``footage`` and write it into the checkpoint folder; returns the file written."""
    folder = world_models.checkpoint_path(checkpoint)
    model = world_models.load_world_model(folder)
    if not model.config.discrete:
        raise ValueError(f"{folder} is a continuous world model: it has no tokens to measure")
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    found = read_episodes(footage)[:episodes]
    cpu = torch.device("cpu")
    coded = (
        (
            model.tokenizer.to_indices(tokenize_frames(model, e.frames, cpu)),
            torch.from_numpy(e.frames),
        )
        for e in found
    )
    salience = measure_code_salience(coded, model.config.codebook_size)
    model.code_salience.copy_(salience)
    frames = sum(len(e.frames) for e in found)
    model.save_salience(
        folder, {"footage": footage, "episodes": str(len(found)), "frames": str(frames)}
    )
    print(
        f"{len(found)} episodes ({frames} frames): {int((salience > 0.5).sum())} of "
        f"{len(salience)} tokens show a car in most of their patches"
    )
    return folder / SALIENCE_FILE


def main() -> None:
    """Parse the command line and write the checkpoint's salience file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="driving", help="a zoo name or a folder")
    parser.add_argument("--footage", required=True, help="a footage folder (experiments.record)")
    parser.add_argument("--episodes", type=int, default=200, help="episodes measured on")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(measure_into(args.checkpoint, args.footage, args.episodes))


if __name__ == "__main__":
    main()
