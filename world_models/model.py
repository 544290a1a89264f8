"""The world model as users load it: tokenizer + dynamics + reward/termination heads.

A checkpoint is a folder holding ``model.safetensors`` (weights only: loading runs no code),
``config.json`` (the ``WorldModelConfig``), and optionally ``starts.safetensors`` (real start
frames from held-out footage) and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from wfm_sim.io import atomic_path, write_json_atomic
from world_models.config import WorldModelConfig
from world_models.dynamics import LatentDynamics
from world_models.heads import RewardEndHead
from world_models.tokenizer import FrameTokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STARTS_FILE = "starts.safetensors"
FORMAT_VERSION = 1


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the config it is being loaded with."""


@dataclass
class ImaginedStep:
    """One imagined transition for a batch: latent (B, C, h, w), reward (B,), end prob (B,)."""

    latent: torch.Tensor
    reward: torch.Tensor
    end_probability: torch.Tensor


class WorldModel(nn.Module):
    """An action-conditioned world model over the latents of a causal frame tokenizer."""

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = FrameTokenizer(config)
        self.dynamics = LatentDynamics(config)
        self.heads = RewardEndHead(config)

    def imagine(self, latents: torch.Tensor, actions: torch.Tensor) -> ImaginedStep:
        """Advance a batch one step.

        latents: (B, K, C, h, w) the last K latents; actions: (B, K) the actions taken from
        them, the last being the action to imagine now.
        """
        next_latent = self.dynamics(latents, actions)
        reward, end_logit = self.heads(latents, actions, next_latent)
        return ImaginedStep(next_latent, reward, torch.sigmoid(end_logit))

    def save(
        self, folder: str | Path, extra_tensors: dict[str, torch.Tensor] | None = None
    ) -> None:
        """Write weights and config into ``folder`` atomically (and start frames if given)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata={"format_version": str(FORMAT_VERSION)})
        write_json_atomic(
            folder / CONFIG_FILE,
            {"format_version": FORMAT_VERSION, "world_model": self.config.to_dict()},
        )
        if extra_tensors:
            with atomic_path(folder / STARTS_FILE) as tmp:
                save_file({k: v.contiguous() for k, v in extra_tensors.items()}, str(tmp))

    @classmethod
    def load(
        cls,
        folder: str | Path,
        device: str | torch.device = "cpu",
        expected_config: WorldModelConfig | None = None,
    ) -> WorldModel:
        """Load a checkpoint folder; refuse one of another config with a clear error."""
        folder = Path(folder)
        config = read_config(folder)
        if expected_config is not None and config != expected_config:
            diff = {
                k: (v, expected_config.to_dict()[k])
                for k, v in config.to_dict().items()
                if expected_config.to_dict()[k] != v
            }
            raise CheckpointMismatchError(
                f"checkpoint {folder} was trained with another config: (saved, expected) {diff}"
            )
        model = cls(config)
        state = load_file(str(folder / WEIGHTS_FILE))
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
        if missing or unexpected or wrong:
            raise CheckpointMismatchError(
                f"checkpoint {folder} does not match its config.json: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}, wrong shapes {wrong[:3]}"
            )
        model.load_state_dict(state)
        return model.to(device).eval()


def read_config(folder: str | Path) -> WorldModelConfig:
    """The ``WorldModelConfig`` of a checkpoint folder."""
    path = Path(folder) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {folder} a world-model checkpoint folder?")
    payload: dict[str, Any] = json.loads(path.read_text())
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointMismatchError(
            f"{path} has format_version {payload.get('format_version')}, "
            f"this code reads {FORMAT_VERSION}"
        )
    return WorldModelConfig.from_dict(payload["world_model"])


def load_start_contexts(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Real start contexts stored beside a checkpoint: frames (N, K, H, W, 3) uint8 and the
    actions between them (N, K-1) int64."""
    path = Path(folder) / STARTS_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: the checkpoint has no start contexts; pass start frames explicitly"
        )
    tensors = load_file(str(path))
    return tensors["frames"], tensors["actions"]
