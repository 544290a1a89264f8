"""Can the driving world model show a crash? highway-env paints both cars of a collision red
in the frame that ends the episode. This measures how much of that red the world model's
tokenizer keeps when it codes such a frame, and how much of it the world model draws one step
ahead from the real frames before the crash, with the termination head's end probability
there (the report's reading). Footage recorded apart from the training's, e.g. the salience
footage of the model card:

    python -m experiments.bench.crash_frames --footage data/footage/salience [--checkpoint driving]

Another checkpoint's figures go under another name (``--name crash_frames_<label>``); the
summary reads ``crash_frames.json``, the committed model's.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

import world_models
from envs.core import WorldModelCore
from experiments.bench.common import write_result
from wfm_sim.data import read_episodes
from wfm_sim.data.footage import Episode
from world_models import WorldModel

RED_MARGIN = 60
"""A crashed car's pixel: red above both green and blue by this much (the road is grey, the
other cars blue, the ego green)."""


def crashed_car_pixels(frames: np.ndarray) -> np.ndarray:
    """Pixels per frame (…,) of crashed cars in driving frames (…, H, W, 3) uint8: the red
    highway-env paints both cars of a collision."""
    f = frames.astype(np.int16)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    return ((r > g + RED_MARGIN) & (r > b + RED_MARGIN)).sum(axis=(-1, -2))


def crash_steps(
    episodes: list[Episode], context: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The crash frames (N, H, W, 3) of the episodes that ended in a crash with a full context
    before it, the K real frames before each (N, K, H, W, 3), the actions between those
    (N, K-1) and the action that led to the crash (N,)."""
    crashed = [e for e in episodes if e.ended_terminated and e.length >= context]
    if not crashed:
        raise ValueError(f"no episode ends in a crash after at least {context} steps")
    n = [e.length for e in crashed]
    return (
        np.stack([e.frames[-1] for e in crashed]),
        np.stack([e.frames[t - context : t] for e, t in zip(crashed, n, strict=True)]),
        np.stack([e.actions[t - context : t - 1] for e, t in zip(crashed, n, strict=True)]),
        np.array([e.actions[t - 1] for e, t in zip(crashed, n, strict=True)]),
    )


@torch.no_grad()
def measure(
    model: WorldModel,
    episodes: list[Episode],
    temperatures: list[float],
    end_reading: str = "expected",
    seed: int = 0,
) -> dict[str, Any]:
    """Crashed-car pixels of the tokenizer's reconstructions of the crash frames, and of the
    world model's one-step draws of them at each temperature, over the real frames'; and the
    mean end probability at those steps."""
    crash, before, actions_before, action = crash_steps(episodes, model.config.context)
    real = max(int(crashed_car_pixels(crash).sum()), 1)
    coded = model.tokenizer.decode(model.tokenizer.encode(torch.from_numpy(crash))).numpy()
    drawn_kept: dict[str, float] = {}
    end_probability: dict[str, float] = {}
    for temperature in temperatures:
        core = WorldModelCore(
            model, batch_size=len(crash), temperature=temperature, end_reading=end_reading
        )
        core.reset(torch.from_numpy(before), torch.from_numpy(actions_before))
        rng = [np.random.default_rng([seed, i]) for i in range(len(crash))]
        drawn, _, ended = core.step(
            torch.from_numpy(action), world_models.token_uniforms(model, rng)
        )
        drawn_kept[f"{temperature:g}"] = int(crashed_car_pixels(drawn.numpy()).sum()) / real
        end_probability[f"{temperature:g}"] = float(ended.mean())
    return {
        "crash_frames": len(crash),
        "crashed_car_pixels": real,
        "kept_by_tokenizer": int(crashed_car_pixels(coded).sum()) / real,
        "kept_one_step": drawn_kept,
        "end_probability": end_probability,
        "end_reading": end_reading,
    }


def main() -> None:
    """Measure and write experiments/results/<name>.json (crash_frames.json by default)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--footage", required=True, help="a footage folder (experiments.record)")
    parser.add_argument("--checkpoint", default="driving", help="a zoo name or a folder")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.4, 1.0])
    parser.add_argument(
        "--name", default="crash_frames", help="the result's name (another checkpoint's, say)"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = world_models.load_world_model(args.checkpoint).eval()
    result = measure(model, read_episodes(args.footage), args.temperatures)
    path = write_result(
        args.name, {"checkpoint": args.checkpoint, "footage": args.footage, **result}
    )
    print(
        f"{result['crash_frames']} crash frames: the tokenizer keeps "
        f"{result['kept_by_tokenizer']:.0%} of the crashed cars' red, a one-step draw "
        + ", ".join(f"{v:.0%} at {t}" for t, v in result["kept_one_step"].items())
        + f"; written to {path}"
    )


if __name__ == "__main__":
    main()
