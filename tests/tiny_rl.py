"""The RL run config the tests train with: a few hundred PPO steps on 4 batched world-model
envs, one real evaluation episode, on one thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.train_rl import RLConfig


def tiny_rl_config(tmp_path: Path, **overrides: Any) -> RLConfig:
    """A 128-step PPO run in the world model (``overrides`` name the checkpoint, task, ...),
    writing under ``tmp_path``."""
    settings: dict[str, Any] = {
        "env": "wfm",
        "total_steps": 128,
        "n_envs": 4,
        "n_steps": 32,
        "batch_size": 64,
        "n_epochs": 1,
        "eval_episodes": 1,
        "threads": 1,
        "out_dir": str(tmp_path / "rl"),
        "log_dir": str(tmp_path / "tb"),
    }
    return RLConfig(**{**settings, **overrides})
