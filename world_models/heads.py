"""Reward and termination heads: what the simulator would pay and whether the episode ends."""

from __future__ import annotations

import torch
from torch import nn

from world_models.config import WorldModelConfig
from world_models.dynamics import ContextEncoder, ResBlock


class RewardEndHead(nn.Module):
    """From the context, its actions and the predicted next latent: (reward, end logit).

    The reward is the simulator's per-step reward for the last action; the end logit says
    whether that action ends the episode (a crash).
    """

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        w = config.head_width
        self.context = ContextEncoder(config, w, extra_latents=1)
        self.trunk = nn.Sequential(
            ResBlock(w),
            nn.Conv2d(w, w, 3, 2, 1),
            ResBlock(w),
            nn.GroupNorm(8, w),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out = nn.Linear(w, 2)

    def forward(
        self, latents: torch.Tensor, actions: torch.Tensor, next_latent: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """latents (B, K, C, h, w), actions (B, K), next_latent (B, C, h, w) -> (B,), (B,)."""
        x = self.context(torch.cat([latents, next_latent[:, None]], dim=1), actions)
        reward, end_logit = self.out(self.trunk(x)).unbind(-1)
        return reward, end_logit
