"""The causal video tokenizer: uint8 videos <-> continuous (CV) or FSQ-discrete (DV) latents.

Frames are first cut into 4x4 patches (space-to-depth, the job Cosmos gives a Haar wavelet),
then coded by factorised spatial/temporal conv stages that halve space or time; the decoder
mirrors them. With causal temporal convs the code of a frame depends only on earlier frames,
and frame 0 is coded on its own, so images and videos share one tokenizer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wfm_sim.tokenizer.config import VideoTokenizerConfig
from wfm_sim.tokenizer.fsq import FSQ
from wfm_sim.tokenizer.layers import (
    ResBlock,
    SpatialDown,
    SpatialUp,
    StreamState,
    TemporalDown,
    TemporalUp,
)

PATCH = 4
"""Side of the pixel patches folded into channels before the first conv."""


def _levels(config: VideoTokenizerConfig) -> tuple[int, list[int]]:
    """Number of spatial levels and how many temporal halvings happen at each."""
    n_levels = (config.spatial_compression // PATCH).bit_length()
    halvings = config.temporal_compression.bit_length() - 1
    per_level = [0] * n_levels
    for i in range(halvings):
        per_level[min(i, n_levels - 1)] += 1
    return n_levels, per_level


class VideoTokenizer(nn.Module):
    """Encoder/decoder between videos (B, T, H, W, 3) uint8 and latents (B, t, C, h, w).

    t = 1 + ceil((T - 1) / tc) and h = w = frame_size / sc; a length that is not 1 + k*tc is
    padded by repeating the last frame, and the decode trimmed back to ``num_frames``. DV
    latents are FSQ values in [-1, 1] (``encode_indices`` gives their token ids); CV latents
    are bounded to [-1, 1] by a tanh so a diffusion model sees a fixed scale.
    """

    def __init__(self, config: VideoTokenizerConfig) -> None:
        super().__init__()
        self.config = config
        c, causal = 2 * config.width, config.causal
        n_levels, temporal = _levels(config)
        self.encoder_in = nn.Conv2d(3 * PATCH * PATCH, c, 3, padding=1)
        encoder: list[nn.Module] = []
        for level in range(n_levels):
            encoder.append(ResBlock(c, causal, f"enc{level}.res"))
            encoder += [
                TemporalDown(c, causal, f"enc{level}.down{i}") for i in range(temporal[level])
            ]
            if level < n_levels - 1:
                encoder.append(SpatialDown(c))
        encoder.append(ResBlock(c, causal, "enc.mid"))
        self.encoder = nn.ModuleList(encoder)
        self.encoder_out = nn.Sequential(
            nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, config.channels, 1)
        )
        self.fsq = FSQ(config.fsq_levels) if config.kind == "discrete" else None

        self.decoder_in = nn.Conv2d(config.channels, c, 3, padding=1)
        decoder: list[nn.Module] = [ResBlock(c, causal, "dec.mid")]
        for level in reversed(range(n_levels)):
            decoder += [TemporalUp(c, causal, f"dec{level}.up{i}") for i in range(temporal[level])]
            decoder.append(ResBlock(c, causal, f"dec{level}.res"))
            if level > 0:
                decoder.append(SpatialUp(c))
        self.decoder = nn.ModuleList(decoder)
        self.decoder_out = nn.Sequential(
            nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 3 * PATCH * PATCH, 3, padding=1)
        )

    # ---- float-level passes (training, streaming) -------------------------------------------

    def encode_pixels(
        self, pixels: torch.Tensor, state: StreamState | None = None, quantize: bool = True
    ) -> torch.Tensor:
        """pixels (B, T, 3, H, W) float in [-1, 1], T = 1 + k*tc -> latents (B, 1 + k, C, h, w).

        With ``state`` (a dict, empty for a video's first chunk) the causal convs carry their
        pending inputs over, so the chunks of a video may have any length; each call returns the
        latents its frames complete (possibly none). ``quantize=False`` gives a DV tokenizer's
        latents before FSQ (features for a policy to read).
        """
        b, t = pixels.shape[:2]
        x = F.pixel_unshuffle(pixels.reshape(b * t, *pixels.shape[2:]), PATCH)
        x = self.encoder_in(x)
        h = x.reshape(b, t, *x.shape[1:])
        for layer in self.encoder:
            h = layer(h, state)
            if h.shape[1] == 0:
                break
        c, s = self.config.channels, self.config.latent_size
        if h.shape[1] == 0:
            return h.new_zeros(b, 0, c, s, s)
        z = self.encoder_out(h.reshape(-1, *h.shape[2:])).float()
        if self.fsq is None:
            z = torch.tanh(z)
        elif quantize:
            z = self.fsq(z)
        return z.reshape(b, -1, c, s, s)

    def decode_latents(
        self, latents: torch.Tensor, state: StreamState | None = None
    ) -> torch.Tensor:
        """latents (B, 1 + k, C, h, w) -> pixels (B, 1 + k*tc, 3, H, W) float in about [-1, 1].

        With ``state`` (empty for a video's first chunk) later chunks continue the same video:
        a chunk of n latents gives n*tc frames (1 + (n-1)*tc for the first).
        """
        b, t = latents.shape[:2]
        x = self.decoder_in(latents.reshape(b * t, *latents.shape[2:]))
        h = x.reshape(b, t, *x.shape[1:])
        for layer in self.decoder:
            h = layer(h, state)
        n = h.shape[1]
        y = self.decoder_out(h.reshape(b * n, *h.shape[2:]))
        y = F.pixel_shuffle(y, PATCH)
        return y.reshape(b, n, *y.shape[1:])

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, 1 + k*tc, 3, H, W) in [-1, 1] -> (reconstruction like pixels, latents)."""
        latents = self.encode_pixels(pixels)
        return self.decode_latents(latents), latents

    # ---- uint8 API -----------------------------------------------------------------------------

    def check_video(self, video: torch.Tensor) -> None:
        """Raise ValueError unless ``video`` is a (B, T, H, W, 3) uint8 tensor of this size."""
        size = self.config.frame_size
        expected = f"(B, T, {size}, {size}, 3) uint8"
        if not isinstance(video, torch.Tensor):
            raise ValueError(f"video must be a torch tensor {expected}, got {type(video).__name__}")
        if video.dtype != torch.uint8:
            raise ValueError(f"video must be {expected}, got dtype {video.dtype}")
        if video.ndim != 5 or video.shape[-1] != 3:
            raise ValueError(
                f"video must be {expected} (batch, frames, height, width, RGB), got shape "
                f"{tuple(video.shape)}"
            )
        if video.shape[2:4] != (size, size):
            raise ValueError(
                f"video frames must be {size}x{size} for {self.config.name}, got "
                f"{video.shape[2]}x{video.shape[3]}; resize with wfm_sim.frames.resize_frames"
            )
        if video.shape[0] < 1 or video.shape[1] < 1:
            raise ValueError(
                f"video must hold at least one clip and one frame, got {tuple(video.shape)}"
            )

    def check_latents(self, latents: torch.Tensor) -> None:
        """Raise ValueError unless ``latents`` is a (B, t, C, h, w) float tensor of this config."""
        c, s = self.config.channels, self.config.latent_size
        expected = f"(B, t, {c}, {s}, {s}) float"
        if not isinstance(latents, torch.Tensor) or not latents.is_floating_point():
            kind = latents.dtype if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise ValueError(f"latents must be a {expected} tensor, got {kind}")
        if latents.ndim != 5 or tuple(latents.shape[2:]) != (c, s, s) or latents.shape[1] < 1:
            raise ValueError(
                f"latents of {self.config.name} must be {expected}, got {tuple(latents.shape)}"
            )

    def video_to_pixels(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, T, H, W, 3) uint8 -> (B, T', 3, H, W) float in [-1, 1], T' = 1 + k*tc >= T
        (the last frame repeated to fill the final latent's group)."""
        self.check_video(video)
        device = next(self.parameters()).device
        pixels = video.to(device).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
        padded = (
            1 + (self.config.latent_frames(video.shape[1]) - 1) * self.config.temporal_compression
        )
        if padded > pixels.shape[1]:
            tail = pixels[:, -1:].expand(-1, padded - pixels.shape[1], -1, -1, -1)
            pixels = torch.cat([pixels, tail], dim=1)
        return pixels

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, T, H, W, 3) uint8 -> latents (B, 1 + ceil((T-1)/tc), C, h, w) float32."""
        return self.encode_pixels(self.video_to_pixels(video))

    def decode_float(self, latents: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """latents (B, t, C, h, w) -> (B, T, 3, H, W) float in about [-1, 1] (for losses).

        T = ``num_frames`` (default 1 + (t-1)*tc, the most t latents can hold).
        """
        self.check_latents(latents)
        full = 1 + (latents.shape[1] - 1) * self.config.temporal_compression
        num_frames = full if num_frames is None else num_frames
        if not self.config.latent_frames(num_frames) == latents.shape[1]:
            raise ValueError(
                f"{latents.shape[1]} latent frames decode to {full - self.config.temporal_compression + 1}"
                f"..{full} frames, not num_frames={num_frames}"
            )
        device = next(self.parameters()).device
        return self.decode_latents(latents.to(device).float())[:, :num_frames]

    def decode(self, latents: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """latents (B, t, C, h, w) -> video (B, T, H, W, 3) uint8 (T as in ``decode_float``)."""
        return to_uint8(self.decode_float(latents, num_frames))

    def _require_discrete(self) -> FSQ:
        if self.fsq is None:
            raise ValueError(
                f"{self.config.name} is continuous: token indices exist only for discrete (dv) "
                "tokenizers; use encode/decode"
            )
        return self.fsq

    def encode_indices(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, T, H, W, 3) uint8 -> tokens (B, t, h, w) int64 in [0, prod(fsq_levels))."""
        fsq = self._require_discrete()
        latents = self.encode(video)
        return fsq.to_indices(latents.transpose(1, 2)).long()

    def decode_indices(self, indices: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """tokens (B, t, h, w) int64 -> video (B, T, H, W, 3) uint8."""
        fsq = self._require_discrete()
        s = self.config.latent_size
        if indices.ndim != 4 or tuple(indices.shape[2:]) != (s, s):
            raise ValueError(
                f"token indices must be (B, t, {s}, {s}) int64, got {tuple(indices.shape)}"
            )
        device = next(self.parameters()).device
        latents = fsq.from_indices(indices.to(device)).transpose(1, 2)
        return self.decode(latents, num_frames)


def to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """pixels (B, T, 3, H, W) float in [-1, 1] -> video (B, T, H, W, 3) uint8."""
    video = ((pixels.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return video.permute(0, 1, 3, 4, 2).contiguous()
