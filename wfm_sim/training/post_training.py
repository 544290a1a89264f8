"""Action post-training: a pre-trained diffusion or autoregressive WFM becomes an
action-conditioned next-frame model with a reward and termination head (an ``ActionModel``),
the backend a world-model env can step.

Data: the raw footage's episodes (with actions, rewards and crashes), every frame coded on its
own by the frozen tokenizer the WFM was pre-trained over, cut into windows of the K = T - 1
frames before a transition plus the frame it leads to (``WindowSampler``, padding before an
episode's start as the MaskGIT world model sees it). The held-out episodes are those of a
reference checkpoint (``split_from``, the committed driving model by default), so every
backend is measured on the same footage. Actions are the footage's: discrete indices
(driving, ``n_actions``) or vectors in a box (a robot's torques, ``action_dim``), the same code
path.

One stage of ``steps`` optimizer steps trains the backbone (conditioned on the actions through
``with_frame_conditioning``'s zero-initialised projection, so a pre-trained model starts from
its own Video2World predictions) and the head together:

- diffusion: EDM's denoising error on the last frame, the K before it given clean;
- autoregressive: cross-entropy of the last frame's tokens given every earlier one;
- head: squared reward error plus the class-weighted crash BCE (calibrated at export).

``init="scratch"`` trains the same network from random weights on the same data, which is
what the pre-training is measured against. The stage resumes from its saved state; the export
is an ``ActionModel`` checkpoint folder with start contexts and a ``training.json``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wfm_sim.data import Episode, WindowSampler, read_episodes, split_episodes
from wfm_sim.distributed import Distributed, distributed
from wfm_sim.io import write_json_atomic
from wfm_sim.stage_loop import Stage, run_stage
from wfm_sim.tokenizer import load_tokenizer
from wfm_sim.training.diffusion import denoising_error, fit_latent_statistics
from wfm_sim.training.world_model import (
    calibrate_end_head,
    encode_episodes,
    end_pos_weight,
    start_context_tensors,
)
from world_models import autoregressive, diffusion, held_out_episode_ids
from world_models.action_model import (
    BACKENDS,
    ActionModel,
    ActionModelConfig,
    action_features,
)

INITS = ("pretrained", "scratch")


@dataclass
class PostTrainConfig:
    """Everything an action post-training run needs; Hydra fills it from experiments/conf.

    ``batch`` is global: under ``torchrun`` each of N processes takes batch / N.
    """

    backend: str = "diffusion"
    """``diffusion`` or ``autoregressive``."""
    pretrained: str = "runs/diffusion/cv_4x8x8/checkpoints/video2world"
    """The pre-trained WFM checkpoint folder: its weights (``init="pretrained"``) or only its
    architecture (``init="scratch"``)."""
    init: str = "pretrained"
    tokenizer_dir: str = "runs/tokenizer/cv_4x8x8/checkpoint"
    footage_dir: str = "data/footage/driving"
    split_from: str = "world_models/zoo/driving"
    """A world-model checkpoint whose held-out episodes are held out here too ('' = split by
    ``held_out_fraction`` and ``seed``)."""
    held_out_fraction: float = 0.1
    run_dir: str = "runs/post_train/driving_diffusion"
    export_dir: str = ""
    """Where the checkpoint goes ('' = ``run_dir/checkpoint``)."""
    n_actions: int = 5
    """The footage's discrete actions (highway-env's DiscreteMetaAction: 5)."""
    action_dim: int = 0
    """Vector actions instead (a robot's joint torques): their size, 0 for discrete ones."""
    action_low: list[float] = field(default_factory=list)
    """Per-dimension lower bounds of vector actions (scaled to [-1, 1] as conditioning)."""
    action_high: list[float] = field(default_factory=list)
    """Per-dimension upper bounds of vector actions."""
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    steps: int = 1500
    batch: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    head_width: int = 64
    head_weight: float = 1.0
    p_mean: float = -1.0
    p_std: float = 1.4
    bf16: bool = True
    checkpoint_every: int = 250
    max_start_contexts: int = 256
    sampler: dict[str, Any] = field(default_factory=dict)
    """The backend's sampler at env time: ``SamplerConfig`` fields (diffusion) or
    ``SamplingConfig`` fields (autoregressive); empty = its defaults."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if min(self.steps, self.batch, self.checkpoint_every) < 1:
            raise ValueError("steps, batch and checkpoint_every must be >= 1")

    @property
    def export_folder(self) -> Path:
        """The exported checkpoint's folder."""
        return Path(self.export_dir) if self.export_dir else Path(self.run_dir) / "checkpoint"


def build_model(config: PostTrainConfig) -> ActionModel:
    """The ``ActionModel`` to post-train: the pre-trained backbone (or the same network with
    fresh weights) taking actions, the tokenizer's weights, a fresh head."""
    tokenizer = load_tokenizer(config.tokenizer_dir)
    backbone: diffusion.DiffusionWorldModel | autoregressive.AutoregressiveWorldModel
    if config.backend == "diffusion":
        backbone = diffusion.load_diffusion(config.pretrained)
        if config.init == "scratch":  # latent statistics are fitted on the post-training data
            with torch.random.fork_rng():
                torch.manual_seed(config.seed)
                backbone = diffusion.DiffusionWorldModel(backbone.config)
        sampler = dataclasses.asdict(diffusion.SamplerConfig(**config.sampler))
    else:
        backbone = autoregressive.load_autoregressive(config.pretrained)
        if config.init == "scratch":
            with torch.random.fork_rng():
                torch.manual_seed(config.seed)
                backbone = autoregressive.AutoregressiveWorldModel(backbone.config)
        sampler = dataclasses.asdict(autoregressive.SamplingConfig(**config.sampler))
    features = (config.action_dim or config.n_actions) + 1
    conditioned: diffusion.DiffusionWorldModel | autoregressive.AutoregressiveWorldModel
    if isinstance(backbone, diffusion.DiffusionWorldModel):
        conditioned = diffusion.with_frame_conditioning(backbone, features)
    else:
        conditioned = autoregressive.with_frame_conditioning(backbone, features)
    model_config = ActionModelConfig(
        backend=config.backend,
        backbone=conditioned.config.to_dict(),
        tokenizer=tokenizer.config.to_dict(),
        sampler=sampler,
        n_actions=config.n_actions,
        action_dim=config.action_dim,
        action_low=list(config.action_low),
        action_high=list(config.action_high),
        head_width=config.head_width,
    )
    with torch.random.fork_rng():
        torch.manual_seed(config.seed + 1)
        model = ActionModel(model_config)
    model.tokenizer.video.load_state_dict(tokenizer.state_dict())
    model.backbone.load_state_dict(conditioned.state_dict())
    return model


def _split(config: PostTrainConfig, episodes: list[Episode]) -> tuple[list[Episode], list[Episode]]:
    """(train, held_out): the reference checkpoint's held-out episodes, or a seeded split."""
    if not config.split_from:
        return split_episodes(episodes, config.held_out_fraction, config.seed)
    held = held_out_episode_ids(config.split_from)
    train = [e for e in episodes if e.episode_id not in held]
    held_out = [e for e in episodes if e.episode_id in held]
    if not held_out or not train:
        raise ValueError(
            f"the footage in {config.footage_dir} holds {len(held_out)} of the held-out "
            f"episodes of {config.split_from} and {len(train)} others: record the footage it "
            "was trained on (make record)"
        )
    return train, held_out


def _draw_batch(
    model: ActionModel,
    windows: WindowSampler,
    size: int,
    rng: np.random.Generator,
    config: PostTrainConfig,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """A global batch of ``size`` windows drawn from ``rng`` (and the diffusion noise levels
    and noise), on ``device``: every rank of a data-parallel group draws the same one and
    keeps its slice."""
    batch = windows.sample(size, rng)
    drawn = {
        "frames": torch.from_numpy(batch.frames),
        "actions": torch.from_numpy(batch.actions),
        "rewards": torch.from_numpy(batch.rewards[:, 0]),
        "crashed": torch.from_numpy(batch.terminated[:, 0]).float(),
        "valid": torch.from_numpy(batch.valid[:, 0]).float(),
    }
    if isinstance(model.backbone, diffusion.DiffusionWorldModel):
        sigma = np.exp(config.p_mean + config.p_std * rng.standard_normal(size))
        drawn["sigma"] = torch.from_numpy(sigma).float()
        drawn["noise"] = torch.from_numpy(rng.standard_normal(batch.frames.shape)).float()
    return {name: value.to(device) for name, value in drawn.items()}


def _backbone_loss(
    model: ActionModel, batch: dict[str, torch.Tensor], config: PostTrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum, count) of the backbone's loss on the last frame of each window, the K before it
    given: EDM's weighted denoising error (diffusion) or the tokens' cross-entropy (AR)."""
    frames = batch["frames"]
    cond = action_features(batch["actions"], model.config)
    k = frames.shape[1] - 1
    with torch.autocast(frames.device.type, dtype=torch.bfloat16, enabled=config.bf16):
        if isinstance(model.backbone, diffusion.DiffusionWorldModel):
            mask = torch.zeros(len(frames), k + 1, dtype=torch.bool, device=frames.device)
            mask[:, :k] = True
            return denoising_error(
                model.backbone,
                model.backbone.normalize(frames),
                batch["sigma"],
                batch["noise"],
                None,
                None,
                mask,
                cond,
            )
        tokens = model.tokenizer.to_indices(frames).flatten(1)
        logits = model.backbone(tokens, frame_cond=cond)
        n = model.backbone.config.tokens_per_frame
        targets = tokens[:, k * n :].flatten()
        total = F.cross_entropy(logits[:, k * n :].float().flatten(0, 1), targets, reduction="sum")
        return total, torch.tensor(float(len(targets)), device=frames.device)


def _head_loss(
    model: ActionModel, batch: dict[str, torch.Tensor], pos_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum, count) over the valid windows of the squared reward error plus the
    class-weighted crash BCE, on the true next latent."""
    frames, valid = batch["frames"], batch["valid"]
    reward, end_logit = model.heads(frames[:, :-1], batch["actions"], frames[:, -1])
    crash = F.binary_cross_entropy_with_logits(
        end_logit,
        batch["crashed"],
        pos_weight=torch.tensor(pos_weight, device=frames.device),
        reduction="none",
    )
    return (((reward - batch["rewards"]).square() + crash) * valid).sum(), valid.sum()


class _Objective(nn.Module):
    """Both losses as one module, so DDP averages the backbone's and the head's gradients
    through ``forward``."""

    def __init__(self, model: ActionModel, config: PostTrainConfig, pos_weight: float) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.pos_weight = pos_weight

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(backbone sum, backbone count, head sum, head count) on this rank's slice."""
        return (
            *_backbone_loss(self.model, batch, self.config),
            *_head_loss(self.model, batch, self.pos_weight),
        )


@dataclass(frozen=True)
class _Plan:
    name: str
    steps: int
    lr: float


def post_train(config: PostTrainConfig) -> Path:
    """Post-train (or resume) and export the action model; returns the checkpoint folder.
    Under ``torchrun`` every process runs this and rank 0 writes the files."""
    dist = distributed(config.device)
    export = _post_train(config, dist)
    dist.barrier()
    return export


def _post_train(config: PostTrainConfig, dist: Distributed) -> Path:
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    episodes = read_episodes(config.footage_dir)
    train, held_out = _split(config, episodes)
    model = build_model(config).to(dist.device)
    model.tokenizer.requires_grad_(False)
    began = time.perf_counter()
    train_latents = encode_episodes(model, train, dist.device)
    if config.init == "scratch" and isinstance(model.backbone, diffusion.DiffusionWorldModel):
        mean, sigma_data = fit_latent_statistics(
            torch.from_numpy(np.concatenate([e.frames for e in train_latents]))[:, None]
        )
        model.backbone.set_latent_statistics(mean.to(dist.device), sigma_data)
    windows = WindowSampler(train_latents, model.config.context, 1)
    pos_weight = end_pos_weight(train)
    trained = [p for name, p in model.named_parameters() if not name.startswith("tokenizer.")]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    model.train()
    objective = dist.wrap(_Objective(model, config, pos_weight))

    def global_mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        # DDP averages the ranks' gradients: each divides by the global count / world size
        return total / (dist.all_reduce_sum(count).clamp(min=1.0) / dist.world_size)

    def step_loss(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rng = np.random.default_rng([config.seed, 7, step])
        batch = _draw_batch(model, windows, config.batch, rng, config, dist.device)
        parts = objective({name: dist.shard(value) for name, value in batch.items()})
        backbone, heads = global_mean(*parts[:2]), global_mean(*parts[2:])
        return backbone + config.head_weight * heads, {"backbone": backbone, "heads": heads}

    plan = _Plan(f"post_train_{config.backend}_{config.init}", config.steps, config.lr)
    schedule = {"steps": config.steps, "batch": config.batch}
    stage = Stage.in_run(run_dir, plan, schedule, checkpoint_every=config.checkpoint_every)
    result = run_stage(stage, model, optimizer, step_loss, dist, clipped=trained)
    calibrate_end_head(model.heads, pos_weight)
    export = config.export_folder
    if dist.is_main:
        model.cpu().eval().save(
            export,
            extra_tensors=start_context_tensors(
                held_out, model.config.context, config.max_start_contexts
            ),
            info={"backend": config.backend, "init": config.init, "pretrained": config.pretrained},
        )
        write_json_atomic(
            export / "training.json",
            {
                "footage_dir": config.footage_dir,
                "shards_dir": "",
                "frame_size": model.config.frame_size,
                "episodes": {"train": len(train), "held_out": len(held_out)},
                "frames": {"train": int(sum(len(e.frames) for e in train))},
                "held_out_episode_ids": [e.episode_id for e in held_out],
                "steps": config.steps,
                "seconds_per_step": result.seconds_per_step,
                "parameters": sum(p.numel() for p in trained),
                "end_pos_weight": pos_weight,
                "train_config": dataclasses.asdict(config),
                "processes": dist.world_size,
                "wall_seconds_this_run": round(time.perf_counter() - began, 1),
            },
        )
    return export


__all__ = ["INITS", "PostTrainConfig", "build_model", "post_train"]
