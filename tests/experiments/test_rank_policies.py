"""The ranking experiment end to end on a tiny checkpoint: matched starts, report, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.vector import WFMVectorEnv
from envs.wfm_env import WFMEnv
from experiments.rank_policies import (
    MatchedStart,
    RankConfig,
    imagined_starts,
    matched_starts,
    rank_config,
    rank_policies,
    run_episode,
    run_wfm_episodes,
    wfm_env_kwargs,
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


@pytest.mark.parametrize("end_reading", ["drawn", "expected"])
def test_batched_wfm_episodes_match_single_env_episodes(
    tiny_checkpoint: Path, end_reading: str
) -> None:
    starts = matched_starts(make_driving_env(), first_seed=3, count=3, warmup=[1])
    env_kwargs = {"checkpoint": str(tiny_checkpoint), "device": "cpu", "end_reading": end_reading}
    single = gym.make(envs.DRIVING_ID, **env_kwargs)
    vector = WFMVectorEnv(num_envs=3, max_episode_steps=8, **env_kwargs)
    policy = RandomPolicy()
    batched = run_wfm_episodes(vector, policy, starts, max_steps=8, neutral=1)
    one_by_one = [run_episode(single, policy, s, real=False, max_steps=8) for s in starts]
    assert batched.returns == [pytest.approx(total, abs=1e-3) for total, _, _ in one_by_one]
    assert batched.steps == sum(len(actions) for _, _, actions in one_by_one)
    for ended, (_, _, actions) in zip(batched.ended, one_by_one, strict=True):
        assert ended == 1.0 if len(actions) < 8 else ended in (0.0, 1.0)


def test_never_terminating_ranking_scores_the_expected_return(tiny_checkpoint: Path) -> None:
    starts = matched_starts(make_driving_env(), first_seed=3, count=2, warmup=[1])
    vector = WFMVectorEnv(
        num_envs=2,
        checkpoint=str(tiny_checkpoint),
        device="cpu",
        max_episode_steps=6,
        termination="never",
    )
    policy = ConstantPolicy(3, "always_faster")
    expected = run_wfm_episodes(vector, policy, starts, max_steps=6, neutral=1)
    assert expected.steps == 2 * 6, "nothing ends before the time limit"
    single = WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu", termination="never")
    for start, score, ended in zip(starts, expected.returns, expected.ended, strict=True):
        single.reset(
            seed=start.seed, options={"start_frames": start.frames, "start_actions": start.actions}
        )
        by_hand, running = 0.0, 1.0
        for _ in range(6):
            _, reward, _, _, info = single.step(3)
            by_hand += running * reward
            running *= 1.0 - info["end_probability"]
        assert score == pytest.approx(by_hand, abs=1e-3)
        assert ended == pytest.approx(1.0 - running, abs=1e-5)
        assert running < 1.0, "the hazard must weigh the later rewards for the test to mean much"


def test_imagined_starts_keep_the_first_copy_and_reseed_the_rest() -> None:
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    starts = [MatchedStart(7, frames, [1]), MatchedStart(9, frames, [1])]
    copies = imagined_starts(starts, 3)
    assert [c.seed for c in copies[:2]] == [7, 9]
    assert len(copies) == 6 and len({c.seed for c in copies}) == 6
    assert [c.seed for c in imagined_starts(starts, 3)] == [c.seed for c in copies]
    with pytest.raises(ValueError, match="wfm_samples"):
        imagined_starts(starts, 0)


def test_ranking_averages_several_imagined_episodes_per_start(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    config = RankConfig(
        checkpoint=str(tiny_checkpoint),
        episodes=2,
        out_dir=str(tmp_path / "report"),
        gif_policies=[],
        warmup_steps=1,
        threads=1,
        n_bootstrap=20,
        wfm_samples=3,
        termination="never",
    )
    rank_policies(config, zoo=[ConstantPolicy(4, "always_slower"), RandomPolicy()])
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["extra"]["wfm_samples_per_start"] == 3
    assert metrics["extra"]["wfm_batch"] == 6
    for policy in metrics["policies"].values():
        assert policy["n_real_episodes"] == policy["n_wfm_episodes"] == 2


@pytest.mark.parametrize(
    "config_name",
    sorted(p.stem for p in (Path(__file__).parents[2] / "experiments/conf").glob("rank_*.yaml")),
)
def test_every_ranking_config_makes_its_world_model_env(config_name: str) -> None:
    # a setting the task's committed model refuses (an end reading it cannot give, say)
    # would otherwise surface only after the real episodes of a long run
    from experiments.tasks import get_task

    config = rank_config(config_name)
    env = gym.make(get_task(config.task).wfm_env_id, **wfm_env_kwargs(config))
    env.close()
