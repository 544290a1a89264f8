"""Camera control: does the camera-conditioned robot world model render the scene from the
camera it is given?

    python -m experiments.bench.camera_control [--checkpoint runs/world_model/robot_camera/checkpoint] [--footage data/footage/robot_camera] [--stride 20] [--name NAME]

On held-out moving-camera episodes, cut into windows every ``--stride`` steps, the model starts
from K real frames and imagines 16 frames under the true torques and the true camera path; each
imagined frame is compared (PSNR, SSIM) with the real render from the same pose. Two
references: the same model told the camera stays where it was at the start (pose frozen; what
ignoring the camera path costs), and copying the last real frame. The window whose camera
sweeps furthest is drawn to experiments/results/camera_control.png: real frames, imagined on the
true camera path, imagined with the camera frozen (the last real context frame, then every
fourth step).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import imageio.v3 as imageio
import numpy as np
import torch

import world_models
from experiments.bench.common import RESULTS_DIR, write_result
from experiments.model_card import held_out_episodes
from wfm_sim.data import Episode
from wfm_sim.io import atomic_path
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
    return episode.with_actions(actions)


def film_scores(frames: np.ndarray, truth: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """How close imagined films (N, steps, H, W, 3) are to the real ones: PSNR over all steps
    and at the last, and SSIM; and the PSNR of each film's every step (N, steps)."""
    scores = psnr(frames, truth)
    flat = (-1, *frames.shape[2:])
    summary = {
        "psnr_mean": float(scores.mean()),
        "psnr_last": float(scores[:, -1].mean()),
        "ssim_mean": ssim(frames.reshape(flat), truth.reshape(flat)),
    }
    return summary, scores


def window_starts(transitions: int, length: int, stride: int) -> range:
    """The first steps of the windows of ``length`` transitions cut every ``stride`` steps
    from an episode of ``transitions`` transitions (a shorter tail is dropped)."""
    return range(0, transitions - length + 1, stride)


def windows(episode: Episode, length: int, stride: int) -> list[Episode]:
    """The parts of ``episode`` that start every ``stride`` steps and hold ``length``
    transitions (fewer at the end are dropped), each an episode of its own."""
    return [
        Episode(
            episode.episode_id,
            episode.frames[start : start + length + 1],
            episode.actions[start : start + length],
            episode.rewards[start : start + length],
            episode.terminated[start : start + length],
            episode.behaviour,
        )
        for start in window_starts(episode.length, length, stride)
    ]


def film_strip(rows: list[np.ndarray], every: int, zoom: int) -> np.ndarray:
    """One image of several films (each (T, H, W, 3) uint8, one film a row): frames 0,
    ``every``, 2 ``every``, ..., each pixel drawn ``zoom`` times wider and taller."""
    picked = [np.concatenate(list(film[::every]), axis=1) for film in rows]
    image = np.concatenate(picked, axis=0)
    return np.repeat(np.repeat(image, zoom, axis=0), zoom, axis=1)


def gain_by_sweep(gain: np.ndarray, sweep: np.ndarray) -> dict[str, float]:
    """The mean of ``gain`` (one value per window) over the windows whose camera sweeps at
    least the median ``sweep`` and over the rest: if the model follows the poses it is given,
    knowing them pays most where the camera moves most."""
    wide = sweep >= np.median(sweep)
    return {
        "wider_half": float(gain[wide].mean()),
        "narrower_half": float(gain[~wide].mean()) if (~wide).any() else float("nan"),
    }


def write_window_strip(
    name: str, last_context: np.ndarray, films: Sequence[np.ndarray], rows: str
) -> Path:
    """Draw one window's films (each (steps, H, W, 3), one a row, each opening with the last
    real context frame, then every fourth step) to experiments/results/<name>.png and say so,
    naming the ``rows``."""
    strips = [np.concatenate([last_context[None], film]) for film in films]
    figure = RESULTS_DIR / f"{name}.png"
    with atomic_path(figure) as tmp:
        imageio.imwrite(tmp, film_strip(strips, every=4, zoom=2), extension=".png")
    print(f"last context frame, then {rows}: {figure}")
    return figure


def camera_bench_setup(
    description: str, name: str
) -> tuple[argparse.Namespace, Path, world_models.EnvModel]:
    """The command line shared by the camera benches (``name`` is the default results name),
    the checkpoint folder it names and its camera-conditioned model (ValueError if the model
    takes no camera pose)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--checkpoint", default="runs/world_model/robot_camera/checkpoint")
    parser.add_argument("--footage", default="data/footage/robot_camera")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--stride", type=int, default=20, help="steps between window starts")
    parser.add_argument(
        "--name", default=name, help="results file experiments/results/NAME.json (+ .png)"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    folder = world_models.checkpoint_path(args.checkpoint)
    model = world_models.load(folder, device="cpu")
    if model.config.action_dim < CAMERA_DIMS + 1:
        raise ValueError(
            f"{folder} is not camera-conditioned (action_dim {model.config.action_dim})"
        )
    return args, folder, model


def main() -> None:
    """Measure and write experiments/results/camera_control.json."""
    args, folder, model = camera_bench_setup(__doc__ or "", "camera_control")
    k = model.config.context
    held_out = held_out_episodes(folder, args.footage)
    episodes = [w for e in held_out for w in windows(e, k - 1 + args.steps, args.stride)]
    frozen = [frozen_camera(e, k) for e in episodes]
    # Encoding depends only on the frames, which both camera paths share.
    latents = encode_episodes(model, episodes, torch.device("cpu"))
    films = {}
    for name, eps in (("true_camera_path", episodes), ("camera_frozen_at_start", frozen)):
        films[name], truth, last_context = open_loop_rollouts(model, eps, latents, args.steps)
    films["copy_last_frame"] = np.broadcast_to(last_context[:, None], truth.shape)
    results = {}
    last_step_psnr = {}
    for label, frames in films.items():
        results[label], scores = film_scores(frames, truth)
        last_step_psnr[label] = scores[:, -1]
    # The poses of the last context frame and of each imagined frame (action i names the pose
    # of frame i + 1): the sweep is measured from where the camera was when imagining began.
    azimuths = np.stack([e.actions[k - 2 :, -CAMERA_DIMS] for e in episodes])
    sweeps = np.ptp(azimuths, axis=1)
    payload = {
        "checkpoint": str(args.checkpoint),
        "held_out_episodes": len(held_out),
        "windows": len(episodes),
        "window_stride": args.stride,
        "rollout_steps": args.steps,
        "mean_azimuth_sweep_deg": float(sweeps.mean()),
        "mean_azimuth_change_per_step_deg": float(np.abs(np.diff(azimuths, axis=1)).mean()),
        "last_step_gain_over_frozen_db": gain_by_sweep(
            last_step_psnr["true_camera_path"] - last_step_psnr["camera_frozen_at_start"], sweeps
        ),
        **results,
    }
    print(write_result(args.name, payload))
    print(payload)
    widest = int(sweeps.argmax())
    films_of_widest = (truth, films["true_camera_path"], films["camera_frozen_at_start"])
    write_window_strip(
        args.name,
        last_context[widest],
        [f[widest] for f in films_of_widest],
        "real / imagined on the true camera path / imagined with the camera frozen",
    )


if __name__ == "__main__":
    main()
