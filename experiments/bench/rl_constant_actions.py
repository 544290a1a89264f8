"""What each constant action returns on the RL runs' real evaluation starts: the yardstick that
tells whether a trained policy learned more than one action.

    python -m experiments.bench.rl_constant_actions

The RL runs (``experiments.train_rl``) are evaluated deterministically on a handful of fixed
real starts; a run whose per-episode returns equal a constant action's on every start acts, on
those starts, like that constant action. Writes ``experiments/results/rl_constant_actions.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.bench.common import write_result
from experiments.tasks import get_task
from experiments.train_rl import RLConfig, evaluate_in_real_env
from policies.base import ConstantPolicy, Policy
from wfm_sim.sources import ACTION_NAMES


class PolicyPredictor:
    """A zoo policy (``policies.base.Policy``) behind the ``predict`` call the real-env
    evaluation makes of SB3 algorithms; its randomness, if any, from a generator seeded 0."""

    def __init__(self, policy: Policy[int]) -> None:
        self.policy = policy
        self.rng = np.random.default_rng(0)

    def predict(self, observation: Any, *, deterministic: bool) -> tuple[int, None]:
        """The policy's action on the frame."""
        return self.policy.act(observation, self.rng), None


def measure(episodes: int, first_seed: int) -> dict[str, Any]:
    """Per-episode real returns of every constant driving action on the given starts."""
    task = get_task("driving")
    returns = {
        name: [
            round(r, 3)
            for r in evaluate_in_real_env(
                PolicyPredictor(ConstantPolicy(action, name)), episodes, first_seed, task
            )
        ]
        for action, name in enumerate(ACTION_NAMES)
    }
    return {
        "episodes": episodes,
        "eval_seed": first_seed,
        "returns": returns,
        "mean_returns": {name: float(np.mean(r)) for name, r in returns.items()},
    }


def acts_like(run_returns: list[float], constant: dict[str, list[float]]) -> str | None:
    """The constant action whose per-episode returns a run's equal on every start (to the
    3 decimals both are stored with), or None."""
    for name, returns in constant.items():
        if len(returns) == len(run_returns) and np.allclose(returns, run_returns, atol=1e-3):
            return name
    return None


def main() -> None:
    config = RLConfig()
    result = measure(config.eval_episodes, config.eval_seed)
    path = write_result("rl_constant_actions", result)
    for name, mean in result["mean_returns"].items():
        print(f"{name:>10}: {mean:.2f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
