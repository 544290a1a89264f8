"""The Dyna RL loop in a tiny config: PPO's own real episodes are recorded, the world model
trains on the footage plus them, PPO goes on from its saved policy (or starts afresh in each
round's model); the real-frame budget
holds, each PPO seed runs its own loop in its own folders, and a rerun resumes instead of
training again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from experiments import dyna_rl
from experiments.dyna_rl import DynaRLConfig, round_train_config, run_dyna_rl, seed_config
from experiments.train_rl import RLConfig, footage_frames
from tests.tiny_rl import tiny_rl_config
from wfm_sim.data.footage import read_episodes
from wfm_sim.training.world_model import trained_with


def _tiny(checkpoint: Path, tmp_path: Path, **overrides: Any) -> DynaRLConfig:
    """One round of one real episode, PPO for a few hundred steps, one real evaluation."""
    real = tmp_path / "real_ppo.json"
    real.write_text(
        json.dumps({"total_steps": 20_000, "real_interactions": 20_000, "real_return_mean": 20.0})
    )
    settings: dict[str, Any] = {
        "initial_checkpoint": str(checkpoint),
        "rounds": 1,
        "episodes_per_round": 1,
        "frame_budget": 10_000,
        "dynamics_steps": 2,
        "finetune_steps": 2,
        "rl": tiny_rl_config(tmp_path),
        "seeds": [],
        "real_results": str(real),
        "footage_dir": str(tmp_path / "footage"),
        "run_dir": str(tmp_path / "run"),
        "out_dir": str(tmp_path / "out"),
    }
    return DynaRLConfig(**{**settings, **overrides})


def test_a_round_trains_the_model_on_the_policys_real_episodes_and_resumes(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _tiny(tiny_checkpoint, tmp_path, seeds=[3])
    payload = run_dyna_rl(config)
    assert [loop["seed"] for loop in payload["loops"]] == [config.rl.seed, 3]
    first, second = payload["loops"][0]["rounds"]
    recorded = read_episodes(tmp_path / "footage" / "round_1")
    assert len(recorded) == 1 and recorded[0].behaviour == "dyna_ppo_round_0"
    assert second["real_frames"] == first["real_frames"] + len(recorded[0].frames)
    assert first["real_frames"] == footage_frames(str(tiny_checkpoint))
    training = json.loads((Path(second["checkpoint"]) / "training.json").read_text())
    assert training["extra_footage_dirs"] == [str(tmp_path / "footage" / "round_1")]
    assert training["steps"]["tokenizer"] == 0 and training["steps"]["dynamics"] == 2
    assert (tmp_path / "run" / "round_1" / "policy.safetensors").stat().st_size > 0
    assert (tmp_path / "out" / "dyna_rl.png").stat().st_size > 0
    assert payload["loops"][0]["stopped_by_budget"] is False
    other = payload["loops"][1]["rounds"]
    assert [r["round"] for r in other] == [0, 1]
    assert other[1]["checkpoint"] == str(
        tmp_path / "run" / "seed_3" / "round_1" / "model" / "checkpoint"
    )
    assert (
        read_episodes(tmp_path / "footage" / "seed_3" / "round_1")[0].behaviour
        == "dyna_ppo_round_0"
    )
    assert (tmp_path / "run" / "seed_3" / "round_1" / "policy.safetensors").exists()
    assert (tmp_path / "out" / "seed_3" / "round_1.json").exists()

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished round is trained again")

    monkeypatch.setattr(dyna_rl, "learn", no_training)
    monkeypatch.setattr(dyna_rl, "train_world_model", no_training)
    again = run_dyna_rl(config)
    assert again["loops"] == payload["loops"]


@pytest.mark.parametrize(
    ("policy_each_round", "starts_from_round_0"), [("continue", True), ("fresh", False)]
)
def test_a_rounds_ppo_goes_on_from_the_last_policy_or_starts_afresh(
    tiny_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy_each_round: str,
    starts_from_round_0: bool,
) -> None:
    loaded: list[str] = []
    real_load_model = dyna_rl.load_model

    def spy(policy: object, path: str) -> object:
        loaded.append(path)
        return real_load_model(policy, path)

    monkeypatch.setattr(dyna_rl, "load_model", spy)
    payload = run_dyna_rl(_tiny(tiny_checkpoint, tmp_path, policy_each_round=policy_each_round))
    assert [r["round"] for r in payload["loops"][0]["rounds"]] == [0, 1]
    round_0_policy = str(tmp_path / "run" / "round_0" / "policy.safetensors")
    assert loaded == ([round_0_policy] if starts_from_round_0 else [])
    assert payload["config"]["policy_each_round"] == policy_each_round


def test_an_unknown_policy_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="policy_each_round"):
        DynaRLConfig(policy_each_round="warm")


def test_a_round_that_could_pass_the_frame_budget_is_not_recorded(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    budget = footage_frames(str(tiny_checkpoint)) + 30
    payload = run_dyna_rl(_tiny(tiny_checkpoint, tmp_path, frame_budget=budget))
    (loop,) = payload["loops"]
    assert loop["stopped_by_budget"] is True
    assert [r["round"] for r in loop["rounds"]] == [0]
    assert not (tmp_path / "footage").exists()


def test_each_round_repeats_the_starting_models_last_run(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    config = _tiny(tiny_checkpoint, tmp_path, finetune_steps=None)
    base = trained_with(tiny_checkpoint)
    round_config = round_train_config(config, 2, "prev", [Path("a"), Path("b")])
    assert round_config.init_checkpoint == "prev" and round_config.tokenizer_steps == 0
    assert round_config.extra_footage_dirs == ["a", "b"]
    assert round_config.dynamics_steps == 2 and round_config.finetune_steps == base.finetune_steps
    assert round_config.model == base.model and round_config.footage_dir == base.footage_dir


def test_the_loop_trains_in_the_world_model_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rl.env=wfm"):
        DynaRLConfig(rl=RLConfig(env="real"))


@pytest.mark.parametrize("seeds", [[0, 1], [1, 1]])
def test_each_seed_runs_its_own_loop_once(seeds: list[int]) -> None:
    with pytest.raises(ValueError, match="must differ"):
        DynaRLConfig(rl=RLConfig(env="wfm", seed=0), seeds=seeds)


def test_a_seeds_loop_keeps_to_its_own_folders() -> None:
    config = DynaRLConfig(run_dir="r", footage_dir="f", out_dir="o", seeds=[1, 2])
    loop = seed_config(config, 2)
    assert (loop.rl.seed, loop.seeds) == (2, [])
    assert (loop.run_dir, loop.footage_dir, loop.out_dir) == ("r/seed_2", "f/seed_2", "o/seed_2")
    assert loop.rl.log_dir == str(Path(config.rl.log_dir) / "seed_2")
    assert (
        loop.initial_checkpoint == config.initial_checkpoint
        and loop.rl.total_steps == config.rl.total_steps
    )


def test_checked_episode_lengths_refuses_an_episode_longer_than_the_budget_assumed(
    tiny_footage: Path,
) -> None:
    lengths = {e.episode_id: len(e.frames) for e in read_episodes(tiny_footage)}
    assert dyna_rl.checked_episode_lengths(tiny_footage, max(lengths.values())) == lengths
    with pytest.raises(ValueError, match=rf"{max(lengths.values())} frames, more than max_epis"):
        dyna_rl.checked_episode_lengths(tiny_footage, max(lengths.values()) - 1)
