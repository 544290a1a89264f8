"""Action-conditioned latent dynamics: the next frame's latent from a context of past latents."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from world_models.config import WorldModelConfig


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, width),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, 1, 1),
            nn.GroupNorm(8, width),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class VectorActionEmbedding(nn.Module):
    """Embed float action vectors (…, A): scaled from their box to [-1, 1], then a linear map;
    a NaN row (padding before an episode's start) gets a learned embedding of its own."""

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        low = torch.tensor(config.action_low, dtype=torch.float32)
        high = torch.tensor(config.action_high, dtype=torch.float32)
        self.centre: torch.Tensor
        self.half_range: torch.Tensor
        self.register_buffer("centre", (high + low) / 2, persistent=False)
        self.register_buffer("half_range", (high - low) / 2, persistent=False)
        self.project = nn.Linear(config.action_dim, config.action_embedding)
        self.padding = nn.Parameter(torch.zeros(config.action_embedding))

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        """actions (…, A) float -> (…, E)."""
        is_padding = torch.isnan(actions).any(-1, keepdim=True)
        scaled = (torch.nan_to_num(actions) - self.centre) / self.half_range
        return torch.where(is_padding, self.padding, self.project(scaled))


class ContextEncoder(nn.Module):
    """Stack K latents and their actions' embeddings (and optional extra planes, such as the
    part of the next frame already decided) into one feature map (B, width, h, w)."""

    def __init__(
        self,
        config: WorldModelConfig,
        width: int,
        extra_latents: int = 0,
        extra_planes: int = 0,
    ) -> None:
        super().__init__()
        self.action_embedding: nn.Module = (
            VectorActionEmbedding(config)
            if config.continuous_actions
            else nn.Embedding(config.n_actions + 1, config.action_embedding)
        )
        c_in = (config.context + extra_latents) * config.latent_channels
        c_in += config.context * config.action_embedding + extra_planes
        self.stem = nn.Conv2d(c_in, width, 3, 1, 1)

    def forward(
        self, latents: torch.Tensor, actions: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        """latents (B, K', C, h, w) (K' >= K), actions (B, K) int64 or (B, K, A) float,
        extra (B, extra_planes, h, w) -> (B, width, h, w)."""
        b, _, _, h, w = latents.shape
        planes = self.action_embedding(actions).reshape(b, -1, 1, 1).expand(-1, -1, h, w)
        inputs = [latents.reshape(b, -1, h, w), planes]
        if extra is not None:
            inputs.append(extra)
        return self.stem(torch.cat(inputs, dim=1))


def known_planes(latent: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The decided part of a next frame as input planes (B, C + 1, h, w): its latent values
    where ``known`` (B, h, w) bool is True, zeros elsewhere, and the mask itself."""
    mask = known[:, None].to(latent.dtype)
    return torch.cat([latent * mask, mask], dim=1)


class LatentDynamics(nn.Module):
    """Predicts latent t+1 from latents t-K+1..t and the actions taken from them.

    A small U-Net over the latent grid, with a half-resolution path (and, with
    ``dynamics_levels=3``, a quarter-resolution one) for a wider view. A continuous model
    predicts the change from the last latent; a discrete one the logits of each position's
    next token, given the tokens of that frame already decided (``known``: their latent
    values and a mask plane), so that a frame is drawn in a few rounds, each seeing what the
    previous rounds fixed (MaskGIT's iterative decoding).
    """

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        w = config.dynamics_width
        self.discrete = config.discrete
        known_planes = config.latent_channels + 1 if config.discrete else 0
        self.context = ContextEncoder(config, w, extra_planes=known_planes)
        self.high = nn.Sequential(*[ResBlock(w) for _ in range(config.dynamics_blocks)])
        self.down = nn.Conv2d(w, 2 * w, 3, 2, 1)
        self.low = nn.Sequential(*[ResBlock(2 * w) for _ in range(config.dynamics_blocks)])
        self.lowest: nn.Module | None = None
        if config.dynamics_levels == 3:
            self.lowest = nn.Sequential(
                nn.Conv2d(2 * w, 2 * w, 3, 2, 1),
                *[ResBlock(2 * w) for _ in range(config.dynamics_blocks)],
                nn.ConvTranspose2d(2 * w, 2 * w, 4, 2, 1),
            )
        self.up = nn.ConvTranspose2d(2 * w, w, 4, 2, 1)
        projection = (
            nn.Conv2d(w, config.codebook_size, 1)
            if config.discrete
            else nn.Conv2d(w, config.latent_channels, 3, 1, 1)
        )
        self.out = nn.Sequential(ResBlock(w), nn.GroupNorm(8, w), nn.SiLU(), projection)

    def forward(
        self, latents: torch.Tensor, actions: torch.Tensor, known: torch.Tensor | None = None
    ) -> torch.Tensor:
        """latents (B, K, C, h, w), actions (B, K) -> the next latent (B, C, h, w) in [-1, 1]
        (continuous), or its tokens' logits (B, N, h, w) over the N codes (discrete), given
        ``known`` (B, C + 1, h, w) from ``known_planes`` (default: nothing known yet)."""
        if self.discrete:
            return self.out[-1](self._features(latents, actions, known))
        return (latents[:, -1] + self.out(self._trunk(latents, actions, None))).clamp(-1.0, 1.0)

    def token_features(
        self, latents: torch.Tensor, actions: torch.Tensor, known: torch.Tensor
    ) -> torch.Tensor:
        """A discrete model's per-position features (B, h, w, F), token-last, that
        ``token_logits`` turns into logits: drawing computes logits only where a frame is
        still undecided."""
        return self._features(latents, actions, known).movedim(1, -1)

    def token_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (..., N) over the N codes from ``token_features`` rows (..., F)."""
        projection = self.out[-1]
        assert isinstance(projection, nn.Conv2d)  # the 1x1 token projection
        return F.linear(features, projection.weight.flatten(1), projection.bias)

    def _features(
        self, latents: torch.Tensor, actions: torch.Tensor, known: torch.Tensor | None
    ) -> torch.Tensor:
        if known is None:
            b, _, c, h, w = latents.shape
            known = latents.new_zeros((b, c + 1, h, w))
        return self.out[:-1](self._trunk(latents, actions, known))

    def _trunk(
        self, latents: torch.Tensor, actions: torch.Tensor, known: torch.Tensor | None
    ) -> torch.Tensor:
        x = self.high(self.context(latents, actions, known))
        low = self.down(x)
        if self.lowest is not None:
            low = low + self.lowest(low)
        return x + self.up(self.low(low))
