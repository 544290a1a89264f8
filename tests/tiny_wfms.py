"""Tiny random pre-trained WFMs for post-training tests: width-8 tokenizers (64x64 frames ->
8 x 8 latents, continuous 4-channel or FSQ (4, 3) = 12 ids) and 32-wide two-block backbones
over clips of 5 latent frames, every weight perturbed so copies are not of zeros."""

from __future__ import annotations

from pathlib import Path

import torch

from wfm_sim.tokenizer import VideoTokenizer, VideoTokenizerConfig, save_tokenizer
from world_models.autoregressive import AutoregressiveConfig, AutoregressiveWorldModel
from world_models.diffusion import DiffusionConfig, DiffusionWorldModel

CONTINUOUS = VideoTokenizerConfig(frame_size=64, latent_channels=4, width=8)
DISCRETE = VideoTokenizerConfig(frame_size=64, kind="discrete", fsq_levels=(4, 3), width=8)


def tiny_backbone(backend: str, frame_cond_dim: int = 0) -> DiffusionConfig | AutoregressiveConfig:
    """The config of a tiny diffusion (over ``CONTINUOUS`` latents) or autoregressive (over
    ``DISCRETE`` ids) backbone, taking ``frame_cond_dim`` conditioning features a frame."""
    size = VideoTokenizer(CONTINUOUS).config.latent_size
    if backend == "diffusion":
        return DiffusionConfig(
            latent_channels=CONTINUOUS.channels,
            latent_size=size,
            frames=5,
            patch=2,
            width=32,
            depth=2,
            heads=2,
            frame_cond_dim=frame_cond_dim,
        )
    return AutoregressiveConfig(
        vocab_size=12,
        latent_size=size,
        frames=5,
        width=32,
        depth=2,
        heads=2,
        frame_cond_dim=frame_cond_dim,
    )


def save_tiny_pretrained(root: Path) -> dict[str, tuple[Path, Path]]:
    """backend -> (pre-trained checkpoint folder, tokenizer folder) under ``root``."""
    out = {}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for backend, tokenizer_config in (("diffusion", CONTINUOUS), ("autoregressive", DISCRETE)):
            tokenizer = save_tokenizer(
                VideoTokenizer(tokenizer_config).eval(), root / f"tokenizer_{backend}"
            )
            config = tiny_backbone(backend)
            backbone: DiffusionWorldModel | AutoregressiveWorldModel
            if isinstance(config, DiffusionConfig):
                backbone = DiffusionWorldModel(config)
                backbone.set_latent_statistics(0.1 * torch.randn(CONTINUOUS.channels), 0.7)
            else:
                backbone = AutoregressiveWorldModel(config)
            with torch.no_grad():
                for parameter in backbone.parameters():
                    parameter.add_(0.05 * torch.randn_like(parameter))
            out[backend] = (backbone.save(root / backend, tokenizer_config), tokenizer)
    return out
