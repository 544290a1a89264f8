"""MPC in the real highway-env: a planner over the world model's imagination against an oracle
planner with the same budget that plans on clones of the real simulator, and the best zoo
policy. Return, crash rate and decision latency, plus a video of the real drive beside the
plan the world model imagined at each step.

    python -m experiments.mpc_demo [episodes=4 planner.method=mppi planner.population=64 ...]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from tqdm.auto import tqdm

import world_models
from experiments.bench.common import machine_facts
from experiments.config import to_dataclass
from policies import load_driving_zoo
from policies.planners import OraclePlanner, PlannerConfig, WorldModelPlanner
from wfm_sim.io import write_json_atomic
from wfm_sim.sources import make_driving_env
from wfm_sim.video import write_mp4


@dataclass
class MPCDemoConfig:
    """Which model, how many real episodes, the shared planner budget, where results go."""

    checkpoint: str = "driving"
    episodes: int = 4
    seed: int = 20_000
    baseline_policy: str = "dqn_15k"
    planner: PlannerConfig = field(
        default_factory=lambda: PlannerConfig(horizon=4, population=32, elites=6, iterations=2)
    )
    run_oracle: bool = True
    out_dir: str = "experiments/results/mpc"
    threads: int = 2


def _drive(
    env: Any,
    actor: Any,
    seed: int,
    planner: WorldModelPlanner | None = None,
    video: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """One real episode driven by ``actor``; returns its return, crash flag and latencies."""
    frame, _ = env.reset(seed=seed)
    if planner is not None:
        planner.begin_episode([frame], [])
    rng = np.random.default_rng(seed)
    total, latencies, done, crashed = 0.0, [], False, False
    while not done:
        started = time.perf_counter()
        action = actor.act(frame, rng)
        latencies.append(time.perf_counter() - started)
        if video is not None and planner is not None and planner.last_plan is not None:
            video.append(_plan_panel(planner, frame))
        frame, reward, terminated, truncated, info = env.step(action)
        if planner is not None:
            planner.observe(frame, action)
        total += float(reward)
        crashed = crashed or bool(info.get("crashed", False))
        done = terminated or truncated
    return {"return": total, "crashed": crashed, "latencies": latencies}


def _plan_panel(planner: WorldModelPlanner, frame: np.ndarray) -> np.ndarray:
    """The real frame beside the world model's imagined frames of the chosen plan."""
    assert planner.last_plan is not None
    panels = [frame, *planner.imagine(planner.last_plan)]
    gap = np.full((frame.shape[0], 2, 3), 255, dtype=np.uint8)
    return np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    returns = np.array([r["return"] for r in runs])
    latencies = np.concatenate([r["latencies"] for r in runs]) * 1000
    return {
        "mean_return": float(returns.mean()),
        "returns": returns.round(3).tolist(),
        "crash_rate": float(np.mean([r["crashed"] for r in runs])),
        "latency_ms_mean": float(latencies.mean()),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
    }


def run_mpc_demo(config: MPCDemoConfig) -> dict[str, Any]:
    """Drive ``config.episodes`` real episodes with each controller; write results and a video."""
    torch.set_num_threads(config.threads)
    out = Path(config.out_dir)
    env = make_driving_env()
    model = world_models.load(config.checkpoint, device="cpu")
    seeds = [config.seed + i for i in range(config.episodes)]
    wfm_planner = WorldModelPlanner(model, config.planner)
    baseline = {p.name: p for p in load_driving_zoo()}[config.baseline_policy]
    video: list[np.ndarray] = []
    results: dict[str, Any] = {}
    controllers: list[tuple[str, Any]] = [("wfm_planner", wfm_planner), (baseline.name, baseline)]
    if config.run_oracle:
        controllers.append(("oracle_planner", OraclePlanner(env, config.planner)))
    for name, actor in controllers:
        runs = [
            _drive(
                env,
                actor,
                seed,
                planner=wfm_planner if actor is wfm_planner else None,
                video=video if actor is wfm_planner and i == 0 else None,
            )
            for i, seed in enumerate(tqdm(seeds, desc=name))
        ]
        results[name] = _summary(runs)
    env.close()
    if video:
        write_mp4(out / "wfm_planner_episode0.mp4", np.stack(video), fps=2)
    oracle = results.get("oracle_planner", {}).get("mean_return")
    payload = {
        "benchmark": "mpc",
        "machine": machine_facts(),
        "checkpoint": config.checkpoint,
        "seeds": seeds,
        "planner": vars(config.planner),
        "results": results,
        "wfm_fraction_of_oracle_return": (
            results["wfm_planner"]["mean_return"] / oracle if oracle else None
        ),
        "video": str(out / "wfm_planner_episode0.mp4") if video else None,
    }
    write_json_atomic(out / "metrics.json", payload)
    return payload


ConfigStore.instance().store(name="mpc_demo_schema", node=MPCDemoConfig)


@hydra.main(version_base=None, config_path="conf", config_name="mpc_demo")
def main(cfg: DictConfig) -> None:
    """Run the comparison and print where the results and the video are."""
    payload = run_mpc_demo(to_dataclass(cfg, MPCDemoConfig))
    for name, r in payload["results"].items():
        print(
            f"{name:16s} return {r['mean_return']:6.2f}  crash rate {r['crash_rate']:.2f}  "
            f"decision {r['latency_ms_mean']:7.1f} ms (p95 {r['latency_ms_p95']:.1f})"
        )
    print(f"results in {cfg.out_dir}/metrics.json; video {payload['video']}")


if __name__ == "__main__":
    main()
