"""Code videos of any length chunk by chunk, carrying each causal conv's state across chunks.

Memory stays bounded by the chunk, and the result equals coding the whole video at once (to
float tolerance; DV tokens identical), because every causal temporal conv keeps exactly the
inputs its next output needs. Non-causal tokenizers look ahead and cannot stream.
"""

from __future__ import annotations

import torch

from wfm_sim.tokenizer.layers import StreamState
from wfm_sim.tokenizer.network import VideoTokenizer, to_uint8


def _require_causal(tokenizer: VideoTokenizer, chunk: int, what: str) -> None:
    if not tokenizer.config.causal:
        raise ValueError(
            f"{tokenizer.config.name} is non-causal: its codes look at later frames, so it cannot "
            "code a video chunk by chunk; encode/decode the whole video instead"
        )
    if chunk < 1:
        raise ValueError(f"{what} must be >= 1, got {chunk}")


@torch.no_grad()
def encode_video(
    tokenizer: VideoTokenizer, frames: torch.Tensor, chunk_frames: int
) -> torch.Tensor:
    """frames (T, H, W, 3) uint8 -> latents (1 + ceil((T-1)/tc), C, h, w) float32.

    Frames go through the encoder ``chunk_frames`` at a time (any chunk size: latents are
    emitted as their frames complete).
    """
    _require_causal(tokenizer, chunk_frames, "chunk_frames")
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames must be one video (T, H, W, 3) uint8, got {shape}")
    pixels = tokenizer.video_to_pixels(frames[None])
    state: StreamState = {}
    latents = [
        tokenizer.encode_pixels(pixels[:, start : start + chunk_frames], state)
        for start in range(0, pixels.shape[1], chunk_frames)
    ]
    return torch.cat(latents, dim=1)[0]


@torch.no_grad()
def decode_video(
    tokenizer: VideoTokenizer, latents: torch.Tensor, num_frames: int, chunk_latents: int
) -> torch.Tensor:
    """latents (t, C, h, w) -> frames (num_frames, H, W, 3) uint8, ``chunk_latents`` at a time."""
    _require_causal(tokenizer, chunk_latents, "chunk_latents")
    if not isinstance(latents, torch.Tensor) or latents.ndim != 4:
        shape = (
            tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        )
        raise ValueError(f"latents must be one video's (t, C, h, w) float latents, got {shape}")
    tokenizer.check_latents(latents[None])
    if tokenizer.config.latent_frames(num_frames) != latents.shape[0]:
        raise ValueError(
            f"{latents.shape[0]} latent frames cannot decode to num_frames={num_frames}; "
            f"that needs {tokenizer.config.latent_frames(num_frames)}"
        )
    device = next(tokenizer.parameters()).device
    z = latents[None].to(device).float()
    state: StreamState = {}
    pixels = [
        tokenizer.decode_latents(z[:, start : start + chunk_latents], state)
        for start in range(0, z.shape[1], chunk_latents)
    ]
    return to_uint8(torch.cat(pixels, dim=1)[:, :num_frames])[0]
