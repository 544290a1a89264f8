"""The vector env: one batched world model whose member i plays exactly like the single env
seeded ``seed + i``, with Gymnasium's next-step autoreset."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers WFM-Driving-v0 with its vector entry point)
from envs.vector import WFMVectorEnv


def _single(tiny_checkpoint: Path, termination: str) -> gym.Env:
    return gym.make(
        "WFM-Driving-v0",
        checkpoint=str(tiny_checkpoint),
        device="cpu",
        termination=termination,
        max_episode_steps=5,
    )


@pytest.mark.parametrize("termination", ["sample", "threshold", "never"])
def test_members_play_like_single_envs_seeded_seed_plus_i(
    tiny_checkpoint: Path, termination: str
) -> None:
    n, seed, steps = 3, 11, 14
    vector = gym.make_vec(
        "WFM-Driving-v0",
        num_envs=n,
        checkpoint=str(tiny_checkpoint),
        device="cpu",
        termination=termination,
        max_episode_steps=5,
    )
    assert isinstance(vector.unwrapped, WFMVectorEnv)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 5, size=(steps, n))
    obs, info = vector.reset(seed=seed)
    trace_v = [obs]
    rewards_v, ends_v = [], []
    for t in range(steps):
        obs, reward, terminated, truncated, _ = vector.step(actions[t])
        trace_v.append(obs)
        rewards_v.append(reward)
        ends_v.append(terminated | truncated)

    for member in range(n):
        single = _single(tiny_checkpoint, termination)
        frame, _ = single.reset(seed=seed + member)
        np.testing.assert_array_equal(frame, trace_v[0][member])
        done = False
        ended_any = False
        for t in range(steps):
            if done:  # the vector env restarts this member now and ignores its action
                frame, _ = single.reset()
                reward, done = 0.0, False
            else:
                frame, reward, terminated, truncated, _ = single.step(int(actions[t, member]))
                done = terminated or truncated
                ended_any |= done
            assert np.abs(frame.astype(int) - trace_v[t + 1][member].astype(int)).max() <= 1
            assert reward == pytest.approx(rewards_v[t][member], abs=1e-4)
            assert done == ends_v[t][member]
        assert ended_any, "the trace should cross an episode end for the test to mean much"


def test_spaces_errors_and_render(tiny_checkpoint: Path) -> None:
    env = WFMVectorEnv(
        num_envs=4, checkpoint=str(tiny_checkpoint), device="cpu", render_mode="rgb_array"
    )
    assert env.observation_space.shape == (4, 64, 64, 3)
    assert env.action_space.shape == (4,)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.ones(4, dtype=int))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 64, 64, 3) and obs.dtype == np.uint8
    with pytest.raises(ValueError, match="shape \\(4,\\)"):
        env.step(np.ones(3, dtype=int))
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step(np.array([1, 1, 9, 1]))
    with pytest.raises(ValueError, match="not a number"):
        env.step(np.array([1.0, np.nan, 1.0, 1.0]))
    frames = env.render()
    assert frames is not None and len(frames) == 4
    np.testing.assert_array_equal(np.stack(frames), obs)
    with pytest.raises(ValueError, match="num_envs"):
        WFMVectorEnv(num_envs=0, checkpoint=str(tiny_checkpoint), device="cpu")
    with pytest.raises(ValueError, match="2 seeds for 4 envs"):
        env.reset(seed=[1, 2])


def test_matched_starts_equal_the_single_env_with_the_same_options(tiny_checkpoint: Path) -> None:
    single = _single(tiny_checkpoint, "sample")
    contexts = single.unwrapped.start_frames[:2].numpy()  # (2, K, H, W, 3)
    actions = single.unwrapped.start_actions[:2].numpy()
    vector = WFMVectorEnv(num_envs=2, checkpoint=str(tiny_checkpoint), device="cpu")
    obs, _ = vector.reset(seed=[5, 6], options={"start_frames": contexts, "start_actions": actions})
    np.testing.assert_array_equal(obs, contexts[:, -1])
    steps = [vector.step(np.array([3, 4])) for _ in range(3)]
    for member in range(2):
        frame, _ = single.reset(
            seed=5 + member,
            options={"start_frames": contexts[member], "start_actions": actions[member]},
        )
        for t in range(3):
            frame, reward, terminated, *_ = single.step(3 + member)
            assert np.abs(frame.astype(int) - steps[t][0][member].astype(int)).max() <= 1
            assert reward == pytest.approx(steps[t][1][member], abs=1e-4)
            assert terminated == steps[t][2][member]
            if terminated:  # the vector env restarts this member on its next step
                break
    with pytest.raises(ValueError, match="one entry per env"):
        vector.reset(options={"start_frames": contexts[:1], "start_actions": actions[:1]})
    with pytest.raises(ValueError, match="start_frames must be"):
        vector.reset(options={"start_frames": contexts[..., :2], "start_actions": actions})
