"""The world-model backends of WFM-Driving-v0 side by side, on the committed driving model's
held-out footage: the MaskGIT world model, and the diffusion and autoregressive WFMs
post-trained on actions from their pre-trained weights and from scratch.

For each: next-frame and 16-step PSNR / SSIM against ground truth (and the copy-last-frame
baseline), action following (the ego motion in imagined frames against the true one),
Fréchet distance of 16-frame clips in the curation's video-embedding space, reward and
crash-head errors, and frames generated per second on this CPU (batch 1 and 64).

    python -m experiments.bench.wfm_backends [--backends maskgit=driving diffusion=PATH ...]

Imagined frames are drawn as the env draws them (seeded uniforms: sampled tokens, or the
diffusion noise); ``--draws greedy`` takes each model's most likely frame instead (top tokens,
or zero initial noise for diffusion, which is not a sample of its distribution) and writes
wfm_backends_greedy.json. A backend whose checkpoint is missing is listed as not trained
(``make post-train`` makes them).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import linalg

import world_models
from envs.core import WorldModelCore
from experiments.bench.common import RESULTS_DIR, write_result
from experiments.model_card import held_out_episodes
from wfm_sim.curation.embed import embed_videos, load_video_encoder
from wfm_sim.data import Episode
from wfm_sim.tokenizer.metrics import ssim
from wfm_sim.training.evaluate import (
    evaluate_world_model,
    open_loop_rollouts,
    psnr,
    step_uniforms,
)
from wfm_sim.training.world_model import encode_episodes

DEFAULT_BACKENDS = {
    "maskgit": "driving",
    "diffusion": "runs/post_train/driving_diffusion/checkpoint",
    "diffusion_scratch": "runs/post_train/driving_diffusion_scratch/checkpoint",
    "autoregressive": "runs/post_train/driving_autoregressive/checkpoint",
    "autoregressive_scratch": "runs/post_train/driving_autoregressive_scratch/checkpoint",
}
MAX_SHIFT = 4


def ego_shifts(clips: np.ndarray, max_shift: int = MAX_SHIFT) -> np.ndarray:
    """The integer image shift (dy, dx) within ``max_shift`` that best maps each frame of
    clips (N, T, H, W, 3) onto the next, (N, T-1, 2): in the ego-centred top-down view, the
    road's motion under the ego car, i.e. its speed (dx) and lane change (dy)."""
    n, t, height, width, _ = clips.shape
    x = torch.from_numpy(np.ascontiguousarray(clips)).float().mean(-1)
    first, second = x[:, :-1], x[:, 1:]
    best = torch.full((n, t - 1), float("inf"))
    shift = torch.zeros(n, t - 1, 2)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            h, w = height - abs(dy), width - abs(dx)
            a = first[..., max(0, -dy) : max(0, -dy) + h, max(0, -dx) : max(0, -dx) + w]
            b = second[..., max(0, dy) : max(0, dy) + h, max(0, dx) : max(0, dx) + w]
            error = (a - b).abs().mean(dim=(-2, -1))
            better = error < best
            best = torch.where(better, error, best)
            shift[better] = torch.tensor([float(dy), float(dx)])
    return shift.numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to embeddings a (N, D) and b (M, D)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    trace = np.trace(cov_a + cov_b - 2 * np.real(root))
    return float(np.sum((mu_a - mu_b) ** 2) + trace)


def frames_per_second(model: world_models.EnvModel, folder: Path, batch: int, steps: int) -> float:
    """Imagined and decoded frames per second of ``batch`` trajectories, drawn with uniforms."""
    core = WorldModelCore(model, batch_size=batch)
    frames, actions = world_models.load_start_contexts(folder)
    members = torch.arange(batch) % len(frames)
    core.reset(frames[members], actions[members])
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        actions = torch.randint(0, 5, (batch,), generator=generator)
        core.step(actions, step_uniforms(model, batch, generator))

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - started)


def measure(
    model: world_models.EnvModel,
    folder: Path,
    episodes: list[Episode],
    encoder_path: str,
    rollout_steps: int,
    draws: torch.Generator | None,
) -> dict[str, Any]:
    """Every measurement of one backend on the held-out ``episodes``, its frames drawn with
    uniforms from ``draws`` (None: its most likely frames)."""
    began = time.perf_counter()
    latent_eps = encode_episodes(model, episodes, torch.device("cpu"))
    rollouts = open_loop_rollouts(model, episodes, latent_eps, rollout_steps, draws)
    quality = evaluate_world_model(
        model, episodes, rollout_steps, latent_eps=latent_eps, rollouts=rollouts, draws=draws
    )
    imagined, truth, last = rollouts
    copied = np.broadcast_to(last[:, None], truth.shape)
    with_start = np.concatenate([last[:, None], imagined], axis=1)
    true_with_start = np.concatenate([last[:, None], truth], axis=1)
    shift_error = np.abs(ego_shifts(with_start) - ego_shifts(true_with_start))
    encoder = load_video_encoder(encoder_path)
    real_embeddings = embed_videos(encoder, list(truth))
    result = {
        **quality,
        "next_frame_ssim": ssim(imagined[:, 0], truth[:, 0]),
        "next_frame_ssim_copy_last": ssim(copied[:, 0], truth[:, 0]),
        f"rollout{rollout_steps}_ssim_mean": ssim(
            imagined.reshape(-1, *imagined.shape[2:]), truth.reshape(-1, *truth.shape[2:])
        ),
        f"rollout{rollout_steps}_ssim_mean_copy_last": ssim(
            copied.reshape(-1, *copied.shape[2:]), truth.reshape(-1, *truth.shape[2:])
        ),
        "rollout_psnr_per_step": psnr(imagined, truth).mean(0).tolist(),
        "ego_shift_error_px": float(shift_error.sum(-1).mean()),
        "ego_speed_error_px": float(shift_error[..., 1].mean()),
        "ego_lane_error_px": float(shift_error[..., 0].mean()),
        "frechet_distance": frechet_distance(
            embed_videos(encoder, list(imagined)), real_embeddings
        ),
        "frechet_distance_copy_last": frechet_distance(
            embed_videos(encoder, list(copied)), real_embeddings
        ),
        "frames_per_second_batch1": frames_per_second(model, folder, 1, 20),
        "frames_per_second_batch64": frames_per_second(model, folder, 64, 3),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.perf_counter() - began, 1),
    }
    return result


def main() -> None:
    """Measure every backend that is trained and write experiments/results/wfm_backends.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--backends",
        nargs="*",
        default=[f"{k}={v}" for k, v in DEFAULT_BACKENDS.items()],
        help="name=checkpoint pairs",
    )
    parser.add_argument("--footage", default="data/footage/driving")
    parser.add_argument("--encoder", default="data/curated/driving/encoder/video_encoder")
    parser.add_argument("--split-from", default="driving", help="whose held-out episodes")
    parser.add_argument("--rollout-steps", type=int, default=16)
    parser.add_argument(
        "--draws",
        choices=("sampled", "greedy"),
        default="sampled",
        help="draw frames as the env does (seeded), or take each model's most likely frame",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled draws")
    parser.add_argument(
        "--merge", action="store_true", help="keep the other backends of the last result file"
    )
    parser.add_argument("--note", default="", help="how the file was made (kept by --merge)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    episodes = held_out_episodes(world_models.checkpoint_path(args.split_from), args.footage)
    result_name = "wfm_backends" if args.draws == "sampled" else "wfm_backends_greedy"
    last = RESULTS_DIR / f"{result_name}.json"
    results: dict[str, Any] = {}
    note = args.note
    if args.merge and last.exists():
        previous = json.loads(last.read_text())
        results, note = previous["backends"], note or previous.get("note", "")
    for entry in args.backends:
        name, _, checkpoint = entry.partition("=")
        try:
            folder = world_models.checkpoint_path(checkpoint)
        except FileNotFoundError:
            results[name] = {"checkpoint": checkpoint, "trained": False}
            print(f"{name}: no checkpoint at {checkpoint} (make post-train)")
            continue
        model = world_models.load(folder)
        print(f"measuring {name} ({folder})")
        draws = torch.Generator().manual_seed(args.seed) if args.draws == "sampled" else None
        with torch.no_grad():
            results[name] = {"checkpoint": str(folder), "trained": True, "draws": args.draws}
            results[name].update(
                measure(model, folder, episodes, args.encoder, args.rollout_steps, draws)
            )
        print({k: v for k, v in results[name].items() if not isinstance(v, list)})
        # after each backend: a stopped run keeps the rest
        _write(result_name, results, len(episodes), note)


def _write(result_name: str, results: dict[str, Any], episodes: int, note: str) -> None:
    payload: dict[str, Any] = {"held_out_episodes": episodes, "backends": results}
    if note:
        payload["note"] = note
    print(write_result(result_name, payload))


if __name__ == "__main__":
    main()
