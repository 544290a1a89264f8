"""RL inside the world model: PPO trained on WFM-Driving-v0 (batched, rewarded by the learned
reward head), or on the real highway-env for comparison, then evaluated zero-shot in the real
env.

    python -m experiments.train_rl env=wfm total_steps=20000    # PPO in imagination
    python -m experiments.train_rl env=real total_steps=20000   # PPO in the real simulator
    python -m experiments.train_rl plot_only=true               # redraw the comparison figure

Writes ``experiments/results/rl/<env>_ppo.json`` (real-env return, real interactions used,
wall-clock, learning curve) and ``experiments/results/rl/learning_curves.png``; TensorBoard
logs under ``runs/rl``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import matplotlib
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

import world_models
from envs.sb3 import WFMVecEnvSB3
from experiments.bench.common import machine_facts
from experiments.config import to_dataclass
from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.sources import make_driving_env

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@dataclass
class RLConfig:
    """Where to train (``env``: ``"wfm"`` or ``"real"``), for how long, and the evaluation."""

    env: str = "wfm"
    checkpoint: str = "driving"
    total_steps: int = 20_000
    n_envs: int = 16
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 3e-4
    seed: int = 0
    eval_episodes: int = 8
    eval_seed: int = 30_000
    threads: int = 2
    out_dir: str = "experiments/results/rl"
    log_dir: str = "runs/rl"
    plot_only: bool = False


class _Curve(BaseCallback):
    """Records (timestep, mean return of the last 20 finished training episodes)."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        if self.model.ep_info_buffer and self.num_timesteps % 512 < self.training_env.num_envs:
            returns = [e["r"] for e in list(self.model.ep_info_buffer)[-20:]]
            self.points.append((self.num_timesteps, float(np.mean(returns))))
        return True


def _training_env(config: RLConfig) -> VecEnv:
    if config.env == "wfm":
        return VecMonitor(
            WFMVecEnvSB3(num_envs=config.n_envs, seed=config.seed, checkpoint=config.checkpoint)
        )
    if config.env == "real":
        return VecMonitor(DummyVecEnv([make_driving_env] * min(config.n_envs, 4)))
    raise ValueError(f"env must be 'wfm' or 'real', got {config.env!r}")


def evaluate_in_real_env(model: PPO, episodes: int, first_seed: int) -> list[float]:
    """Zero-shot returns of ``model`` (deterministic) in the real highway-env."""
    env = make_driving_env()
    returns = []
    for seed in range(first_seed, first_seed + episodes):
        frame, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(frame, deterministic=True)
            frame, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def _real_interactions(config: RLConfig) -> int:
    """Real env steps the run needed: its own for ``real``; for ``wfm``, the footage frames the
    world model was trained on (the imagination is free)."""
    if config.env == "real":
        return config.total_steps
    training = json.loads(
        (world_models.checkpoint_path(config.checkpoint) / "training.json").read_text()
    )
    return int(training["frames"]["train"] + training["frames"]["held_out"])


def train_rl(config: RLConfig) -> dict[str, Any]:
    """Train PPO in ``config.env``, evaluate in the real env, write the result JSON."""
    torch.set_num_threads(config.threads)
    env = _training_env(config)
    model = PPO(
        "CnnPolicy",
        env,
        n_steps=config.n_steps if config.env == "wfm" else 256,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        learning_rate=config.learning_rate,
        seed=config.seed,
        device="cpu",
        tensorboard_log=config.log_dir,
        policy_kwargs={"features_extractor_kwargs": {"features_dim": 256}},
    )
    curve = _Curve()
    started = time.perf_counter()
    model.learn(
        total_timesteps=config.total_steps,
        callback=curve,
        tb_log_name=f"{config.env}_ppo",
        progress_bar=True,
    )
    train_seconds = time.perf_counter() - started
    env.close()
    returns = evaluate_in_real_env(model, config.eval_episodes, config.eval_seed)
    result = {
        "benchmark": "rl",
        "machine": machine_facts(),
        "env": config.env,
        "algorithm": "PPO",
        "total_steps": config.total_steps,
        "real_interactions": _real_interactions(config),
        "train_seconds": round(train_seconds, 1),
        "real_return_mean": float(np.mean(returns)),
        "real_returns": [round(r, 3) for r in returns],
        "curve": curve.points,
        "config": vars(config),
    }
    write_json_atomic(Path(config.out_dir) / f"{config.env}_ppo.json", result)
    return result


def plot_learning_curves(out_dir: str | Path) -> Path | None:
    """Training-episode return against env steps for every run in ``out_dir``, with each run's
    zero-shot real return as a dashed line."""
    runs = [json.loads(p.read_text()) for p in sorted(Path(out_dir).glob("*_ppo.json"))]
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        steps, returns = zip(*run["curve"], strict=True) if run["curve"] else ((), ())
        line = ax.plot(steps, returns, label=f"PPO in {run['env']} (training return)")[0]
        ax.axhline(
            run["real_return_mean"],
            color=line.get_color(),
            linestyle="--",
            label=f"PPO in {run['env']}: real return {run['real_return_mean']:.1f}",
        )
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.legend(fontsize=7)
    path = Path(out_dir) / "learning_curves.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


ConfigStore.instance().store(name="train_rl_schema", node=RLConfig)


@hydra.main(version_base=None, config_path="conf", config_name="train_rl")
def main(cfg: DictConfig) -> None:
    """Train and evaluate (unless ``plot_only``), then redraw the comparison figure."""
    config = to_dataclass(cfg, RLConfig)
    if not config.plot_only:
        result = train_rl(config)
        print(
            f"PPO in {config.env}: real return {result['real_return_mean']:.2f} after "
            f"{config.total_steps} steps ({result['real_interactions']} real interactions, "
            f"{result['train_seconds']} s)"
        )
    print(f"learning curves: {plot_learning_curves(config.out_dir)}")


if __name__ == "__main__":
    main()
