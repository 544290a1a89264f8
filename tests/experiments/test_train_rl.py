"""The RL script in a tiny config: PPO trains in the world model, is evaluated in the real env,
and the result and the learning-curve figure are written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.train_rl import RLConfig, plot_learning_curves, train_rl


def test_ppo_in_the_world_model_runs_and_is_evaluated_in_the_real_env(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    config = RLConfig(
        env="wfm",
        checkpoint=str(tiny_checkpoint),
        total_steps=256,
        n_envs=4,
        n_steps=32,
        batch_size=64,
        n_epochs=1,
        eval_episodes=1,
        threads=1,
        out_dir=str(tmp_path / "rl"),
        log_dir=str(tmp_path / "tb"),
    )
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
