"""experiments/train_policies.py end to end on a tiny budget, through Hydra's own config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from experiments.config import to_dataclass
from experiments.train_policies import TrainPoliciesConfig, train
from policies import DQNPixelPolicy

CONF_DIR = Path(__file__).resolve().parents[2] / "experiments" / "conf"


def _tiny_config(tmp_path: Path) -> TrainPoliciesConfig:
    overrides = [
        "total_steps=60",
        "budgets=[30,60]",
        "learning_starts=20",
        "buffer_size=100",
        "eval_episodes=1",
        "progress_bar=false",
        f"out_dir={tmp_path / 'zoo'}",
        f"tensorboard_dir={tmp_path / 'tb'}",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return to_dataclass(
            compose(config_name="train_policies", overrides=overrides), TrainPoliciesConfig
        )


def test_tiny_run_writes_every_budget_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _tiny_config(tmp_path)
    returns = train(cfg, command="pytest")
    zoo = tmp_path / "zoo"
    assert set(returns) == {"dqn_30", "dqn_60"}
    for name in returns:
        metadata = json.loads((zoo / f"{name}.json").read_text())
        assert metadata["command"] == "pytest"
        assert metadata["budget_steps"] == int(name.split("_")[1])
        assert metadata["mean_return"] == pytest.approx(returns[name])
        assert metadata["architecture"]["type"] == "SmallCNN"
        policy = DQNPixelPolicy.load(zoo / f"{name}.safetensors")
        assert (zoo / f"{name}.safetensors").stat().st_size <= 1.5e6
        assert policy.name == name
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*")), "no TensorBoard log"

    before = {p.name: p.stat().st_mtime_ns for p in zoo.glob("*.safetensors")}
    capsys.readouterr()
    assert train(cfg, command="pytest") == returns
    out = capsys.readouterr().out
    assert "already exists" in out and "skipping training" in out
    assert before == {p.name: p.stat().st_mtime_ns for p in zoo.glob("*.safetensors")}


def test_budget_beyond_total_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds total_steps"):
        TrainPoliciesConfig(total_steps=100, budgets=[50, 200])
    with pytest.raises(ValueError, match="increasing"):
        TrainPoliciesConfig(total_steps=100, budgets=[60, 50])
