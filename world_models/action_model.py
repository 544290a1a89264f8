"""A pre-trained WFM post-trained on actions: the diffusion or autoregressive backend of a
world-model env.

The pre-trained models (``world_models.diffusion``, ``world_models.autoregressive``) generate
clips of T latent frames of a video tokenizer. Post-training (``wfm_sim.training.post_training``)
turns one into a next-frame model an env can step: every frame is coded on its own by the
causal tokenizer (as the first frame of a clip, an image), a clip is the last K = T - 1 frames
plus the next one, and each latent frame gets the action taken just before it as
``frame_cond`` (a one-hot, or a scaled vector, with a padding flag for a frame no action led
to). Generating frame K given frames 0..K-1 and the actions is then the pre-trained model's
own Video2World task, with actions added. A reward and termination head (the one the
MaskGIT world model uses) reads the context, the actions and the generated latent.

``ActionModel`` offers what the envs and planners step (``imagine``, ``tokenizer.encode`` /
``decode`` per frame, ``latent_shape``, ``draw_shape``), so ``gym.make("WFM-Driving-v0",
backend="diffusion")`` runs the same env code over it. The env owns the randomness: it passes
uniforms in [0, 1) of ``draw_shape`` — the diffusion backend turns them into the next frame's
initial noise (inverse normal CDF), the autoregressive one draws each token from them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from wfm_sim.io import atomic_path
from wfm_sim.plain_data import require_known_keys
from wfm_sim.tokenizer.config import VideoTokenizerConfig
from wfm_sim.tokenizer.network import VideoTokenizer
from world_models import autoregressive, diffusion
from world_models.checkpoint_folder import (
    CONFIG_FILE,
    load_weights,
    read_checkpoint,
    refuse_other_config,
    write_checkpoint,
)
from world_models.config import WorldModelConfig
from world_models.heads import RewardEndHead
from world_models.model import STARTS_FILE, ImaginedStep, check_end_reading
from world_models.tokenizer import FrameCoder

FORMAT = "wfm_sim.action_model/1"
BACKENDS = ("diffusion", "autoregressive")


@dataclass
class ActionModelConfig:
    """Everything needed to rebuild an action-conditioned WFM: the backend's network config
    (``backbone``, with ``frame_cond_dim`` = ``action_features``), its sampler, the tokenizer
    config, the action space and the head width. The context is the backbone's clip length
    minus one; frames are the tokenizer's."""

    backend: str
    backbone: dict[str, Any]
    tokenizer: dict[str, Any]
    sampler: dict[str, Any] = field(default_factory=dict)
    n_actions: int = 5
    action_dim: int = 0
    action_low: list[float] = field(default_factory=list)
    action_high: list[float] = field(default_factory=list)
    head_width: int = 64

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backbone.get("frame_cond_dim") != self.action_features:
            raise ValueError(
                f"the backbone's frame_cond_dim must be action_features = "
                f"{self.action_features}, got {self.backbone.get('frame_cond_dim')}"
            )
        self.head_config()  # validates the action space

    @property
    def continuous_actions(self) -> bool:
        """Whether actions are float vectors (``action_dim`` > 0) rather than indices."""
        return self.action_dim > 0

    @property
    def action_features(self) -> int:
        """Size of a frame's action vector: a one-hot over the actions, or the scaled action
        vector, plus a padding flag."""
        return (self.action_dim if self.continuous_actions else self.n_actions) + 1

    @property
    def frame_size(self) -> int:
        """Side of the square frames, the tokenizer's."""
        return int(self.tokenizer["frame_size"])

    @property
    def context(self) -> int:
        """Past frames a step sees: the backbone's clip length minus the one it generates."""
        return int(self.backbone["frames"]) - 1

    def tokenizer_config(self) -> VideoTokenizerConfig:
        """The video tokenizer coding the frames."""
        return VideoTokenizerConfig.from_dict(self.tokenizer)

    def head_config(self) -> WorldModelConfig:
        """The reward/termination head's config: the action space, the context and the latent
        channels (the head is size-agnostic, so the world-model frame size is the tokenizer's)."""
        return WorldModelConfig(
            frame_size=self.frame_size,
            latent_channels=self.tokenizer_config().channels,
            context=self.context,
            n_actions=self.n_actions,
            action_dim=self.action_dim,
            action_low=list(self.action_low),
            action_high=list(self.action_high),
            head_width=self.head_width,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form stored in a checkpoint's config.json."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ActionModelConfig:
        """Rebuild from ``to_dict`` output, refusing unknown keys with a clear message."""
        require_known_keys(cls, values, "action-model")
        return cls(**values)


def action_features(actions: torch.Tensor, config: ActionModelConfig) -> torch.Tensor:
    """The per-frame conditioning (B, K+1, action_features) of a clip of K context frames and
    the next one: frame 0 gets the padding flag, frame j the action taken from frame j-1
    (``actions`` (B, K) int64, padding index ``n_actions``, or (B, K, A) float, NaN rows for
    padding), one-hot or scaled to [-1, 1]."""
    b = actions.shape[0]
    if config.continuous_actions:
        low = torch.tensor(config.action_low, device=actions.device)
        high = torch.tensor(config.action_high, device=actions.device)
        padding = torch.isnan(actions).any(-1, keepdim=True)
        scaled = (torch.nan_to_num(actions.float()) - (high + low) / 2) / ((high - low) / 2)
        per_action = torch.cat([scaled * ~padding, padding.float()], dim=-1)
        first = torch.zeros(b, 1, config.action_features, device=actions.device)
        first[..., -1] = 1.0
    else:
        per_action = F.one_hot(actions.long(), config.n_actions + 1).float()
        first = F.one_hot(
            torch.full((b, 1), config.n_actions, device=actions.device), config.n_actions + 1
        ).float()
    return torch.cat([first, per_action], dim=1)


class ActionModel(nn.Module):
    """An action-conditioned diffusion or autoregressive WFM, its per-frame tokenizer and its
    reward/termination head; steps like the MaskGIT ``WorldModel`` (see the module doc)."""

    backbone: diffusion.DiffusionWorldModel | autoregressive.AutoregressiveWorldModel

    def __init__(self, config: ActionModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = FrameCoder(VideoTokenizer(config.tokenizer_config()))
        if config.backend == "diffusion":
            self.backbone = diffusion.DiffusionWorldModel(
                diffusion.DiffusionConfig.from_dict(config.backbone)
            )
        else:
            self.backbone = autoregressive.AutoregressiveWorldModel(
                autoregressive.AutoregressiveConfig.from_dict(config.backbone)
            )
        self.heads = RewardEndHead(config.head_config())

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """One frame's latent (C, h, w)."""
        tok = self.config.tokenizer_config()
        return (tok.channels, tok.latent_size, tok.latent_size)

    @property
    def draw_shape(self) -> tuple[int, ...]:
        """Uniforms one imagined step draws from: the next latent's noise (C, h, w) for
        diffusion, one per token (h * w,) for the autoregressive model."""
        c, h, w = self.latent_shape
        return (c, h, w) if self.config.backend == "diffusion" else (h * w,)

    def imagine(
        self,
        latents: torch.Tensor,
        actions: torch.Tensor,
        uniforms: torch.Tensor | None = None,
        temperature: float = 1.0,
        end_reading: str = "drawn",
    ) -> ImaginedStep:
        """Advance a batch one step, as ``WorldModel.imagine``: latents (B, K, C, h, w) the
        last K latents, actions (B, K) (or (B, K, A)) taken from them, the last being the one
        to imagine now; ``uniforms`` (B, *draw_shape) in [0, 1) draw the next frame (without
        them: zero noise for diffusion, the most likely tokens for the autoregressive
        model); ``temperature`` scales the noise or the logits (0 = deterministic). The
        termination head reads the drawn frame: ``end_reading`` must be ``"drawn"``."""
        check_end_reading(end_reading, discrete=False)
        b = latents.shape[0]
        if uniforms is not None and tuple(uniforms.shape) != (b, *self.draw_shape):
            raise ValueError(
                f"uniforms must be (B, *draw_shape) = {(b, *self.draw_shape)}, got "
                f"{tuple(uniforms.shape)}"
            )
        cond = action_features(actions, self.config)
        if isinstance(self.backbone, diffusion.DiffusionWorldModel):
            next_latent = self._diffuse(latents, cond, uniforms, temperature)
        else:
            next_latent = self._continue(latents, cond, uniforms, temperature)
        reward, end_logit = self.heads(latents, actions, next_latent)
        return ImaginedStep(next_latent, reward, torch.sigmoid(end_logit))

    def _diffuse(
        self,
        latents: torch.Tensor,
        cond: torch.Tensor,
        uniforms: torch.Tensor | None,
        temperature: float,
    ) -> torch.Tensor:
        assert isinstance(self.backbone, diffusion.DiffusionWorldModel)
        b, k = latents.shape[:2]
        noise = torch.zeros(b, k + 1, *self.latent_shape)
        if uniforms is not None and temperature > 0:
            noise[:, k] = temperature * torch.special.ndtri(uniforms.cpu().clamp(1e-6, 1 - 1e-6))
        sampler = diffusion.SamplerConfig(**self.config.sampler)
        clip = diffusion.sample(
            self.backbone, b, sampler, context=latents, frame_cond=cond, noise=noise
        )
        return clip[:, k].to(latents.device)

    def _continue(
        self,
        latents: torch.Tensor,
        cond: torch.Tensor,
        uniforms: torch.Tensor | None,
        temperature: float,
    ) -> torch.Tensor:
        assert isinstance(self.backbone, autoregressive.AutoregressiveWorldModel)
        b, k = latents.shape[:2]
        sampling = autoregressive.SamplingConfig(**self.config.sampler)
        if uniforms is None or temperature == 0:
            sampling = dataclasses.replace(sampling, temperature=0.0)
        else:
            sampling = dataclasses.replace(sampling, temperature=sampling.temperature * temperature)
        tokens = autoregressive.sample(
            self.backbone,
            b,
            sampling,
            context=self.tokenizer.to_indices(latents),
            frame_cond=cond,
            uniforms=uniforms,
        )
        return self.tokenizer.from_indices(tokens[:, k : k + 1].to(latents.device))[:, 0]

    def save(
        self,
        folder: str | Path,
        extra_tensors: dict[str, torch.Tensor] | None = None,
        info: dict[str, Any] | None = None,
    ) -> Path:
        """Write weights and config.json into ``folder`` atomically, and the env's start
        contexts (``extra_tensors``: frames, actions) when given."""
        folder = write_checkpoint(
            folder,
            self,
            FORMAT,
            "action_model",
            self.config.to_dict(),
            self.config.tokenizer_config(),
            info,
        )
        if extra_tensors:
            with atomic_path(folder / STARTS_FILE) as tmp:
                save_file({k: v.contiguous() for k, v in extra_tensors.items()}, str(tmp))
        return folder

    @classmethod
    def load(
        cls,
        folder: str | Path,
        device: str | torch.device = "cpu",
        expected: ActionModelConfig | None = None,
    ) -> ActionModel:
        """Load a checkpoint folder (eval mode); refuse one of another config, or whose
        weights do not fit its config, with ``CheckpointMismatchError``."""
        config = read_action_model_config(folder)
        refuse_other_config(folder, config, expected)
        model = load_weights(folder, cls(config), device)
        assert isinstance(model, ActionModel)
        return model


def read_action_model_config(folder: str | Path) -> ActionModelConfig:
    """The ``ActionModelConfig`` of a checkpoint folder."""
    config, _, _ = read_checkpoint(folder, FORMAT, "action_model", "an action-model")
    return ActionModelConfig.from_dict(config)


def is_action_model(folder: str | Path) -> bool:
    """Whether ``folder`` holds an action-conditioned WFM (rather than a MaskGIT world model)."""
    path = Path(folder) / CONFIG_FILE
    return path.exists() and json.loads(path.read_text()).get("format") == FORMAT


__all__ = [
    "BACKENDS",
    "ActionModel",
    "ActionModelConfig",
    "action_features",
    "is_action_model",
    "read_action_model_config",
]
