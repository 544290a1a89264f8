"""Choosing among PPO candidates on real episodes, in a tiny config: each candidate drives the
same recorded starts deterministically, the best on them is kept, the choosing episodes count
in the real frames, selections train disjoint PPO seeds, a rerun resumes, and a configuration
that could pass the budget is refused before anything trains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from experiments import dyna_rl, rl_select
from experiments.rl_select import RLSelectConfig, run_rl_select
from experiments.train_rl import RLConfig, footage_frames
from tests.tiny_rl import tiny_rl_config
from wfm_sim.data.footage import read_episodes


def _tiny(checkpoint: Path, tmp_path: Path, **overrides: Any) -> RLSelectConfig:
    """Two candidates of a few hundred PPO steps, one choosing episode each, one selection."""
    real = tmp_path / "real_ppo.json"
    real.write_text(
        json.dumps({"total_steps": 20_000, "real_interactions": 20_000, "real_return_mean": 20.0})
    )
    settings: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "candidates": 2,
        "episodes_per_candidate": 1,
        "frame_budget": 10_000,
        "seeds": [0],
        "rl": tiny_rl_config(tmp_path),
        "real_results": str(real),
        "footage_dir": str(tmp_path / "footage"),
        "run_dir": str(tmp_path / "run"),
        "out_dir": str(tmp_path / "out"),
    }
    return RLSelectConfig(**{**settings, **overrides})


def test_the_candidate_best_on_its_real_episodes_is_kept_and_its_frames_counted(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _tiny(tiny_checkpoint, tmp_path, seeds=[1])
    payload = run_rl_select(config)
    (selection,) = payload["selections"]
    candidates = selection["candidates"]
    assert [c["ppo_seed"] for c in candidates] == [2, 3]
    starts = []
    for candidate in candidates:
        (episode,) = read_episodes(candidate["footage"])
        assert episode.behaviour == f"ppo_seed_{candidate['ppo_seed']}"
        assert candidate["choosing_frames"] == len(episode.frames)
        assert candidate["choosing_return_mean"] == pytest.approx(
            float(episode.rewards.sum()), abs=1e-4
        )
        starts.append(pq.read_table(next(Path(candidate["footage"]).glob("*.parquet"))))
    assert starts[0].column("sim_seed")[0] == starts[1].column("sim_seed")[0]
    best = max(candidates, key=lambda c: c["choosing_return_mean"])
    assert selection["kept_ppo_seed"] == best["ppo_seed"]
    assert selection["real_return_mean"] == best["real_return_mean"]
    assert selection["real_frames"] == footage_frames(str(tiny_checkpoint)) + sum(
        c["choosing_frames"] for c in candidates
    )
    assert (tmp_path / "run" / "ppo_seed_3" / "policy.safetensors").stat().st_size > 0
    assert (tmp_path / "out" / "rl_select.png").stat().st_size > 0
    stored = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert stored["selections"] == payload["selections"]

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a trained candidate is trained again")

    monkeypatch.setattr(dyna_rl, "learn", no_training)
    again = run_rl_select(config)
    assert again["selections"] == payload["selections"]


def test_a_tie_keeps_the_first_candidate(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def same_returns(config: RLSelectConfig, seed: int, ppo_seed: int, model: object) -> dict:
        return {"choosing_returns": [5.0], "choosing_return_mean": 5.0, "choosing_frames": 7}

    monkeypatch.setattr(rl_select, "drive_real_episodes", same_returns)
    payload = run_rl_select(_tiny(tiny_checkpoint, tmp_path))
    assert payload["selections"][0]["kept_ppo_seed"] == 0
    assert payload["selections"][0]["real_frames"] == footage_frames(str(tiny_checkpoint)) + 14


def test_choosing_episodes_that_could_pass_the_budget_are_refused_before_training(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    budget = footage_frames(str(tiny_checkpoint)) + 2 * 31 - 1
    with pytest.raises(ValueError, match="frame_budget"):
        run_rl_select(_tiny(tiny_checkpoint, tmp_path, frame_budget=budget))
    assert not (tmp_path / "run").exists()


def test_selections_train_disjoint_ppo_seeds() -> None:
    config = RLSelectConfig(candidates=3, seeds=[0, 1, 2])
    seeds = [config.candidate_seeds(s) for s in config.seeds]
    assert seeds == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"candidates": 0}, "candidates"),
        ({"episodes_per_candidate": 0}, "episodes_per_candidate"),
        ({"seeds": []}, "seeds"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"rl": RLConfig(env="real")}, "rl.env=wfm"),
    ],
)
def test_a_bad_configuration_is_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RLSelectConfig(**settings)
