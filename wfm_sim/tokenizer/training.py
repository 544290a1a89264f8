"""Train a causal video tokenizer on curated shard clips: resumable, logged to TensorBoard.

Each step reconstructs a batch of random ``clip_frames``-frame windows (1 + 16 frames fit
tc = 4 and 8) under a salient-weighted L1 + MSE, plus (1 - SSIM) and, after ``adversarial_start``,
a PatchGAN hinge term when their weights are set. The state (weights, AdamW moments, step) is
saved every ``checkpoint_every`` steps and a rerun resumes from it; held-out PSNR/SSIM are
measured in fp32 on whole held-out clips. The finished tokenizer is exported as a checkpoint
folder with a ``training.json`` beside it.

Under ``torchrun`` the same loop runs data-parallel (``wfm_sim.distributed``): each of N
processes trains on its 1/N slice of every global batch of ``batch`` windows, and only rank 0
evaluates and writes files.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from wfm_sim.distributed import Distributed, distributed
from wfm_sim.io import write_json_atomic
from wfm_sim.stage_loop import Stage, run_stage
from wfm_sim.tokenizer.checkpoint import save_tokenizer
from wfm_sim.tokenizer.config import VideoTokenizerConfig
from wfm_sim.tokenizer.data import tokenizer_clips
from wfm_sim.tokenizer.losses import (
    PatchDiscriminator,
    hinge_discriminator_loss,
    hinge_generator_loss,
    ssim_loss,
    symmetric_salient_weights,
    weighted_l1,
    weighted_mse,
)
from wfm_sim.tokenizer.metrics import psnr, ssim
from wfm_sim.tokenizer.network import VideoTokenizer


@dataclass
class TokenizerTrainConfig:
    """Everything a tokenizer training run needs; Hydra fills it from experiments/conf."""

    shards_dir: str = "data/curated/driving/shards"
    run_dir: str = "runs/tokenizer/cv_4x8x8"
    """Training state, TensorBoard logs (``tb/``) and the exported ``checkpoint/`` go here."""
    held_out_fraction: float = 0.1
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    """Torch threads. 1 is robust: 2 threads on 2 cores slow down ~20x as soon as anything
    else runs; to use both cores, train two variants at once."""
    steps: int = 2000
    batch: int = 4
    """Windows per step over all processes: under ``torchrun`` each of N takes batch/N."""
    clip_frames: int = 17
    """Frames of a training window; 1 + k*tc so no padding is trained on (17 = 1 + 16)."""
    min_clip_frames: int = 0
    """0: every window has ``clip_frames`` frames. Otherwise each step's windows are cut to a
    length drawn from the 1 + k*tc in [min_clip_frames, clip_frames]; 1 trains the image path
    (frame 0 coded alone) on whole batches, the path a per-frame world model codes with."""
    lr: float = 2e-3
    mse_weight: float = 1.0
    ssim_weight: float = 0.2
    adversarial_weight: float = 0.0
    adversarial_start: int = 1000
    bf16: bool = True
    """Train under bf16 autocast (about 1.5x faster on CPU); evaluation is always fp32."""
    checkpoint_every: int = 250
    eval_every: int = 250
    tokenizer: VideoTokenizerConfig = field(default_factory=VideoTokenizerConfig)

    def __post_init__(self) -> None:
        if self.min_clip_frames < 0 or self.min_clip_frames > self.clip_frames:
            raise ValueError(
                f"min_clip_frames must be 0 (off) or in [1, clip_frames={self.clip_frames}], "
                f"got {self.min_clip_frames}"
            )
        if self.min_clip_frames and not self.window_lengths():
            raise ValueError(
                f"no window length 1 + k*{self.tokenizer.temporal_compression} lies in "
                f"[min_clip_frames, clip_frames] = "
                f"[{self.min_clip_frames}, {self.clip_frames}]"
            )

    def window_lengths(self) -> list[int]:
        """The window lengths a step draws from: [clip_frames], or every 1 + k*tc in
        [min_clip_frames, clip_frames]."""
        if not self.min_clip_frames:
            return [self.clip_frames]
        tc = self.tokenizer.temporal_compression
        return [n for n in range(1, self.clip_frames + 1, tc) if n >= self.min_clip_frames]


class _Windows:
    """Random fixed-length windows (B, T, H, W, 3) uint8 of clips at least T frames long."""

    def __init__(self, clips: list[np.ndarray], frames: int) -> None:
        self.clips = [c for c in clips if len(c) >= frames]
        if not self.clips:
            longest = max((len(c) for c in clips), default=0)
            raise ValueError(
                f"no training clip has clip_frames={frames} frames (longest: {longest}); "
                "lower clip_frames or curate longer clips"
            )
        self.frames = frames
        self.starts = [(i, s) for i, c in enumerate(self.clips) for s in range(len(c) - frames + 1)]

    def pick(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        """Indices (batch,) of random windows, for ``stack``."""
        return rng.integers(0, len(self.starts), size=batch)

    def stack(self, picks: np.ndarray) -> torch.Tensor:
        """The windows ``picks`` names, stacked: (len(picks), T, H, W, 3) uint8."""
        windows = [self.clips[i][s : s + self.frames] for i, s in (self.starts[p] for p in picks)]
        return torch.from_numpy(np.stack(windows))


@torch.no_grad()
def evaluate_tokenizer(tokenizer: VideoTokenizer, clips: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM of whole clips (T, H, W, 3) uint8 coded and decoded in fp32."""
    was_training = tokenizer.training
    tokenizer.eval()
    scores: dict[str, list[float]] = {"psnr": [], "ssim": []}
    for clip in clips:
        video = torch.from_numpy(clip)[None]
        decoded = tokenizer.decode(tokenizer.encode(video), num_frames=len(clip))[0].cpu()
        scores["psnr"].append(psnr(decoded, clip))
        scores["ssim"].append(ssim(decoded, clip))
    tokenizer.train(was_training)
    return {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()}


def _step_losses(
    tokenizer: VideoTokenizer,
    discriminator: PatchDiscriminator | None,
    video: torch.Tensor,
    config: TokenizerTrainConfig,
    step: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, logged values) of one batch (B, T, H, W, 3) uint8, for a single backward.

    Once the critic is on, the loss also holds the critic's own hinge loss. Its gradient
    reaches only the critic (it judges detached reconstructions), and the generator term's
    reaches only the tokenizer (it judges with the critic's weights as constants).
    """
    pixels = tokenizer.video_to_pixels(video)
    autocast = functools.partial(
        torch.autocast, pixels.device.type, dtype=torch.bfloat16, enabled=config.bf16
    )
    with autocast():
        recon, _ = tokenizer(pixels)
    target = pixels.flatten(0, 1)
    recon = recon.float().flatten(0, 1)
    weights = symmetric_salient_weights(recon, target)
    l1 = weighted_l1(recon, target, weights)
    loss = l1
    logged = {"weighted_l1": l1.item()}
    if config.mse_weight > 0:
        mse = weighted_mse(recon, target, weights)
        loss = loss + config.mse_weight * mse
        logged["weighted_mse"] = mse.item()
    if config.ssim_weight > 0:
        structure = ssim_loss(recon, target)
        loss = loss + config.ssim_weight * structure
        logged["one_minus_ssim"] = structure.item()
    if discriminator is not None and step >= config.adversarial_start:
        constants = {name: p.detach() for name, p in discriminator.named_parameters()}
        with autocast():
            generator = hinge_generator_loss(functional_call(discriminator, constants, (recon,)))
            critic_loss = hinge_discriminator_loss(
                discriminator(target), discriminator(recon.detach())
            )
        loss = loss + config.adversarial_weight * generator.float() + critic_loss.float()
        logged["adversarial"] = generator.item()
        logged["critic"] = critic_loss.item()
    return loss, logged


class _Objective(nn.Module):
    """One step's loss as a module, so DDP averages its gradients through ``forward``."""

    def __init__(
        self,
        tokenizer: VideoTokenizer,
        discriminator: PatchDiscriminator | None,
        config: TokenizerTrainConfig,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.discriminator = discriminator
        self.config = config

    def forward(self, video: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """``_step_losses`` of this rank's windows (B/N, T, H, W, 3) uint8."""
        return _step_losses(self.tokenizer, self.discriminator, video, self.config, step)


def train_tokenizer(config: TokenizerTrainConfig) -> Path:
    """Train (or resume) the tokenizer of ``config`` and export it; returns the checkpoint dir.

    Under ``torchrun`` every process runs this and returns the path; rank 0 alone writes.
    """
    dist = distributed(config.device)
    export_dir = _train_tokenizer(config, dist)
    dist.barrier()  # rank 0 writes the export: every rank returns once it is complete
    return export_dir


def _train_tokenizer(config: TokenizerTrainConfig, dist: Distributed) -> Path:
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    device = dist.device
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        tokenizer = VideoTokenizer(config.tokenizer).to(device)
        discriminator = PatchDiscriminator().to(device) if config.adversarial_weight > 0 else None
    modules = nn.ModuleDict({"tokenizer": tokenizer})
    if discriminator is not None:
        modules["discriminator"] = discriminator
    optimizer = torch.optim.AdamW(modules.parameters(), lr=config.lr)
    size = config.tokenizer.frame_size
    train, held_out = tokenizer_clips(
        config.shards_dir, f"{size}x{size}", config.held_out_fraction, config.seed
    )
    windows = _Windows(train, config.clip_frames)
    tokenizer.train()
    # the critic is idle until adversarial_start: DDP must expect parameters without gradients
    objective = dist.wrap(
        _Objective(tokenizer, discriminator, config),
        find_unused_parameters=discriminator is not None,
    )

    lengths = config.window_lengths()

    def step_loss(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        rng = np.random.default_rng([config.seed, step])
        picks = windows.pick(rng, config.batch)
        length = lengths[int(rng.integers(len(lengths)))]
        return objective(windows.stack(dist.shard(picks))[:, :length], step)

    stage = Stage(
        name=config.tokenizer.name,
        steps=config.steps,
        lr=config.lr,
        state_path=run_dir / "state.safetensors",
        tensorboard_dir=run_dir / "tb",
        schedule={
            "steps": config.steps,
            "batch": config.batch,
            "clip_frames": config.clip_frames,
            "min_clip_frames": config.min_clip_frames,
        },
        checkpoint_every=config.checkpoint_every,
        eval_every=config.eval_every,
    )
    result = run_stage(
        stage,
        modules,
        optimizer,
        step_loss,
        dist,
        clipped=tokenizer.parameters(),
        evaluate=lambda: evaluate_tokenizer(tokenizer, held_out),
    )
    if not dist.is_main:
        return run_dir / "checkpoint"
    export_dir = save_tokenizer(tokenizer.eval(), run_dir / "checkpoint")
    write_json_atomic(
        export_dir / "training.json",
        {
            "name": config.tokenizer.name,
            "parameters": sum(p.numel() for p in tokenizer.parameters()),
            "bits_per_pixel": config.tokenizer.bits_per_pixel(),
            "clips": {"train": len(train), "held_out": len(held_out)},
            "held_out": evaluate_tokenizer(tokenizer, held_out),
            "processes": dist.world_size,
            "seconds_per_step_this_run": (
                round(result.seconds_per_step, 4) if result.seconds_per_step else None
            ),
            "train_config": dataclasses.asdict(config),
        },
    )
    return export_dir


__all__ = ["TokenizerTrainConfig", "evaluate_tokenizer", "train_tokenizer"]
