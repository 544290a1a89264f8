"""The ranking experiment end to end on a tiny checkpoint: matched starts, report, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.vector import WFMVectorEnv
from experiments.rank_policies import (
    RankConfig,
    matched_starts,
    rank_policies,
    run_episode,
    run_wfm_episodes,
)
from policies import ConstantPolicy, RandomPolicy
from wfm_sim.sources import make_driving_env


def test_matched_starts_replay_the_same_real_frames() -> None:
    env = make_driving_env()
    first = matched_starts(env, first_seed=5, count=2, warmup=[1, 1])
    again = matched_starts(env, first_seed=5, count=2, warmup=[1, 1])
    assert [s.seed for s in first] == [s.seed for s in again]
    for a, b in zip(first, again, strict=True):
        assert a.frames.shape == (3, 64, 64, 3) and a.actions == [1, 1]
        np.testing.assert_array_equal(a.frames, b.frames)


def test_ranking_report_on_a_tiny_checkpoint(tmp_path: Path, tiny_checkpoint: Path) -> None:
    zoo = [
        ConstantPolicy(3, "always_faster"),
        ConstantPolicy(4, "always_slower"),
        ConstantPolicy(1, "always_idle"),
    ]
    config = RankConfig(
        checkpoint=str(tiny_checkpoint),
        episodes=2,
        out_dir=str(tmp_path / "report"),
        gif_policies=["always_slower"],
        warmup_steps=1,
        threads=1,
        n_bootstrap=20,
    )
    report = rank_policies(config, zoo=zoo)
    assert report.exists() and (tmp_path / "report" / "rollout_always_slower.gif").exists()
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert set(metrics["policies"]) == {p.name for p in zoo}
    assert metrics["extra"]["policy_steps_per_episode"] == 29
    for policy in metrics["policies"].values():
        assert policy["n_real_episodes"] == policy["n_wfm_episodes"] == 2
    assert {"spearman", "kendall", "pearson", "mmrv", "regret_at_1"} <= set(metrics["metrics"])


def test_batched_wfm_episodes_match_single_env_episodes(tiny_checkpoint: Path) -> None:
    starts = matched_starts(make_driving_env(), first_seed=3, count=3, warmup=[1])
    single = gym.make(envs.DRIVING_ID, checkpoint=str(tiny_checkpoint), device="cpu")
    vector = WFMVectorEnv(
        num_envs=3, checkpoint=str(tiny_checkpoint), device="cpu", max_episode_steps=8
    )
    policy = RandomPolicy()
    batched, steps = run_wfm_episodes(vector, policy, starts, max_steps=8, neutral=1)
    one_by_one = [run_episode(single, policy, s, real=False, max_steps=8) for s in starts]
    assert batched == [pytest.approx(total, abs=1e-3) for total, _, _ in one_by_one]
    assert steps == sum(len(actions) for _, _, actions in one_by_one)
