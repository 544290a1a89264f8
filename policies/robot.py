"""The robot policy zoo for MuJoCo Pusher: policies acting on one ``(64, 64, 3) uint8`` frame.

A robot policy maps a frame to a 7-d joint-torque vector in Pusher's ``Box(-2, 2, (7,))``.
Acting on pixels alone lets the same policy drive the real simulator
(``wfm_sim.sources.pusher.make_robot_env()``) and the world-model env ``WFM-Robot-v0``.

The zoo spans good to bad pushers so a world model can be judged by how well it ranks them:
behaviour-cloned CNNs (``BCPixelPolicy``, trained on the scripted expert's footage at two
budgets), the best of them with Gaussian torque noise, uniform random torques, a still arm and
a constant torque. Trained weights live in ``policies/zoo/robot/<name>.safetensors`` +
``<name>.json`` (produced by ``python -m experiments.train_robot_policies``; the JSON holds the
training config, data size and measured real return).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from policies.base import Policy
from policies.dqn import (
    SmallCNN,
    SmallCNNConfig,
    linear_head,
    load_small_cnn_network,
    save_q_network,
)
from wfm_sim.data.footage import Episode

ACTION_DIM = 7
"""Pusher's action: torques on the arm's 7 joints."""

MAX_TORQUE = 2.0
"""Pusher's action bound: every torque lies in ``[-MAX_TORQUE, MAX_TORQUE]``."""

ROBOT_ZOO_DIR = Path(__file__).resolve().parent / "zoo" / "robot"
"""Where the trained robot policies' safetensors + JSON files are committed."""

EXPERT_BEHAVIOURS: tuple[str, ...] = ("expert_noise_0",)
"""Behaviour names cloned by default: the noiseless scripted expert only."""

TRAIN_COMMAND = "python -m experiments.train_robot_policies"
"""The command that writes the trained members of the robot zoo."""


@runtime_checkable
class RobotPolicy(Policy[np.ndarray], Protocol):
    """A ``Policy`` whose action is a ``(7,) float32`` torque vector in Pusher's box."""


def bc_network_config(**overrides: Any) -> SmallCNNConfig:
    """``SmallCNN`` sized for behaviour cloning: 128 features, 7 outputs (~170k parameters,
    ~0.7 MB in float32); ``overrides`` replace any field."""
    fields: dict[str, Any] = {"features_dim": 128, "num_actions": ACTION_DIM, **overrides}
    return SmallCNNConfig(**fields)


class BCPixelNetwork(nn.Module):
    """Torques from frames: ``(B, H, W, 3) uint8`` -> ``(B, num_actions)`` float in [-2, 2].

    ``SmallCNN`` features, a linear head (with ``config.net_arch`` hidden layers) and
    ``MAX_TORQUE * tanh``, so every output is a valid Pusher action.
    """

    def __init__(self, config: SmallCNNConfig) -> None:
        super().__init__()
        self.config = config
        size = config.frame_size
        chw_space = gym.spaces.Box(0, 255, (3, size, size), np.uint8)
        self.features_extractor = SmallCNN(chw_space, config)
        self.head = linear_head(config.features_dim, config.net_arch, config.num_actions)

    def forward_chw(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, num_actions)`` torques."""
        return MAX_TORQUE * torch.tanh(self.head(self.features_extractor(images)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.forward_chw(_to_chw(frames))


def _to_chw(frames: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 3) uint8`` -> ``(B, 3, H, W)`` float in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float() / 255.0


class BCPixelPolicy:
    """A behaviour-cloned Pusher policy on one ``(64, 64, 3) uint8`` frame (deterministic)."""

    def __init__(
        self, network: BCPixelNetwork, name: str, metadata: dict[str, Any] | None = None
    ) -> None:
        self.network = network.eval()
        self.name = name
        self.metadata = metadata or {}

    @torch.inference_mode()
    def actions(self, observations: np.ndarray) -> np.ndarray:
        """Torques for a batch of frames: ``(B, H, W, 3) uint8`` -> ``(B, 7) float32``."""
        expected = (self.network.config.frame_size,) * 2 + (3,)
        if observations.ndim != 4 or observations.shape[1:] != expected:
            raise ValueError(f"expected frames of shape (B, {expected}), got {observations.shape}")
        if observations.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames, got {observations.dtype}")
        frames = torch.from_numpy(np.ascontiguousarray(observations))
        return self.network(frames).numpy().astype(np.float32)

    def act(self, observation: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The network's torques, ``(7,) float32``; ``rng`` is unused."""
        return self.actions(observation[None])[0]

    def save(
        self, weights_path: str | Path, config_path: str | Path | None = None, **extra: Any
    ) -> None:
        """Write the tensors (safetensors) and a JSON config, each atomically.

        The JSON holds ``self.metadata``, ``extra`` (e.g. the measured return) and the
        architecture; ``config_path`` defaults to ``weights_path`` with a ``.json`` suffix.
        """
        weights_path = Path(weights_path)
        config_path = Path(config_path) if config_path else weights_path.with_suffix(".json")
        self.metadata = {**self.metadata, **extra, "name": self.name}
        save_q_network(
            self.network.state_dict(),
            self.network.config,
            weights_path,
            config_path,
            extra=self.metadata,
            tensor_metadata={"head": "tanh"},
        )

    @classmethod
    def load(
        cls,
        weights_path: str | Path,
        config_path: str | Path | None = None,
        name: str | None = None,
    ) -> BCPixelPolicy:
        """Build from ``<name>.safetensors`` and its ``<name>.json`` (same stem by default).

        Errors as ``load_small_cnn_network``'s; a missing file names ``TRAIN_COMMAND``.
        """
        network, metadata = load_small_cnn_network(
            weights_path,
            config_path,
            BCPixelNetwork,
            "BC network",
            missing_hint=f"; run `{TRAIN_COMMAND}`",
        )
        return cls(network, name or Path(weights_path).stem, metadata)

    def __repr__(self) -> str:
        return f"BCPixelPolicy(name={self.name!r})"


def _check_torques(vector: np.ndarray) -> np.ndarray:
    if vector.shape != (ACTION_DIM,):
        raise ValueError(f"a torque vector has shape ({ACTION_DIM},), got {vector.shape}")
    if np.any(np.abs(vector) > MAX_TORQUE):
        raise ValueError(f"torques {vector.tolist()} leave Pusher's [-2, 2] action box")
    return vector


class GaussianNoise:
    """Wrap ``inner``: add ``N(0, std)`` to every torque (from the caller's ``rng``), clip to
    [-2, 2].

    Degrading a good policy by a known amount gives members of intermediate quality whose
    order is known in advance (noise both spoils the push and costs control reward).
    """

    def __init__(self, inner: RobotPolicy, std: float, name: str) -> None:
        if std < 0:
            raise ValueError(f"noise std must be non-negative, got {std}")
        self.inner = inner
        self.std = float(std)
        self.name = name

    def act(self, observation: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The inner policy's torques plus clipped Gaussian noise, ``(7,) float32``."""
        action = np.asarray(self.inner.act(observation, rng), np.float64)
        noisy = action + rng.normal(0.0, self.std, size=ACTION_DIM)
        return np.clip(noisy, -MAX_TORQUE, MAX_TORQUE).astype(np.float32)

    def __repr__(self) -> str:
        return f"GaussianNoise({self.inner.name!r}, std={self.std}, name={self.name!r})"


class ConstantTorque:
    """The same torques whatever the frame (zeros: a still arm)."""

    def __init__(self, vector: Sequence[float] | np.ndarray, name: str) -> None:
        self.vector = _check_torques(np.asarray(vector, np.float32))
        self.name = name

    def act(self, observation: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A copy of the fixed torque vector, ``(7,) float32``."""
        return self.vector.copy()

    def __repr__(self) -> str:
        return f"ConstantTorque({self.vector.tolist()}, name={self.name!r})"


class RandomTorque:
    """Independent uniform torques in ``scale * [-2, 2]`` each step, drawn from ``rng``."""

    def __init__(self, scale: float, name: str) -> None:
        if not 0.0 <= scale <= 1.0:
            raise ValueError(f"scale must lie in [0, 1] to stay inside [-2, 2], got {scale}")
        self.scale = float(scale)
        self.name = name

    def act(self, observation: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform torques, ``(7,) float32``."""
        bound = self.scale * MAX_TORQUE
        return rng.uniform(-bound, bound, size=ACTION_DIM).astype(np.float32)

    def __repr__(self) -> str:
        return f"RandomTorque(scale={self.scale}, name={self.name!r})"


def _bc_dataset(
    episodes: Sequence[Episode], behaviours: Sequence[str], max_episodes: int | None
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Frames ``(N, H, W, 3) uint8`` and the torques taken on them ``(N, 7) float32``, from the
    episodes whose behaviour is one of ``behaviours`` (exact names), the first
    ``max_episodes`` of them by id; also the ids used."""
    chosen = sorted(
        (e for e in episodes if e.behaviour in set(behaviours)), key=lambda e: e.episode_id
    )
    if max_episodes is not None:
        chosen = chosen[:max_episodes]
    if not chosen:
        found = sorted({e.behaviour for e in episodes})
        raise ValueError(
            f"no episodes with behaviour in {list(behaviours)} to clone; the footage has {found}"
        )
    for episode in chosen:
        if episode.actions.ndim != 2 or episode.actions.shape[1] != ACTION_DIM:
            raise ValueError(
                f"episode {episode.episode_id} has actions of shape {episode.actions.shape}; "
                f"behaviour cloning needs (T, {ACTION_DIM}) torques (robot footage)"
            )
    frames = np.concatenate([e.frames[: e.length] for e in chosen])
    actions = np.concatenate([e.actions for e in chosen]).astype(np.float32)
    return frames, actions, [e.episode_id for e in chosen]


def _random_shift(frames: torch.Tensor, pad: int, rng: np.random.Generator) -> torch.Tensor:
    """Shift each frame of ``(B, H, W, 3)`` by up to ``pad`` pixels each way, replicating the
    edge (DrQ's augmentation); clamped indices stand in for the padding."""
    if pad == 0:
        return frames
    batch, height, width = frames.shape[:3]
    offsets = torch.from_numpy(rng.integers(-pad, pad + 1, size=(batch, 2)))
    rows = (offsets[:, 0, None] + torch.arange(height)).clamp(0, height - 1)
    cols = (offsets[:, 1, None] + torch.arange(width)).clamp(0, width - 1)
    return frames[torch.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]


def train_bc_policy(
    episodes: Sequence[Episode],
    steps: int,
    seed: int,
    *,
    name: str = "bc",
    behaviours: Sequence[str] = EXPERT_BEHAVIOURS,
    max_episodes: int | None = None,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    shift: int = 2,
    config: SmallCNNConfig | None = None,
    progress: bool = True,
) -> BCPixelPolicy:
    """Behaviour cloning: fit a ``BCPixelNetwork`` to the torques of ``behaviours`` episodes.

    Minimises the mean squared error between the network's torques on a frame and the
    torques the behaviour took on it, with Adam (cosine-decayed learning rate) on batches
    drawn with replacement, for ``steps`` gradient steps. ``shift`` > 0 shifts each training
    frame by up to that many pixels (DrQ's augmentation). Everything random (initial
    weights, batches, shifts) flows from ``seed``, so one seed gives the same weights on
    one thread. The returned policy's ``metadata`` records the training config, data size
    and final loss.
    """
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    config = config or bc_network_config()
    frames, actions, episode_ids = _bc_dataset(episodes, behaviours, max_episodes)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = BCPixelNetwork(config)
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(steps, 1))
    frames_t = torch.from_numpy(frames)
    actions_t = torch.from_numpy(actions)
    losses: list[float] = []
    started = time.perf_counter()
    network.train()
    bar = tqdm(range(steps), desc=f"BC {name}", unit="step", disable=not progress)
    for step in bar:
        index = torch.from_numpy(rng.integers(0, len(frames), size=batch_size))
        images = _to_chw(_random_shift(frames_t[index], shift, rng))
        loss = F.mse_loss(network.forward_chw(images), actions_t[index])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    bar.close()
    metadata = {
        "algorithm": "behaviour cloning (MSE)",
        "train_steps": steps,
        "train_seed": seed,
        "behaviours": list(behaviours),
        "max_episodes": max_episodes,
        "data_episodes": len(episode_ids),
        "data_frames": len(frames),
        "episode_ids": episode_ids,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "shift": shift,
        "final_loss": float(np.mean(losses[-100:])) if losses else None,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    return BCPixelPolicy(network, name, metadata)


def _trained_policies(zoo_dir: Path) -> list[BCPixelPolicy]:
    """Every ``bc_*`` policy in ``zoo_dir``, most training steps first (then by name)."""
    configs = sorted(zoo_dir.glob("bc_*.json"))
    if not configs:
        raise FileNotFoundError(
            f"no trained robot policies (bc_*.json) in {zoo_dir}; run `{TRAIN_COMMAND}` "
            "(it needs robot footage in data/footage/robot: "
            "`python -m experiments.record --config-name record_robot`)"
        )
    policies = [BCPixelPolicy.load(path.with_suffix(".safetensors"), path) for path in configs]
    return sorted(policies, key=lambda p: (-int(p.metadata.get("train_steps", 0)), p.name))


def load_robot_zoo(zoo_dir: str | Path = ROBOT_ZOO_DIR) -> list[RobotPolicy]:
    """The robot zoo in a fixed order with unique names.

    Order: the longest-trained BC policy, it with torque noise std 0.7 and 1.0, the
    shorter-trained BC policies, uniform random torques at full and 0.3 scale, a still arm,
    and a constant torque of -1 on the two shoulder joints (it swings the arm away from the
    table). The members were chosen so their real returns are spread out (see
    ``zoo/robot/zoo_returns.json``): about -48 (bc_best), -54 (still), -63 (random_0.3),
    -78 (bc_short), -95 (noise 0.7), -106 (constant), -121 (noise 1.0), -147 (random).
    """
    best, *shorter = _trained_policies(Path(zoo_dir))
    zoo: list[RobotPolicy] = [
        best,
        GaussianNoise(best, 0.7, f"{best.name}_noise0.7"),
        GaussianNoise(best, 1.0, f"{best.name}_noise1.0"),
        *shorter,
        RandomTorque(1.0, "random"),
        RandomTorque(0.3, "random_0.3"),
        ConstantTorque(np.zeros(ACTION_DIM), "still"),
        ConstantTorque([-1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0], "constant_torque"),
    ]
    names = [policy.name for policy in zoo]
    if len(set(names)) != len(names):
        raise ValueError(f"robot zoo names are not unique: {names}")
    return zoo


__all__ = [
    "ACTION_DIM",
    "EXPERT_BEHAVIOURS",
    "MAX_TORQUE",
    "ROBOT_ZOO_DIR",
    "BCPixelNetwork",
    "BCPixelPolicy",
    "ConstantTorque",
    "GaussianNoise",
    "RandomTorque",
    "RobotPolicy",
    "bc_network_config",
    "load_robot_zoo",
    "train_bc_policy",
]
