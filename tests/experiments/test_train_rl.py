"""The RL script in a tiny config: PPO and DQN train in the world model and are evaluated in the
real env; real training starts from the world model's policy or encoder; figures are written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from experiments.train_rl import (
    RLConfig,
    plot_learning_curves,
    plot_policy_initialisation,
    steps_to_threshold,
    train_rl,
)
from policies.features import WorldModelEncoder
from tests.tiny_rl import tiny_rl_config


def _tiny(checkpoint: Path, tmp_path: Path, **overrides: Any) -> RLConfig:
    """A run of a few hundred steps on the tiny world model, one real evaluation episode."""
    return tiny_rl_config(
        tmp_path, **{"checkpoint": str(checkpoint), "total_steps": 256, **overrides}
    )


def test_ppo_in_the_world_model_runs_and_is_evaluated_in_the_real_env(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    config = _tiny(tiny_checkpoint, tmp_path)
    result = train_rl(config)
    stored = json.loads((tmp_path / "rl" / "wfm_ppo.json").read_text())
    assert stored["real_return_mean"] == pytest.approx(result["real_return_mean"])
    assert len(stored["real_returns"]) == 1 and 0 <= stored["real_returns"][0] <= 30
    training = json.loads((tiny_checkpoint / "training.json").read_text())
    assert stored["real_interactions"] == sum(training["frames"].values())
    assert (plot_learning_curves(tmp_path / "rl") or Path()).stat().st_size > 0
    assert list((tmp_path / "tb").glob("wfm_ppo_*")), "TensorBoard logs are written"


def test_an_unknown_training_env_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'wfm' or 'real'"):
        train_rl(RLConfig(env="carla", out_dir=str(tmp_path)))


def test_dqn_trains_off_policy_in_the_world_model(tiny_checkpoint: Path, tmp_path: Path) -> None:
    result = train_rl(_tiny(tiny_checkpoint, tmp_path, algorithm="dqn"))
    assert result["algorithm"] == "DQN" and result["run"] == "wfm_dqn"
    assert (tmp_path / "rl" / "wfm_dqn.json").exists()
    assert 0 <= result["real_returns"][0] <= 30


@pytest.mark.parametrize("init", ["wfm_policy", "wfm_encoder"])
def test_real_training_starts_from_the_world_model(
    init: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    config = _tiny(
        tiny_checkpoint,
        tmp_path,
        env="real",
        init=init,
        pretrain_steps=64,
        total_steps=512,
        n_envs=1,
    )
    result = train_rl(config)
    assert result["run"] == f"real_ppo_from_{init}"
    training = json.loads((tiny_checkpoint / "training.json").read_text())
    footage = sum(training["frames"].values())
    assert result["real_interactions"] == footage + 512, "footage plus the real fine-tuning"
    figure = plot_policy_initialisation(tmp_path / "rl", threshold=5.0)
    assert figure is not None and figure.stat().st_size > 0


def test_frozen_world_model_encoder_features_do_not_train(tiny_checkpoint: Path) -> None:
    space = gym.spaces.Box(0.0, 1.0, (3, 64, 64), np.float32)
    encoder = WorldModelEncoder(space, checkpoint=str(tiny_checkpoint), features_dim=32)
    assert not any(p.requires_grad for p in encoder.tokenizer.parameters())
    features = encoder(torch.rand(2, 3, 64, 64))
    assert features.shape == (2, 32)
    features.sum().backward()
    assert all(p.grad is None for p in encoder.tokenizer.parameters())
    with pytest.raises(ValueError, match="do not match world model"):
        WorldModelEncoder(gym.spaces.Box(0.0, 1.0, (3, 32, 32), np.float32), str(tiny_checkpoint))


def test_steps_to_threshold_reads_the_first_crossing() -> None:
    curve = [(512, 3.0), (1024, 15.5), (1536, 12.0), (2048, 16.0)]
    assert steps_to_threshold(curve, 15.0) == 1024
    assert steps_to_threshold(curve, 20.0) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"algorithm": "sac"}, "'ppo' or 'dqn'"),
        ({"init": "bc"}, "'scratch', 'wfm_policy' or 'wfm_encoder'"),
        ({"init": "wfm_policy", "env": "wfm"}, "use env=real algorithm=ppo"),
    ],
)
def test_bad_rl_configs_are_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RLConfig(**overrides)  # type: ignore[arg-type]


def test_the_initialisation_figure_waits_for_an_initialised_run(tmp_path: Path) -> None:
    run = {"benchmark": "rl", "env": "real", "init": "scratch", "curve": [[512, 3.0]]}
    (tmp_path / "real_ppo.json").write_text(json.dumps(run))
    assert plot_policy_initialisation(tmp_path, threshold=5.0) is None
    initialised = {**run, "init": "wfm_policy", "curve": [[512, 6.0]]}
    (tmp_path / "real_ppo_from_wfm_policy.json").write_text(json.dumps(initialised))
    assert (plot_policy_initialisation(tmp_path, threshold=5.0) or Path()).stat().st_size > 0
