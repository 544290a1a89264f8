"""The committed driving zoo: trained, hand-written and trivial policies of spread-out quality.

Mean real returns over seeds 0..9 (30 is the maximum) span ~6 (always FASTER) to ~25 (the
heuristic), with the DQN checkpoints at ~8 / 14 / 19 / 21 (2k / 2.5k / 6k / 15k env steps),
so the order a world model assigns them can be checked against the real one. Trained weights
live in ``policies/zoo/driving/<name>.safetensors`` + ``<name>.json`` (produced by
``python -m experiments.train_policies``; the JSON holds the measured return).
``python -m policies.zoo`` prints each member's mean real return.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from policies.base import ConstantPolicy, EpsilonGreedy, Policy, RandomPolicy, episode_returns
from policies.dqn import DQNPixelPolicy
from policies.heuristic import LaneKeepingHeuristic

DRIVING_ZOO_DIR = Path(__file__).resolve().parent / "zoo" / "driving"
"""Where the trained driving policies' safetensors + JSON files are committed."""


def _trained_policies(zoo_dir: Path) -> list[DQNPixelPolicy]:
    """Every ``dqn_*`` policy in ``zoo_dir``, largest training budget first."""
    configs = sorted(zoo_dir.glob("dqn_*.json"))
    if not configs:
        raise FileNotFoundError(
            f"no trained policies (dqn_*.json) in {zoo_dir}; run `make train-policies`"
        )
    budgets = {path: int(json.loads(path.read_text())["budget_steps"]) for path in configs}
    ordered = sorted(configs, key=lambda path: -budgets[path])
    return [DQNPixelPolicy.load(path.with_suffix(".safetensors"), path) for path in ordered]


def load_driving_zoo(zoo_dir: str | Path = DRIVING_ZOO_DIR) -> list[Policy]:
    """The driving zoo in a fixed order with unique names.

    Order: the longest-trained DQN, it with ε = 0.2 and 0.5, the shorter-trained DQNs,
    the heuristic, it with ε = 0.3, always IDLE, always FASTER, always SLOWER, random.
    """
    trained = _trained_policies(Path(zoo_dir))
    best, *shorter = trained
    heuristic = LaneKeepingHeuristic()
    zoo: list[Policy] = [
        best,
        EpsilonGreedy(best, 0.2, f"{best.name}_eps0.2"),
        EpsilonGreedy(best, 0.5, f"{best.name}_eps0.5"),
        *shorter,
        heuristic,
        EpsilonGreedy(heuristic, 0.3, "heuristic_eps0.3"),
        ConstantPolicy(1, "always_idle"),
        ConstantPolicy(3, "always_faster"),
        ConstantPolicy(4, "always_slower"),
        RandomPolicy("random"),
    ]
    names = [policy.name for policy in zoo]
    if len(set(names)) != len(names):
        raise ValueError(f"zoo names are not unique: {names}")
    return zoo


def main() -> None:
    """Print each zoo policy's mean real return over ``--episodes`` seeds (0, 1, ...)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    import torch

    from wfm_sim.sources import make_driving_env

    torch.set_num_threads(1)
    env = make_driving_env()
    seeds = list(range(args.episodes))
    print(f"{'policy':<18s} {'mean':>6s} {'std':>6s}   (real env, seeds 0..{args.episodes - 1})")
    for policy in load_driving_zoo():
        returns = episode_returns(policy, env, seeds)
        print(f"{policy.name:<18s} {np.mean(returns):6.2f} {np.std(returns):6.2f}")


if __name__ == "__main__":
    main()
