"""Plan labels: candidate plans are played on clones of the real simulator without touching
it, the ranking measures match hand-computed values, and the entry point labels, resumes
and scores a latent checkpoint."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import experiments.plan_labels as plan_labels
from experiments.plan_labels import (
    PlanLabelConfig,
    play_on_clone,
    rank_candidates,
    real_returns,
    run_plan_labels,
)
from policies.planners import PlannerConfig
from wfm_sim.data.plan_labels import read_plan_labels
from wfm_sim.sources import ACTION_NAMES, make_driving_env
from world_models.latent import LatentWorldModel

FASTER = ACTION_NAMES.index("FASTER")


def test_ranking_measures_match_hand_computed_values() -> None:
    states = np.array([0, 0, 0, 1, 1, 1])
    real = np.array([10.0, 5.0, 0.0, 0.0, 7.0, 4.0])
    crashed = np.array([False, False, True, True, False, False])
    predicted = np.array([1.0, 2.0, 3.0, 0.0, 5.0, 3.0])  # picks the crash, then the best
    risk = np.array([0.1, 0.2, 0.05, 0.9, 0.1, 0.2])  # misses the first crash, sees the second
    scores = rank_candidates(states, predicted, risk, real, crashed)
    assert scores["decisions"] == 2 and scores["plans"] == 6
    assert scores["return_spearman_mean"] == pytest.approx(0.0)  # -1 and +1
    assert scores["crash_auc_mean"] == pytest.approx(0.5)  # 0 and 1
    assert scores["pick_crashes"] == 0.5
    assert scores["pick_crashes_with_a_safe_plan_on_the_table"] == 0.5
    assert scores["regret_mean"] == pytest.approx(5.0)  # 10 and 0


def test_real_return_credits_the_terminal_value_only_to_plans_the_episode_outlasts() -> None:
    labels = {
        "rewards": np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]], np.float32),
        "ended": np.array([[False, False, False], [False, True, False], [False] * 3]),
        "valid": np.array([[True, True, True], [True, True, False], [True] * 3]),
        # the third plan met the time limit at its last step: nothing is left to credit
        "outlasted": np.array([True, False, False]),
    }
    config = PlannerConfig(horizon=3, discount=0.5, terminal_value=8.0)
    np.testing.assert_allclose(
        real_returns(labels, config), [1 + 0.5 + 0.25 + 0.125 * 8, 1.0, 1 + 0.5 + 0.25]
    )


def test_a_plan_is_played_on_a_clone_and_the_real_env_is_untouched() -> None:
    env = make_driving_env()
    env.reset(seed=3)
    ego = env.unwrapped.vehicle
    before = ego.position.copy()
    for _ in range(6):  # speeding up for 8 more steps eventually meets a car or the end
        played = play_on_clone(env, np.full(8, FASTER))
        np.testing.assert_array_equal(ego.position, before)
        assert played.played[0] and (played.rewards[played.played] >= 0).all()
        if not played.ended.any():
            assert played.outlasted  # 8 steps from the start end well inside the time limit
        if played.ended.any():
            last = int(np.flatnonzero(played.ended)[0])
            assert not played.played[last + 1 :].any()  # nothing is played after an end
            assert not played.outlasted
            break
    env.close()


def test_the_entry_point_labels_resumes_and_scores(
    tiny_latent_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = PlanLabelConfig(
        latent_checkpoint=str(tiny_latent_checkpoint),
        episodes=2,
        episodes_per_part=1,
        best_plans=2,
        random_plans=1,
        planner=PlannerConfig(horizon=2, population=4, elites=2, iterations=1),
        models=[str(tiny_latent_checkpoint)],
        labels_dir=str(tmp_path / "labels"),
        out_dir=str(tmp_path / "out"),
        threads=1,
    )
    payload = run_plan_labels(config)
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == [
        "labels.json",
        "part-00000.safetensors",
        "part-00001.safetensors",
    ]
    labels = read_plan_labels(tmp_path / "labels")
    decisions = len(labels["contexts"])
    k = LatentWorldModel.load(tiny_latent_checkpoint).context
    assert labels["contexts"].shape[1:] == (k, 64, 64, 3)
    assert labels["state"].min() == 0 and labels["state"].max() == decisions - 1
    assert len(labels["actions"]) == 3 * decisions  # 2 best + 1 random at every decision
    assert not (labels["valid"][:, 1:] & labels["ended"][:, :1]).any()
    stored = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert stored["labels"]["decisions"] == decisions == payload["labels"]["decisions"]
    scores = stored["models"][str(tiny_latent_checkpoint)]
    assert scores["decisions"] == decisions and 0 <= scores["pick_crashes"] <= 1
    assert len(scores["weights_sha256"]) == 64
    # the labels name the weights of the planner that made them, as MPC runs do
    assert stored["latent_weights_sha256"] == scores["weights_sha256"]

    def fails(*args: object) -> None:
        raise AssertionError("a finished part was labelled again")

    monkeypatch.setattr(plan_labels, "_label_episode", fails)
    assert run_plan_labels(config)["labels"] == payload["labels"]
    other = dataclasses.replace(config, best_plans=1, epsilon=0.5)
    with pytest.raises(ValueError, match="other best_plans, epsilon"):
        run_plan_labels(other)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="best_plans"):
        PlanLabelConfig(best_plans=0)
    with pytest.raises(ValueError, match="models"):
        PlanLabelConfig(models=[])
    with pytest.raises(FileNotFoundError, match="no plan labels"):
        read_plan_labels("/nonexistent/plan_labels")
