"""Session-wide tiny data: footage recorded once, a tiny world model trained once on it.

Everything here is sized for 2 shared slow cores: 6 short episodes (~2 s to record) and a
world model with 16-wide layers trained for 4 + 4 steps (~1 s).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import wfm_sim  # noqa: F401  (replaces SDL_VIDEODRIVER=dummy, which renders black frames)
from wfm_sim.sources.recorder import BehaviourFn, RecorderConfig, record_footage
from wfm_sim.training import TrainConfig, train_world_model
from wfm_sim.training.latent_world_model import LatentTrainConfig, train_latent_world_model
from world_models import WorldModelConfig

torch.set_num_threads(1)


def _random_driver(frame: np.ndarray, info: dict, rng: np.random.Generator) -> int:
    return int(rng.integers(5))


def _idle_driver(frame: np.ndarray, info: dict, rng: np.random.Generator) -> int:
    return 1


BEHAVIOURS: list[tuple[str, BehaviourFn]] = [("random", _random_driver), ("idle", _idle_driver)]
"""Episode e is driven by BEHAVIOURS[e % 2]."""


@pytest.fixture(scope="session")
def behaviours() -> list[tuple[str, BehaviourFn]]:
    """The behaviours the tiny footage was recorded with."""
    return list(BEHAVIOURS)


@pytest.fixture(scope="session")
def make_recorder_config() -> Callable[[Path], RecorderConfig]:
    """``out_dir -> RecorderConfig`` of the tiny footage: 6 episodes in 2 parts of 3."""

    def make(out_dir: Path) -> RecorderConfig:
        return RecorderConfig(out_dir=str(out_dir), episodes=6, episodes_per_part=3, seed=0)

    return make


@pytest.fixture(scope="session")
def tiny_footage(
    tmp_path_factory: pytest.TempPathFactory,
    make_recorder_config: Callable[[Path], RecorderConfig],
    behaviours: list[tuple[str, BehaviourFn]],
) -> Path:
    """A footage folder of 6 episodes in 2 parts; read-only for tests (copy it to change it)."""
    out_dir = tmp_path_factory.mktemp("footage")
    return record_footage(make_recorder_config(out_dir), behaviours, progress=False)


@pytest.fixture(scope="session")
def tiny_model_config() -> WorldModelConfig:
    """A discrete (FSQ-token) world model, like the driving one, small enough to train in
    about a second on one core."""
    return WorldModelConfig(
        tokenizer_width=16,
        dynamics_width=16,
        head_width=16,
        dynamics_blocks=1,
        context=2,
        latent_channels=3,
        fsq_levels=[5, 3, 3],
        dynamics_levels=3,
    )


@pytest.fixture(scope="session")
def make_train_config(
    tiny_footage: Path, tiny_model_config: WorldModelConfig
) -> Callable[..., TrainConfig]:
    """``(run_dir, **overrides) -> TrainConfig``: 4 + 4 steps on the tiny footage, on CPU."""

    def make(run_dir: Path, **overrides: object) -> TrainConfig:
        config = TrainConfig(
            footage_dir=str(tiny_footage),
            run_dir=str(run_dir),
            export_dir=str(run_dir / "checkpoint"),
            tokenizer_steps=4,
            dynamics_steps=4,
            finetune_steps=4,
            finetune_horizon=3,
            checkpoint_every=2,
            held_out_fraction=0.34,
            device="cpu",
            threads=1,
            model=tiny_model_config,
            tokenizer_batch=8,
            dynamics_batch=4,
        )
        return dataclasses.replace(config, **overrides)

    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, make_train_config: Callable[..., TrainConfig]
) -> Path:
    """The export folder of one tiny training run; its run folder is ``tiny_checkpoint.parent``."""
    run_dir = tmp_path_factory.mktemp("run")
    return train_world_model(make_train_config(run_dir))


@pytest.fixture(scope="session")
def make_latent_train_config(
    tiny_footage: Path, tiny_checkpoint: Path
) -> Callable[..., LatentTrainConfig]:
    """``(run_dir, **overrides) -> LatentTrainConfig``: 4 steps of a tiny latent world model
    over the tiny world model's tokenizer, on the tiny footage, on CPU."""

    def make(run_dir: Path, **overrides: object) -> LatentTrainConfig:
        config = LatentTrainConfig(
            world_model=str(tiny_checkpoint),
            footage_dir=str(tiny_footage),
            held_out_fraction=0.34,
            horizon=3,
            batch_size=8,
            steps=4,
            state_dim=16,
            hidden=32,
            conv_width=8,
            held_out_windows=16,
            eval_every=2,
            checkpoint_every=2,
            run_dir=str(run_dir),
            export_dir=str(run_dir / "checkpoint"),
            device="cpu",
            threads=1,
        )
        return dataclasses.replace(config, **overrides)

    return make


@pytest.fixture(scope="session")
def tiny_latent_checkpoint(
    tmp_path_factory: pytest.TempPathFactory,
    make_latent_train_config: Callable[..., LatentTrainConfig],
) -> Path:
    """The export folder of one tiny latent world-model run."""
    return train_latent_world_model(make_latent_train_config(tmp_path_factory.mktemp("latent")))
