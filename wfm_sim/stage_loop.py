"""One resumable training stage, the loop every trainer in the project shares.

A stage is a number of optimizer steps on one loss: warm-up + cosine learning rate, optional
gradient clipping, TensorBoard scalars and a progress bar on rank 0, a held-out measurement
every ``eval_every`` steps, and its whole state (weights, optimizer moments, step) saved in
safetensors every ``checkpoint_every`` steps. A rerun resumes from the saved step, and one
under another ``schedule`` (the step counts the stage builds on) is refused. Under ``torchrun``
every rank runs the loop on its share of each batch; only rank 0 writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from wfm_sim.checkpoints import load_training_state, save_training_state
from wfm_sim.distributed import Distributed
from wfm_sim.schedules import warmup_cosine_lr

StepLoss = Callable[[int], tuple[torch.Tensor, Mapping[str, float | torch.Tensor]]]
"""step -> (the loss to minimise, named terms to log): this rank's share of the step."""

Evaluate = Callable[[], dict[str, float]]
"""A held-out measurement, run on rank 0 only: name -> value."""


class StagePlan(Protocol):
    """What a trainer's stage list says of one stage."""

    @property
    def name(self) -> str: ...
    @property
    def steps(self) -> int: ...
    @property
    def lr(self) -> float: ...


@dataclass
class Stage:
    """Where a stage keeps its state and logs, how long it runs and how it steps."""

    name: str
    """Shown on the progress bar."""
    steps: int
    lr: float
    state_path: Path
    tensorboard_dir: Path
    schedule: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: int = 250
    clip_norm: float | None = 1.0
    log_every: int = 25
    eval_every: int = 0
    """0: never; else every that many steps and after the last one."""

    @classmethod
    def in_run(
        cls, run_dir: Path, plan: StagePlan, schedule: dict[str, Any], **options: Any
    ) -> Stage:
        """``plan``'s stage keeping its state in ``run_dir/<name>_state.safetensors`` and its
        logs in ``run_dir/tb/<name>`` (the layout of the multi-stage trainers)."""
        state_path = run_dir / f"{plan.name}_state.safetensors"
        tensorboard_dir = run_dir / "tb" / plan.name
        return cls(plan.name, plan.steps, plan.lr, state_path, tensorboard_dir, schedule, **options)


@dataclass
class StageResult:
    """How a stage run went: the step it started from and the median seconds per step."""

    started_at: int
    seconds_per_step: float | None


def run_stage(
    stage: Stage,
    saved: nn.Module,
    optimizer: torch.optim.Optimizer,
    step_loss: StepLoss,
    dist: Distributed,
    clipped: Iterable[nn.Parameter] | None = None,
    evaluate: Evaluate | None = None,
) -> StageResult:
    """Train (or resume) one stage; ``saved`` is the module whose weights the state holds,
    ``clipped`` the parameters whose gradient norm is clipped (default: ``saved``'s)."""
    start = 0
    if stage.state_path.exists():
        start = load_training_state(stage.state_path, saved, optimizer, stage.schedule)
    if start >= stage.steps:
        if dist.is_main:
            tqdm.write(f"{stage.name} already trained ({start} steps) in {stage.state_path}")
        return StageResult(start, None)
    params = list(clipped if clipped is not None else saved.parameters())
    writer = SummaryWriter(str(stage.tensorboard_dir)) if dist.is_main else None
    bar = tqdm(
        range(start, stage.steps),
        desc=stage.name,
        initial=start,
        total=stage.steps,
        disable=not dist.is_main,
    )
    seconds: list[float] = []
    for step in bar:
        began = time.perf_counter()
        loss, terms = step_loss(step)
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine_lr(step, stage.steps, stage.lr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if stage.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, stage.clip_norm)
        optimizer.step()
        seconds.append(time.perf_counter() - began)
        done = step + 1
        if step % stage.log_every == 0:
            logged = dist.all_reduce_mean(terms)
            if writer is not None:
                for name, value in logged.items():
                    writer.add_scalar(f"loss/{name}", value, step)
            bar.set_postfix({k: f"{v:.4f}" for k, v in logged.items()})
        if (
            writer is not None
            and evaluate is not None
            and stage.eval_every > 0
            and (done % stage.eval_every == 0 or done == stage.steps)
        ):
            for name, value in evaluate().items():
                writer.add_scalar(f"held_out/{name}", value, done)
        if done % stage.checkpoint_every == 0 or done == stage.steps:
            if dist.is_main:
                save_training_state(stage.state_path, saved, optimizer, done, stage.schedule)
            dist.barrier()
    if writer is not None:
        writer.close()
    return StageResult(start, float(np.median(seconds)) if seconds else None)
