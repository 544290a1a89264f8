"""Held-out quality of a world model: next-frame and 16-step PSNR against copy-last-frame,
and how well its reward and termination heads match the simulator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wfm_sim.data import Episode, WindowSampler
from wfm_sim.training.world_model import encode_episodes
from world_models import EnvModel


def psnr(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """PSNR in dB per frame of uint8 frames (..., H, W, 3), capped at 60 dB for identical ones."""
    error = (predicted.astype(np.float64) - target.astype(np.float64)) ** 2
    mse = error.reshape(*error.shape[:-3], -1).mean(-1)
    return np.minimum(60.0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)))


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


Rollouts = tuple[np.ndarray, np.ndarray, np.ndarray]
"""What ``open_loop_rollouts`` returns: imagined frames, true frames, last context frames."""


def step_uniforms(
    model: EnvModel, batch: int, draws: torch.Generator | None
) -> torch.Tensor | None:
    """The uniforms a model draws ``batch`` next frames with, from ``draws`` (None: none, so
    the model takes its most likely frame)."""
    shape = model.draw_shape
    if draws is None or shape is None:
        return None
    return torch.rand((batch, *shape), generator=draws)


@torch.no_grad()
def open_loop_rollouts(
    model: EnvModel,
    episodes: Sequence[Episode],
    latent_eps: Sequence[Episode],
    steps: int,
    draws: torch.Generator | None = None,
) -> Rollouts:
    """Open-loop rollouts under the true actions from each episode's first K real frames (as
    the env starts), for the episodes long enough: (imagined (N, steps, H, W, 3) uint8, the
    true frames (N, steps, H, W, 3), the last context frames (N, H, W, 3)). Each frame is
    drawn with uniforms from ``draws``, as the env draws it (None: the most likely frame)."""
    k = model.config.context
    chosen = [i for i, e in enumerate(episodes) if e.length >= k - 1 + steps]
    if not chosen:
        shape = (0, steps, *episodes[0].frames.shape[1:]) if episodes else (0, steps, 0, 0, 3)
        empty = np.zeros(shape, dtype=np.uint8)
        return empty, empty, empty[:, 0]
    ctx = torch.from_numpy(np.stack([latent_eps[i].frames[:k] for i in chosen]))
    acts = torch.from_numpy(np.stack([episodes[i].actions[:k] for i in chosen]))
    imagined = []
    for h in range(steps):
        step = model.imagine(ctx, acts, step_uniforms(model, len(chosen), draws))
        imagined.append(model.tokenizer.decode(step.latent).numpy())
        ctx = torch.cat([ctx[:, 1:], step.latent[:, None]], dim=1)
        next_actions = torch.from_numpy(
            np.stack([episodes[i].actions[min(k + h, episodes[i].length - 1)] for i in chosen])
        )
        acts = torch.cat([acts[:, 1:], next_actions[:, None]], dim=1)
    truth = np.stack([episodes[i].frames[k : k + steps] for i in chosen])
    last_context = np.stack([episodes[i].frames[k - 1] for i in chosen])
    return np.stack(imagined, axis=1), truth, last_context


@torch.no_grad()
def evaluate_world_model(
    model: EnvModel,
    episodes: Sequence[Episode],
    rollout_steps: int = 16,
    batch: int = 256,
    *,
    latent_eps: Sequence[Episode] | None = None,
    rollouts: Rollouts | None = None,
    draws: torch.Generator | None = None,
) -> dict[str, float]:
    """Measure ``model`` (on CPU) on held-out ``episodes`` of pixel footage.

    - next-frame PSNR: context of true frames, true action, one predicted frame;
    - rollout PSNR: from each episode's first K real frames, ``rollout_steps`` frames imagined
      under the true actions (episodes long enough), mean over the steps and at the last one;
    - the same for the copy-last-frame baseline, and the tokenizer's reconstruction PSNR;
    - reward mean absolute error; termination accuracy, recall and precision at 0.5, and its
      calibration (mean predicted probability against the true end rate, Brier score).

    Predicted frames are drawn with uniforms from ``draws`` as the env draws them (None: each
    model's most likely frame: its top tokens, or zero noise for diffusion). A caller that
    needs the coded episodes or the rollouts too passes them in, so they are made once
    (``encode_episodes``, ``open_loop_rollouts``).
    """
    model = model.eval()
    k = model.config.context
    if latent_eps is None:
        latent_eps = encode_episodes(model, list(episodes), torch.device("cpu"))
    pixel_windows = WindowSampler(episodes, k, 1)
    latent_windows = WindowSampler(latent_eps, k, 1)
    next_psnr, copy_psnr, recon_psnr, reward_err, end_prob, end_true = [], [], [], [], [], []
    for start in range(0, len(pixel_windows), batch):
        index = np.arange(start, min(start + batch, len(pixel_windows)))
        pixels, latents = pixel_windows.batch(index), latent_windows.batch(index)
        ctx = torch.from_numpy(latents.frames[:, :k])
        actions = torch.from_numpy(latents.actions)
        step = model.imagine(ctx, actions, step_uniforms(model, len(index), draws))
        predicted = model.tokenizer.decode(step.latent).numpy()
        target = pixels.frames[:, k]
        next_psnr.append(psnr(predicted, target))
        copy_psnr.append(psnr(pixels.frames[:, k - 1], target))
        recon = model.tokenizer.decode(torch.from_numpy(latents.frames[:, k])).numpy()
        recon_psnr.append(psnr(recon, target))
        reward_err.append(np.abs(step.reward.numpy() - pixels.rewards[:, 0]))
        end_prob.append(step.end_probability.numpy())
        end_true.append(pixels.terminated[:, 0])
    ends, probabilities = np.concatenate(end_true), np.concatenate(end_prob)
    predicted_ends = probabilities > 0.5
    if rollouts is None:
        rollouts = open_loop_rollouts(model, episodes, latent_eps, rollout_steps, draws)
    imagined, truth, last_context = rollouts
    rollout = psnr(imagined, truth)
    rollout_copy = psnr(np.broadcast_to(last_context[:, None], truth.shape), truth)
    return {
        "next_frame_psnr": float(np.concatenate(next_psnr).mean()),
        "next_frame_psnr_copy_last": float(np.concatenate(copy_psnr).mean()),
        "tokenizer_psnr": float(np.concatenate(recon_psnr).mean()),
        f"rollout{rollout_steps}_psnr_mean": _mean(rollout),
        f"rollout{rollout_steps}_psnr_last": _mean(rollout[:, -1:]),
        f"rollout{rollout_steps}_psnr_mean_copy_last": _mean(rollout_copy),
        f"rollout{rollout_steps}_psnr_last_copy_last": _mean(rollout_copy[:, -1:]),
        "rollout_episodes": len(rollout),
        "reward_mae": float(np.concatenate(reward_err).mean()),
        "end_accuracy": float((predicted_ends == ends).mean()),
        "end_recall": float(predicted_ends[ends].mean()) if ends.any() else float("nan"),
        "end_precision": float(ends[predicted_ends].mean())
        if predicted_ends.any()
        else float("nan"),
        "end_rate": float(ends.mean()),
        "end_mean_probability": float(probabilities.mean()),
        "end_brier": float(((probabilities - ends) ** 2).mean()),
        "transitions": int(len(ends)),
    }
