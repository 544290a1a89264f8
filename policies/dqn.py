"""A small CNN Q-network on raw frames, and the greedy policy that loads it from safetensors.

Training uses stable-baselines3's DQN with ``SmallCNN`` as its features extractor; the zoo
stores only the online Q-network's tensors (safetensors) and a JSON config, so loading a
policy never unpickles anything. ``PixelQNetwork`` rebuilds SB3's ``QNetwork`` layout
(``features_extractor.*``, ``q_net.*``) so SB3's state dict loads into it unchanged, and it
normalises inputs as SB3 does: uint8 / 255, HWC -> CHW.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from policies.base import NUM_ACTIONS
from wfm_sim.io import atomic_path, write_json_atomic

ARCHITECTURE = "SmallCNN"
"""The only architecture name ``DQNPixelPolicy`` builds; configs naming another are refused."""


@dataclass
class SmallCNNConfig:
    """Shape of ``SmallCNN`` and of the Q head on top of it.

    Defaults: 3 conv layers (64 -> 30 -> 13 -> 6 px), a 256-unit linear layer and a linear
    Q head, ~318k parameters (~1.3 MB in float32).
    """

    channels: tuple[int, ...] = (16, 32, 32)
    kernels: tuple[int, ...] = (5, 5, 3)
    strides: tuple[int, ...] = (2, 2, 2)
    features_dim: int = 256
    net_arch: tuple[int, ...] = ()
    frame_size: int = 64
    num_actions: int = NUM_ACTIONS

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.kernels = tuple(int(k) for k in self.kernels)
        self.strides = tuple(int(s) for s in self.strides)
        self.net_arch = tuple(int(n) for n in self.net_arch)
        if not len(self.channels) == len(self.kernels) == len(self.strides):
            raise ValueError(
                f"channels {self.channels}, kernels {self.kernels} and strides {self.strides} "
                "must have one entry per conv layer"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, tagged with the architecture name."""
        return {
            "type": ARCHITECTURE,
            **{k: _listify(v) for k, v in dataclasses.asdict(self).items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SmallCNNConfig:
        """Inverse of ``to_dict``; refuses another architecture or unknown fields."""
        kind = data.get("type")
        if kind != ARCHITECTURE:
            raise ValueError(
                f"architecture {kind!r} is not {ARCHITECTURE!r}; DQNPixelPolicy only builds "
                f"{ARCHITECTURE} Q-networks"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"type"})
        if unknown:
            raise ValueError(f"unknown {ARCHITECTURE} fields {unknown}; known: {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k != "type"})


def _listify(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class SmallCNN(BaseFeaturesExtractor):
    """Conv stack + one linear layer: ``(B, 3, H, W)`` float in [0, 1] -> ``(B, features_dim)``.

    An SB3 features extractor (SB3 transposes and scales image observations before calling it).
    """

    def __init__(
        self, observation_space: gym.spaces.Box, config: SmallCNNConfig | None = None
    ) -> None:
        config = config or SmallCNNConfig()
        super().__init__(observation_space, config.features_dim)
        in_channels = int(observation_space.shape[0])
        layers: list[nn.Module] = []
        for out_channels, kernel, stride in zip(
            config.channels, config.kernels, config.strides, strict=True
        ):
            layers += [nn.Conv2d(in_channels, out_channels, kernel, stride), nn.ReLU()]
            in_channels = out_channels
        layers.append(nn.Flatten())
        self.cnn = nn.Sequential(*layers)
        with torch.no_grad():
            sample = torch.zeros(1, *observation_space.shape)
            flat = int(self.cnn(sample).shape[1])
        self.linear = nn.Sequential(nn.Linear(flat, config.features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


def linear_head(features_dim: int, net_arch: tuple[int, ...], num_actions: int) -> nn.Sequential:
    """SB3's ``create_mlp`` layout: Linear/ReLU pairs, then a Linear to the outputs."""
    layers: list[nn.Module] = []
    width = features_dim
    for hidden in net_arch:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, num_actions))
    return nn.Sequential(*layers)


class PixelQNetwork(nn.Module):
    """Q-values from frames: ``(B, H, W, 3) uint8`` -> ``(B, num_actions)`` float.

    Same parameter names as SB3's ``QNetwork`` built with ``SmallCNN``.
    """

    def __init__(self, config: SmallCNNConfig) -> None:
        super().__init__()
        self.config = config
        size = config.frame_size
        chw_space = gym.spaces.Box(0, 255, (3, size, size), np.uint8)
        self.features_extractor = SmallCNN(chw_space, config)
        self.q_net = linear_head(config.features_dim, config.net_arch, config.num_actions)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float() / 255.0
        return self.q_net(self.features_extractor(x))


def save_q_network(
    state_dict: dict[str, torch.Tensor],
    config: SmallCNNConfig,
    weights_path: str | Path,
    config_path: str | Path,
    extra: dict[str, Any] | None = None,
    tensor_metadata: dict[str, str] | None = None,
) -> None:
    """Write a ``SmallCNN`` network's tensors (safetensors) and its JSON config, atomically.

    ``state_dict`` is SB3's ``model.policy.q_net.state_dict()``, a ``PixelQNetwork``'s or
    any other network built on ``SmallCNN`` (such as the robot's behaviour-cloned one);
    ``extra`` (budget, command, training config, measured return) is stored beside the
    architecture in the JSON, ``tensor_metadata`` beside the architecture name in the
    safetensors header.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    header = {"architecture": ARCHITECTURE, **(tensor_metadata or {})}
    with atomic_path(weights_path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    write_json_atomic(config_path, {**(extra or {}), "architecture": config.to_dict()})


NetworkT = TypeVar("NetworkT", bound=nn.Module)


def load_small_cnn_network(
    weights_path: str | Path,
    config_path: str | Path | None,
    build: Callable[[SmallCNNConfig], NetworkT],
    described_as: str,
    missing_hint: str = "",
) -> tuple[NetworkT, dict[str, Any]]:
    """Rebuild a network saved by ``save_q_network``: (network, the JSON's contents).

    ``build`` makes the network from the JSON's architecture; ``config_path`` defaults to
    ``weights_path`` with a ``.json`` suffix. Raises ``FileNotFoundError`` for a missing file
    (with ``missing_hint`` appended) and ``ValueError`` when the JSON names another
    architecture or the tensors do not fit the ``described_as`` network.
    """
    weights_path = Path(weights_path)
    config_path = Path(config_path) if config_path else weights_path.with_suffix(".json")
    for path in (weights_path, config_path):
        if not path.is_file():
            raise FileNotFoundError(f"policy file {path} is missing{missing_hint}")
    metadata = json.loads(config_path.read_text())
    if "architecture" not in metadata:
        raise ValueError(f"{config_path} has no 'architecture' entry")
    try:
        config = SmallCNNConfig.from_dict(metadata["architecture"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"{config_path}: {error}") from error
    network = build(config)
    try:
        network.load_state_dict(load_file(str(weights_path)), strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{weights_path} does not fit the {described_as} described in {config_path}: {error}"
        ) from error
    return network, metadata


class DQNPixelPolicy:
    """Greedy (argmax-Q) driving policy on one ``(64, 64, 3) uint8`` frame."""

    def __init__(
        self, network: PixelQNetwork, name: str, metadata: dict[str, Any] | None = None
    ) -> None:
        self.network = network.eval()
        self.name = name
        self.metadata = metadata or {}

    @classmethod
    def load(
        cls,
        weights_path: str | Path,
        config_path: str | Path | None = None,
        name: str | None = None,
    ) -> DQNPixelPolicy:
        """Build from ``<name>.safetensors`` and its ``<name>.json`` (same stem by default);
        errors as ``load_small_cnn_network``'s."""
        network, metadata = load_small_cnn_network(
            weights_path, config_path, PixelQNetwork, ARCHITECTURE
        )
        return cls(network, name or Path(weights_path).stem, metadata)

    @torch.inference_mode()
    def q_values(self, observations: np.ndarray) -> np.ndarray:
        """Q-values of a batch of frames: ``(B, H, W, 3) uint8`` -> ``(B, num_actions)``."""
        expected = (self.network.config.frame_size,) * 2 + (3,)
        if observations.ndim != 4 or observations.shape[1:] != expected:
            raise ValueError(f"expected frames of shape (B, {expected}), got {observations.shape}")
        return self.network(torch.from_numpy(np.ascontiguousarray(observations))).numpy()

    def act(self, observation: np.ndarray, rng: np.random.Generator) -> int:
        """Argmax-Q action; ``rng`` is unused (greedy and deterministic)."""
        return int(np.argmax(self.q_values(observation[None])[0]))


__all__ = [
    "ARCHITECTURE",
    "DQNPixelPolicy",
    "PixelQNetwork",
    "SmallCNN",
    "SmallCNNConfig",
    "linear_head",
    "load_small_cnn_network",
    "save_q_network",
]
