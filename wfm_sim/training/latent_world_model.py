"""Training the latent world model (``world_models.latent``) that planners step at MLP speed.

The source world model's frame tokenizer codes the footage once (frozen); windows of K
context frames and H steps are drawn from the training episodes (the source model's own
split); the latent network encodes the context, steps the state under the real actions
and learns, at every step, the reward, whether the step ends the episode, and the state
of the real next frames (a stop-gradient consistency target, as TD-MPC2), each term
weighted by ``horizon_decay ** h``. Resumable, TensorBoard, progress bar; held-out
measures of the imagined rewards and ends go into the exported checkpoint.

More recordings of the same drivers (``more_footage_dirs``) are drawn alike with the
footage. A Dyna round fine-tunes a trained latent model (``init_checkpoint``) on the footage
plus real episodes its own planner drove (``extra_footage_dirs``), a fixed share of every
batch drawn from the latter: the model must be right where the planner takes the car.

Plan labels (``plan_labels_dirs``) add what footage cannot show: the real outcome of plans
the planner weighed but nobody drove, each played on a clone of the simulator. The model
steps each labelled plan from its decision's real context and learns its real rewards and
ends (no consistency term: the plan's frames were never rendered); the last parts are held
out and measured.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

import world_models
from wfm_sim.checkpoints import require_export_dtype
from wfm_sim.data.footage import Episode, read_episodes
from wfm_sim.data.plan_labels import join_parts, part_paths
from wfm_sim.data.windows import WindowBatch, WindowSampler, draw_favouring, split_episodes
from wfm_sim.distributed import distributed
from wfm_sim.io import write_json_atomic
from wfm_sim.stage_loop import Stage, run_stage
from wfm_sim.training.imagined_heads import roc_auc
from wfm_sim.training.world_model import encode_episodes, extra_episodes, tokenize_frames
from world_models.latent import LatentWorldModel, LatentWorldModelConfig
from world_models.model import WorldModel


@dataclass
class LatentTrainConfig:
    """Where the footage and the source world model are, the split (the source model's:
    same fraction and seed), the window horizon, the loss weights and the network widths."""

    world_model: str = "driving"
    """Zoo name or checkpoint folder of the world model whose frame tokenizer codes frames."""
    footage_dir: str = "data/footage/driving"
    held_out_fraction: float = 0.1
    seed: int = 0
    horizon: int = 5
    batch_size: int = 256
    steps: int = 3000
    lr: float = 1e-3
    consistency_weight: float = 1.0
    reward_weight: float = 1.0
    end_weight: float = 1.0
    horizon_decay: float = 0.7
    """Weight of step h's terms is ``horizon_decay ** h`` (TD-MPC2's rho)."""
    state_dim: int = 256
    hidden: int = 512
    conv_width: int = 32
    held_out_windows: int = 2048
    """Held-out windows the exported metrics are measured on (drawn once, seeded)."""
    eval_every: int = 500
    checkpoint_every: int = 250
    weights_dtype: str = "float32"
    """dtype of the exported weights (float16 halves a checkpoint committed to the zoo); the
    exported metrics are measured with the weights rounded to it."""
    init_checkpoint: str | None = None
    """A latent world model (zoo name or folder) to start from instead of fresh weights; its
    config must be the one these widths and the source model make."""
    more_footage_dirs: list[str] = field(default_factory=list)
    """More footage folders trained on as ``footage_dir`` is, each window as likely as one of
    its (never held out): more recordings of the same drivers. A Dyna round keeps them while
    ``extra_footage_dirs`` holds its planner's episodes."""
    extra_footage_dirs: list[str] = field(default_factory=list)
    """Footage folders trained on besides ``footage_dir`` (never held out) at their own
    ``extra_footage_share`` of every batch: e.g. real episodes driven by a planner over this
    model, for a Dyna round."""
    eval_footage_dirs: list[str] = field(default_factory=list)
    """Footage folders measured on and never trained on (e.g. real episodes a planner over
    this model drove after its training): how well the model predicts the states its planner
    leads to, which the footage's held-out episodes do not show. Exported as
    ``eval_footage`` in metrics.json."""
    extra_footage_share: float = 0.5
    """Share of each batch drawn from the extra footage's windows (when there is some): a
    little of the planner's own driving would otherwise be lost in the footage."""
    plan_labels_dirs: list[str] = field(default_factory=list)
    """Plan-label folders (``experiments.plan_labels``) trained on besides the footage: the
    real rewards and ends of candidate plans at real decisions, which teach the model the
    plans its planner weighs that footage never shows."""
    plan_label_weight: float = 1.0
    """Weight of the plan labels' reward and end terms beside the footage's."""
    plan_label_batch: int = 128
    """Labelled plans in each step's batch."""
    plan_label_held_out_parts: int = 1
    """Each labels folder's last parts (whole real episodes) are held out and measured."""
    run_dir: str = "runs/latent_world_model/driving"
    export_dir: str = "runs/latent_world_model/driving/checkpoint"
    device: str = "auto"
    threads: int = 2

    def __post_init__(self) -> None:
        if min(self.horizon, self.batch_size, self.steps, self.held_out_windows) < 1:
            raise ValueError("horizon, batch_size, steps and held_out_windows must be >= 1")
        if not 0.0 <= self.extra_footage_share < 1.0:
            raise ValueError(
                f"extra_footage_share must lie in [0, 1), got {self.extra_footage_share}"
            )
        if not 0.0 < self.horizon_decay <= 1.0:
            raise ValueError(f"horizon_decay must lie in (0, 1], got {self.horizon_decay}")
        weights = (
            self.consistency_weight,
            self.reward_weight,
            self.end_weight,
            self.plan_label_weight,
        )
        if min(weights) < 0:
            raise ValueError("loss weights must be >= 0")
        if self.plan_label_batch < 1 or self.plan_label_held_out_parts < 0:
            raise ValueError("need plan_label_batch >= 1 and plan_label_held_out_parts >= 0")
        require_export_dtype(self.weights_dtype)


def latent_losses(
    model: LatentWorldModel, batch: WindowBatch, horizon_decay: float, device: torch.device
) -> dict[str, torch.Tensor]:
    """Per-term losses of one window batch (latents (B, K+H, C, h, w)), each averaged over
    the valid steps with weight ``horizon_decay ** h``: consistency (mean squared distance of
    the stepped state to the encoded real next context, which gets no gradient), reward
    (squared error) and end (binary cross-entropy, unweighted so its probability stays
    calibrated for the planner's expected return)."""
    latents = torch.from_numpy(batch.frames).to(device)
    actions = torch.from_numpy(batch.actions).to(device)
    valid = torch.from_numpy(batch.valid).to(device).float()
    rewards = torch.from_numpy(batch.rewards).to(device)
    ended = torch.from_numpy(batch.terminated).to(device).float()
    k, horizon = model.context, batch.rewards.shape[1]
    state = model.encode_latents(latents[:, :k])
    with torch.no_grad():
        targets = [model.encode_latents(latents[:, h + 1 : h + 1 + k]) for h in range(horizon)]
    return _unrolled_losses(
        model,
        state,
        actions[:, k - 1 : k - 1 + horizon],
        rewards,
        ended,
        valid,
        horizon_decay,
        targets,
    )


def _unrolled_losses(
    model: LatentWorldModel,
    state: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    ended: torch.Tensor,
    valid: torch.Tensor,
    horizon_decay: float,
    targets: list[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """``state`` stepped under ``actions`` (B, H): the reward's squared error and the end's
    binary cross-entropy against ``rewards`` and ``ended`` (B, H) and, given ``targets`` (the
    real state after each step), the consistency term, each averaged over the ``valid`` steps
    with weight ``horizon_decay ** h``."""
    terms: dict[str, list[torch.Tensor]] = {"consistency": [], "reward": [], "end": []}
    if targets is None:
        del terms["consistency"]
    weights: list[torch.Tensor] = []
    for h in range(actions.shape[1]):
        state, reward, end_logit = model.step(state, actions[:, h])
        w = valid[:, h] * horizon_decay**h
        weights.append(w)
        if targets is not None:
            terms["consistency"].append(w * (state - targets[h]).square().mean(dim=-1))
        terms["reward"].append(w * (reward - rewards[:, h]).square())
        bce = F.binary_cross_entropy_with_logits(end_logit, ended[:, h], reduction="none")
        terms["end"].append(w * bce)
    total_weight = torch.stack(weights).sum().clamp(min=1e-6)
    return {name: torch.stack(values).sum() / total_weight for name, values in terms.items()}


@torch.no_grad()
def score_latent_model(model: LatentWorldModel, batch: WindowBatch) -> dict[str, Any]:
    """Held-out measures of open-loop imagination from each window's real context under its
    real actions (``score_imagination``)."""
    model.eval()
    device = next(model.parameters()).device
    k, horizon = model.context, batch.rewards.shape[1]
    states = model.encode_latents(torch.from_numpy(batch.frames[:, :k]).to(device))
    real_actions = torch.from_numpy(batch.actions[:, k - 1 : k - 1 + horizon]).to(device)
    imagined_rewards, end_probabilities = model.imagine(states, real_actions)
    return {
        **score_imagination(
            imagined_rewards.cpu().numpy(),
            end_probabilities.cpu().numpy(),
            batch.rewards,
            batch.terminated,
            batch.valid,
        ),
        "windows": len(batch.rewards),
    }


def score_imagination(
    rewards: np.ndarray,
    end_probabilities: np.ndarray,
    real_rewards: np.ndarray,
    ended: np.ndarray,
    valid: np.ndarray,
) -> dict[str, Any]:
    """Imagined rewards and end probabilities (N, H) against what really happened, over the
    ``valid`` steps: per step ahead, reward mean absolute error and the end probability's AUC
    (how well it ranks the steps that really ended above the rest); over all steps, the mean
    end probability against the real end rate (equal when calibrated) and the Brier score."""
    probabilities = end_probabilities.astype(np.float64)
    reward_mae, end_auc = [], []
    for h in range(rewards.shape[1]):
        rows = valid[:, h]
        reward_mae.append(float(np.abs(rewards[rows, h] - real_rewards[rows, h]).mean()))
        end_auc.append(roc_auc(probabilities[rows, h], ended[rows, h]))
    p = probabilities[valid]
    real_ends = ended[valid]
    return {
        "reward_mae_by_step": [round(v, 4) for v in reward_mae],
        "end_auc_by_step": [round(v, 4) for v in end_auc],
        "end_rate": float(real_ends.mean()),
        "end_mean_probability": float(p.mean()),
        "end_brier": float(((p - real_ends) ** 2).mean()),
    }


@dataclass(frozen=True)
class CodedPlanLabels:
    """Plan labels with each decision's context coded by the frame tokenizer (``latents``
    (D, K, C, h, w)); ``actions``, ``rewards``, ``ended``, ``valid`` have one row per plan
    and ``state`` names its decision."""

    latents: torch.Tensor
    state: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    ended: torch.Tensor
    valid: torch.Tensor

    def __len__(self) -> int:
        return len(self.actions)


def code_plan_labels(
    source: WorldModel, parts: list[Path], device: torch.device
) -> CodedPlanLabels:
    """The labels of ``parts`` with their contexts coded by ``source``'s tokenizer."""
    labels = join_parts(parts)
    contexts = labels["contexts"]  # (D, K, H, W, 3) uint8
    coded = tokenize_frames(source, contexts.reshape(-1, *contexts.shape[2:]), device)
    return CodedPlanLabels(
        latents=coded.reshape(*contexts.shape[:2], *coded.shape[1:]),
        state=torch.from_numpy(labels["state"]).to(device),
        actions=torch.from_numpy(labels["actions"]).to(device),
        rewards=torch.from_numpy(labels["rewards"]).to(device),
        ended=torch.from_numpy(labels["ended"]).to(device),
        valid=torch.from_numpy(labels["valid"]).to(device),
    )


def plan_label_losses(
    model: LatentWorldModel, labels: CodedPlanLabels, rows: torch.Tensor, horizon_decay: float
) -> dict[str, torch.Tensor]:
    """Reward (squared error) and end (binary cross-entropy) losses of the labelled plans
    ``rows``, stepped from their decisions' real contexts, over the played steps weighted by
    ``horizon_decay ** h`` as ``latent_losses`` weighs the footage's."""
    terms = _unrolled_losses(
        model,
        model.encode_latents(labels.latents[labels.state[rows]]),
        labels.actions[rows],
        labels.rewards[rows],
        labels.ended[rows].float(),
        labels.valid[rows].float(),
        horizon_decay,
    )
    return {"plan_reward": terms["reward"], "plan_end": terms["end"]}


@torch.no_grad()
def score_on_plan_labels(model: LatentWorldModel, labels: CodedPlanLabels) -> dict[str, Any]:
    """``score_imagination`` of the labelled plans, each imagined from its decision's real
    context."""
    model.eval()
    states = model.encode_latents(labels.latents)[labels.state]
    rewards, ends = model.imagine(states, labels.actions)
    return {
        **score_imagination(
            rewards.cpu().numpy(),
            ends.cpu().numpy(),
            labels.rewards.cpu().numpy(),
            labels.ended.cpu().numpy(),
            labels.valid.cpu().numpy(),
        ),
        "plans": len(labels),
    }


def _held_out_batch(held_out: list[Episode], config: LatentTrainConfig, k: int) -> WindowBatch:
    sampler = WindowSampler(held_out, k, config.horizon)
    rng = np.random.default_rng([config.seed, 1])
    count = min(config.held_out_windows, len(sampler))
    return sampler.batch(rng.choice(len(sampler), size=count, replace=False))


def footage_batch(
    source: WorldModel, folders: list[str], config: LatentTrainConfig, k: int
) -> WindowBatch | None:
    """Windows of the footage in ``folders`` coded by ``source``'s tokenizer, drawn as the
    held-out ones are (at most ``config.held_out_windows``, seeded); None for no folders."""
    if not folders:
        return None
    episodes = [e for folder in folders for e in read_episodes(folder)]
    if not episodes:
        raise ValueError(f"no episodes in the footage folders {folders}")
    device = next(source.parameters()).device
    return _held_out_batch(encode_episodes(source, episodes, device), config, k)


def score_on_footage(
    checkpoint: str, folders: list[str], config: LatentTrainConfig
) -> dict[str, Any]:
    """``score_latent_model`` of a latent checkpoint on footage it was not trained on (e.g.
    the real episodes its own planner drove): how well it predicts where its planner leads."""
    source = world_models.load_world_model(config.world_model, device="cpu")
    model = LatentWorldModel.load(checkpoint, device="cpu").float()
    batch = footage_batch(source, folders, config, model.context)
    if batch is None:
        raise ValueError("score_on_footage needs at least one footage folder")
    return score_latent_model(model, batch)


def _lineage(init_checkpoint: str | None) -> dict[str, Any] | None:
    """How the latent model a run starts from was trained (its train config and, in turn,
    what it started from), so an exported model names its whole chain after the earlier run
    folders are gone; None for fresh weights."""
    if init_checkpoint is None:
        return None
    folder = world_models.checkpoint_path(init_checkpoint)
    info = json.loads((folder / "config.json").read_text()).get("info", {})
    if "train_config" not in info:
        return None
    return {"train_config": info["train_config"], "started_from": info.get("started_from")}


def training_chain(info: dict[str, Any]) -> list[dict[str, Any]]:
    """An exported latent model's training runs, oldest first: the runs its ``info`` names
    it started from (``started_from``, as ``_lineage`` wrote them), then its own."""
    runs: list[dict[str, Any]] = []
    run: dict[str, Any] | None = info
    while run:
        runs.append(run)
        run = run.get("started_from")
    return runs[::-1]


def _plan_label_split(
    source: WorldModel, config: LatentTrainConfig, device: torch.device
) -> tuple[CodedPlanLabels | None, CodedPlanLabels | None]:
    """The plan labels trained on and those held out (each folder's last
    ``plan_label_held_out_parts`` parts; None when none), coded; (None, None) without
    labels folders."""
    if not config.plan_labels_dirs:
        return None, None
    trained_parts, held_out_parts = [], []
    for folder in config.plan_labels_dirs:
        parts = part_paths(folder)
        trained = len(parts) - config.plan_label_held_out_parts
        if trained < 1:
            raise ValueError(
                f"{folder} holds {len(parts)} plan-label parts; training on them with "
                f"{config.plan_label_held_out_parts} held out needs at least "
                f"{config.plan_label_held_out_parts + 1}"
            )
        trained_parts += parts[:trained]
        held_out_parts += parts[trained:]
    return (
        code_plan_labels(source, trained_parts, device),
        code_plan_labels(source, held_out_parts, device) if held_out_parts else None,
    )


def train_latent_world_model(config: LatentTrainConfig) -> Path:
    """Train (or resume) the latent world model and export it with its held-out measures;
    returns the export folder."""
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    dist = distributed(config.device)
    started = time.perf_counter()
    source = world_models.load_world_model(config.world_model, device=dist.device)
    model_config = LatentWorldModelConfig(  # refuses a vector-action source before any reading
        source.config, config.state_dim, config.hidden, config.conv_width
    )
    if config.init_checkpoint is None:
        model = LatentWorldModel(model_config).to(dist.device)
    else:
        model = LatentWorldModel.load(config.init_checkpoint, dist.device, model_config)
        model.float()  # a float16 zoo checkpoint trains in float32
    model.copy_tokenizer_of(source)
    episodes = read_episodes(config.footage_dir)
    train, held_out = split_episodes(episodes, config.held_out_fraction, config.seed)
    more = extra_episodes(config.more_footage_dirs)
    extra = extra_episodes(config.extra_footage_dirs)
    k = model.context
    drawn_alike = train + more
    sampler = WindowSampler(
        encode_episodes(source, drawn_alike + extra, dist.device), k, config.horizon
    )
    # the extra episodes come last, so their windows are the sampler's last ones
    extra_windows = np.arange(sum(e.length for e in drawn_alike), len(sampler))
    held_out_batch = _held_out_batch(encode_episodes(source, held_out, dist.device), config, k)
    eval_batch = footage_batch(source, list(config.eval_footage_dirs), config, k)
    plan_train, plan_held_out = _plan_label_split(source, config, dist.device)
    trained = torch.nn.ModuleDict(
        {
            "encoder": model.encoder,
            "dynamics": model.dynamics,
            "reward": model.reward,
            "end": model.end,
        }
    )
    optimizer = torch.optim.AdamW(trained.parameters(), lr=config.lr)
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stage = Stage(
        "latent_world_model",
        config.steps,
        config.lr,
        run_dir / "latent_world_model_state.safetensors",
        run_dir / "tb" / "latent_world_model",
        schedule={
            "steps": config.steps,
            "horizon": config.horizon,
            "init_checkpoint": str(config.init_checkpoint),
            "extra_footage_dirs": list(config.extra_footage_dirs),
            # only when set, so runs from before the field resume
            **({"more_footage_dirs": config.more_footage_dirs} if config.more_footage_dirs else {}),
            **({"plan_labels_dirs": config.plan_labels_dirs} if config.plan_labels_dirs else {}),
        },
        checkpoint_every=config.checkpoint_every,
        eval_every=config.eval_every,
    )

    def step_loss(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.train()
        rng = np.random.default_rng([config.seed, step])
        share = config.extra_footage_share if len(extra_windows) else 0.0
        # unweighted: the end head is calibrated to the mixture the planner meets
        indices, _ = draw_favouring(rng, config.batch_size, len(sampler), extra_windows, share)
        terms = latent_losses(model, sampler.batch(indices), config.horizon_decay, dist.device)
        loss = (
            config.consistency_weight * terms["consistency"]
            + config.reward_weight * terms["reward"]
            + config.end_weight * terms["end"]
        )
        if plan_train is not None:
            rows = torch.from_numpy(rng.integers(len(plan_train), size=config.plan_label_batch))
            terms |= plan_label_losses(
                model, plan_train, rows.to(dist.device), config.horizon_decay
            )
            loss = loss + config.plan_label_weight * (terms["plan_reward"] + terms["plan_end"])
        return loss, {"loss": loss.detach(), **{n: v.detach() for n, v in terms.items()}}

    def evaluate() -> dict[str, float]:
        measured = {"": score_latent_model(model, held_out_batch)}
        if eval_batch is not None:
            measured["eval_footage_"] = score_latent_model(model, eval_batch)
        if plan_held_out is not None:
            measured["plan_labels_"] = score_on_plan_labels(model, plan_held_out)
        return {
            f"{prefix}{name}": value
            for prefix, scores in measured.items()
            for name, value in (
                ("reward_mae_step1", scores["reward_mae_by_step"][0]),
                ("end_auc_step1", scores["end_auc_by_step"][0]),
                ("end_auc_step2", scores["end_auc_by_step"][min(1, config.horizon - 1)]),
                ("end_brier", scores["end_brier"]),
            )
        }

    run_stage(stage, trained, optimizer, step_loss, dist, evaluate=evaluate)
    weights_dtype = getattr(torch, config.weights_dtype)
    with torch.no_grad():  # measure the weights as they will be loaded
        for parameter in model.parameters():
            parameter.copy_(parameter.to(weights_dtype))
    metrics = score_latent_model(model, held_out_batch)
    if eval_batch is not None:
        metrics["eval_footage"] = {
            "dirs": list(config.eval_footage_dirs),
            **score_latent_model(model, eval_batch),
        }
    if plan_held_out is not None:
        metrics["plan_labels_held_out"] = {
            "dirs": list(config.plan_labels_dirs),
            **score_on_plan_labels(model, plan_held_out),
        }
    export_dir = Path(config.export_dir)
    model.eval().save(
        export_dir,
        weights_dtype=weights_dtype,
        info={
            "world_model": str(config.world_model),
            "footage_dir": config.footage_dir,
            "episodes": {
                "train": len(train),
                "held_out": len(held_out),
                "more": len(more),
                "extra": len(extra),
            },
            "frames": {
                "train": int(sum(len(e.frames) for e in train)),
                "more": int(sum(len(e.frames) for e in more)),
                "extra": int(sum(len(e.frames) for e in extra)),
            },
            "train_config": dataclasses.asdict(config),
            "plan_labels": None
            if plan_train is None
            else {
                "train_plans": len(plan_train),
                "held_out_plans": 0 if plan_held_out is None else len(plan_held_out),
            },
            "started_from": _lineage(config.init_checkpoint),
            "wall_seconds_this_run": round(time.perf_counter() - started, 1),
        },
    )
    write_json_atomic(export_dir / "metrics.json", metrics)
    return export_dir
