"""A latent world model for planning: the driving world model's frozen frame tokenizer
codes the last K frames, a small network turns them into a state vector, and an MLP steps
that state under an action, predicting the reward and whether the step ends the episode.

It imagines no pixels, so a planner scores hundreds of action sequences in a few
milliseconds on a CPU, where the pixel world model (MaskGIT rounds over a token grid each
step) takes seconds a decision. It is trained on the same footage, to predict rewards and
ends several steps ahead from its own imagined states (TD-MPC2's latent model without a
value or a policy). Checkpoint: ``model.safetensors`` + ``config.json`` (no pickle).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from wfm_sim.plain_data import require_known_keys
from world_models import checkpoint_path
from world_models.checkpoint_folder import (
    load_weights,
    read_checkpoint,
    refuse_other_config,
    write_checkpoint,
)
from world_models.config import WorldModelConfig
from world_models.model import WorldModel, build_frame_tokenizer

CHECKPOINT_FORMAT = "latent_world_model/1"
CONFIG_KEY = "latent_world_model"


@dataclass(frozen=True)
class LatentWorldModelConfig:
    """The pixel world model whose tokenizer codes the frames (its config: context, latent
    shape and action count come from it) and the latent network's widths."""

    source: WorldModelConfig
    state_dim: int = 256
    hidden: int = 512
    conv_width: int = 32

    def __post_init__(self) -> None:
        if self.source.continuous_actions:
            raise ValueError(
                "the latent world model plans over discrete actions; a vector-action model "
                "(the robot) keeps the pixel world-model planner"
            )
        if min(self.state_dim, self.hidden, self.conv_width) < 1:
            raise ValueError("state_dim, hidden and conv_width must all be >= 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for config.json."""
        return {**dataclasses.asdict(self), "source": self.source.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LatentWorldModelConfig:
        """Rebuild from ``to_dict`` output; unknown keys are refused by name."""
        require_known_keys(cls, values, "latent world-model")
        return cls(**{**values, "source": WorldModelConfig.from_dict(values["source"])})


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.LayerNorm(hidden),
        nn.SiLU(),
        nn.Linear(hidden, hidden),
        nn.LayerNorm(hidden),
        nn.SiLU(),
        nn.Linear(hidden, outputs),
    )


class LatentWorldModel(nn.Module):
    """Frames → state (``encode_frames``), state + action → next state, reward, end logit
    (``step``). States are layer-normalised vectors, so the consistency target (the encoded
    next frames) and the prediction share one scale."""

    def __init__(self, config: LatentWorldModelConfig) -> None:
        super().__init__()
        self.config = config
        source = config.source
        self.tokenizer = build_frame_tokenizer(source).requires_grad_(False)
        channels, side, w = source.latent_channels, source.latent_size, config.conv_width
        self.encoder = nn.Sequential(
            nn.Conv2d(source.context * channels, w, 3, 1, 1),
            nn.SiLU(),
            nn.Conv2d(w, w, 4, 2, 1),
            nn.SiLU(),
            nn.Conv2d(w, w, 4, 2, 1),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(w * (side // 4) ** 2, config.state_dim),
            nn.LayerNorm(config.state_dim),
        )
        joint = config.state_dim + source.n_actions
        self.dynamics = nn.Sequential(
            _mlp(joint, config.hidden, config.state_dim), nn.LayerNorm(config.state_dim)
        )
        self.reward = _mlp(joint, config.hidden, 1)
        self.end = _mlp(joint, config.hidden, 1)

    @property
    def n_actions(self) -> int:
        """Size of the discrete action space."""
        return self.config.source.n_actions

    @property
    def context(self) -> int:
        """Frames one state is made of."""
        return self.config.source.context

    def encode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """The tokenizer's latents of the last K frames (B, K, C, h, w) -> states (B, D)."""
        expected = (self.context, self.config.source.latent_channels)
        if latents.ndim != 5 or tuple(latents.shape[1:3]) != expected:
            raise ValueError(
                f"latents must be (B, {expected[0]}, {expected[1]}, h, w), "
                f"got {tuple(latents.shape)}"
            )
        return self.encoder(latents.flatten(1, 2))

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """The last K frames (B, K, H, W, 3) uint8 -> states (B, D)."""
        return self.encode_latents(self.tokenizer.encode(frames))

    def step(
        self, states: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """states (B, D), actions (B,) int64 -> (next states (B, D), rewards (B,), end
        logits (B,)): the step's reward and whether it ends the episode (a crash)."""
        if actions.ndim != 1 or actions.dtype != torch.int64:
            raise ValueError(
                f"actions must be (B,) int64, got {tuple(actions.shape)} {actions.dtype}"
            )
        if len(actions) and (int(actions.min()) < 0 or int(actions.max()) >= self.n_actions):
            raise ValueError(
                f"actions must lie in [0, {self.n_actions}), got {actions.min()}..{actions.max()}"
            )
        joint = torch.cat([states, F.one_hot(actions, self.n_actions).to(states.dtype)], dim=-1)
        return self.dynamics(joint), self.reward(joint)[:, 0], self.end(joint)[:, 0]

    @torch.no_grad()
    def imagine(
        self, state: torch.Tensor, sequences: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every action sequence (P, H) from one state (D,) or (1, D) that they share, or from
        one state each (P, D): rewards (P, H) and end probabilities (P, H) of each imagined
        step."""
        if sequences.ndim != 2:
            raise ValueError(f"action sequences must be (P, H), got {tuple(sequences.shape)}")
        d, p = self.config.state_dim, len(sequences)
        if state.numel() == d:
            states = state.reshape(1, d).expand(p, d)
        elif tuple(state.shape) == (p, d):
            states = state
        else:
            raise ValueError(
                f"imagine starts from one state of {d} numbers or one per sequence ({p}, {d}), "
                f"got {tuple(state.shape)}"
            )
        rewards, ends = [], []
        for t in range(sequences.shape[1]):
            states, reward, end_logit = self.step(states, sequences[:, t])
            rewards.append(reward)
            ends.append(torch.sigmoid(end_logit))
        return torch.stack(rewards, dim=1), torch.stack(ends, dim=1)

    def copy_tokenizer_of(self, model: WorldModel) -> None:
        """Take ``model``'s frame tokenizer (it must be of the config this one was built from)."""
        if model.config != self.config.source:
            raise ValueError("the world model's config is not this latent model's source config")
        self.tokenizer.load_state_dict(model.tokenizer.state_dict())

    def save(
        self,
        folder: str | Path,
        info: dict[str, Any] | None = None,
        weights_dtype: torch.dtype = torch.float32,
    ) -> Path:
        """Write weights (as ``weights_dtype``) and config.json into ``folder``, each file
        atomically."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        return write_checkpoint(
            folder,
            self,
            CHECKPOINT_FORMAT,
            CONFIG_KEY,
            self.config.to_dict(),
            info=info,
            weights_dtype=weights_dtype,
        )

    @classmethod
    def load(
        cls,
        folder: str | Path,
        device: str | torch.device = "cpu",
        expected_config: LatentWorldModelConfig | None = None,
    ) -> LatentWorldModel:
        """Load a zoo name (``"driving_latent"``) or a folder written by ``save``; another
        format, or another config than ``expected_config``, raises ``CheckpointMismatchError``."""
        folder = checkpoint_path(folder)
        stored, _, _ = read_checkpoint(
            folder, CHECKPOINT_FORMAT, CONFIG_KEY, "a latent world-model"
        )
        config = LatentWorldModelConfig.from_dict(stored)
        refuse_other_config(folder, config, expected_config)
        model = load_weights(folder, cls(config), device)
        assert isinstance(model, LatentWorldModel)
        return model
