"""Pre-train the autoregressive world model on FSQ tokens: next-token prediction, then
text-conditioned Video2World.

The data are the diffusion trainer's (``wfm_sim.training.diffusion.latent_windows``): the
curated shard clips cut into windows of 1 + tc * (T - 1) frames, each coded on its own by the
frozen tokenizer — here a discrete (DV) one, whose FSQ latents become token ids — paired with
the clip's MiniLM caption embedding, cached in the run folder, and split into train and
held-out by clip exactly as the tokenizer's training split them.

Stage 1, **pretrain**, trains an unconditioned GPT on next-token cross-entropy over whole
windows. Stage 2, **Video2World**, adds cross-attention to the caption
(``with_text_conditioning``: zero-initialised outputs, so it starts from the pre-trained
predictions) and trains on continuations: the first K frames' tokens (K drawn from
``context_frames``) are given and only the tokens after them carry loss; captions are dropped
with probability ``text_dropout`` for classifier-free guidance. Each stage saves its state
every ``checkpoint_every`` steps and a rerun resumes it; each exports a checkpoint folder
(``checkpoints/pretrain``, ``checkpoints/video2world``) with a ``training.json`` of held-out
measurements (cross-entropy before and after, against the unigram baseline; for Video2World
also sampled continuations and cached-vs-uncached decoding speed).

Under ``torchrun`` the loops run data-parallel (``wfm_sim.distributed``): every rank draws the
same global batch and trains on its slice, and only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wfm_sim.distributed import Distributed, distributed
from wfm_sim.io import write_json_atomic
from wfm_sim.stage_loop import Stage, run_stage
from wfm_sim.tokenizer import VideoTokenizer, load_tokenizer
from wfm_sim.training.diffusion import (
    LatentWindows,
    WindowSource,
    latent_windows,
    spread_windows,
)
from world_models.autoregressive import (
    AutoregressiveConfig,
    AutoregressiveWorldModel,
    SamplingConfig,
    load_autoregressive,
    sample,
    with_text_conditioning,
)

STAGES = ("pretrain", "video2world")


@dataclass
class AutoregressiveTrainConfig:
    """Everything an autoregressive pre-training run needs; Hydra fills it from
    experiments/conf. ``batch`` is global: under ``torchrun`` each of N processes takes
    batch / N. ``model`` is the unconditioned pre-training model; Video2World adds
    ``text_tokens`` caption tokens to it."""

    shards_dir: str = "data/curated/driving/shards"
    tokenizer_dir: str = "runs/tokenizer/dv_4x8x8/checkpoint"
    """A discrete (DV) tokenizer checkpoint folder; its vocabulary and grid must match
    ``model``."""
    run_dir: str = "runs/autoregressive/dv_4x8x8"
    """Latent cache, training states, TensorBoard logs (``tb/``) and ``checkpoints/``."""
    held_out_fraction: float = 0.1
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    window_stride: int = 1
    """Frames between the starts of consecutive training windows of a clip."""
    pretrain_steps: int = 1500
    video2world_steps: int = 1000
    batch: int = 16
    lr: float = 1e-3
    video2world_lr: float = 3e-4
    weight_decay: float = 0.05
    """AdamW decay of the matrices and embeddings (not of biases and norms)."""
    text_tokens: int = 4
    """Video2World: memory tokens the caption embedding is projected to."""
    text_dropout: float = 0.1
    """Probability that a training caption is replaced by the null embedding (for CFG)."""
    context_frames: list[int] = field(default_factory=lambda: [1, 2])
    """Video2World: how many leading latent frames are given, drawn uniformly per sample."""
    bf16: bool = True
    """Train under bf16 autocast (faster on CPU); evaluation and sampling are fp32."""
    checkpoint_every: int = 250
    eval_every: int = 250
    eval_windows: int = 64
    """Held-out windows (evenly spaced through the held-out clips) that the periodic and
    final measurements use."""
    speed_clips: int = 4
    """Held-out clips whose cached and uncached decoding is timed at the end (0 = skip)."""
    model: AutoregressiveConfig = field(default_factory=AutoregressiveConfig)
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(top_k=50))
    """The sampler of the final Video2World measurement (greedy decoding is measured too)."""

    def __post_init__(self) -> None:
        if self.model.text_tokens or self.model.frame_cond_dim:
            raise ValueError(
                "model is the unconditioned pre-training model: set model.text_tokens=0 and "
                "model.frame_cond_dim=0 (Video2World adds text_tokens itself)"
            )
        if self.text_tokens < 1:
            raise ValueError(f"text_tokens must be >= 1, got {self.text_tokens}")
        if not 0.0 <= self.text_dropout <= 1.0:
            raise ValueError(f"text_dropout must be in [0, 1], got {self.text_dropout}")
        bad = [k for k in self.context_frames if not 1 <= k < self.model.frames]
        if not self.context_frames or bad:
            raise ValueError(
                f"context_frames must be a non-empty list of counts in [1, {self.model.frames}"
                f"), got {self.context_frames}"
            )
        if min(self.batch, self.window_stride, self.checkpoint_every, self.eval_every) < 1:
            raise ValueError("batch, window_stride, checkpoint_every and eval_every must be >= 1")
        if min(self.pretrain_steps, self.video2world_steps, self.speed_clips) < 0:
            raise ValueError("step counts and speed_clips must be >= 0")


@dataclass
class TokenWindows:
    """Tokenized training windows: tokens (N, T, s, s) int64 FSQ ids, their caption
    embeddings text (N, 384) float32, and clip (N,) int64, the clip each came from."""

    tokens: torch.Tensor
    text: torch.Tensor
    clip: torch.Tensor

    def __len__(self) -> int:
        return len(self.tokens)

    def take(self, index: np.ndarray | torch.Tensor) -> TokenWindows:
        """The windows at ``index`` (a new object sharing no storage with this one)."""
        index = torch.as_tensor(index, dtype=torch.long)
        return TokenWindows(self.tokens[index], self.text[index], self.clip[index])

    def flat(self) -> torch.Tensor:
        """tokens as model sequences (N, T * s * s): raster order per frame, frames in order."""
        return self.tokens.reshape(len(self.tokens), -1)


def _to_tokens(windows: LatentWindows, tokenizer: VideoTokenizer) -> TokenWindows:
    """FSQ latents (N, T, C, s, s) -> their token ids (N, T, s, s)."""
    fsq = tokenizer.fsq
    assert fsq is not None  # _check_tokenizer ran
    tokens = fsq.to_indices(windows.latents.transpose(1, 2)).long()
    return TokenWindows(tokens, windows.text, windows.clip)


def token_windows(
    config: AutoregressiveTrainConfig, tokenizer: VideoTokenizer
) -> tuple[TokenWindows, TokenWindows]:
    """(train, held-out) tokenized windows of the curated shards, through the diffusion
    trainer's latent cache in ``config.run_dir`` (same windows, split and captions)."""
    _check_tokenizer(tokenizer, config.model)
    source = WindowSource(
        config.shards_dir,
        config.tokenizer_dir,
        config.run_dir,
        config.held_out_fraction,
        config.seed,
        config.window_stride,
        config.model.frames,
    )
    train, held = latent_windows(source, tokenizer)
    return _to_tokens(train, tokenizer), _to_tokens(held, tokenizer)


def next_token_loss(
    model: AutoregressiveWorldModel,
    tokens: torch.Tensor,
    loss_mask: torch.Tensor,
    text: torch.Tensor | None = None,
    text_keep: torch.Tensor | None = None,
    frame_cond: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum, count) of the next-token cross-entropy (nats) over the positions of ``loss_mask``.

    tokens: (B, L) int64 sequences; loss_mask: (B, L) bool, the positions to predict (False on
    given context); text / text_keep / frame_cond as ``AutoregressiveWorldModel.forward``.
    """
    logits = model(tokens, text, text_keep, frame_cond)
    cross_entropy = F.cross_entropy(logits.float().transpose(1, 2), tokens, reduction="none")
    weight = loss_mask.float()
    return (cross_entropy * weight).sum(), weight.sum()


class _Objective(nn.Module):
    """``next_token_loss`` as a module, so DDP averages its gradients through ``forward``."""

    def __init__(self, model: AutoregressiveWorldModel, bf16: bool) -> None:
        super().__init__()
        self.model = model
        self.bf16 = bf16

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum, count) of the cross-entropy on a drawn batch (see ``_draw_batch``)."""
        device_type = batch["tokens"].device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16):
            return next_token_loss(
                self.model,
                batch["tokens"],
                batch["loss_mask"],
                batch.get("text"),
                batch.get("text_keep"),
            )


def _draw_batch(
    windows: TokenWindows,
    index: np.ndarray,
    rng: np.random.Generator,
    config: AutoregressiveTrainConfig,
    stage: _Stage,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """A training batch from ``rng``: the windows at ``index``, loss masks after the drawn
    context frames and (Video2World) captions with dropout. Every rank of a data-parallel
    group draws the same global batch and slices it after."""
    b, n = len(index), config.model.tokens_per_frame
    counts = (
        rng.choice(np.asarray(stage.context_choices), size=b)
        if stage.context_choices
        else np.zeros(b, np.int64)
    )
    mask = np.arange(config.model.sequence_length)[None, :] >= (counts * n)[:, None]
    picked = windows.take(index)
    batch = {
        "tokens": picked.flat().to(device),
        "loss_mask": torch.from_numpy(mask).to(device),
    }
    if stage.with_text:
        keep = rng.random(b) >= config.text_dropout
        batch["text"] = picked.text.to(device)
        batch["text_keep"] = torch.from_numpy(keep).to(device)
    return batch


@torch.no_grad()
def evaluate_next_token(
    model: AutoregressiveWorldModel,
    windows: TokenWindows,
    context_frames: int = 0,
    use_text: bool = True,
    batch: int = 32,
) -> dict[str, Any]:
    """Held-out next-token cross-entropy (nats/token) of the frames after the first
    ``context_frames`` (given as context, not scored), its perplexity and bits per token, and
    the cross-entropy of each scored frame; captions used if ``use_text`` and the model reads
    them (else the null caption). fp32, teacher forcing."""
    was_training = model.training
    model.eval()
    cfg = model.config
    per_frame = torch.zeros(cfg.frames, dtype=torch.float64)
    reads_text = use_text and cfg.text_tokens > 0
    for first in range(0, len(windows), batch):
        chunk = windows.take(np.arange(first, min(first + batch, len(windows))))
        tokens = chunk.flat().to(model.device)
        text = chunk.text.to(model.device) if reads_text else None
        logits = model(tokens, text)
        cross_entropy = F.cross_entropy(logits.float().transpose(1, 2), tokens, reduction="none")
        per_frame += cross_entropy.view(len(chunk), cfg.frames, -1).sum(dim=(0, 2)).double().cpu()
    model.train(was_training)
    per_frame = per_frame[context_frames:] / (len(windows) * cfg.tokens_per_frame)
    mean = float(per_frame.mean())
    return {
        "cross_entropy": mean,
        "perplexity": math.exp(mean),
        "bits_per_token": mean / math.log(2),
        "per_frame": [round(float(v), 4) for v in per_frame],
    }


def unigram_cross_entropy(
    train: TokenWindows, held: TokenWindows, vocab_size: int, context_frames: int = 0
) -> float:
    """Cross-entropy (nats/token) on ``held``'s frames after ``context_frames`` of the token
    frequencies of ``train`` (add-one smoothed): what a model that ignores every other token
    scores, the baseline a sequence model must beat."""
    counts = torch.bincount(train.tokens.flatten(), minlength=vocab_size).double() + 1.0
    log_p = (counts / counts.sum()).log()
    return float(-log_p[held.tokens[:, context_frames:].flatten()].mean())


@torch.no_grad()
def evaluate_video2world(
    model: AutoregressiveWorldModel,
    windows: TokenWindows,
    sampling: SamplingConfig,
    context_frames: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Token accuracy of continuations of ``windows`` (first ``context_frames`` given, with
    captions) against the true tokens, sampled with ``sampling`` and greedy, next to the
    copy-last-frame baseline's, and the cached sampling time per clip."""
    k = context_frames
    truth = windows.tokens
    future = truth[:, k:]
    scores: dict[str, Any] = {"context_frames": k, "clips": len(windows)}
    for name, config in (("sampled", sampling), ("greedy", SamplingConfig(temperature=0.0))):
        began = time.perf_counter()
        generated = sample(
            model,
            len(windows),
            config,
            torch.Generator().manual_seed(seed),
            context=truth[:, :k],
            text=windows.text,
        )
        scores[f"{name}_seconds_per_clip"] = (time.perf_counter() - began) / len(windows)
        scores[f"{name}_token_accuracy"] = float((generated[:, k:] == future).float().mean())
    copy_last = truth[:, k - 1 : k].expand_as(future)
    scores["copy_last_token_accuracy"] = float((copy_last == future).float().mean())
    return scores


@torch.no_grad()
def measure_decoding(
    model: AutoregressiveWorldModel,
    windows: TokenWindows,
    sampling: SamplingConfig,
    context_frames: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Generated tokens per second decoding continuations of ``windows`` (one batch) with the
    KV cache and without it (the whole prefix recomputed per token), and whether the two drew
    the same tokens from the same seed."""
    k = context_frames
    context = windows.tokens[:, :k]
    generated = len(windows) * (model.config.frames - k) * model.config.tokens_per_frame
    result: dict[str, Any] = {"batch": len(windows), "generated_tokens": generated}
    drawn = []
    for name, use_cache in (("cached", True), ("uncached", False)):
        began = time.perf_counter()
        drawn.append(
            sample(
                model,
                len(windows),
                sampling,
                torch.Generator().manual_seed(seed),
                context=context,
                text=windows.text if model.config.text_tokens else None,
                use_cache=use_cache,
            )
        )
        result[f"{name}_tokens_per_second"] = generated / (time.perf_counter() - began)
    result["speedup"] = result["cached_tokens_per_second"] / result["uncached_tokens_per_second"]
    result["same_tokens"] = bool(torch.equal(drawn[0], drawn[1]))
    return result


@dataclass(frozen=True)
class _Stage:
    """One pre-training stage: its name, length, peak LR, context counts, whether captions
    are read, and the seed tag of its batches."""

    name: str
    steps: int
    lr: float
    context_choices: list[int]
    with_text: bool
    seed_tag: int


def _stages(config: AutoregressiveTrainConfig) -> list[_Stage]:
    return [
        _Stage("pretrain", config.pretrain_steps, config.lr, [], False, 1),
        _Stage(
            "video2world",
            config.video2world_steps,
            config.video2world_lr,
            config.context_frames,
            True,
            2,
        ),
    ]


def _optimizer(
    model: AutoregressiveWorldModel, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """AdamW decaying matrices and embeddings only (nanoGPT's split)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def _train_stage(
    model: AutoregressiveWorldModel,
    train: TokenWindows,
    held: TokenWindows,
    config: AutoregressiveTrainConfig,
    stage: _Stage,
    schedule: dict[str, int],
    dist: Distributed,
) -> None:
    """Train (or resume) ``model`` through one stage; ``schedule`` names every step count it
    builds on, so a resume under another one is refused; ``held`` are the windows of the
    periodic held-out measurement."""
    run_dir = Path(config.run_dir)
    optimizer = _optimizer(model, stage.lr, config.weight_decay)
    eval_context = min(stage.context_choices, default=0)
    model.train()
    objective = dist.wrap(_Objective(model, config.bf16))

    def step_loss(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rng = np.random.default_rng([config.seed, stage.seed_tag, step])
        index = rng.integers(0, len(train), size=config.batch)
        batch = _draw_batch(train, index, rng, config, stage, dist.device)
        total, count = objective({name: dist.shard(value) for name, value in batch.items()})
        loss = total / (dist.all_reduce_sum(count).clamp(min=1.0) / dist.world_size)
        return loss, {"cross_entropy": loss}

    def evaluate() -> dict[str, float]:
        return {"cross_entropy": evaluate_next_token(model, held, eval_context)["cross_entropy"]}

    every = {
        "checkpoint_every": config.checkpoint_every,
        "eval_every": config.eval_every * bool(held),
    }
    loop = Stage.in_run(run_dir, stage, schedule, **every)
    run_stage(loop, model, optimizer, step_loss, dist, evaluate=evaluate)


def _check_run_config(run_dir: Path, config: AutoregressiveTrainConfig) -> None:
    """Refuse to resume a run folder started with another model config or tokenizer."""
    path = run_dir / "run_config.json"
    current = {
        "model": config.model.to_dict(),
        "text_tokens": config.text_tokens,
        "tokenizer_dir": config.tokenizer_dir,
    }
    if path.exists():
        saved = json.loads(path.read_text())
        if saved != current:
            raise ValueError(
                f"{run_dir} holds a run of another model or tokenizer (saved {saved}, now "
                f"{current}); use another run_dir or delete it"
            )
    else:
        write_json_atomic(path, current)


def _check_tokenizer(tokenizer: VideoTokenizer, model: AutoregressiveConfig) -> None:
    tok = tokenizer.config
    if tok.kind != "discrete":
        raise ValueError(
            f"the autoregressive model needs a discrete (dv) tokenizer, got {tok.name}"
        )
    if (tok.codebook_size, tok.latent_size) != (model.vocab_size, model.latent_size):
        raise ValueError(
            f"tokenizer {tok.name} (fsq_levels {list(tok.fsq_levels)}) codes {tok.latent_size}"
            f" x {tok.latent_size} grids of {tok.codebook_size} ids; set "
            f"model.vocab_size={tok.codebook_size} and model.latent_size={tok.latent_size}"
        )


def initial_model(config: AutoregressiveTrainConfig) -> AutoregressiveWorldModel:
    """The pre-training model as a run starts it: ``config.model`` initialised from
    ``config.seed`` (the same on every rank)."""
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        return AutoregressiveWorldModel(config.model)


def _video2world_start(
    pretrained: AutoregressiveWorldModel, config: AutoregressiveTrainConfig
) -> AutoregressiveWorldModel:
    """The pre-trained model with cross-attention added, its new layers seeded."""
    with torch.random.fork_rng():
        torch.manual_seed(config.seed + 1)
        return with_text_conditioning(pretrained, config.text_tokens)


def train_autoregressive(config: AutoregressiveTrainConfig) -> dict[str, Path]:
    """Train (or resume) pretraining then Video2World and export both; returns their folders
    by stage name. Under ``torchrun`` every process runs this and rank 0 writes the files."""
    dist = distributed(config.device)
    exports = _train_autoregressive(config, dist)
    dist.barrier()
    return exports


def _report(
    stage: _Stage,
    model: AutoregressiveWorldModel,
    before: AutoregressiveWorldModel,
    train: TokenWindows,
    held_out: TokenWindows,
    held: TokenWindows,
    config: AutoregressiveTrainConfig,
    world_size: int,
) -> dict[str, Any]:
    """The held-out measurements of a stage's export against its starting weights."""
    report: dict[str, Any] = {
        "stage": stage.name,
        "steps": stage.steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "processes": world_size,
        "windows": {"train": len(train), "held_out": len(held_out), "measured": len(held)},
        "uniform_cross_entropy": math.log(model.config.vocab_size),
        "train_config": dataclasses.asdict(config),
    }
    if not len(held):
        return report
    contexts = [0] if stage.name == "pretrain" else list(config.context_frames)
    report["held_out"] = {
        f"context_{k}": {
            "unigram_cross_entropy": unigram_cross_entropy(train, held, model.config.vocab_size, k),
            "before": evaluate_next_token(before, held, k),
            "after": evaluate_next_token(model, held, k),
            **(
                {"after_null_text": evaluate_next_token(model, held, k, use_text=False)}
                if stage.with_text
                else {}
            ),
        }
        for k in contexts
    }
    if stage.name == "video2world":
        k = min(config.context_frames)
        report["held_out_video2world"] = evaluate_video2world(
            model, held, config.sampling, k, config.seed
        )
        if config.speed_clips:
            report["decoding"] = measure_decoding(
                model,
                held.take(np.arange(min(config.speed_clips, len(held)))),
                config.sampling,
                k,
                config.seed,
            )
    return report


def _train_autoregressive(config: AutoregressiveTrainConfig, dist: Distributed) -> dict[str, Path]:
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    run_dir = Path(config.run_dir)
    tokenizer = load_tokenizer(config.tokenizer_dir)
    _check_tokenizer(tokenizer, config.model)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _check_run_config(run_dir, config)
        token_windows(config, tokenizer)  # build the cache once, before the others read it
    dist.barrier()
    train, held_out = token_windows(config, tokenizer)
    held = spread_windows(held_out, config.eval_windows)
    model = initial_model(config).to(dist.device)
    exports: dict[str, Path] = {}
    schedule: dict[str, int] = {"batch": config.batch}
    for stage in _stages(config):
        # a stage continues the ones before it: a resume must match them all
        schedule = {**schedule, f"{stage.name}_steps": stage.steps}
        began = time.perf_counter()
        if exports:  # the hand-over: Video2World starts from the exported pre-trained weights
            pretrained = load_autoregressive(exports[STAGES[0]], config.model, dist.device)
            model = _video2world_start(pretrained, config)
            before = pretrained
        else:
            before = initial_model(config).to(dist.device)
        _train_stage(model, train, held, config, stage, schedule, dist)
        export = run_dir / "checkpoints" / stage.name
        exports[stage.name] = export
        if dist.is_main:
            model.eval().save(
                export,
                tokenizer.config,
                {"stage": stage.name, "tokenizer_dir": config.tokenizer_dir},
            )
            report = _report(stage, model, before, train, held_out, held, config, dist.world_size)
            report["wall_seconds_this_run"] = round(time.perf_counter() - began, 1)
            write_json_atomic(export / "training.json", report)
        dist.barrier()
    return exports


__all__ = [
    "AutoregressiveTrainConfig",
    "TokenWindows",
    "evaluate_next_token",
    "evaluate_video2world",
    "initial_model",
    "measure_decoding",
    "next_token_loss",
    "token_windows",
    "train_autoregressive",
    "unigram_cross_entropy",
]
