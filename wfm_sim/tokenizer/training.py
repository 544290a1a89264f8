"""Train a causal video tokenizer on curated shard clips: resumable, logged to TensorBoard.

Each step reconstructs a batch of random ``clip_frames``-frame windows (1 + 16 frames fit
tc = 4 and 8) under a salient-weighted L1 + MSE, plus (1 - SSIM) and, after ``adversarial_start``,
a PatchGAN hinge term when their weights are set. The state (weights, AdamW moments, step) is
saved every ``checkpoint_every`` steps and a rerun resumes from it; held-out PSNR/SSIM are
measured in fp32 on whole held-out clips. The finished tokenizer is exported as a checkpoint
folder with a ``training.json`` beside it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from wfm_sim.checkpoints import load_training_state, save_training_state
from wfm_sim.devices import resolve_device
from wfm_sim.io import write_json_atomic
from wfm_sim.schedules import warmup_cosine_lr
from wfm_sim.tokenizer.checkpoint import save_tokenizer
from wfm_sim.tokenizer.config import VideoTokenizerConfig
from wfm_sim.tokenizer.data import tokenizer_clips
from wfm_sim.tokenizer.losses import (
    PatchDiscriminator,
    hinge_discriminator_loss,
    hinge_generator_loss,
    ssim_loss,
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
    clip_frames: int = 17
    """Frames of a training window; 1 + k*tc so no padding is trained on (17 = 1 + 16)."""
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

    def sample(self, rng: np.random.Generator, batch: int) -> torch.Tensor:
        picks = rng.integers(0, len(self.starts), size=batch)
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
) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
    """(generator loss, critic loss or None, logged values) of one batch (B, T, H, W, 3) uint8."""
    pixels = tokenizer.video_to_pixels(video)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
        recon, _ = tokenizer(pixels)
    target = pixels.flatten(0, 1)
    recon = recon.float().flatten(0, 1)
    l1 = weighted_l1(recon, target)
    loss = l1
    logged = {"weighted_l1": l1.item()}
    if config.mse_weight > 0:
        mse = weighted_mse(recon, target)
        loss = loss + config.mse_weight * mse
        logged["weighted_mse"] = mse.item()
    if config.ssim_weight > 0:
        structure = ssim_loss(recon, target)
        loss = loss + config.ssim_weight * structure
        logged["one_minus_ssim"] = structure.item()
    critic_loss = None
    if discriminator is not None and step >= config.adversarial_start:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            generator = hinge_generator_loss(discriminator(recon))
            critic_loss = hinge_discriminator_loss(
                discriminator(target), discriminator(recon.detach())
            )
        loss = loss + config.adversarial_weight * generator.float()
        logged["adversarial"] = generator.item()
        logged["critic"] = critic_loss.item()
    return loss, critic_loss, logged


def train_tokenizer(config: TokenizerTrainConfig) -> Path:
    """Train (or resume) the tokenizer of ``config`` and export it; returns the checkpoint dir."""
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
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
    schedule = {"steps": config.steps, "batch": config.batch, "clip_frames": config.clip_frames}
    state_path = run_dir / "state.safetensors"
    start = 0
    if state_path.exists():
        start = load_training_state(state_path, modules, optimizer, schedule)
    size = config.tokenizer.frame_size
    train, held_out = tokenizer_clips(
        config.shards_dir, f"{size}x{size}", config.held_out_fraction, config.seed
    )
    windows = _Windows(train, config.clip_frames)
    writer = SummaryWriter(str(run_dir / "tb"))
    tokenizer.train()
    step_seconds: list[float] = []
    bar = tqdm(
        range(start, config.steps), desc=config.tokenizer.name, initial=start, total=config.steps
    )
    for step in bar:
        began = time.perf_counter()
        video = windows.sample(np.random.default_rng([config.seed, step]), config.batch)
        loss, critic_loss, logged = _step_losses(tokenizer, discriminator, video, config, step)
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine_lr(step, config.steps, config.lr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if discriminator is not None:
            for p in discriminator.parameters():
                p.grad = None  # the generator's loss must not train the critic
            if critic_loss is not None:
                critic_loss.backward()
        torch.nn.utils.clip_grad_norm_(tokenizer.parameters(), 1.0)
        optimizer.step()
        step_seconds.append(time.perf_counter() - began)
        if step % 25 == 0:
            for name, value in logged.items():
                writer.add_scalar(f"loss/{name}", value, step)
            bar.set_postfix({k: f"{v:.4f}" for k, v in logged.items()})
        done = step + 1
        if done % config.eval_every == 0 or done == config.steps:
            for name, value in evaluate_tokenizer(tokenizer, held_out).items():
                writer.add_scalar(f"held_out/{name}", value, done)
        if done % config.checkpoint_every == 0 or done == config.steps:
            save_training_state(state_path, modules, optimizer, done, schedule)
    writer.close()
    if start >= config.steps:
        tqdm.write(f"{config.tokenizer.name} already trained ({start} steps) in {state_path}")
    export_dir = save_tokenizer(tokenizer.eval(), run_dir / "checkpoint")
    write_json_atomic(
        export_dir / "training.json",
        {
            "name": config.tokenizer.name,
            "parameters": sum(p.numel() for p in tokenizer.parameters()),
            "bits_per_pixel": config.tokenizer.bits_per_pixel(),
            "clips": {"train": len(train), "held_out": len(held_out)},
            "held_out": evaluate_tokenizer(tokenizer, held_out),
            "seconds_per_step_this_run": (
                round(float(np.median(step_seconds)), 4) if step_seconds else None
            ),
            "train_config": dataclasses.asdict(config),
        },
    )
    return export_dir


__all__ = ["TokenizerTrainConfig", "evaluate_tokenizer", "train_tokenizer"]
