"""Trained world models as users load them: networks, checkpoint format and a small zoo.

``world_models.load("driving")`` loads the committed driving model; any checkpoint folder
path works too.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wfm_sim.io import file_sha256
from world_models.action_model import ActionModel, ActionModelConfig, is_action_model
from world_models.config import WorldModelConfig
from world_models.model import (
    WEIGHTS_FILE,
    CheckpointMismatchError,
    ImaginedStep,
    WorldModel,
    load_start_contexts,
    read_config,
)

ZOO_DIR = Path(__file__).parent / "zoo"


def checkpoint_path(name_or_path: str | Path) -> Path:
    """Resolve a zoo name (``"driving"``) or a checkpoint folder path to a folder."""
    candidate = ZOO_DIR / str(name_or_path)
    if (candidate / "config.json").exists():
        return candidate
    path = Path(name_or_path)
    if path.is_dir():
        return path
    zoo = sorted(p.name for p in ZOO_DIR.iterdir() if (p / "config.json").exists())
    raise FileNotFoundError(f"no world model named or at {name_or_path!r}; the zoo has {zoo}")


def weights_sha256(name_or_path: str | Path) -> str:
    """Hex SHA-256 of a checkpoint's weights file (zoo name or folder): which version of a
    model a result was measured with."""
    return file_sha256(checkpoint_path(name_or_path) / WEIGHTS_FILE)


EnvModel = WorldModel | ActionModel
"""A model a world-model env steps: the MaskGIT world model or a post-trained WFM backend."""


def load(name_or_path: str | Path, device: str | torch.device = "cpu") -> EnvModel:
    """Load a world model from the zoo by name or from a checkpoint folder: a MaskGIT
    ``WorldModel``, or an ``ActionModel`` (a post-trained diffusion or autoregressive WFM)."""
    folder = checkpoint_path(name_or_path)
    if is_action_model(folder):
        return ActionModel.load(folder, device=device)
    return WorldModel.load(folder, device=device)


def set_drawing(
    model: EnvModel, decode_rounds: int | None = None, salient_priority: float | None = None
) -> EnvModel:
    """``model`` drawing each frame in ``decode_rounds`` MaskGIT rounds and with
    ``salient_priority`` (``WorldModelConfig``) instead of its checkpoint's (None keeps
    them): drawing options, the weights stay. More rounds cost time and keep more of an
    uncertain car; salient priority keeps car draws before the road's. A post-trained WFM
    backend, which draws no MaskGIT rounds, is refused."""
    if decode_rounds is None and salient_priority is None:
        return model
    if decode_rounds is not None and decode_rounds < 1:
        raise ValueError(f"decode_rounds must be >= 1 or None, got {decode_rounds}")
    if not isinstance(model, WorldModel):
        raise ValueError(
            "decode_rounds and salient_priority apply to MaskGIT world models, not a "
            f"{model.config.backend} backend"
        )
    changes: dict[str, Any] = {}
    if decode_rounds is not None:
        changes["decode_rounds"] = decode_rounds
    if salient_priority is not None:
        changes["salient_priority"] = salient_priority
    drawing = dataclasses.replace(model.config, **changes)
    model.require_salience(drawing.salient_priority)
    model.config = drawing
    return model


def load_world_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
    """Load a MaskGIT ``WorldModel`` (zoo name or folder), for code that reads its frame
    tokenizer or networks; a post-trained WFM backend folder is refused with a clear error."""
    folder = checkpoint_path(name_or_path)
    if is_action_model(folder):
        raise CheckpointMismatchError(
            f"{folder} holds a post-trained WFM backend (an ActionModel); this needs a MaskGIT "
            "world model such as 'driving'"
        )
    return WorldModel.load(folder, device=device)


def token_uniforms(model: EnvModel, rngs: list[np.random.Generator | None]) -> torch.Tensor | None:
    """The uniforms (B, *model.draw_shape) a model draws member i's next frame with, taken
    from ``rngs[i]`` (zeros for a member given None: one that does not step); None for a
    model that draws nothing (a continuous MaskGIT-free world model). The world-model envs
    and everything that imagines as they do draw through this one function."""
    shape = model.draw_shape
    if shape is None:
        return None
    draws = [rng.random(shape) if rng is not None else np.zeros(shape) for rng in rngs]
    return torch.from_numpy(np.stack(draws)).float()


def held_out_episode_ids(name_or_path: str | Path) -> set[int]:
    """The ids of the footage episodes a trained checkpoint held out (its ``training.json``):
    the footage every model measured against it must be measured on."""
    report = json.loads((checkpoint_path(name_or_path) / "training.json").read_text())
    return set(report["held_out_episode_ids"])


__all__ = [
    "ActionModel",
    "ActionModelConfig",
    "EnvModel",
    "CheckpointMismatchError",
    "ImaginedStep",
    "WorldModel",
    "WorldModelConfig",
    "checkpoint_path",
    "held_out_episode_ids",
    "load",
    "load_world_model",
    "load_start_contexts",
    "read_config",
    "token_uniforms",
]
