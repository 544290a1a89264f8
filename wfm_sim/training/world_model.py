"""Train a world model from footage: tokenizer first, then dynamics with reward/end heads.

Stage 1 fits the causal frame tokenizer on single frames. Stage 2 freezes it, codes every
frame once, and trains the dynamics model and heads on latent windows, unrolling a few steps
on its own predictions so that long imagined rollouts stay on the data. Stage 3 fine-tunes
both on longer unrolls, so the heads learn from the blurrier states that long imagined
episodes reach. An optional stage 4 fits the heads alone to whole imagined training
episodes (``imagined_heads``), the states the env shows them. Each stage saves its state every
``checkpoint_every`` steps and resumes from it; the finished model is exported as a
checkpoint folder with real start contexts from held-out episodes.

Under ``torchrun`` the same loops run data-parallel (``wfm_sim.distributed``): each of N
processes trains on its 1/N slice of every global batch, and only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from wfm_sim.checkpoints import require_export_dtype
from wfm_sim.data import (
    Episode,
    WindowSampler,
    draw_favouring,
    read_episodes,
    split_episodes,
)
from wfm_sim.data.shards import read_shard_episodes
from wfm_sim.distributed import Distributed, distributed
from wfm_sim.frames import coloured_patches
from wfm_sim.io import write_json_atomic
from wfm_sim.stage_loop import Stage, run_stage
from wfm_sim.tokenizer.checkpoint import load_tokenizer, read_tokenizer_config
from wfm_sim.tokenizer.losses import (
    salient_pixel_weights,
    ssim_loss,
    symmetric_salient_weights,
    weighted_l1,
    weighted_mse,
)
from wfm_sim.training.imagined_heads import (
    ImaginedTransitions,
    imagine_transitions,
    imagined_heads_loss,
    real_transitions,
)
from world_models import EnvModel, WorldModel, WorldModelConfig, read_config
from world_models.dynamics import known_planes
from world_models.heads import RewardEndHead
from world_models.model import measure_code_salience
from world_models.tokenizer import FrameCoder, PerFrameTokenizer


@dataclass
class TrainConfig:
    """Everything a world-model training run needs; Hydra fills it from experiments/conf.

    The batch sizes are global: under ``torchrun`` each of N processes takes batch/N.
    """

    footage_dir: str = "data/footage/driving"
    shards_dir: str = ""
    """If set, train on the curated shards there (clips at the model's frame size) instead of
    ``footage_dir``'s raw footage."""
    extra_footage_dirs: list[str] = field(default_factory=list)
    """Footage folders whose episodes all join the training set (none held out, none a start
    context): the real episodes a Dyna loop's policy drove (``experiments.dyna_rl``)."""
    condition_columns: list[str] = field(default_factory=list)
    """Ground-truth columns appended to each action, taken at the next frame (for example the
    camera pose ``cam_azimuth, cam_elevation, cam_distance``: a camera-conditioned model)."""
    run_dir: str = "runs/world_model/driving"
    export_dir: str = "runs/world_model/driving/checkpoint"
    held_out_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    tokenizer_steps: int = 1200
    tokenizer_batch: int = 64
    tokenizer_lr: float = 2e-3
    tokenizer_mse_weight: float = 0.0
    tokenizer_ssim_weight: float = 0.0
    """Weights of the weighted MSE and (1 - SSIM) terms beside the tokenizer's weighted L1
    (the tokenizer family's default loss is 1, 1, 0.2: SSIM keeps thin lane dashes)."""
    tokenizer_crash_share: float = 0.0
    """Share of each tokenizer batch drawn from the frames that end an episode in a crash (the
    rest uniform). highway-env paints crashed cars red in those frames alone, about 2% of the
    driving footage: drawn at that rate, the committed tokenizer learned none of the red
    (``experiments.bench.crash_frames``), so no imagined frame can show a crash."""
    dynamics_steps: int = 2000
    dynamics_batch: int = 32
    dynamics_lr: float = 1e-3
    horizon: int = 4
    finetune_steps: int = 600
    finetune_horizon: int = 8
    finetune_lr: float = 3e-4
    end_loss_weight: float = 0.5
    unroll_temperature: float = 1.0
    """A discrete model's token temperature when an unrolled stage draws its own next frame:
    the later steps then learn from contexts like those imagination gives at that temperature
    (the ranking report reads the model at 0.4, where uncertain cars fade into road)."""
    coloured_token_weight: float = 1.0
    """A discrete model's cross-entropy weight on hidden tokens whose patch of the true frame
    holds coloured pixels (the cars; see ``coloured_token_weights``), relative to the grey
    road: above 1 pushes the model to keep drawing an uncertain car rather than road."""
    crash_window_share: float = 0.0
    """Share of each dynamics batch drawn from the windows whose horizon holds a crash (the
    rest uniform; in the driving footage 14% of horizon-3 windows do): the dynamics sees
    collisions more often, while the heads' terms are importance-weighted back to the
    footage's own crash rate."""
    imagined_head_steps: int = 0
    """Steps of the last stage: the heads alone (dynamics frozen) fitted to every training
    episode imagined from its real start under its real actions (``imagined_heads``)."""
    imagined_head_batch: int = 256
    imagined_head_lr: float = 3e-4
    imagined_head_temperature: float = 0.4
    """Token temperature the stage-4 episodes are imagined at: the one the heads will be read
    at (the ranking report draws at 0.4, where imagined cars fade more than at 1.0)."""
    imagined_head_real_rows: bool = True
    """Also fit stage 4 to every training step with its real context (as many rows as the
    imagined ones), so the heads keep firing on real frames: fitted to imagined rows alone,
    end recall on real frames fell from 0.33 to 0.04."""
    bf16: bool = False
    """Train the dynamics stages under bf16 autocast (about 1.7x faster on CPU)."""
    weights_dtype: str = "float32"
    """dtype of the exported weights: float16 halves a checkpoint committed to the zoo."""
    checkpoint_every: int = 250
    max_start_contexts: int = 64
    init_checkpoint: str = ""
    """An exported checkpoint of the same model config to start from instead of random
    weights (train further; set tokenizer_steps=0 to keep its tokenizer as it is)."""
    tokenizer_checkpoint: str = ""
    """A family tokenizer checkpoint (``experiments.train_tokenizer``, e.g. trained on the
    curated shards) to code the frames with: its config becomes ``model.tokenizer`` and its
    weights the tokenizer's start (tokenizer_steps=0 keeps it as trained)."""
    model: WorldModelConfig = field(default_factory=WorldModelConfig)

    def __post_init__(self) -> None:
        if self.unroll_temperature < 0:
            raise ValueError(f"unroll_temperature must be >= 0, got {self.unroll_temperature}")
        if self.imagined_head_temperature < 0:
            raise ValueError(
                f"imagined_head_temperature must be >= 0, got {self.imagined_head_temperature}"
            )
        if not 0.0 <= self.crash_window_share < 1.0:
            raise ValueError(f"crash_window_share must be in [0, 1), got {self.crash_window_share}")
        if not 0.0 <= self.tokenizer_crash_share < 1.0:
            raise ValueError(
                f"tokenizer_crash_share must be in [0, 1), got {self.tokenizer_crash_share}"
            )
        if self.coloured_token_weight < 1.0:
            raise ValueError(
                f"coloured_token_weight must be >= 1 (1: every token alike), "
                f"got {self.coloured_token_weight}"
            )
        if self.init_checkpoint and self.tokenizer_checkpoint:
            raise ValueError(
                "init_checkpoint already holds a tokenizer: set init_checkpoint or "
                "tokenizer_checkpoint, not both"
            )
        require_export_dtype(self.weights_dtype)


class _FrameReconstruction(nn.Module):
    """Stage 1's objective as a module, so DDP averages its gradients through ``forward``."""

    def __init__(self, tokenizer: PerFrameTokenizer, mse_weight: float, ssim_weight: float) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.mse_weight = mse_weight
        self.ssim_weight = ssim_weight

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Salient-weighted L1 (+ weighted MSE and 1 - SSIM, as weighted in the config) of
        frames (B, H, W, 3) uint8 coded and decoded; a pixel counts as salient when it is in
        the frame or in its reconstruction (``symmetric_salient_weights``)."""
        target = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        recon = self.tokenizer.decode_float(self.tokenizer.encode(frames))
        weights = symmetric_salient_weights(recon, target)
        loss = weighted_l1(recon, target, weights)
        if self.mse_weight > 0:
            loss = loss + self.mse_weight * weighted_mse(recon, target, weights)
        if self.ssim_weight > 0:
            loss = loss + self.ssim_weight * ssim_loss(recon, target)
        return loss


def crash_frame_indices(episodes: list[Episode]) -> np.ndarray:
    """Indices, into the episodes' frames laid end to end, of the last frame of every episode
    that ended in a crash (its last transition terminated)."""
    ends = np.cumsum([len(e.frames) for e in episodes]) - 1
    crashed = np.array([e.ended_terminated for e in episodes], dtype=bool)
    return ends[crashed].astype(np.int64)


def _train_tokenizer(
    model: WorldModel, train: list[Episode], config: TrainConfig, dist: Distributed
) -> None:
    run_dir = Path(config.run_dir)
    frames = np.concatenate([e.frames for e in train])
    crash_frames = crash_frame_indices(train)
    if config.tokenizer_crash_share > 0 and len(crash_frames) == 0:
        raise ValueError(
            f"tokenizer_crash_share is {config.tokenizer_crash_share} but no training episode "
            "ends in a crash: set it to 0 for this footage"
        )
    model.tokenizer.train()
    objective = dist.wrap(
        _FrameReconstruction(
            model.tokenizer, config.tokenizer_mse_weight, config.tokenizer_ssim_weight
        )
    )

    def step_loss(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rng = np.random.default_rng([config.seed, 1, step])
        drawn, _ = draw_favouring(
            rng, config.tokenizer_batch, len(frames), crash_frames, config.tokenizer_crash_share
        )
        index = dist.shard(drawn)
        loss = objective(torch.from_numpy(frames[index]).to(dist.device))
        return loss, {"reconstruction": loss}

    stage = Stage(
        "tokenizer",
        config.tokenizer_steps,
        config.tokenizer_lr,
        run_dir / "tokenizer_state.safetensors",
        run_dir / "tb" / "tokenizer",
        schedule={"tokenizer_steps": config.tokenizer_steps},
        checkpoint_every=config.checkpoint_every,
        clip_norm=None,
    )
    optimizer = torch.optim.AdamW(model.tokenizer.parameters(), lr=config.tokenizer_lr)
    run_stage(stage, model.tokenizer, optimizer, step_loss, dist)


@torch.no_grad()
def encode_episodes(
    model: EnvModel, episodes: list[Episode], device: torch.device, batch: int = 256
) -> list[Episode]:
    """The same episodes with frames replaced by their latents (T+1, C, h, w) float32."""
    return [
        episode.with_frames(tokenize_frames(model, episode.frames, device, batch).cpu().numpy())
        for episode in tqdm(episodes, desc="encoding footage", leave=False)
    ]


@torch.no_grad()
def tokenize_frames(
    model: EnvModel, frames: np.ndarray, device: torch.device, batch: int = 256
) -> torch.Tensor:
    """Frames (N, H, W, 3) uint8 coded by ``model``'s tokenizer, ``batch`` at a time on
    ``device``: latents (N, C, h, w)."""
    model.tokenizer.eval()
    return torch.cat(
        [
            model.tokenizer.encode(torch.from_numpy(frames[i : i + batch]).to(device))
            for i in range(0, len(frames), batch)
        ]
    )


def dynamics_loss(
    model: WorldModel,
    windows: dict[str, torch.Tensor],
    pixels: torch.Tensor,
    context: int,
    end_pos_weight: float,
    norm: torch.Tensor | None = None,
    draws: dict[str, torch.Tensor] | None = None,
    teacher_forced: bool = False,
    coloured_token_weight: float = 1.0,
    temperature: float = 1.0,
    head_weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Unrolled loss over a window batch (tensors as in ``WindowBatch``, latents as frames).

    pixels: (B, K+H, H, W, 3) uint8, the same windows' frames. Each of the H steps is predicted
    from the model's own previous predictions. A continuous model's latent is compared with
    the true latent and, through the frozen decoder, its frame with the true frame (cars
    weighted up); a discrete model's hidden tokens are scored by cross-entropy given the rest
    (``_token_step``, tokens over coloured pixels weighted ``coloured_token_weight``), and the
    next step continues from the frame it draws (with
    ``draws``, from ``token_draws``, at token ``temperature``), as imagination does. The heads always see the prediction the model would
    imagine. Each term
    is a sum over valid transitions divided by ``norm``: by default their count in this batch;
    a rank of a data-parallel group passes the global count over the world size, so that the
    averaged gradients are those of the whole global batch. ``head_weights`` (B,) weigh each
    window's reward and end terms (importance weights of a draw that favours some windows, see
    ``draw_favouring``: the heads stay calibrated to the data's own crash rate).
    """
    latents, actions = windows["frames"], windows["actions"]
    valid = windows["valid"].float()
    horizon = valid.shape[1]
    if model.config.discrete and draws is None:
        draws = token_draws(len(latents), horizon, model.config)
    ctx = latents[:, :context]
    zero = torch.zeros((), device=latents.device)
    totals = {"latent": zero, "pixel": zero, "reward": zero, "end": zero}
    if norm is None:
        norm = valid.sum().clamp(min=1.0)
    head_valid = valid if head_weights is None else valid * head_weights.float()[:, None]
    for h in range(horizon):
        step_actions = actions[:, h : h + context]
        target = latents[:, context + h]
        if model.config.discrete:
            assert draws is not None
            step_draws = {name: value[:, h].to(latents.device) for name, value in draws.items()}
            weights = None
            if coloured_token_weight != 1.0:
                weights = coloured_token_weights(
                    pixels[:, context + h], target.shape[-1], coloured_token_weight
                )
            per_sample, predicted = _token_step(
                model,
                ctx,
                step_actions,
                target,
                step_draws,
                not teacher_forced,
                weights,
                temperature,
            )
        else:
            predicted = model.dynamics(ctx, step_actions)
            per_sample = (predicted - target).square().flatten(1).mean(1)
            target_pixels = pixels[:, context + h].permute(0, 3, 1, 2).float() / 127.5 - 1.0
            pixel_err = (
                salient_pixel_weights(target_pixels)
                * (model.tokenizer.decode_float(predicted) - target_pixels).abs()
            )
            totals["pixel"] = (
                totals["pixel"] + (pixel_err.flatten(1).mean(1) * valid[:, h]).sum() / norm
            )
        totals["latent"] = totals["latent"] + (per_sample * valid[:, h]).sum() / norm
        reward, end_logit = model.heads(ctx, step_actions, predicted.detach())
        reward_err = (reward - windows["rewards"][:, h]).square()
        totals["reward"] = totals["reward"] + (reward_err * head_valid[:, h]).sum() / norm
        end_err = F.binary_cross_entropy_with_logits(
            end_logit,
            windows["terminated"][:, h].float(),
            pos_weight=torch.tensor(end_pos_weight, device=end_logit.device),
            reduction="none",
        )
        totals["end"] = totals["end"] + (end_err * head_valid[:, h]).sum() / norm
        ctx = torch.cat([ctx[:, 1:], predicted[:, None]], dim=1)
    return totals


def coloured_token_weights(frames: torch.Tensor, side: int, weight: float) -> torch.Tensor:
    """Per-token loss weights (B, side, side): ``weight`` where the token's patch of ``frames``
    (B, H, W, 3) uint8 holds a coloured pixel (``wfm_sim.frames.coloured_patches``: the tokens
    of cars), 1 elsewhere."""
    covered = coloured_patches(frames, side).float()
    return 1.0 + (weight - 1.0) * covered


def token_draws(
    batch: int,
    horizon: int,
    config: WorldModelConfig,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The random numbers a discrete model's unrolled loss uses, per window and step:
    ``hide`` (B, H) the fraction of the next frame hidden, ``order`` (B, H, h*w) which
    positions, ``uniforms`` (B, H, rounds, 2, h, w) the drawing of the imagined frame.

    Drawn for the whole global batch from one generator and then sliced per rank, so a
    data-parallel run sees the numbers a single process would."""
    side = config.latent_size
    return {
        "hide": torch.rand((batch, horizon), generator=generator),
        "order": torch.rand((batch, horizon, side * side), generator=generator),
        "uniforms": torch.rand(
            (batch, horizon, config.decode_rounds, 2, side, side), generator=generator
        ),
    }


def _token_step(
    model: WorldModel,
    ctx: torch.Tensor,
    actions: torch.Tensor,
    target: torch.Tensor,
    draws: dict[str, torch.Tensor],
    draw: bool = True,
    weights: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One discrete step: (per-sample loss (B,), the next latent the model draws (B, C, h, w),
    or the true one when not ``draw``); ``draws`` are this step's slice of ``token_draws``,
    ``weights`` (B, h, w) the hidden tokens' weights (None: all 1), ``temperature`` the
    drawing's token temperature.

    The loss is MaskGIT's: a random part of the true next frame's tokens is shown (between
    none and all but one, the hidden fraction cos(pi/2 u) for u ~ U(0, 1)) and the hidden
    ones are scored by cross-entropy. The drawn latent comes from the full round-by-round
    decoding (no gradient), so what follows in training sees what imagination produces.
    """
    tokens = model.tokenizer.to_indices(target)
    b, h, w = tokens.shape
    hidden_count = (torch.cos(torch.pi / 2 * draws["hide"][:, None]) * h * w).ceil().clamp(min=1)
    rank = draws["order"].argsort(dim=1).argsort(dim=1)
    known = (rank >= hidden_count).view(b, h, w)
    logits = model.dynamics(ctx, actions, known_planes(target, known))
    hidden = (~known).float() if weights is None else (~known).float() * weights
    ce = F.cross_entropy(logits.float(), tokens, reduction="none")
    per_sample = (ce * hidden).flatten(1).sum(1) / hidden.flatten(1).sum(1)
    if not draw:
        return per_sample, target
    with torch.no_grad():
        drawn = model.draw_next_tokens(ctx, actions, draws["uniforms"], temperature)
    return per_sample, model.tokenizer.from_indices(drawn).to(target.dtype)


def end_pos_weight(episodes: list[Episode]) -> float:
    """Weight of the rare termination class in the end loss: the no-end/end ratio, at most 10
    (1 when nothing ends, as in footage whose episodes only time out)."""
    ends = sum(int(e.terminated.sum()) for e in episodes)
    if ends == 0:
        return 1.0
    transitions = sum(e.length for e in episodes)
    return float(min(10.0, (transitions - ends) / max(1, ends)))


@torch.no_grad()
def calibrate_end_head(heads: RewardEndHead, pos_weight: float) -> None:
    """Undo the class weighting in the end head's output bias.

    Weighting positives by w in the BCE moves the optimal logit by log(w); subtracting it makes
    the head's probability an estimate of the true end probability, which the env samples.
    """
    heads.out.bias[1] -= float(np.log(pos_weight))


@dataclass(frozen=True)
class _DynamicsStage:
    """One stage of dynamics + heads training: its name, length, unroll horizon and peak LR."""

    name: str
    steps: int
    horizon: int
    lr: float
    seed_tag: int
    teacher_forced: bool = False
    """Discrete models only: every step from true contexts, heads on the true next frame."""


def _dynamics_stages(config: TrainConfig) -> list[_DynamicsStage]:
    return [
        _DynamicsStage(
            "dynamics",
            config.dynamics_steps,
            config.horizon,
            config.dynamics_lr,
            2,
            teacher_forced=config.model.discrete,
        ),
        _DynamicsStage(
            "rollout_finetune",
            config.finetune_steps,
            config.finetune_horizon,
            config.finetune_lr,
            3,
        ),
    ]


class _DynamicsObjective(nn.Module):
    """The dynamics stages' objective as a module, so DDP averages its gradients through
    ``forward``; the valid transitions are counted over all ranks (see ``dynamics_loss``)."""

    def __init__(
        self,
        model: WorldModel,
        context: int,
        pos_weight: float,
        dist: Distributed,
        teacher_forced: bool = False,
        coloured_token_weight: float = 1.0,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.context = context
        self.pos_weight = pos_weight
        self.dist = dist
        self.teacher_forced = teacher_forced
        self.coloured_token_weight = coloured_token_weight
        self.temperature = temperature

    def forward(
        self,
        windows: dict[str, torch.Tensor],
        pixels: torch.Tensor,
        draws: dict[str, torch.Tensor] | None = None,
        head_weights: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The loss terms of ``dynamics_loss`` on this rank's slice of the global batch."""
        valid_total = self.dist.all_reduce_sum(windows["valid"].float().sum())
        norm = valid_total.clamp(min=1.0) / self.dist.world_size
        return dynamics_loss(
            self.model,
            windows,
            pixels,
            self.context,
            self.pos_weight,
            norm,
            draws,
            self.teacher_forced,
            self.coloured_token_weight,
            self.temperature,
            head_weights,
        )


def _train_dynamics(
    model: WorldModel,
    train: list[Episode],
    train_latents: Callable[[], list[Episode]],
    config: TrainConfig,
    dist: Distributed,
    pos_weight: float,
    stage: _DynamicsStage,
    schedule: dict[str, int],
) -> None:
    """Train (or resume) one stage; ``schedule`` names every step count it builds on, so a
    resume under another one is refused. ``train_latents`` codes ``train`` on first use."""
    run_dir = Path(config.run_dir)
    module = torch.nn.ModuleDict({"dynamics": model.dynamics, "heads": model.heads})
    optimizer = torch.optim.AdamW(module.parameters(), lr=stage.lr)
    loop = Stage.in_run(run_dir, stage, schedule, checkpoint_every=config.checkpoint_every)
    # (window sampler over latents, the same over pixels, the windows that hold a crash)
    prepared: list[tuple[WindowSampler, WindowSampler, np.ndarray]] = []
    objective = dist.wrap(
        _DynamicsObjective(
            model,
            config.model.context,
            pos_weight,
            dist,
            stage.teacher_forced,
            config.coloured_token_weight,
            config.unroll_temperature,
        )
    )
    module.train()

    def step_loss(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not prepared:  # code the footage only when this stage has steps left
            pixel_windows = WindowSampler(train, config.model.context, stage.horizon)
            ending = pixel_windows.ending_anchors(stage.horizon)
            if config.crash_window_share > 0 and len(ending) == 0:
                raise ValueError(
                    f"crash_window_share is {config.crash_window_share} but no training "
                    "episode ends in a crash: set it to 0 for this footage"
                )
            latent_windows = WindowSampler(train_latents(), config.model.context, stage.horizon)
            prepared.append((latent_windows, pixel_windows, ending))
        sampler, pixel_sampler, ending = prepared[0]
        rng = np.random.default_rng([config.seed, stage.seed_tag, step])
        global_index, global_weights = draw_favouring(
            rng, config.dynamics_batch, len(sampler), ending, config.crash_window_share
        )
        index = dist.shard(global_index)
        head_weights = torch.from_numpy(dist.shard(global_weights)).to(dist.device)
        windows = {
            k: torch.from_numpy(v).to(dist.device) for k, v in vars(sampler.batch(index)).items()
        }
        pixels = torch.from_numpy(pixel_sampler.batch(index).frames).to(dist.device)
        draws = None
        if config.model.discrete:  # fixed per step, so a resume repeats them
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            global_draws = token_draws(
                config.dynamics_batch, stage.horizon, config.model, generator
            )
            draws = {name: dist.shard(value) for name, value in global_draws.items()}
        with torch.autocast(dist.device.type, dtype=torch.bfloat16, enabled=config.bf16):
            losses = objective(windows, pixels, draws, head_weights)
        loss = (
            losses["latent"]
            + losses["pixel"]
            + losses["reward"]
            + config.end_loss_weight * losses["end"]
        )
        return loss, losses

    run_stage(loop, module, optimizer, step_loss, dist)


def _train_heads_on_imagination(
    model: WorldModel,
    train: list[Episode],
    config: TrainConfig,
    dist: Distributed,
    pos_weight: float,
    schedule: dict[str, int],
) -> None:
    """Stage 4 (when ``imagined_head_steps`` > 0): the heads on the imagined training episodes,
    kept in ``run_dir/imagined_transitions.safetensors`` (made once, atomically; every rank
    makes the same one from the seed when it is missing)."""
    if config.imagined_head_steps <= 0:
        return
    run_dir = Path(config.run_dir)
    # horizon 0: no unroll here, the bank holds whole imagined episodes
    plan = _DynamicsStage(
        "imagined_heads", config.imagined_head_steps, 0, config.imagined_head_lr, 4
    )
    loop = Stage.in_run(run_dir, plan, schedule, checkpoint_every=config.checkpoint_every)
    optimizer = torch.optim.AdamW(model.heads.parameters(), lr=config.imagined_head_lr)
    banks: list[ImaginedTransitions] = []
    model.dynamics.requires_grad_(False)  # before the DDP wrap: only the heads are reduced
    objective = dist.wrap(_ImaginedHeadsObjective(model, pos_weight, config.end_loss_weight))
    model.heads.train()

    def step_loss(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not banks:  # imagine the episodes only when this stage has steps left
            banks.append(_imagined_bank(model, train, config, dist))
            model.heads.train()  # imagining put the whole model in eval mode
        rng = np.random.default_rng([config.seed, plan.seed_tag, step])
        index = dist.shard(rng.integers(0, len(banks[0]), size=config.imagined_head_batch))
        losses = objective(banks[0], index)
        return losses["loss"], {"reward": losses["reward"], "end": losses["end"]}

    run_stage(loop, model.heads, optimizer, step_loss, dist)
    model.dynamics.requires_grad_(True)


def _imagined_bank(
    model: WorldModel, train: list[Episode], config: TrainConfig, dist: Distributed
) -> ImaginedTransitions:
    path = Path(config.run_dir) / "imagined_transitions.safetensors"
    if path.exists():
        return ImaginedTransitions.load(path)
    bank = imagine_transitions(
        model, train, config.seed, device=dist.device, temperature=config.imagined_head_temperature
    )
    if config.imagined_head_real_rows:
        bank = ImaginedTransitions.concat([bank, real_transitions(model, train, dist.device)])
    if dist.is_main:
        bank.save(path)
    return bank


class _ImaginedHeadsObjective(nn.Module):
    """Stage 4's objective as a module, so DDP averages the heads' gradients."""

    def __init__(self, model: WorldModel, pos_weight: float, end_loss_weight: float) -> None:
        super().__init__()
        self.model = model
        self.pos_weight = pos_weight
        self.end_loss_weight = end_loss_weight

    def forward(self, bank: ImaginedTransitions, index: np.ndarray) -> dict[str, torch.Tensor]:
        """``imagined_heads_loss`` on this rank's rows of the global batch."""
        device = next(self.model.heads.parameters()).device
        return imagined_heads_loss(
            self.model, bank, index, self.pos_weight, self.end_loss_weight, device
        )


def start_contexts(held_out: list[Episode], config: TrainConfig) -> dict[str, torch.Tensor]:
    """The world-model env's real starts for a run's held-out episodes
    (``start_context_tensors``)."""
    return start_context_tensors(held_out, config.model.context, config.max_start_contexts)


def start_context_tensors(
    held_out: list[Episode], context: int, max_starts: int
) -> dict[str, torch.Tensor]:
    """The first K frames (N, K, H, W, 3) and K-1 actions (N, K-1) of up to ``max_starts``
    held-out episodes long enough not to end inside them: the real starts of a world-model
    env."""
    usable = [e for e in held_out if e.length >= context][:max_starts]
    if not usable:
        raise ValueError(f"no held-out episode lasts {context} steps; record more footage")
    return {
        "frames": torch.from_numpy(np.stack([e.frames[:context] for e in usable])),
        "actions": torch.from_numpy(np.stack([e.actions[: context - 1] for e in usable])),
    }


def training_episodes(config: TrainConfig) -> list[Episode]:
    """The episodes a run trains on (see ``load_episodes``)."""
    return load_episodes(
        config.footage_dir, config.shards_dir, config.model.frame_size, config.condition_columns
    )


def extra_episodes(folders: Sequence[str]) -> list[Episode]:
    """Every episode of a trainer's ``extra_footage_dirs`` (all trained on, none held out),
    refused when a transition has no action."""
    episodes = [e for folder in folders for e in read_episodes(folder)]
    _require_actions(episodes, ", ".join(folders))
    return episodes


def load_episodes(
    footage_dir: str,
    shards_dir: str,
    frame_size: int,
    condition_columns: Sequence[str] = (),
) -> list[Episode]:
    """Curated shard clips at ``frame_size`` if ``shards_dir`` is set, else the raw footage's
    episodes (actions extended by ``condition_columns``, see ``read_episodes``); the same
    choice for training and for measuring a trained model."""
    if shards_dir:
        if condition_columns:
            raise ValueError("condition_columns need raw footage (footage_dir), not shards")
        episodes = read_shard_episodes(shards_dir, resolution=f"{frame_size}x{frame_size}")
    else:
        episodes = read_episodes(footage_dir, condition_columns)
    _require_actions(episodes, shards_dir or footage_dir)
    return episodes


def _require_actions(episodes: Sequence[Episode], source: str) -> None:
    """Refuse footage without actions (e.g. Text2World synthetic clips): an action-conditioned
    model cannot learn from transitions whose action is unknown."""
    for episode in episodes:
        actions = np.asarray(episode.actions)
        missing = np.isnan(actions).any() if actions.dtype.kind == "f" else (actions < 0).any()
        if missing:
            raise ValueError(
                f"episode {episode.episode_id} of {source} has transitions without an action "
                "(footage generated from text has none); a world model trains on footage "
                "with actions"
            )


def with_family_tokenizer(config: TrainConfig) -> TrainConfig:
    """``config`` with ``model.tokenizer`` set to the config of ``tokenizer_checkpoint``;
    a different tokenizer already named in ``model.tokenizer`` is refused."""
    family = read_tokenizer_config(config.tokenizer_checkpoint)
    named = config.model.family_tokenizer()
    if named is not None and named != family:
        raise ValueError(
            f"model.tokenizer names {named.name} {named.to_dict()}, but tokenizer_checkpoint "
            f"{config.tokenizer_checkpoint} holds {family.name} {family.to_dict()}"
        )
    model = dataclasses.replace(config.model, tokenizer=family.to_dict())
    return dataclasses.replace(config, model=model)


def with_init_tokenizer(config: TrainConfig) -> TrainConfig:
    """``config`` with ``model.tokenizer`` taken from ``init_checkpoint`` when that checkpoint
    codes frames with a family tokenizer and ``config`` names none: a model trained further
    keeps the tokenizer it was trained with (one named differently is refused on loading)."""
    saved = read_config(config.init_checkpoint).tokenizer
    if not saved or config.model.tokenizer:
        return config
    return dataclasses.replace(config, model=dataclasses.replace(config.model, tokenizer=saved))


def _start_from_checkpoint(model: WorldModel, folder: str) -> None:
    """Load an exported checkpoint of the same config into ``model`` to train it further,
    undoing the end head's calibration (``calibrate_end_head``) that its export applied. The
    drawing options (``decode_rounds``, ...) may differ: training goes on under ``model``'s."""
    drawn_as_saved = model.config.with_drawing_of(read_config(folder))
    exported = WorldModel.load(folder, expected_config=drawn_as_saved)
    model.load_state_dict(exported.state_dict())
    report = json.loads((Path(folder) / "training.json").read_text())
    with torch.no_grad():
        model.heads.out.bias[1] += float(np.log(report["end_pos_weight"]))


def trained_with(folder: str | Path) -> TrainConfig:
    """The ``TrainConfig`` of the run that exported the checkpoint ``folder``, to train it
    further the same way (``experiments.dyna_rl``); its model is the checkpoint's own config."""
    report = json.loads((Path(folder) / "training.json").read_text())
    saved = {**report["train_config"], "model": read_config(folder)}
    unknown = sorted(set(saved) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ValueError(f"{folder} was trained with settings this code lacks: {unknown}")
    return TrainConfig(**saved)


def _lineage(init_checkpoint: str) -> dict[str, Any] | None:
    """The training report of the checkpoint a run started from (itself carrying the one
    before it), without its held-out episode list; None for a run from random weights."""
    if not init_checkpoint:
        return None
    report = json.loads((Path(init_checkpoint) / "training.json").read_text())
    report.pop("held_out_episode_ids", None)
    return report


def train_world_model(config: TrainConfig) -> Path:
    """Train (or resume) both stages and export the checkpoint folder; returns its path.

    Under ``torchrun`` every process runs this; rank 0 alone writes the split, the states and
    the export, and every rank returns the export folder's path.
    """
    dist = distributed(config.device)
    export_dir = _train_world_model(config, dist)
    dist.barrier()  # rank 0 writes the export: every rank returns once it is complete
    return export_dir


def _train_world_model(config: TrainConfig, dist: Distributed) -> Path:
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = dist.device
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    episodes = training_episodes(config)
    train, held_out = split_episodes(episodes, config.held_out_fraction, config.seed)
    extra = extra_episodes(config.extra_footage_dirs)
    trained_on = train + extra
    if dist.is_main:
        write_json_atomic(
            run_dir / "split.json",
            {"train": [e.episode_id for e in train], "held_out": [e.episode_id for e in held_out]},
        )
    if config.tokenizer_checkpoint:
        config = with_family_tokenizer(config)
    if config.init_checkpoint:
        config = with_init_tokenizer(config)
    model = WorldModel(config.model).to(device)
    if config.init_checkpoint:
        _start_from_checkpoint(model, config.init_checkpoint)
    if config.tokenizer_checkpoint:
        assert isinstance(model.tokenizer, FrameCoder)
        trained = load_tokenizer(config.tokenizer_checkpoint, config.model.family_tokenizer())
        model.tokenizer.video.load_state_dict(trained.state_dict())
    started = time.perf_counter()
    _train_tokenizer(model, trained_on, config, dist)
    model.tokenizer.requires_grad_(False)
    pos_weight = end_pos_weight(trained_on)
    train_latents = functools.cache(lambda: encode_episodes(model, trained_on, device))
    if model.config.discrete:  # which tokens show cars, read off the training frames' codes
        coded = zip(train_latents(), trained_on, strict=True)
        model.code_salience.copy_(
            measure_code_salience(
                (
                    (
                        model.tokenizer.to_indices(torch.from_numpy(c.frames).to(device)),
                        torch.from_numpy(e.frames),
                    )
                    for c, e in coded
                ),
                model.config.codebook_size,
            )
        )
        model.salience_source = {
            "footage": config.shards_dir or config.footage_dir,
            "frames": str(sum(len(e.frames) for e in trained_on)),
        }
    # a stage continues the tokenizer and the stages before it: a resume must match them all
    schedule = {"tokenizer_steps": config.tokenizer_steps}
    for stage in _dynamics_stages(config):
        schedule = {**schedule, f"{stage.name}_steps": stage.steps}
        _train_dynamics(model, trained_on, train_latents, config, dist, pos_weight, stage, schedule)
    schedule = {**schedule, "imagined_head_steps": config.imagined_head_steps}
    _train_heads_on_imagination(model, trained_on, config, dist, pos_weight, schedule)
    calibrate_end_head(model.heads, pos_weight)
    export_dir = Path(config.export_dir)
    if not dist.is_main:
        return export_dir
    model.eval().save(
        export_dir,
        extra_tensors=start_contexts(held_out, config),
        weights_dtype=getattr(torch, config.weights_dtype),
    )
    write_json_atomic(
        export_dir / "training.json",
        {
            "footage_dir": config.footage_dir,
            "shards_dir": config.shards_dir,
            "extra_footage_dirs": list(config.extra_footage_dirs),
            "episodes": {"train": len(train), "held_out": len(held_out), "extra": len(extra)},
            "frames": {
                "train": int(sum(len(e.frames) for e in train)),
                "held_out": int(sum(len(e.frames) for e in held_out)),
                "extra": int(sum(len(e.frames) for e in extra)),
            },
            "held_out_episode_ids": [e.episode_id for e in held_out],
            "steps": {
                "tokenizer": config.tokenizer_steps,
                **{s.name: s.steps for s in _dynamics_stages(config)},
                "imagined_heads": config.imagined_head_steps,
            },
            "train_config": dataclasses.asdict(config),
            "started_from": _lineage(config.init_checkpoint),
            "end_pos_weight": pos_weight,
            "processes": dist.world_size,
            "wall_seconds_this_run": round(time.perf_counter() - started, 1),
        },
    )
    return export_dir
