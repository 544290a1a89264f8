"""The batched imagination core behind the world-model envs (DIAMOND's WorldModelEnv shape).

It holds rolling buffers of the last K latents and actions for B imagined trajectories,
advances all of them with one batched forward pass, and restarts chosen members in place
from real start frames.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import world_models
from wfm_sim.data import PAD_ACTION
from wfm_sim.devices import resolve_device
from world_models import (
    ActionModel,
    ActionModelConfig,
    CheckpointMismatchError,
    EnvModel,
    WorldModelConfig,
    load_start_contexts,
)
from world_models.action_model import is_action_model
from world_models.model import ImaginedStep, WorldModel, check_end_reading


def action_space_of(
    config: WorldModelConfig | ActionModelConfig,
) -> gym.spaces.Discrete | gym.spaces.Box:
    """The action space a world model was trained on: ``Discrete(n_actions)``, or the box
    [action_low, action_high] of ``action_dim`` floats."""
    if config.continuous_actions:
        low = np.asarray(config.action_low, dtype=np.float32)
        high = np.asarray(config.action_high, dtype=np.float32)
        return gym.spaces.Box(low, high, dtype=np.float32)
    return gym.spaces.Discrete(config.n_actions)


def _describe_actions(n_actions: int | None, action_dim: int | None) -> str:
    if action_dim is not None:
        return f"{action_dim}-d vector actions"
    return f"{n_actions} discrete actions"


ENV_BACKENDS = ("maskgit", "diffusion", "autoregressive")
"""What a world-model env can run on: the committed MaskGIT world model (the default, the best
measured: BENCHMARKS.md), or a pre-trained diffusion or autoregressive WFM post-trained on
actions (``make post-train``)."""

POST_TRAIN_DIR = Path("runs/post_train")


def backend_checkpoint(checkpoint: str, backend: str) -> Path:
    """The checkpoint folder an env of ``backend`` loads: ``checkpoint`` itself (a zoo name or
    folder) for ``"maskgit"``; for the others, the post-trained WFM of the checkpoint's task,
    ``runs/post_train/<checkpoint>_<backend>/checkpoint``, or ``checkpoint`` when it is already
    such a folder."""
    if backend not in ENV_BACKENDS:
        raise ValueError(f"backend must be one of {ENV_BACKENDS}, got {backend!r}")
    if backend == "maskgit" or is_action_model(checkpoint):
        return world_models.checkpoint_path(checkpoint)
    folder = POST_TRAIN_DIR / f"{checkpoint}_{backend}" / "checkpoint"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(
            f"no post-trained {backend} backend for {checkpoint!r} at {folder}: make it with "
            f"`make post-train` (tokenizers, pre-training and post-training, about 1 h on 2 "
            f"cores), or pass checkpoint=FOLDER"
        )
    return folder


def load_env_model(
    checkpoint: str,
    frame_size: int,
    device: str,
    n_actions: int | None = None,
    action_dim: int | None = None,
    backend: str = "maskgit",
    decode_rounds: int | None = None,
    salient_priority: float | None = None,
) -> tuple[EnvModel, torch.Tensor, torch.Tensor]:
    """The world model of ``checkpoint`` (a zoo name or folder) on ``backend``
    (``backend_checkpoint``), drawing in ``decode_rounds`` rounds and with ``salient_priority``
    when given (``world_models.set_drawing``), and its real start contexts (frames (N, K, H, W, 3) uint8,
    actions (N, K-1) or (N, K-1, A)); refused with ``CheckpointMismatchError`` when the model
    is not of that backend, or its frame size, or the action count (``n_actions``) or action
    vector size (``action_dim``) the env asks for, is not the checkpoint's."""
    folder = backend_checkpoint(checkpoint, backend)
    model = world_models.load(folder, device=resolve_device(device))
    has_backend = model.config.backend if isinstance(model, ActionModel) else "maskgit"
    if has_backend != backend:
        raise CheckpointMismatchError(
            f"checkpoint {folder} is a {has_backend} world model, not the {backend} backend "
            "asked for"
        )
    config = model.config
    has = (None, config.action_dim) if config.continuous_actions else (config.n_actions, None)
    wanted = (n_actions, action_dim)
    if config.frame_size != frame_size or any(
        w is not None and w != h for w, h in zip(wanted, has, strict=True)
    ):
        raise CheckpointMismatchError(
            f"checkpoint {folder} has {_describe_actions(*has)} and {config.frame_size}px "
            f"frames; this env needs {_describe_actions(*wanted)} and {frame_size}px frames"
        )
    start_frames, start_actions = load_start_contexts(folder)
    model = world_models.set_drawing(model, decode_rounds, salient_priority)
    return model, start_frames, start_actions


def padding_action_tensor(
    config: WorldModelConfig | ActionModelConfig, shape: tuple[int, ...], device: torch.device | str
) -> torch.Tensor:
    """Padding actions of batch shape ``shape``: PAD_ACTION (int64) for discrete actions, NaN
    vectors (shape + (A,), float32) for continuous ones."""
    if config.continuous_actions:
        return torch.full((*shape, config.action_dim), float("nan"), device=device)
    return torch.full(shape, PAD_ACTION, dtype=torch.long, device=device)


class WorldModelCore:
    """B imagined trajectories of one world model, stepped together under ``no_grad``.

    ``temperature`` sharpens (< 1) or flattens (> 1) a discrete model's token distributions;
    0 takes the most likely tokens. ``end_reading`` is what the termination head reads
    (``WorldModel.imagine``): the drawn next frame, or a discrete model's expected one.
    """

    def __init__(
        self,
        model: EnvModel,
        batch_size: int,
        temperature: float = 1.0,
        end_reading: str = "drawn",
    ) -> None:
        config = model.config
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        check_end_reading(end_reading, isinstance(model, WorldModel) and model.config.discrete)
        self.model = model.eval()
        self.temperature = temperature
        self.end_reading = end_reading
        self.device = next(model.parameters()).device
        self.batch_size = batch_size
        shape = (batch_size, config.context, *model.latent_shape)
        self.latents = torch.zeros(shape, device=self.device)
        self.actions = padding_action_tensor(config, (batch_size, config.context), self.device)

    @torch.no_grad()
    def reset(
        self,
        start_frames: torch.Tensor,
        start_actions: torch.Tensor,
        members: torch.Tensor | None = None,
    ) -> None:
        """Restart ``members`` (default: all) from real context frames.

        start_frames: (M, n, H, W, 3) uint8, the last n <= K real frames;
        start_actions: (M, n-1) int64 or (M, n-1, A) float, the actions taken between them.
        M is the number of members, or 1 to start them all from one context (encoded once).
        Slots before the first frame repeat it with padding actions, as at an episode's start
        in the training windows.
        """
        members = torch.arange(self.batch_size) if members is None else members
        m, n = start_frames.shape[:2]
        k = self.latents.shape[1]
        if not 1 <= n <= k or tuple(start_actions.shape[:2]) != (m, n - 1):
            raise ValueError(
                f"need 1..{k} start frames and one action fewer; got frames "
                f"{tuple(start_frames.shape)} and actions {tuple(start_actions.shape)}"
            )
        latents = self.model.tokenizer.encode(start_frames.to(self.device))
        padding = latents[:, :1].expand(-1, k - n, -1, -1, -1)
        self.latents[members] = torch.cat([padding, latents], dim=1)
        actions = padding_action_tensor(self.model.config, (m, k), self.device)
        actions[:, k - n : k - 1] = start_actions.to(self.device, actions.dtype)
        self.actions[members] = actions

    @torch.no_grad()
    def advance(self, actions: torch.Tensor, uniforms: torch.Tensor | None = None) -> ImaginedStep:
        """Apply actions ((B,) int64 or (B, A) float) and roll the buffers; the imagined step,
        frames not decoded (for callers that need only the heads, such as a planner scoring
        many sequences). ``uniforms`` (B, *model.draw_shape) draw the next frames
        (``world_models.token_uniforms``); without them the model takes its most likely ones."""
        self.actions[:, -1] = actions.to(self.device, self.actions.dtype)
        imagined = self.model.imagine(
            self.latents,
            self.actions,
            None if uniforms is None else uniforms.to(self.device),
            self.temperature,
            self.end_reading,
        )
        self.latents = torch.cat([self.latents[:, 1:], imagined.latent[:, None]], dim=1)
        placeholder = padding_action_tensor(self.model.config, (self.batch_size, 1), self.device)
        self.actions = torch.cat([self.actions[:, 1:], placeholder], dim=1)
        return imagined

    @torch.no_grad()
    def step(
        self, actions: torch.Tensor, uniforms: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Apply actions ((B,) int64 or (B, A) float) -> (frames (B, H, W, 3) uint8,
        rewards (B,), end_probs (B,)); ``uniforms`` as in ``advance``."""
        imagined = self.advance(actions, uniforms)
        frames = self.model.tokenizer.decode(imagined.latent)
        return frames, imagined.reward, imagined.end_probability
