"""What runs on CUDA, and how fast: the committed driving models with ``device="auto"`` on a
GPU machine (this project's own machine has none; CI never runs this).

    python -m experiments.bench.cuda_check [--out experiments/results/cuda_check.json]

Checks and times, each on the GPU ``device="auto"`` picks:
- ``gym.make("WFM-Driving-v0", device="auto")`` stepping at batch 1 (observations come back
  as host uint8 arrays), and the batched ``WorldModelCore`` at batch 64, 256 and 1024;
- the latent planner's decision latency at the MPC demo's budget and at larger ones;
- training steps of the world model's unrolled dynamics loss and of the latent world
  model's losses (AdamW, the trainers' own loss functions), on windows of episodes the
  world model imagines from its committed real starts (footage is not read here: reading
  mp4 needs ffmpeg, which the GPU machine lacks).
Refuses to run without CUDA (its figures are GPU figures) unless ``--device cpu`` asks for a
dry run.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs
import world_models
from envs.core import WorldModelCore
from envs.wfm_env import WFMEnv
from experiments.bench.common import RESULTS_DIR, batched_steps_per_second, machine_facts
from policies.planners import LatentModelPlanner, PlannerConfig
from wfm_sim.data.footage import Episode
from wfm_sim.data.windows import WindowSampler
from wfm_sim.devices import resolve_device
from wfm_sim.io import write_json_atomic
from wfm_sim.training.latent_world_model import latent_losses
from wfm_sim.training.world_model import dynamics_loss, encode_episodes
from world_models.latent import LatentWorldModel
from world_models.model import WorldModel


def _synchronized_seconds(device: torch.device, work: Callable[[], Any], repeats: int) -> float:
    """Mean seconds of ``work`` after one warm-up call, the GPU drained before each clock."""

    def drain() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    work()
    drain()
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    drain()
    return (time.perf_counter() - started) / repeats


def _gym_steps_per_second(device: torch.device, steps: int) -> tuple[float, dict[str, Any]]:
    env = gym.make(envs.DRIVING_ID, device=str(device))
    wfm_env = env.unwrapped
    assert isinstance(wfm_env, WFMEnv)
    observation, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(steps):
        observation, _, terminated, truncated, _ = env.step(int(rng.integers(5)))
        if terminated or truncated:
            observation, _ = env.reset()
    rate = steps / (time.perf_counter() - started)
    facts = {
        "observation_type": type(observation).__name__,
        "observation_dtype": str(observation.dtype),
        "model_device": str(next(wfm_env.model.parameters()).device),
    }
    env.close()
    return rate, facts


def _imagined_episodes(
    model: WorldModel, starts: tuple[torch.Tensor, torch.Tensor], count: int, length: int
) -> list[Episode]:
    """``count`` episodes of ``length`` random-action steps ``model`` imagines from its
    committed real ``starts`` (pixels, rewards, ends drawn from its end probability)."""
    device = next(model.parameters()).device
    frames, actions = starts
    members = torch.arange(count) % len(frames)
    core = WorldModelCore(model, batch_size=count)
    core.reset(frames[members], actions[members])
    generator = torch.Generator().manual_seed(0)
    steps = [torch.randint(0, 5, (count,), generator=generator) for _ in range(length)]
    imagined = [core.step(a) for a in steps]
    first = frames[members][:, -1].to(device)
    pixels = torch.stack([first, *[f for f, _, _ in imagined]], 1).cpu().numpy()
    rewards = torch.stack([r for _, r, _ in imagined], 1).float().cpu().numpy()
    ends = torch.stack([p for _, _, p in imagined], 1).float().cpu().numpy() > 0.5
    taken = torch.stack(steps, 1).numpy()
    return [Episode(i, pixels[i], taken[i], rewards[i], ends[i]) for i in range(count)]


def _world_model_train_step(
    loaded: WorldModel, episodes: list[Episode], batch: int, horizon: int
) -> float:
    """Seconds per training step of a copy of ``loaded`` (``loaded`` stays as it is)."""
    model = copy.deepcopy(loaded).train()
    device = next(model.parameters()).device
    context = model.config.context
    latents = WindowSampler(encode_episodes(model, episodes, device), context, horizon)
    pixels = WindowSampler(episodes, context, horizon)
    parameters = [*model.dynamics.parameters(), *model.heads.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    index = np.random.default_rng(0).integers(0, len(latents), size=batch)
    windows = {k: torch.from_numpy(v).to(device) for k, v in vars(latents.batch(index)).items()}
    frames = torch.from_numpy(pixels.batch(index).frames).to(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            terms = dynamics_loss(model, windows, frames, context, end_pos_weight=5.0)
        optimizer.zero_grad()
        torch.stack(list(terms.values())).sum().backward()
        optimizer.step()

    return _synchronized_seconds(device, step, repeats=10)


def _latent_train_step(
    loaded: LatentWorldModel, source: WorldModel, episodes: list[Episode], batch: int
) -> float:
    """Seconds per training step of a copy of ``loaded`` on ``episodes`` as ``source``'s
    tokenizer codes them."""
    model = copy.deepcopy(loaded).float().train()
    device = next(model.parameters()).device
    sampler = WindowSampler(encode_episodes(source, episodes, device), model.context, 5)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-4)
    windows = sampler.batch(np.random.default_rng(0).integers(0, len(sampler), size=batch))

    def step() -> None:
        terms = latent_losses(model, windows, 0.7, device)
        optimizer.zero_grad()
        torch.stack(list(terms.values())).sum().backward()
        optimizer.step()

    return _synchronized_seconds(device, step, repeats=20)


def _planner_latency_ms(
    model: LatentWorldModel, start_frames: torch.Tensor, config: PlannerConfig, decisions: int
) -> float:
    """Mean milliseconds of one ``model``-planner decision at ``config``'s budget."""
    device = next(model.parameters()).device
    planner = LatentModelPlanner(model, config)
    start = list(start_frames[0].numpy())
    planner.begin_episode(start, [])
    rng = np.random.default_rng(0)
    return 1000 * _synchronized_seconds(device, lambda: planner.act(start[-1], rng), decisions)


def main() -> None:
    """Measure and write the results (default experiments/results/cuda_check.json)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "cuda_check.json")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="auto", help="auto (a GPU), or cpu for a dry run")
    parser.add_argument("--repeats", type=int, default=20, help="timed core steps and decisions")
    parser.add_argument("--world-model-batch", type=int, default=64)
    parser.add_argument("--latent-batch", type=int, default=256)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type != "cuda" and args.device == "auto":
        raise SystemExit(
            "cuda_check measures a GPU: device='auto' found none (--device cpu: dry run)"
        )
    gym_rate, gym_facts = _gym_steps_per_second(device, args.steps)
    core = {
        f"batch{b}": round(batched_steps_per_second(b, args.repeats, str(device)), 1)
        for b in (64, 256, 1024)
    }
    budgets = {
        "demo_h4_p32_i2": PlannerConfig(horizon=4, population=32, elites=6, iterations=2),
        "h8_p256_i3": PlannerConfig(horizon=8, population=256, elites=32, iterations=3),
        "h8_p1024_i4": PlannerConfig(horizon=8, population=1024, elites=64, iterations=4),
    }
    latent = LatentWorldModel.load("driving_latent", device=device)
    world_model = world_models.load_world_model("driving", device=device)
    starts = world_models.load_start_contexts(world_models.checkpoint_path("driving"))
    latency = {
        name: round(_planner_latency_ms(latent, starts[0], c, args.repeats), 2)
        for name, c in budgets.items()
    }
    episodes = _imagined_episodes(world_model, starts, count=64, length=24)
    world_model_batch, latent_batch = args.world_model_batch, args.latent_batch
    world_model_seconds = _world_model_train_step(world_model, episodes, world_model_batch, 4)
    latent_seconds = _latent_train_step(latent, world_model, episodes, latent_batch)
    result = {
        "benchmark": "cuda_check",
        "machine": {
            **machine_facts(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
        "device_auto": str(device),
        "wfm_gym_batch1": {"steps_per_second": round(gym_rate, 1), **gym_facts},
        "wfm_core_steps_per_second": core,
        "latent_planner_decision_ms": latency,
        "training_step": {
            "world_model_dynamics_bf16": {
                "batch": world_model_batch,
                "horizon": 4,
                "ms": round(1000 * world_model_seconds, 1),
                "windows_per_second": round(world_model_batch / world_model_seconds, 1),
            },
            "latent_world_model": {
                "batch": latent_batch,
                "horizon": 5,
                "ms": round(1000 * latent_seconds, 2),
                "windows_per_second": round(latent_batch / latent_seconds, 1),
            },
        },
        "peak_gpu_memory_gib": (
            round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            if device.type == "cuda"
            else None
        ),
    }
    write_json_atomic(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
