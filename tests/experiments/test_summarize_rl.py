"""BENCHMARKS.md's small-footage RL comparison: the share of return and of real interactions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from experiments.bench import summarize


def _write(path: Path, real_interactions: int, returns: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    run = {
        "total_steps": 20_000,
        "real_interactions": real_interactions,
        "train_seconds": 1.0,
        "real_return_mean": sum(returns) / len(returns),
        "real_returns": returns,
        "machine": {"cpus": 2, "commit": "abc1234"},
    }
    path.write_text(json.dumps(run))


def test_the_small_footage_run_is_weighed_against_the_real_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    assert "Not measured yet" in summarize._rl_small_footage_section()[0]
    _write(tmp_path / "rl" / "real_ppo.json", 20_000, [20.0, 22.0])
    _write(tmp_path / "rl_small_footage" / "wfm_ppo.json", 1_985, [10.0, 12.0])
    text = "\n".join(summarize._rl_small_footage_section())
    assert "1,985 (9.9% of the real run's)" in text
    assert "52% of the real-trained return with 9.9% of its real interactions" in text


def test_a_run_returning_a_constant_actions_returns_is_named_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from experiments.bench.rl_constant_actions import acts_like

    constant = {"IDLE": [12.0, 3.5], "SLOWER": [21.02, 20.02]}
    assert acts_like([21.0204, 20.02], constant) == "SLOWER"
    assert acts_like([21.1, 20.02], constant) is None
    assert acts_like([12.0], constant) is None  # another number of starts
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    assert summarize._constant_action_lines({"run": {"real_returns": [12.0, 3.5]}}) == []
    (tmp_path / "rl_constant_actions.json").write_text(
        json.dumps(
            {
                "episodes": 2,
                "eval_seed": 30_000,
                "returns": constant,
                "mean_returns": {"IDLE": 7.75, "SLOWER": 20.52},
            }
        )
    )
    runs: dict[str, dict[str, Any]] = {
        "fast": {"real_returns": [12.0, 3.5]},
        "slow": {"real_returns": [21.02, 20.02], "config": {"eval_seed": 30_000}},
        "elsewhere": {"real_returns": [21.02, 20.02], "config": {"eval_seed": 1}},
        "mixed": {"real_returns": [12.0, 20.02]},
    }
    text = "\n".join(summarize._constant_action_lines(runs))
    assert "SLOWER 20.52, IDLE 7.75" in text
    assert "what constant IDLE does on every start, so acting like it there: fast." in text
    assert "what constant SLOWER does on every start, so acting like it there: slow." in text
    assert "elsewhere" not in text and "mixed" not in text


def _dyna_run() -> dict[str, Any]:
    """A Dyna run's metrics: seed 0 two rounds then stopped by the budget, seed 1 one round."""
    rounds = [
        {"round": 0, "real_frames": 1_448, "real_returns": [7.0, 7.0], "real_return_mean": 7.0},
        {"round": 1, "real_frames": 1_700, "real_returns": [19.0, 20.0], "real_return_mean": 19.5},
    ]
    other = [{"round": 0, "real_frames": 1_448, "real_returns": [12.0], "real_return_mean": 12.0}]
    for row in [*rounds, *other]:
        row.update(imagined_return_last=20.0, train_seconds=300.0)
    return {
        "config": {
            "rl": {"total_steps": 20_000, "eval_seed": 30_000},
            "episodes_per_round": 8,
            "rounds": 4,
            "frame_budget": 2_000,
            "dynamics_steps": 500,
            "finetune_steps": None,
        },
        "loops": [
            {"seed": 0, "stopped_by_budget": True, "rounds": rounds},
            {"seed": 1, "stopped_by_budget": False, "rounds": other},
        ],
        "machine": {"cpus": 2, "commit": "abc1234"},
    }


def test_the_dyna_rounds_are_weighed_against_the_real_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    assert "Not measured yet" in summarize._rl_dyna_section()[0]
    _write(tmp_path / "rl" / "real_ppo.json", 20_000, [20.0, 22.0])
    (tmp_path / "rl_dyna").mkdir()
    (tmp_path / "rl_dyna" / "metrics.json").write_text(json.dumps(_dyna_run()))
    text = "\n".join(summarize._rl_dyna_section())
    assert "| 0 | 1 | 1,700 (8.5%) | 19.50 over 2 episodes | 93% | 20.00 | 300.0 s |" in text
    assert "| 1 | 0 | 1,448 (7.2%) | 12.00 over 1 episodes | 57% |" in text
    assert "seed 0 93% with 8.5% after round 1, then stopped by the budget; " in text
    assert "seed 1 57% with 7.2% after round 0 (aim" in text
    assert "with 500 dynamics and its own fine-tune steps" in text
    assert "at most 4 rounds while a round's episodes, even at full length, fit" in text


def test_the_fresh_policy_dyna_loop_has_its_own_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    _write(tmp_path / "rl" / "real_ppo.json", 20_000, [20.0, 22.0])
    (tmp_path / "rl_dyna").mkdir()
    (tmp_path / "rl_dyna" / "metrics.json").write_text(json.dumps(_dyna_run()))
    assert "make rl-dyna-fresh" in summarize._rl_dyna_fresh_section()[0]
    assert "Not measured yet" in summarize._rl_dyna_fresh_section()[0]
    fresh = _dyna_run()
    fresh["loops"][1]["rounds"][0].update(real_returns=[21.0], real_return_mean=21.0)
    (tmp_path / "rl_dyna_fresh").mkdir()
    (tmp_path / "rl_dyna_fresh" / "metrics.json").write_text(json.dumps(fresh))
    text = "\n".join(summarize._rl_dyna_fresh_section())
    assert "`policy_each_round=fresh`, `make rl-dyna-fresh`" in text
    assert "| 1 | 0 | 1,448 (7.2%) | 21.00 over 1 episodes | 100% |" in text
    assert "seed 1 100% with 7.2% after round 0 (aim" in text
    assert "12.00" not in text


def test_the_ppo_seeds_are_tabled_with_the_constant_action_each_run_equals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    _write(tmp_path / "rl" / "real_ppo.json", 20_000, [20.0, 22.0])
    _write(tmp_path / "rl" / "wfm_ppo.json", 51_186, [20.0, 22.0])
    assert "Not measured yet" in summarize._rl_seeds_section()[0]
    _write(tmp_path / "rl_seeds" / "seed_2" / "real_ppo.json", 20_000, [20.0, 20.0])
    _write(tmp_path / "rl_seeds" / "seed_2" / "wfm_ppo.json", 51_186, [5.0, 5.0])
    _write(tmp_path / "rl_seeds" / "seed_7" / "real_ppo.json", 20_000, [20.0, 20.0])
    for path in (tmp_path / "rl", tmp_path / "rl_seeds" / "seed_2"):
        for run in path.glob("*.json"):
            data = json.loads(run.read_text())
            run.write_text(json.dumps({**data, "config": {"eval_seed": 30_000}}))
    (tmp_path / "rl_constant_actions.json").write_text(
        json.dumps({"episodes": 2, "eval_seed": 30_000, "returns": {"FASTER": [5.0, 5.0]}})
    )
    text = "\n".join(summarize._rl_seeds_section())
    assert "| 0 | 21.00 | 21.00 | 100% | 1.0 s / 1.0 s | abc1234 / abc1234 |" in text
    assert "| 2 | 20.00 | 5.00 (like FASTER) | 25% |" in text
    assert "| 7 |" not in text  # no world-model run for that seed
    assert "Mean over the 2 seeds: 20.50 in the real env, 13.00 in the world model (63%)." in text
    assert summarize._same_seeds_in_the_real_env([0, 7]) == []  # seed 7 has no pair
    same = summarize._same_seeds_in_the_real_env([0, 2])[-1]
    assert same.endswith("seed 0 21.00; seed 2 20.00.")


def _candidate(ppo_seed: int, choosing: float, real: list[float]) -> dict[str, Any]:
    return {
        "ppo_seed": ppo_seed,
        "choosing_returns": [choosing, choosing],
        "choosing_return_mean": choosing,
        "choosing_frames": 40,
        "real_returns": real,
        "real_return_mean": sum(real) / len(real),
        "imagined_return_last": 23.5,
        "train_seconds": 300.0,
    }


def test_the_candidate_selection_tables_every_candidate_and_the_kept_ones_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    _write(tmp_path / "rl" / "real_ppo.json", 20_000, [20.0, 22.0])
    assert "make rl-select" in summarize._rl_select_section()[0]
    selection = {
        "seed": 1,
        "candidates": [
            {**_candidate(3, 5.0, [5.0, 5.0]), "imagined_return_last": None},
            _candidate(4, 20.0, [21.0, 21.0]),
        ],
        "kept_ppo_seed": 4,
        "real_return_mean": 21.0,
        "real_frames": 1_528,
    }
    metrics = {
        "config": {
            "candidates": 2,
            "episodes_per_candidate": 2,
            "rl": {"total_steps": 20_000, "eval_seed": 30_000},
        },
        "selections": [selection],
        "machine": {"cpus": 2, "commit": "abc1234"},
    }
    (tmp_path / "rl_select").mkdir()
    (tmp_path / "rl_select" / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "rl_constant_actions.json").write_text(
        json.dumps(
            {
                "episodes": 2,
                "eval_seed": 30_000,
                "mean_returns": {"FASTER": 5.0},
                "returns": {"FASTER": [5.0, 5.0]},
            }
        )
    )
    text = "\n".join(summarize._rl_select_section())
    assert "| 1 | 3 | 5.00 over 2 episodes | 5.00 over 2 episodes | 24% | - | 300.0 s |  |" in text
    assert "| 1 | 4 | 20.00 over 2 episodes | 21.00 over 2 episodes | 100% |" in text
    assert text.count("**kept**") == 1 and "100% | 23.50 | 300.0 s | **kept** |" in text
    assert "selection 1 (PPO seed 4 kept) 100% with 1,528 real frames (7.6%)" in text
    assert "constant FASTER does on every start, so acting like it there: PPO seed 3." in text
