"""The robot zoo's building blocks on synthetic episodes: cloning, round trip, simple members."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from policies.robot import (
    ACTION_DIM,
    BCPixelPolicy,
    ConstantTorque,
    GaussianNoise,
    RandomTorque,
    RobotPolicy,
    bc_network_config,
    load_robot_zoo,
    train_bc_policy,
)
from wfm_sim.data.footage import Episode

torch.set_num_threads(1)

TINY = bc_network_config(channels=(4, 8), kernels=(5, 5), strides=(4, 2), features_dim=16)
"""A tiny BC network (~3k parameters) so training takes a fraction of a second."""


def _synthetic_episode(
    episode_id: int, behaviour: str, rng: np.random.Generator, steps: int = 20
) -> Episode:
    """A bright square at a random column per frame; the torques are a function of that
    column (joint 0 = its position in [-1.5, 1.5], joint 1 = its negative, the rest 0)."""
    columns = rng.integers(0, 56, size=steps + 1)
    frames = np.zeros((steps + 1, 64, 64, 3), np.uint8)
    for t, column in enumerate(columns):
        frames[t, 28:36, column : column + 8] = 255
    position = (columns[:steps] / 55.0 * 3.0 - 1.5).astype(np.float32)
    actions = np.zeros((steps, ACTION_DIM), np.float32)
    actions[:, 0], actions[:, 1] = position, -position
    return Episode(
        episode_id,
        frames,
        actions,
        rewards=np.zeros(steps, np.float32),
        terminated=np.zeros(steps, bool),
        behaviour=behaviour,
    )


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    """6 expert episodes plus 2 random-behaviour ones whose torques are unrelated noise."""
    rng = np.random.default_rng(0)
    expert = [_synthetic_episode(i, "expert_noise_0", rng) for i in range(6)]
    others = []
    for i, behaviour in ((6, "random_arm"), (7, "expert_noise_0.3")):
        episode = _synthetic_episode(i, behaviour, rng)
        episode.actions[:] = rng.uniform(-2, 2, episode.actions.shape)
        others.append(episode)
    return expert + others


def _mse(policy: BCPixelPolicy, episodes: list[Episode]) -> float:
    expert = [e for e in episodes if e.behaviour == "expert_noise_0"]
    frames = np.concatenate([e.frames[:-1] for e in expert])
    actions = np.concatenate([e.actions for e in expert])
    return float(np.mean((policy.actions(frames) - actions) ** 2))


def _tiny_policy(episodes: list[Episode], steps: int, seed: int = 0, **kwargs) -> BCPixelPolicy:
    return train_bc_policy(
        episodes, steps, seed, config=TINY, batch_size=16, progress=False, **kwargs
    )


def test_behaviour_cloning_reduces_the_loss(episodes: list[Episode]) -> None:
    untrained = _tiny_policy(episodes, steps=0)
    trained = _tiny_policy(episodes, steps=300, learning_rate=3e-3, shift=0)
    before, after = _mse(untrained, episodes), _mse(trained, episodes)
    assert after < 0.25 * before, (before, after)
    assert trained.metadata["data_episodes"] == 6, "only the exact expert name is cloned"
    assert trained.metadata["data_frames"] == 6 * 20


def test_behaviour_filter_and_data_limit(episodes: list[Episode]) -> None:
    policy = _tiny_policy(
        episodes, steps=1, behaviours=("expert_noise_0", "random_arm"), max_episodes=3
    )
    assert policy.metadata["episode_ids"] == [0, 1, 2]
    policy = _tiny_policy(episodes, steps=1, behaviours=("random_arm",))
    assert policy.metadata["episode_ids"] == [6]
    with pytest.raises(ValueError, match="no episodes with behaviour"):
        _tiny_policy(episodes, steps=1, behaviours=("expert",))


def test_training_is_deterministic_per_seed(episodes: list[Episode]) -> None:
    frame = episodes[0].frames[0]
    rng = np.random.default_rng(0)
    first = _tiny_policy(episodes, steps=20, seed=3).act(frame, rng)
    again = _tiny_policy(episodes, steps=20, seed=3).act(frame, rng)
    other = _tiny_policy(episodes, steps=20, seed=4).act(frame, rng)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_save_load_round_trip_gives_identical_actions(
    episodes: list[Episode], tmp_path: Path
) -> None:
    policy = _tiny_policy(episodes, steps=10)
    policy.save(tmp_path / "bc_tiny.safetensors", mean_return=-12.5)
    loaded = BCPixelPolicy.load(tmp_path / "bc_tiny.safetensors")
    frames = np.concatenate([e.frames for e in episodes])
    np.testing.assert_array_equal(loaded.actions(frames), policy.actions(frames))
    assert loaded.name == "bc_tiny"
    assert loaded.metadata["mean_return"] == -12.5
    assert loaded.metadata["train_steps"] == 10
    action = loaded.act(frames[0], np.random.default_rng(0))
    assert action.shape == (ACTION_DIM,) and action.dtype == np.float32
    assert np.all(np.abs(loaded.actions(frames)) <= 2.0)


def test_load_names_the_missing_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train_robot_policies"):
        BCPixelPolicy.load(tmp_path / "bc_missing.safetensors")
    with pytest.raises(FileNotFoundError, match="train_robot_policies"):
        load_robot_zoo(tmp_path)


def _actions(policy: RobotPolicy, seed: int, n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.zeros((64, 64, 3), np.uint8)
    return np.stack([policy.act(frame, rng) for _ in range(n)])


@pytest.mark.parametrize(
    "policy",
    [
        GaussianNoise(ConstantTorque([1.9, -1.9, 0, 0, 0, 0, 0], "edge"), 1.0, "edge_noise"),
        RandomTorque(1.0, "random"),
        RandomTorque(0.3, "random_0.3"),
        ConstantTorque([0.5, 0.5, 0, 0, 0, 0, 0], "constant"),
    ],
    ids=lambda policy: policy.name,
)
def test_simple_members_stay_in_bounds_and_are_seeded(policy: RobotPolicy) -> None:
    actions = _actions(policy, seed=0)
    assert actions.shape == (200, ACTION_DIM) and actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 2.0)
    np.testing.assert_array_equal(actions, _actions(policy, seed=0))
    if not isinstance(policy, ConstantTorque):
        assert not np.array_equal(actions, _actions(policy, seed=1))


def test_noise_and_random_scales() -> None:
    noisy = _actions(GaussianNoise(ConstantTorque(np.zeros(7), "still"), 0.5, "n"), 0, 2000)
    assert abs(noisy.std() - 0.5) < 0.03
    assert np.abs(_actions(RandomTorque(0.3, "r"), 0)).max() <= 0.6
    clipped = _actions(GaussianNoise(ConstantTorque(np.full(7, 2.0), "max"), 1.0, "n"), 0)
    assert clipped.max() == 2.0 and np.mean(clipped == 2.0) > 0.4


def test_members_refuse_torques_outside_the_box() -> None:
    with pytest.raises(ValueError, match=r"\[-2, 2\]"):
        ConstantTorque([3.0, 0, 0, 0, 0, 0, 0], "too_strong")
    with pytest.raises(ValueError, match="shape"):
        ConstantTorque([0.0, 0.0], "too_short")
    with pytest.raises(ValueError, match="scale"):
        RandomTorque(1.5, "too_wide")


def test_robot_zoo_loads_with_unique_names(episodes: list[Episode], tmp_path: Path) -> None:
    for name, steps in (("bc_best", 12), ("bc_short", 3)):
        policy = _tiny_policy(episodes, steps=steps)
        policy.name = name
        policy.save(tmp_path / f"{name}.safetensors")
    zoo = load_robot_zoo(tmp_path)
    names = [policy.name for policy in zoo]
    assert len(zoo) >= 8
    assert len(set(names)) == len(names)
    assert names[0] == "bc_best" and "bc_short" in names and "still" in names
    assert names == [policy.name for policy in load_robot_zoo(tmp_path)], "order must be fixed"
    frame = episodes[0].frames[0]
    for member in zoo:
        assert isinstance(member, RobotPolicy)
        action = member.act(frame, np.random.default_rng(0))
        assert action.shape == (ACTION_DIM,) and action.dtype == np.float32, member.name
        assert np.all(np.abs(action) <= 2.0), member.name
