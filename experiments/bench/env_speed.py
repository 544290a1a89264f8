"""Steps per second: WFM-Driving-v0 at batch 1 and 64 against the real highway-env with
rendering, on the same machine in one run.

    python -m experiments.bench.env_speed [--steps 300] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import envs
from experiments.bench.common import batched_steps_per_second, write_result
from wfm_sim.sources import make_driving_env


def _steps_per_second(env: gym.Env, steps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    started = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(5)))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - started)


def main() -> None:
    """Measure and write experiments/results/env_speed.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    real = _steps_per_second(make_driving_env(), args.steps, seed=0)
    wfm = gym.make(envs.DRIVING_ID, device=args.device)
    wfm_1 = _steps_per_second(wfm, args.steps, seed=0)
    wfm_64 = batched_steps_per_second(64, max(1, args.steps // 10), args.device)
    result = {
        "device": args.device,
        "steps_per_second": {
            "real_highway_fast_rendered": round(real, 1),
            "wfm_batch1_gym": round(wfm_1, 1),
            "wfm_batch64_core": round(wfm_64, 1),
        },
        "speedup_vs_real": {"batch1": round(wfm_1 / real, 2), "batch64": round(wfm_64 / real, 2)},
    }
    print(write_result("env_speed", result))
    print(result)


if __name__ == "__main__":
    main()
