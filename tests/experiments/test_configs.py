"""The Hydra configs: each entry point's YAML turns into its dataclass, and every field of the
world-model TrainConfig is listed, so any of them can be overridden on the command line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hydra import compose, initialize

import experiments.curate  # noqa: F401  (registers the curation schema)
from experiments.config import to_dataclass
from wfm_sim.curation.pipeline import CurationConfig
from wfm_sim.training import TrainConfig


def _compose(name: str, overrides: list[str]):
    with initialize(version_base=None, config_path="../../experiments/conf"):
        return compose(name, overrides=overrides)


def test_train_world_model_yaml_lists_every_field() -> None:
    cfg = _compose("train_world_model", [])
    listed = set(cfg) - {"hydra"}
    assert listed == {f.name for f in dataclasses.fields(TrainConfig)}
    config = to_dataclass(_compose("train_world_model", ["shards_dir=x/shards"]), TrainConfig)
    assert config.shards_dir == "x/shards"


@pytest.mark.parametrize("name", ["train_world_model_robot", "train_world_model_robot_camera"])
def test_robot_world_model_configs_change_only_config_values(name: str) -> None:
    config = to_dataclass(_compose(name, []), TrainConfig)
    driving = to_dataclass(_compose("train_world_model", []), TrainConfig)
    assert config.model.continuous_actions and not driving.model.continuous_actions
    assert config.model.action_dim == len(config.model.action_low) >= 7
    # driving uses discrete tokens; the committed robot checkpoint continuous latents
    assert driving.model.discrete and not config.model.discrete
    assert config.model.context == driving.model.context


def test_curate_yaml_takes_nested_overrides() -> None:
    cfg = _compose("curate", ["dedup.epsilon=0.02", "encoder_training.encoder.frames=4"])
    config = to_dataclass(cfg, CurationConfig)
    assert config.dedup.epsilon == 0.02 and config.encoder_training.encoder.frames == 4
    assert config.shots.max_shot_frames == 31
    assert isinstance(config.encoder_training.encoder.channels, tuple)


def test_an_unknown_key_is_refused() -> None:
    with pytest.raises(Exception, match="dedup.no_such_key|no_such_key"):
        _compose("curate", ["dedup.no_such_key=1"])


def test_train_latent_world_model_yaml_lists_every_field() -> None:
    import experiments.train_latent_world_model  # noqa: F401  (registers its schema)
    from wfm_sim.training.latent_world_model import LatentTrainConfig

    cfg = _compose("train_latent_world_model", ["steps=7"])
    assert set(cfg) - {"hydra"} == {f.name for f in dataclasses.fields(LatentTrainConfig)}
    config = to_dataclass(cfg, LatentTrainConfig)
    assert config.steps == 7 and config == LatentTrainConfig(steps=7)


def test_dyna_latent_planner_yaml_lists_every_field() -> None:
    from experiments.dyna_latent_planner import DynaConfig

    cfg = _compose("dyna_latent_planner", ["rounds=2", "finetune.steps=9"])
    assert set(cfg) - {"hydra"} == {f.name for f in dataclasses.fields(DynaConfig)}
    config = to_dataclass(cfg, DynaConfig)
    assert config.rounds == 2 and config.finetune.steps == 9
    # the MPC demo's budget, so the oracle's return of its 12-episode run is comparable
    assert config.planner.terminal_value == 16.0 and config.planner.population == 32


def test_dyna_rl_yaml_lists_every_field() -> None:
    from experiments.dyna_rl import DynaRLConfig

    cfg = _compose("dyna_rl", ["rounds=3", "rl.total_steps=512"])
    assert set(cfg) - {"hydra"} == {f.name for f in dataclasses.fields(DynaRLConfig)}
    config = to_dataclass(cfg, DynaRLConfig)
    assert config.rounds == 3 and config.rl.total_steps == 512 and config.rl.env == "wfm"
    # 10% of the real-trained PPO run's steps, the interaction budget
    assert config.frame_budget == 2_000 and config.imagined_head_steps is None


# (config name, the committed result it measured, where that result keeps its planner)
PLANNER_RESULTS = [
    ("mpc_demo", "experiments/results/mpc/metrics.json", ("planner",)),
    ("mpc_crashes", "experiments/results/mpc_crashes/crashes.json", ("planner",)),
    ("plan_labels", "experiments/results/plan_labels/metrics.json", ("config", "planner")),
    (
        "dyna_latent_planner",
        "experiments/results/dyna_latent_planner/metrics.json",
        ("config", "planner"),
    ),
    ("mpc_demo_robot", "experiments/results/mpc_robot/metrics.json", ("planner",)),
]


@pytest.mark.parametrize(("name", "result", "keys"), PLANNER_RESULTS)
def test_each_planner_config_is_the_one_its_committed_result_measured(
    name: str, result: str, keys: tuple[str, ...]
) -> None:
    """The shared planner group (conf/planner/driving_demo.yaml) and each entry point's own
    changes compose to the planner its committed figures were measured with (fields a result
    predates take PlannerConfig's defaults), and to its dataclass's default when driving."""
    import experiments.dyna_latent_planner as dyna
    import experiments.mpc_crashes as crashes
    import experiments.mpc_demo as demo
    import experiments.plan_labels as labels
    from policies.planners import PlannerConfig

    schema = {
        "mpc_demo": demo.MPCDemoConfig,
        "mpc_crashes": crashes.CrashDiagnosisConfig,
        "plan_labels": labels.PlanLabelConfig,
        "dyna_latent_planner": dyna.DynaConfig,
        "mpc_demo_robot": demo.MPCDemoConfig,
    }[name]
    config = to_dataclass(_compose(name, []), schema)
    stored = json.loads((Path(__file__).parents[2] / result).read_text())
    for key in keys:
        stored = stored[key]
    assert config.planner == PlannerConfig(**stored)
    if name != "mpc_demo_robot":
        assert config.planner == schema().planner
