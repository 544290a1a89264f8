"""What each constant action earns in the world models a Dyna run trained: which action the
model PPO trains in pays most, round by round.

    python -m experiments.bench.dyna_imagined_actions [--dyna experiments/results/rl_dyna_fresh]

PPO in a world model is paid what that model imagines. A model made from a little footage may
not imagine the crashes of driving ever faster and pay FASTER best; each Dyna round adds the
policy's own real episodes, and this tells whether the round's model has stopped doing so
(whether PPO then finds the better action is the Dyna run's own table). This bench reads a Dyna run's ``metrics.json`` (``make rl-dyna`` or
``make rl-dyna-fresh``) and drives, in its starting model and in every round's model, ``envs``
imagined episodes with each constant action (the same starts for every action, the env's own
termination draws, its time limit). Writes ``experiments/results/dyna_imagined_actions.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from envs.vector import WFMVectorEnv
from experiments.bench.common import write_result
from wfm_sim.sources import ACTION_NAMES


def imagined_returns(checkpoint: str, envs: int, seed: int) -> dict[str, float]:
    """Mean imagined return of each constant action over ``envs`` episodes from the starts of
    seeds ``seed`` .. ``seed + envs - 1``, each episode scored until it ends or truncates."""
    env = WFMVectorEnv(num_envs=envs, checkpoint=checkpoint)
    means = {}
    for action, name in enumerate(ACTION_NAMES):
        env.reset(seed=seed)
        total, running = np.zeros(envs), np.ones(envs, dtype=bool)
        while running.any():
            _, reward, terminated, truncated, _ = env.step(np.full(envs, action))
            total += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
        means[name] = float(total.mean())
    env.close()
    return means


def dyna_models(dyna: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, checkpoint) of a Dyna run's starting model and of each seed's round models."""
    models = [("starting model (round 0)", dyna["config"]["initial_checkpoint"])]
    for loop in dyna["loops"]:
        models += [
            (f"seed {loop['seed']} round {row['round']}", row["checkpoint"])
            for row in loop["rounds"]
            if row["round"] > 0
        ]
    return models


def measure(dyna_dir: Path, envs: int, seed: int) -> dict[str, Any]:
    """Every model of the Dyna run in ``dyna_dir``, each constant action's imagined return."""
    path = dyna_dir / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"no Dyna run in {dyna_dir}: run `make rl-dyna-fresh` first")
    dyna = json.loads(path.read_text())
    rows = [
        {
            "model": label,
            "checkpoint": checkpoint,
            "mean_returns": imagined_returns(checkpoint, envs, seed),
        }
        for label, checkpoint in tqdm(dyna_models(dyna), desc="models")
    ]
    return {"dyna_results": str(dyna_dir), "envs": envs, "seed": seed, "models": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dyna", type=Path, default=Path("experiments/results/rl_dyna_fresh"))
    parser.add_argument("--envs", type=int, default=32)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    result = measure(args.dyna, args.envs, args.seed)
    for row in result["models"]:
        best = max(row["mean_returns"], key=row["mean_returns"].get)
        means = ", ".join(f"{name} {mean:.2f}" for name, mean in row["mean_returns"].items())
        print(f"{row['model']}: {means} (best {best})")
    print(f"wrote {write_result('dyna_imagined_actions', result)}")


if __name__ == "__main__":
    main()
