"""The driving zoo and its building blocks: loading, acting, ε-greedy, safetensors round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from policies import (
    ConstantPolicy,
    DQNPixelPolicy,
    EpsilonGreedy,
    PixelQNetwork,
    Policy,
    RandomPolicy,
    SmallCNNConfig,
    load_driving_zoo,
)
from policies.dqn import save_q_network
from wfm_sim.sources import make_driving_env


@pytest.fixture(scope="module")
def real_frames() -> np.ndarray:
    """A few frames of the real simulator, (4, 64, 64, 3) uint8."""
    env = make_driving_env()
    frame, _ = env.reset(seed=0)
    frames = [frame]
    for action in (3, 0, 4):
        frame, *_ = env.step(action)
        frames.append(frame)
    env.close()
    return np.stack(frames)


def _random_network(seed: int, config: SmallCNNConfig | None = None) -> PixelQNetwork:
    torch.manual_seed(seed)
    return PixelQNetwork(config or SmallCNNConfig())


def test_zoo_loads_with_unique_names() -> None:
    zoo = load_driving_zoo()
    names = [policy.name for policy in zoo]
    assert len(zoo) >= 8
    assert len(set(names)) == len(names)
    assert all(isinstance(policy, Policy) for policy in zoo)
    assert {"heuristic", "always_faster", "random"} <= set(names)
    assert names == [policy.name for policy in load_driving_zoo()], "order must be fixed"


def test_trained_zoo_files_record_their_provenance() -> None:
    trained = [policy for policy in load_driving_zoo() if isinstance(policy, DQNPixelPolicy)]
    assert len(trained) >= 2
    for policy in trained:
        for key in ("budget_steps", "command", "mean_return", "train_config", "architecture"):
            assert key in policy.metadata, f"{policy.name}.json lacks {key!r}"


def test_every_policy_acts_on_real_and_black_frames(real_frames: np.ndarray) -> None:
    black = np.zeros((64, 64, 3), np.uint8)
    for policy in load_driving_zoo():
        rng = np.random.default_rng(0)
        for frame in [*real_frames, black]:
            action = policy.act(frame, rng)
            assert type(action) is int, f"{policy.name} returned {type(action).__name__}"
            assert 0 <= action < 5, f"{policy.name} returned action {action}"


def test_epsilon_one_is_uniform() -> None:
    policy = EpsilonGreedy(ConstantPolicy(1, "idle"), 1.0, "all_random")
    rng = np.random.default_rng(0)
    frame = np.zeros((64, 64, 3), np.uint8)
    counts = np.bincount([policy.act(frame, rng) for _ in range(5000)], minlength=5)
    assert counts.sum() == 5000
    assert np.all(np.abs(counts - 1000) < 120), counts


def test_epsilon_zero_equals_inner(real_frames: np.ndarray) -> None:
    inner = DQNPixelPolicy(_random_network(0), "net")
    wrapped = EpsilonGreedy(inner, 0.0, "net_eps0")
    rng = np.random.default_rng(0)
    frames = np.random.default_rng(1).integers(0, 256, (20, 64, 64, 3), dtype=np.uint8)
    for frame in [*real_frames, *frames]:
        assert wrapped.act(frame, rng) == inner.act(frame, rng)


def test_epsilon_and_constant_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedy(RandomPolicy(), 1.5, "bad")
    with pytest.raises(ValueError, match="outside Discrete"):
        ConstantPolicy(7, "bad")


def test_dqn_safetensors_round_trip(tmp_path: Path, real_frames: np.ndarray) -> None:
    config = SmallCNNConfig()
    network = _random_network(3, config)
    save_q_network(
        network.state_dict(), config, tmp_path / "p.safetensors", tmp_path / "p.json", {"x": 1}
    )
    original = DQNPixelPolicy(network, "original")
    loaded = DQNPixelPolicy.load(tmp_path / "p.safetensors")
    frames = np.concatenate(
        [real_frames, np.random.default_rng(2).integers(0, 256, (16, 64, 64, 3), np.uint8)]
    )
    np.testing.assert_array_equal(loaded.q_values(frames), original.q_values(frames))
    rng = np.random.default_rng(0)
    assert [loaded.act(f, rng) for f in frames] == [original.act(f, rng) for f in frames]
    assert loaded.name == "p" and loaded.metadata["x"] == 1


def test_matches_sb3_q_network_and_preprocessing(real_frames: np.ndarray) -> None:
    """SB3's q_net state dict loads unchanged, and the Q-values agree (uint8/255, HWC->CHW)."""
    from stable_baselines3 import DQN

    from policies import SmallCNN

    config = SmallCNNConfig()
    model = DQN(
        "CnnPolicy",
        make_driving_env(),
        buffer_size=10,
        policy_kwargs={
            "features_extractor_class": SmallCNN,
            "features_extractor_kwargs": {"config": config},
            "net_arch": [],
        },
        device="cpu",
        seed=0,
    )
    network = PixelQNetwork(config)
    network.load_state_dict(model.policy.q_net.state_dict(), strict=True)
    policy = DQNPixelPolicy(network, "copy")
    with torch.no_grad():
        sb3_q = model.policy.q_net(model.policy.obs_to_tensor(real_frames)[0]).numpy()
    np.testing.assert_allclose(policy.q_values(real_frames), sb3_q, rtol=1e-5, atol=1e-6)
    sb3_actions, _ = model.predict(real_frames, deterministic=True)
    rng = np.random.default_rng(0)
    assert [policy.act(f, rng) for f in real_frames] == sb3_actions.tolist()


def test_other_architecture_is_refused(tmp_path: Path) -> None:
    config = SmallCNNConfig()
    save_q_network(
        _random_network(0).state_dict(), config, tmp_path / "p.safetensors", tmp_path / "p.json"
    )
    metadata = json.loads((tmp_path / "p.json").read_text())
    metadata["architecture"] = {"type": "NatureCNN", "features_dim": 512}
    (tmp_path / "p.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="'NatureCNN' is not 'SmallCNN'"):
        DQNPixelPolicy.load(tmp_path / "p.safetensors")


def test_weights_of_another_shape_are_refused(tmp_path: Path) -> None:
    small = SmallCNNConfig(features_dim=64)
    save_q_network(
        _random_network(0, small).state_dict(),
        SmallCNNConfig(),
        tmp_path / "p.safetensors",
        tmp_path / "p.json",
    )
    with pytest.raises(ValueError, match="does not fit"):
        DQNPixelPolicy.load(tmp_path / "p.safetensors")
    with pytest.raises(FileNotFoundError, match="missing"):
        DQNPixelPolicy.load(tmp_path / "absent.safetensors")
