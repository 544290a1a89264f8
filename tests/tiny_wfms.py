"""Tiny random pre-trained WFMs for post-training tests: width-8 tokenizers (64x64 frames ->
8 x 8 latents, continuous 4-channel or FSQ (4, 3) = 12 ids) and 32-wide two-block backbones
over clips of 5 latent frames, every weight perturbed so copies are not of zeros, and the
short post-training run config over them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from wfm_sim.tokenizer import VideoTokenizer, VideoTokenizerConfig, save_tokenizer
from wfm_sim.training.post_training import PostTrainConfig
from world_models.autoregressive import AutoregressiveConfig, AutoregressiveWorldModel
from world_models.diffusion import DiffusionConfig, DiffusionWorldModel

CONTINUOUS = VideoTokenizerConfig(frame_size=64, latent_channels=4, width=8)
DISCRETE = VideoTokenizerConfig(frame_size=64, kind="discrete", fsq_levels=(4, 3), width=8)
PER_FRAME = VideoTokenizerConfig(
    kind="discrete", temporal_compression=1, spatial_compression=4, fsq_levels=(5, 3, 3), width=8
)
"""A discrete 1x4x4 tokenizer a world model can code frames with: 64x64 -> 16x16 FSQ (5, 3, 3)
tokens, the latent shape of the tiny world models (``tiny_model_config``)."""


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


def tiny_post_train_config(
    backend: str,
    pretrained: dict[str, tuple[Path, Path]],
    footage: Path,
    run_dir: Path,
    **overrides: Any,
) -> PostTrainConfig:
    """A 30-step fp32 post-training run of ``save_tiny_pretrained``'s ``backend`` model on
    ``footage`` (a third held out), with ``overrides``."""
    checkpoint, tokenizer = pretrained[backend]
    config = PostTrainConfig(
        backend=backend,
        pretrained=str(checkpoint),
        tokenizer_dir=str(tokenizer),
        footage_dir=str(footage),
        split_from="",
        held_out_fraction=0.34,
        run_dir=str(run_dir),
        steps=30,
        batch=8,
        lr=3e-3,
        checkpoint_every=10,
        bf16=False,  # fp32: a resumed run repeats the uninterrupted one's arithmetic
        sampler={"steps": 2} if backend == "diffusion" else {},
    )
    return dataclasses.replace(config, **overrides)
