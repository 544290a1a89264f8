"""Per-frame tokenizers of the world models: each frame is coded on its own, so code t never
sees frame t+1, and an imagined latent decodes without its past.

``FrameCoder`` is the tokenizer family's causal video tokenizer (``wfm_sim.tokenizer``) used
on single frames, each coded as a clip's first frame (an image): the MaskGIT world model
takes it when its config names a family ``tokenizer``, and so do the post-trained WFMs.
``FrameTokenizer`` is the conv autoencoder that checkpoints without one (both committed zoo
models) were trained with: continuous (latents in [-1, 1] through a tanh) or discrete through the
family's finite scalar quantizer.
"""

from __future__ import annotations

import torch
from torch import nn

from wfm_sim.tokenizer.fsq import FSQ
from wfm_sim.tokenizer.network import VideoTokenizer
from world_models.config import WorldModelConfig


def _conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GroupNorm(8, c_out), nn.SiLU())


class FrameTokenizer(nn.Module):
    """Frame autoencoder: (…, H, W, 3) uint8 <-> (…, C, H/4, W/4) latents in [-1, 1], which
    are FSQ tokens' values when the config names ``fsq_levels``."""

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        w, c = config.tokenizer_width, config.latent_channels
        self.quantizer = FSQ(tuple(config.fsq_levels)) if config.discrete else None
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1),
            nn.SiLU(),
            _conv_block(w, 2 * w, stride=2),
            _conv_block(2 * w, 2 * w),
            nn.Conv2d(2 * w, c, 1),
            nn.Identity() if config.discrete else nn.Tanh(),
        )
        self.decoder = nn.Sequential(
            _conv_block(c, 2 * w),
            _conv_block(2 * w, 2 * w),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
            nn.SiLU(),
            _conv_block(w, w),
            nn.ConvTranspose2d(w, 16, 4, 2, 1),
            nn.SiLU(),
            nn.Conv2d(16, 3, 3, 1, 1),
        )

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (…, H, W, 3) uint8 -> latents (…, C, H/4, W/4) float."""
        if frames.dtype != torch.uint8 or frames.shape[-1] != 3:
            raise ValueError(
                f"frames must be (..., H, W, 3) uint8, got {tuple(frames.shape)} {frames.dtype}"
            )
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        z = self.encoder(x)
        if self.quantizer is not None:
            z = self.quantizer(z)
        return z.reshape(*lead, *z.shape[1:])

    def encoder_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, 3, H, W) float in [-1, 1] -> latents (B, C, h, w) before quantization,
        differentiable: features for a policy to read."""
        return self.encoder(pixels)

    def to_indices(self, latents: torch.Tensor) -> torch.Tensor:
        """Quantized latents (…, C, h, w) -> token indices (…, h, w) int64 (discrete only)."""
        quantizer = self._require_quantizer()
        lead = latents.shape[:-3]
        indices = quantizer.to_indices(latents.reshape(-1, *latents.shape[-3:]))
        return indices.reshape(*lead, *indices.shape[1:])

    def from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Token indices (…, h, w) -> quantized latents (…, C, h, w) float (discrete only)."""
        quantizer = self._require_quantizer()
        lead = indices.shape[:-2]
        latents = quantizer.from_indices(indices.reshape(-1, *indices.shape[-2:]))
        return latents.reshape(*lead, *latents.shape[1:])

    def _require_quantizer(self) -> FSQ:
        if self.quantizer is None:
            raise ValueError("this tokenizer is continuous (no fsq_levels): it has no tokens")
        return self.quantizer

    def decode_float(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (…, C, h, w) -> frames (…, 3, H, W) float in about [-1, 1] (for losses)."""
        lead = latents.shape[:-3]
        x = self.decoder(latents.reshape(-1, *latents.shape[-3:]))
        return x.reshape(*lead, *x.shape[1:])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (…, C, h, w) -> frames (…, H, W, 3) uint8."""
        x = self.decode_float(latents)
        pixels = ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return pixels.movedim(-3, -1)


class FrameCoder(nn.Module):
    """A causal video tokenizer of the family coding each frame on its own (as a clip's first
    frame, an image): frames (..., H, W, 3) uint8 <-> latents (..., C, h, w)."""

    def __init__(self, tokenizer: VideoTokenizer) -> None:
        super().__init__()
        self.video = tokenizer

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (..., H, W, 3) uint8 -> latents (..., C, h, w) float32."""
        lead = frames.shape[:-3]
        flat = frames.reshape(-1, 1, *frames.shape[-3:])
        latents = self.video.encode(flat)[:, 0]
        return latents.reshape(*lead, *latents.shape[1:])

    def encoder_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, 3, H, W) float in [-1, 1] -> latents (B, C, h, w) before quantization,
        differentiable: features for a policy to read."""
        return self.video.encode_pixels(pixels[:, None], quantize=False)[:, 0]

    def decode_float(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (..., C, h, w) -> frames (..., 3, H, W) float in about [-1, 1] (for losses)."""
        lead = latents.shape[:-3]
        flat = latents.reshape(-1, 1, *latents.shape[-3:]).float()
        pixels = self.video.decode_float(flat, 1)[:, 0]
        return pixels.reshape(*lead, *pixels.shape[1:])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (..., C, h, w) -> frames (..., H, W, 3) uint8."""
        lead = latents.shape[:-3]
        flat = latents.reshape(-1, 1, *latents.shape[-3:]).float()
        frames = self.video.decode(flat, 1)[:, 0]
        return frames.reshape(*lead, *frames.shape[1:])

    def to_indices(self, latents: torch.Tensor) -> torch.Tensor:
        """FSQ latents (..., C, h, w) -> token ids (..., h, w) int64 (discrete tokenizers)."""
        fsq = self._require_fsq()
        lead = latents.shape[:-3]
        indices = fsq.to_indices(latents.reshape(-1, *latents.shape[-3:]))
        return indices.long().reshape(*lead, *indices.shape[1:])

    def from_indices(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (..., h, w) -> FSQ latents (..., C, h, w)."""
        fsq = self._require_fsq()
        lead = tokens.shape[:-2]
        latents = fsq.from_indices(tokens.reshape(-1, *tokens.shape[-2:]))
        return latents.reshape(*lead, *latents.shape[1:])

    def _require_fsq(self) -> FSQ:
        if self.video.fsq is None:
            raise ValueError(f"{self.video.config.name} is continuous: it has no token ids")
        return self.video.fsq


PerFrameTokenizer = FrameTokenizer | FrameCoder
"""Either per-frame tokenizer: both encode, decode, decode_float and (discrete) convert to and
from token ids over any leading dimensions."""
