"""Policy features from the world model: its frame tokenizer as an SB3 features extractor.

Policy initialisation from the world model without any reward: the tokenizer was trained on the
recorded footage to keep what matters in a frame (cars and lane marks are weighted up in its
loss), so a policy that reads its latents starts from features that already see the traffic.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

import world_models


class WorldModelEncoder(BaseFeaturesExtractor):
    """``(B, 3, H, W)`` float in [0, 1] (SB3's scaled image) -> ``(B, features_dim)``.

    The world model's tokenizer encoder codes the frame into its latent ``(C, H/4, W/4)``; a small
    trainable conv head turns that into features. ``frozen`` keeps the encoder's weights fixed
    (its latents stay those the world model was trained on); otherwise they are fine-tuned.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        checkpoint: str = "driving",
        features_dim: int = 256,
        frozen: bool = True,
    ) -> None:
        super().__init__(observation_space, features_dim)
        model = world_models.load_world_model(checkpoint)
        if tuple(observation_space.shape) != (3, model.config.frame_size, model.config.frame_size):
            raise ValueError(
                f"observations {tuple(observation_space.shape)} do not match world model "
                f"{checkpoint!r}, which codes (3, {model.config.frame_size}, "
                f"{model.config.frame_size}) frames"
            )
        self.tokenizer = model.tokenizer
        self.frozen = frozen
        self.tokenizer.requires_grad_(not frozen)
        channels = model.config.latent_channels
        self.head = nn.Sequential(
            nn.Conv2d(channels, 32, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            size = model.config.frame_size
            flat = int(self.head(self._latents(torch.zeros(1, 3, size, size))).shape[1])
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def _latents(self, observations: torch.Tensor) -> torch.Tensor:
        # The tokenizer takes [-1, 1] pixels; SB3 hands over [0, 1].
        pixels = observations * 2.0 - 1.0
        if self.frozen:
            self.tokenizer.eval()
            with torch.no_grad():
                return self.tokenizer.encoder_features(pixels)
        return self.tokenizer.encoder_features(pixels)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.head(self._latents(observations)))
