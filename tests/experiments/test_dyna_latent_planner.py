"""Dyna for the latent planner, end to end on tiny models: a round records real episodes
driven by the planner, fine-tunes the latent model on them, evaluates it, and a rerun
resumes without training again; mismatched oracle results are refused."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import experiments.dyna_latent_planner as dyna
from experiments.dyna_latent_planner import DynaConfig, run_dyna
from policies.planners import PlannerConfig
from wfm_sim.data.footage import read_episodes
from wfm_sim.training.latent_world_model import LatentTrainConfig, train_latent_world_model
from world_models.latent import LatentWorldModel
from world_models.model import CheckpointMismatchError


def _config(
    tmp_path: Path, latent: Path, finetune: LatentTrainConfig, **overrides: object
) -> DynaConfig:
    fields: dict[str, object] = {
        "initial_checkpoint": str(latent),
        "rounds": 1,
        "episodes_per_round": 2,
        "episodes_per_part": 2,
        "finetune": finetune,
        "planner": PlannerConfig(horizon=2, population=4, elites=2, iterations=1),
        "eval_episodes": 1,
        "oracle_results": None,
        "footage_dir": str(tmp_path / "footage"),
        "run_dir": str(tmp_path / "runs"),
        "out_dir": str(tmp_path / "out"),
        "threads": 1,
    }
    return DynaConfig(**{**fields, **overrides})  # type: ignore[arg-type]


def test_a_round_trains_on_the_planners_own_episodes_and_resumes(
    tmp_path: Path,
    tiny_latent_checkpoint: Path,
    make_latent_train_config: Callable[..., LatentTrainConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(
        tmp_path,
        tiny_latent_checkpoint,
        make_latent_train_config(tmp_path / "x"),
        export_dir=str(tmp_path / "zoo"),
    )
    payload = run_dyna(config)
    recorded = read_episodes(tmp_path / "footage" / "round_1")
    assert len(recorded) == 2
    assert {e.behaviour for e in recorded} == {"latent_planner_round_0"}
    first, second = payload["rounds"]
    assert first["planner_frames"] == 0
    assert second["planner_frames"] == sum(len(e.frames) for e in recorded)
    assert second["checkpoint"] == str(tmp_path / "runs" / "round_1" / "checkpoint")
    # round 0's model measured on the episodes its planner drove in round 1; the last round
    # has no next episodes
    ahead = json.loads((tmp_path / "out" / "round_0" / "next_episodes.json").read_text())
    assert ahead["footage"] == str(tmp_path / "footage" / "round_1")
    np.testing.assert_equal(first["next_episodes_end_auc_by_step"], ahead["end_auc_by_step"])
    assert len(ahead["end_auc_by_step"]) == config.finetune.horizon
    assert second["next_episodes_end_auc_by_step"] is None
    assert (tmp_path / "runs" / "round_1" / "checkpoint" / "MODEL_CARD.md").exists()
    stored = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert stored["oracle_mean_return"] is None and len(stored["rounds"]) == 2
    assert (tmp_path / "out" / "dyna_latent_planner.png").stat().st_size > 0
    # the last round, exported in float16 with a card naming the chain and the planner data
    exported = LatentWorldModel.load(tmp_path / "zoo")
    assert exported.config == LatentWorldModel.load(second["checkpoint"]).config
    stored = load_file(str(tmp_path / "zoo" / "model.safetensors"))
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    card = (tmp_path / "zoo" / "MODEL_CARD.md").read_text()
    assert "python -m experiments.dyna_latent_planner rounds=1" in card
    assert "round_1" in card and "machine" in json.loads(
        (tmp_path / "zoo" / "metrics.json").read_text()
    )

    def must_not_train(config: LatentTrainConfig) -> Path:
        raise AssertionError("a finished round was trained again")

    monkeypatch.setattr(dyna, "train_latent_world_model", must_not_train)
    again = run_dyna(dataclasses.replace(config, export_dir=None))
    assert [r["mean_return"] for r in again["rounds"]] == [
        r["mean_return"] for r in payload["rounds"]
    ]


def test_a_round_keeps_the_more_footage_and_adds_its_planner_episodes_apart(
    tmp_path: Path,
    tiny_latent_checkpoint: Path,
    make_latent_train_config: Callable[..., LatentTrainConfig],
) -> None:
    finetune = make_latent_train_config(tmp_path / "x", more_footage_dirs=["recorded_again"])
    config = _config(tmp_path, tiny_latent_checkpoint, finetune)
    rounds = [tmp_path / "footage" / "round_1", tmp_path / "footage" / "round_2"]
    train = dyna._round_train_config(config, 2, "init", rounds)
    assert train.more_footage_dirs == ["recorded_again"]
    assert train.extra_footage_dirs == [str(r) for r in rounds]
    assert train.init_checkpoint == "init" and train.run_dir.endswith("round_2")


def test_the_starting_model_has_trained_on_no_planner_episodes_of_the_run(
    tmp_path: Path,
) -> None:
    info = {"info": {"frames": {"train": 100, "extra": 50}}}  # extra: more recordings
    (tmp_path / "config.json").write_text(json.dumps(info))
    scores = {"end_auc_by_step": [0.9], "reward_mae_by_step": [0.1]}
    (tmp_path / "metrics.json").write_text(json.dumps(scores))
    planner = {"mean_return": 1.0, "crash_rate": 0.0, "returns": [1.0], "latency_ms_mean": 1.0}
    evaluation = {"results": {"latent_planner": planner}}
    assert dyna._round_row(0, str(tmp_path), evaluation)["planner_frames"] == 0
    assert dyna._round_row(1, str(tmp_path), evaluation)["planner_frames"] == 50


def test_oracle_results_of_other_starts_are_refused(
    tmp_path: Path,
    tiny_latent_checkpoint: Path,
    make_latent_train_config: Callable[..., LatentTrainConfig],
) -> None:
    oracle = tmp_path / "oracle.json"
    oracle.write_text(json.dumps({"seeds": [1], "planner": {}, "results": {}}))
    config = _config(
        tmp_path,
        tiny_latent_checkpoint,
        make_latent_train_config(tmp_path / "x"),
        oracle_results=str(oracle),
    )
    with pytest.raises(ValueError, match="drove seeds"):
        run_dyna(config)
    assert not (tmp_path / "footage").exists()


def test_the_oracle_of_a_risk_averse_demo_run_serves_a_planner_without_risk_aversion(
    tmp_path: Path,
    tiny_latent_checkpoint: Path,
    make_latent_train_config: Callable[..., LatentTrainConfig],
) -> None:
    config = _config(tmp_path, tiny_latent_checkpoint, make_latent_train_config(tmp_path / "x"))
    demo_planner = dataclasses.replace(config.planner, risk_aversion=1.0, risk_floor=0.03)
    oracle = tmp_path / "oracle.json"
    stored = {"seeds": [7], "results": {"oracle_planner": {"mean_return": 12.5}}}
    oracle.write_text(json.dumps({**stored, "planner": vars(demo_planner)}))
    with_oracle = dataclasses.replace(config, oracle_results=str(oracle))
    assert dyna._oracle_return(with_oracle, [7]) == 12.5
    longer = dataclasses.replace(demo_planner, horizon=config.planner.horizon + 1)
    oracle.write_text(json.dumps({**stored, "planner": vars(longer)}))
    with pytest.raises(ValueError, match="drove seeds"):
        dyna._oracle_return(with_oracle, [7])


def test_finetuning_refuses_a_checkpoint_of_other_widths(
    tmp_path: Path,
    tiny_latent_checkpoint: Path,
    make_latent_train_config: Callable[..., LatentTrainConfig],
) -> None:
    config = make_latent_train_config(
        tmp_path, init_checkpoint=str(tiny_latent_checkpoint), state_dim=8
    )
    with pytest.raises(CheckpointMismatchError):
        train_latent_world_model(config)
    with pytest.raises(ValueError, match="extra_footage_share"):
        dataclasses.replace(config, extra_footage_share=1.0)
