"""Pre-train the diffusion world model on tokenizer latents: Text2World, then Video2World.

The curated shard clips are cut into windows of 1 + tc * (T - 1) frames (one per
``window_stride`` frames), each coded on its own by the frozen causal CV tokenizer into T
latent frames — so every window starts with an image latent and decodes on its own — and
paired with its clip's caption embedding (MiniLM, 384-d). Latents and embeddings are cached in
the run folder. Clips are split into train and held-out exactly as the tokenizer's training
split them (same seeded permutation of the clip ids), so held-out windows are unseen by both.

Stage 1, **Text2World**, trains the denoiser to generate whole windows from the caption (the
caption dropped with probability ``text_dropout`` for classifier-free guidance). Stage 2,
**Video2World**, starts from the exported Text2World weights and trains on windows whose
first K latents (K drawn from ``context_latents``) are given clean. The loss is EDM's:
noise levels drawn log-normally, lambda(sigma)-weighted squared error of the denoised latents
on the frames to generate. Each stage saves its state every ``checkpoint_every`` steps and a
rerun resumes it; each exports a checkpoint folder (``checkpoints/text2world``,
``checkpoints/video2world``) with a ``training.json`` of held-out measurements.

Under ``torchrun`` the loops run data-parallel (``wfm_sim.distributed``): every rank draws the
same global batch and trains on its slice, and only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from wfm_sim.curation.embed import TextEmbedder
from wfm_sim.data.shards import decode_mp4_bytes, iter_shard_samples, shard_paths
from wfm_sim.distributed import Distributed, distributed
from wfm_sim.io import atomic_path, file_sha256, write_json_atomic
from wfm_sim.stage_loop import Stage, run_stage
from wfm_sim.tokenizer import VideoTokenizer, load_tokenizer
from wfm_sim.tokenizer.data import held_out_clip_ids
from world_models.diffusion import (
    DiffusionConfig,
    DiffusionWorldModel,
    SamplerConfig,
    edm_coefficients,
    load_diffusion,
    sample,
)

STAGES = ("text2world", "video2world")


@dataclass
class DiffusionTrainConfig:
    """Everything a diffusion pre-training run needs; Hydra fills it from experiments/conf.

    ``batch`` is global: under ``torchrun`` each of N processes takes batch / N.
    """

    shards_dir: str = "data/curated/driving/shards"
    tokenizer_dir: str = "runs/tokenizer/cv_4x8x8/checkpoint"
    """A continuous (CV) tokenizer checkpoint folder; its latent shape must match ``model``."""
    run_dir: str = "runs/diffusion/cv_4x8x8"
    """Latent cache, training states, TensorBoard logs (``tb/``) and ``checkpoints/``."""
    held_out_fraction: float = 0.1
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    window_stride: int = 1
    """Frames between the starts of consecutive training windows of a clip."""
    text2world_steps: int = 1200
    video2world_steps: int = 1200
    batch: int = 32
    lr: float = 5e-4
    video2world_lr: float = 3e-4
    weight_decay: float = 0.01
    p_mean: float = -1.0
    """Mean of log(sigma) at training time (EDM's P_mean)."""
    p_std: float = 1.4
    """Spread of log(sigma) at training time (EDM's P_std)."""
    text_dropout: float = 0.1
    """Probability that a training caption is replaced by the null embedding (for CFG)."""
    context_latents: list[int] = field(default_factory=lambda: [1, 2])
    """Video2World: how many leading latents are given clean, drawn uniformly per sample
    (1 = the first frame alone, 2 = the first 1 + tc frames with a 4x tokenizer)."""
    bf16: bool = True
    """Train under bf16 autocast (faster on CPU); evaluation and sampling are fp32."""
    checkpoint_every: int = 250
    eval_every: int = 250
    eval_windows: int = 64
    """Held-out windows (evenly spaced through the held-out clips) that the periodic and
    final measurements use."""
    model: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """The sampler the final Video2World measurement uses."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.text_dropout <= 1.0:
            raise ValueError(f"text_dropout must be in [0, 1], got {self.text_dropout}")
        bad = [k for k in self.context_latents if not 1 <= k < self.model.frames]
        if not self.context_latents or bad:
            raise ValueError(
                f"context_latents must be a non-empty list of counts in [1, {self.model.frames}"
                f"), got {self.context_latents}"
            )
        if min(self.batch, self.window_stride, self.checkpoint_every, self.eval_every) < 1:
            raise ValueError("batch, window_stride, checkpoint_every and eval_every must be >= 1")
        if min(self.text2world_steps, self.video2world_steps) < 0:
            raise ValueError("step counts must be >= 0")


@dataclass(frozen=True)
class WindowSource:
    """Where coded training windows come from, shared by the diffusion and autoregressive
    trainers: curated shards, a frozen tokenizer, the cache folder, the clip split and the
    windowing (``frames`` latents per window, a start every ``window_stride`` frames)."""

    shards_dir: str
    tokenizer_dir: str
    run_dir: str
    held_out_fraction: float
    seed: int
    window_stride: int
    frames: int


def window_source(config: DiffusionTrainConfig) -> WindowSource:
    """The data fields of a diffusion run."""
    return WindowSource(
        config.shards_dir,
        config.tokenizer_dir,
        config.run_dir,
        config.held_out_fraction,
        config.seed,
        config.window_stride,
        config.model.frames,
    )


@dataclass
class LatentWindows:
    """Coded training windows: latents (N, T, C, s, s) float32 in tokenizer space, their
    caption embeddings text (N, 384) float32, and clip (N,) int64, the clip each came from."""

    latents: torch.Tensor
    text: torch.Tensor
    clip: torch.Tensor

    def __len__(self) -> int:
        return len(self.latents)

    def take(self, index: np.ndarray | torch.Tensor) -> LatentWindows:
        """The windows at ``index`` (a new object sharing no storage with this one)."""
        index = torch.as_tensor(index, dtype=torch.long)
        return LatentWindows(self.latents[index], self.text[index], self.clip[index])


def captioned_clips(shards_dir: str, resolution: str) -> list[tuple[str, np.ndarray, str]]:
    """(clip id, frames (T, H, W, 3) uint8, caption) of every shard clip, sorted by id."""
    paths = shard_paths(shards_dir, resolution)
    if not paths:
        raise FileNotFoundError(
            f"no shards at resolution {resolution} under {shards_dir}; run the curation first "
            "(`python -m experiments.curate`)"
        )
    clips = []
    for sample_ in tqdm(iter_shard_samples(paths), desc="reading clips", leave=False):
        caption = sample_.meta.get("caption")
        if not isinstance(caption, str) or not caption:
            raise ValueError(f"shard clip {sample_.key} has no caption; curate with captioning on")
        clips.append((sample_.key, decode_mp4_bytes(sample_.mp4, sample_.key), caption))
    return sorted(clips, key=lambda c: c[0])


@torch.no_grad()
def encode_windows(
    tokenizer: VideoTokenizer,
    clips: list[np.ndarray],
    window_frames: int,
    stride: int,
    batch: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (N, t, C, s, s) of every ``window_frames``-frame window of ``clips`` (starts
    ``stride`` apart), each coded on its own, and the clip index (N,) of each."""
    starts = [
        (i, s) for i, c in enumerate(clips) for s in range(0, len(c) - window_frames + 1, stride)
    ]
    if not starts:
        longest = max((len(c) for c in clips), default=0)
        raise ValueError(
            f"no clip has the {window_frames} frames a window needs (longest: {longest}); "
            "lower model.frames or curate longer clips"
        )
    coded = []
    for first in tqdm(range(0, len(starts), batch), desc="coding windows", leave=False):
        chunk = starts[first : first + batch]
        video = torch.from_numpy(np.stack([clips[i][s : s + window_frames] for i, s in chunk]))
        coded.append(tokenizer.encode(video).float().cpu())
    return torch.cat(coded), torch.tensor([i for i, _ in starts], dtype=torch.long)


def _cache_key(source: WindowSource, tokenizer_dir: Path, paths: list[Path]) -> str:
    """What the latent cache depends on: tokenizer weights, shard files, windowing, split."""
    digest = file_sha256(tokenizer_dir / "model.safetensors")
    return json.dumps(
        {
            "tokenizer_weights_sha256": digest,
            "shards": [[str(p), p.stat().st_size] for p in paths],
            "frames": source.frames,
            "window_stride": source.window_stride,
            "held_out_fraction": source.held_out_fraction,
            "seed": source.seed,
        },
        sort_keys=True,
    )


def latent_windows(
    source: WindowSource, tokenizer: VideoTokenizer
) -> tuple[LatentWindows, LatentWindows]:
    """(train, held-out) coded windows of the curated shards, from the run's cache if it was
    built from the same tokenizer weights, shards and settings, else built and cached."""
    size = tokenizer.config.frame_size
    paths = shard_paths(source.shards_dir, f"{size}x{size}")
    cache = Path(source.run_dir) / "latents.safetensors"
    key = _cache_key(source, Path(source.tokenizer_dir), paths)
    if cache.exists():
        with safe_open(str(cache), framework="pt") as handle:
            if handle.metadata().get("key") == key:
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
                return _split_tensors(tensors)
    clips = captioned_clips(source.shards_dir, f"{size}x{size}")
    held = held_out_clip_ids([k for k, _, _ in clips], source.held_out_fraction, source.seed)
    window_frames = 1 + tokenizer.config.temporal_compression * (source.frames - 1)
    latents, clip = encode_windows(
        tokenizer, [frames for _, frames, _ in clips], window_frames, source.window_stride
    )
    captions = [caption for _, _, caption in clips]
    unique = sorted(set(captions))
    embedded = torch.from_numpy(TextEmbedder(device="cpu").embed(unique)).float()
    row = {caption: i for i, caption in enumerate(unique)}
    text = embedded[[row[captions[i]] for i in clip.tolist()]]
    is_held = torch.tensor([clips[i][0] in held for i in clip.tolist()], dtype=torch.bool)
    tensors = {"latents": latents, "text": text, "clip": clip, "held_out": is_held}
    with atomic_path(cache) as tmp:
        save_file(tensors, str(tmp), metadata={"key": key})
    return _split_tensors(tensors)


class _Windows(Protocol):
    def __len__(self) -> int: ...
    def take(self, index: np.ndarray) -> Self: ...


WindowsT = TypeVar("WindowsT", bound=_Windows)


def spread_windows(windows: WindowsT, count: int) -> WindowsT:
    """At most ``count`` windows evenly spaced through ``windows`` (so, across its clips): the
    held-out sample both WFM trainers measure on."""
    if len(windows) <= count:
        return windows
    return windows.take(np.linspace(0, len(windows) - 1, count).round().astype(np.int64))


def _split_tensors(tensors: dict[str, torch.Tensor]) -> tuple[LatentWindows, LatentWindows]:
    every = LatentWindows(tensors["latents"], tensors["text"], tensors["clip"])
    held = tensors["held_out"]
    return every.take(torch.nonzero(~held).flatten()), every.take(torch.nonzero(held).flatten())


def fit_latent_statistics(latents: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Per-channel mean (C,) of latents (N, T, C, s, s) and the std of the centred latents:
    the model's ``latent_mean`` and EDM's ``sigma_data``."""
    mean = latents.mean(dim=(0, 1, 3, 4))
    centred = latents - mean[:, None, None]
    return mean, float(centred.std())


def denoising_error(
    model: DiffusionWorldModel,
    clean: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    text: torch.Tensor | None,
    text_keep: torch.Tensor | None,
    context_mask: torch.Tensor,
    frame_cond: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum, count) of EDM's weighted squared error over the frames to generate.

    clean: (B, T, C, s, s) normalised latents; sigma: (B,); noise: like clean; context_mask:
    (B, T) bool, frames given clean (they carry no loss); frame_cond: (B, T, frame_cond_dim)
    for a model that takes it (action post-training). The error lambda(sigma) (D - y)^2 with
    lambda = 1 / c_out^2 has unit scale at every sigma; sum / count is its mean.
    """
    noisy = clean + sigma.view(-1, 1, 1, 1, 1) * noise
    context = clean if bool(context_mask.any()) else None
    denoised = model(
        noisy,
        sigma,
        text,
        text_keep,
        context,
        context_mask if context is not None else None,
        frame_cond,
    )
    _, c_out, _, _ = edm_coefficients(sigma, model.sigma_data)
    error = ((denoised.float() - clean) / c_out.view(-1, 1, 1, 1, 1)).square()
    weight = (~context_mask).float()[:, :, None, None, None].expand_as(error)
    return (error * weight).sum(), weight.sum()


class _Objective(nn.Module):
    """``denoising_error`` as a module, so DDP averages its gradients through ``forward``."""

    def __init__(self, model: DiffusionWorldModel, bf16: bool) -> None:
        super().__init__()
        self.model = model
        self.bf16 = bf16

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum, count) of the weighted error on a drawn batch (see ``_draw_batch``)."""
        device_type = batch["clean"].device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16):
            return denoising_error(
                self.model,
                batch["clean"],
                batch["sigma"],
                batch["noise"],
                batch["text"],
                batch["text_keep"],
                batch["context_mask"],
            )


def _draw_batch(
    model: DiffusionWorldModel,
    windows: LatentWindows,
    index: np.ndarray,
    rng: np.random.Generator,
    config: DiffusionTrainConfig,
    context_choices: list[int],
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """A training batch from ``rng``: the windows at ``index`` with noise levels, noise,
    caption dropout and context masks. Each row's draws depend only on (rng, row) order, so
    every rank of a data-parallel group draws the same global batch and slices it after."""
    b, frames = len(index), config.model.frames
    sigma = np.exp(config.p_mean + config.p_std * rng.standard_normal(b))
    noise = rng.standard_normal((b, *windows.latents.shape[1:]), dtype=np.float32)
    keep = rng.random(b) >= config.text_dropout
    counts = (
        rng.choice(np.asarray(context_choices), size=b) if context_choices else np.zeros(b, int)
    )
    mask = np.arange(frames)[None, :] < counts[:, None]
    picked = windows.take(index)
    return {
        "clean": model.normalize(picked.latents.to(device)),
        "sigma": torch.from_numpy(sigma).float().to(device),
        "noise": torch.from_numpy(noise).to(device),
        "text": picked.text.to(device),
        "text_keep": torch.from_numpy(keep).to(device),
        "context_mask": torch.from_numpy(mask).to(device),
    }


EVAL_SIGMAS = (0.05, 0.2, 0.5, 1.0, 2.0)
"""Noise levels of the held-out denoising measurement."""


@torch.no_grad()
def evaluate_denoising(
    model: DiffusionWorldModel,
    windows: LatentWindows,
    context_latents: int,
    seed: int = 0,
) -> dict[str, float]:
    """Mean EDM-weighted error (unit scale; 1.0 is what predicting the mean latent scores
    at sigma >> sigma_data) of ``windows`` at each of ``EVAL_SIGMAS`` and their mean, with
    captions, the first ``context_latents`` frames given clean, noise fixed by ``seed``; fp32."""
    was_training = model.training
    model.eval()
    device = model.sigma_data.device
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(windows.latents.shape, generator=generator)
    clean = model.normalize(windows.latents.to(device))
    mask = torch.zeros(len(windows), model.config.frames, dtype=torch.bool, device=device)
    mask[:, :context_latents] = True
    scores = {}
    for sigma in EVAL_SIGMAS:
        sigmas = torch.full((len(windows),), sigma, device=device)
        total, count = denoising_error(
            model, clean, sigmas, noise.to(device), windows.text.to(device), None, mask
        )
        scores[f"sigma_{sigma:g}"] = float(total / count)
    scores["mean"] = float(np.mean(list(scores.values())))
    model.train(was_training)
    return scores


@torch.no_grad()
def evaluate_video2world(
    model: DiffusionWorldModel,
    windows: LatentWindows,
    sampler: SamplerConfig,
    context_latents: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """Latent RMSE of sampled continuations of ``windows`` (first ``context_latents`` given,
    with captions) against the true latents, next to the copy-last-latent baseline's, and the
    sampling time per clip."""
    was_training = model.training
    model.eval()
    k = context_latents
    truth = windows.latents
    began = time.perf_counter()
    generated = sample(
        model,
        len(windows),
        sampler,
        torch.Generator().manual_seed(seed),
        text=windows.text,
        context=truth[:, :k],
    ).cpu()
    seconds = time.perf_counter() - began
    model.train(was_training)
    future = truth[:, k:]
    copy_last = truth[:, k - 1 : k].expand_as(future)
    return {
        "rmse": float((generated[:, k:] - future).square().mean().sqrt()),
        "copy_last_rmse": float((copy_last - future).square().mean().sqrt()),
        "seconds_per_clip": seconds / len(windows),
        "context_latents": k,
    }


@dataclass(frozen=True)
class _Stage:
    """One pre-training stage: its name, length, peak LR, context counts and seed tag."""

    name: str
    steps: int
    lr: float
    context_choices: list[int]
    seed_tag: int


def _stages(config: DiffusionTrainConfig) -> list[_Stage]:
    return [
        _Stage("text2world", config.text2world_steps, config.lr, [], 1),
        _Stage(
            "video2world",
            config.video2world_steps,
            config.video2world_lr,
            config.context_latents,
            2,
        ),
    ]


def _train_stage(
    model: DiffusionWorldModel,
    train: LatentWindows,
    held: LatentWindows,
    config: DiffusionTrainConfig,
    stage: _Stage,
    schedule: dict[str, int],
    dist: Distributed,
) -> None:
    """Train (or resume) ``model`` through one stage; ``schedule`` names every step count it
    builds on, so a resume under another one is refused; ``held`` are the windows of the
    periodic held-out measurement."""
    run_dir = Path(config.run_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=stage.lr, weight_decay=config.weight_decay)
    eval_context = min(stage.context_choices, default=0)
    model.train()
    objective = dist.wrap(_Objective(model, config.bf16))

    def step_loss(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rng = np.random.default_rng([config.seed, stage.seed_tag, step])
        index = rng.integers(0, len(train), size=config.batch)
        batch = _draw_batch(model, train, index, rng, config, stage.context_choices, dist.device)
        total, count = objective({name: dist.shard(value) for name, value in batch.items()})
        loss = total / (dist.all_reduce_sum(count).clamp(min=1.0) / dist.world_size)
        return loss, {"edm": loss}

    every = {
        "checkpoint_every": config.checkpoint_every,
        "eval_every": config.eval_every * bool(held),
    }
    loop = Stage.in_run(run_dir, stage, schedule, **every)
    run_stage(
        loop,
        model,
        optimizer,
        step_loss,
        dist,
        evaluate=lambda: evaluate_denoising(model, held, eval_context, config.seed),
    )


def _check_run_config(run_dir: Path, config: DiffusionTrainConfig) -> None:
    """Refuse to resume a run folder started with another model config or tokenizer."""
    path = run_dir / "run_config.json"
    current = {"model": config.model.to_dict(), "tokenizer_dir": config.tokenizer_dir}
    if path.exists():
        saved = json.loads(path.read_text())
        if saved != current:
            raise ValueError(
                f"{run_dir} holds a run of another model or tokenizer (saved {saved}, now "
                f"{current}); use another run_dir or delete it"
            )
    else:
        write_json_atomic(path, current)


def _check_tokenizer(tokenizer: VideoTokenizer, model: DiffusionConfig) -> None:
    tok = tokenizer.config
    if tok.kind != "continuous":
        raise ValueError(f"the diffusion model needs a continuous (CV) tokenizer, got {tok.name}")
    if (tok.channels, tok.latent_size) != (model.latent_channels, model.latent_size):
        raise ValueError(
            f"tokenizer {tok.name} codes latents of {tok.channels} x {tok.latent_size} x "
            f"{tok.latent_size}; set model.latent_channels={tok.channels} and "
            f"model.latent_size={tok.latent_size}"
        )


def train_diffusion(config: DiffusionTrainConfig) -> dict[str, Path]:
    """Train (or resume) Text2World then Video2World and export both; returns their folders
    by stage name. Under ``torchrun`` every process runs this and rank 0 writes the files."""
    dist = distributed(config.device)
    exports = _train_diffusion(config, dist)
    dist.barrier()
    return exports


def _train_diffusion(config: DiffusionTrainConfig, dist: Distributed) -> dict[str, Path]:
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    run_dir = Path(config.run_dir)
    tokenizer = load_tokenizer(config.tokenizer_dir)
    _check_tokenizer(tokenizer, config.model)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _check_run_config(run_dir, config)
        latent_windows(
            window_source(config), tokenizer
        )  # build the cache once, before the others read it
    dist.barrier()
    train, held_out = latent_windows(window_source(config), tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = DiffusionWorldModel(config.model)
    mean, sigma_data = fit_latent_statistics(train.latents)
    model.set_latent_statistics(mean, sigma_data)
    model = model.to(dist.device)
    held = spread_windows(held_out, config.eval_windows)
    exports: dict[str, Path] = {}
    schedule: dict[str, int] = {"batch": config.batch}
    for stage in _stages(config):
        # a stage continues the ones before it: a resume must match them all
        schedule = {**schedule, f"{stage.name}_steps": stage.steps}
        began = time.perf_counter()
        if exports:  # the hand-over: Video2World starts from the exported Text2World weights
            model = load_diffusion(exports[STAGES[0]], config.model, dist.device)
        _train_stage(model, train, held, config, stage, schedule, dist)
        export = run_dir / "checkpoints" / stage.name
        exports[stage.name] = export
        if dist.is_main:
            model.eval().save(
                export,
                tokenizer.config,
                {"stage": stage.name, "tokenizer_dir": config.tokenizer_dir},
            )
            report: dict[str, Any] = {
                "stage": stage.name,
                "steps": stage.steps,
                "parameters": sum(p.numel() for p in model.parameters()),
                "processes": dist.world_size,
                "sigma_data": float(model.sigma_data),
                "windows": {"train": len(train), "held_out": len(held_out)},
                "held_out_denoising": {
                    f"context_{k}": evaluate_denoising(model, held, k, config.seed)
                    for k in [0, *config.context_latents]
                }
                if len(held)
                else {},
                "wall_seconds_this_run": round(time.perf_counter() - began, 1),
                "train_config": dataclasses.asdict(config),
            }
            if stage.name == "video2world" and len(held):
                report["held_out_video2world"] = evaluate_video2world(
                    model, held, config.sampler, min(config.context_latents), config.seed
                )
            write_json_atomic(export / "training.json", report)
        dist.barrier()
    return exports


__all__ = [
    "DiffusionTrainConfig",
    "LatentWindows",
    "denoising_error",
    "encode_windows",
    "evaluate_denoising",
    "evaluate_video2world",
    "fit_latent_statistics",
    "latent_windows",
    "spread_windows",
    "WindowSource",
    "window_source",
    "train_diffusion",
]
