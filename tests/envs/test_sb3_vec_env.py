"""The SB3 adapter: SB3's checks and algorithms run on the batched world-model env."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

from envs.sb3 import WFMVecEnvSB3
from envs.vector import WFMVectorEnv


def test_same_step_autoreset_reports_the_final_frame(tiny_checkpoint: Path) -> None:
    venv = WFMVectorEnv(
        num_envs=2,
        checkpoint=str(tiny_checkpoint),
        device="cpu",
        max_episode_steps=3,
        autoreset_mode="same_step",
    )
    obs, _ = venv.reset(seed=0)
    for _ in range(3):  # by the third step every member has ended at least once
        obs, _, terminated, truncated, info = venv.step(np.array([1, 1]))
        ended = terminated | truncated
        if ended.any():
            break
    assert ended.any()
    np.testing.assert_array_equal(info["_final_obs"], ended)
    first = int(np.flatnonzero(ended)[0])
    assert info["final_obs"][first].shape == (64, 64, 3)
    np.testing.assert_array_equal(info["start_index"] >= 0, ended)  # restarted in the same step


def test_sb3_ppo_trains_a_few_hundred_steps_on_the_batched_env(tiny_checkpoint: Path) -> None:
    env = VecMonitor(
        WFMVecEnvSB3(
            num_envs=4, seed=0, checkpoint=str(tiny_checkpoint), device="cpu", max_episode_steps=10
        )
    )
    model = PPO(
        "CnnPolicy",
        env,
        n_steps=32,
        batch_size=64,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"features_extractor_kwargs": {"features_dim": 32}},
    )
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    episodes = [info for info in model.ep_info_buffer]
    assert episodes, "episodes finished and SB3 counted them"
    assert all(0 < e["l"] <= 10 for e in episodes)
    action, _ = model.predict(env.reset()[0], deterministic=True)
    assert 0 <= int(action) < 5
