"""Camera control: does the camera-conditioned robot world model render the scene from the
camera it is given?

    python -m experiments.bench.camera_control [--checkpoint runs/world_model/robot_camera/checkpoint] [--footage data/footage/robot_camera]

On held-out moving-camera episodes, the model starts from K real frames and imagines 16 frames
under the true torques and the true camera path; each imagined frame is compared (PSNR, SSIM)
with the real render from the same pose. Two references: the same model told the camera stays
where it was at the start (pose frozen; what ignoring the camera path costs), and copying the
last real frame.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import world_models
from experiments.bench.common import write_result
from experiments.model_card import held_out_episodes
from wfm_sim.data import Episode
from wfm_sim.tokenizer.metrics import ssim
from wfm_sim.training.evaluate import open_loop_rollouts, psnr
from wfm_sim.training.world_model import encode_episodes

CAMERA_DIMS = 3
"""The camera pose is the last 3 entries of each action: azimuth, elevation, distance."""


def frozen_camera(episode: Episode, context: int) -> Episode:
    """``episode`` with every action's camera pose replaced by the pose of its context's last
    frame (the pose the action leading to frame K-1 names)."""
    actions = episode.actions.copy()
    actions[:, -CAMERA_DIMS:] = actions[context - 2, -CAMERA_DIMS:]
    return Episode(
        episode.episode_id,
        episode.frames,
        actions,
        episode.rewards,
        episode.terminated,
        episode.behaviour,
    )


def main() -> None:
    """Measure and write experiments/results/camera_control.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="runs/world_model/robot_camera/checkpoint")
    parser.add_argument("--footage", default="data/footage/robot_camera")
    parser.add_argument("--steps", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)
    folder = world_models.checkpoint_path(args.checkpoint)
    model = world_models.load(folder, device="cpu")
    if model.config.action_dim < CAMERA_DIMS + 1:
        raise ValueError(
            f"{folder} is not camera-conditioned (action_dim {model.config.action_dim})"
        )
    k = model.config.context
    episodes = held_out_episodes(folder, args.footage)
    frozen = [frozen_camera(e, k) for e in episodes]
    results = {}
    for name, eps in (("true_camera_path", episodes), ("camera_frozen_at_start", frozen)):
        latents = encode_episodes(model, eps, torch.device("cpu"))
        imagined, truth, last_context = open_loop_rollouts(model, eps, latents, args.steps)
        copied = np.broadcast_to(last_context[:, None], truth.shape)
        for label, frames in ((name, imagined), ("copy_last_frame", copied)):
            scores = psnr(frames, truth)
            results[label] = {
                "psnr_mean": float(scores.mean()),
                "psnr_last": float(scores[:, -1].mean()),
                "ssim_mean": ssim(
                    frames.reshape(-1, *frames.shape[2:]), truth.reshape(-1, *truth.shape[2:])
                ),
            }
    moved = [float(np.ptp(e.actions[:, -CAMERA_DIMS], axis=0)) for e in episodes]
    payload = {
        "checkpoint": str(args.checkpoint),
        "held_out_episodes": len(episodes),
        "rollout_steps": args.steps,
        "mean_azimuth_sweep_deg": float(np.mean(moved)),
        **results,
    }
    print(write_result("camera_control", payload))
    print(payload)


if __name__ == "__main__":
    main()
