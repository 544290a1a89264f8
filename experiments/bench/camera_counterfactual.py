"""Counterfactual camera paths: does the camera-conditioned robot world model follow a camera
path it was never shown, or carry on the camera motion it sees in its context?

    python -m experiments.bench.camera_counterfactual [--checkpoint runs/world_model/robot_camera/checkpoint] [--footage data/footage/robot_camera] [--stride 20] [--name NAME]

The recorded footage only shows each episode from its own camera path, along which the camera
keeps turning the way it turned in the context frames. Here each held-out episode is replayed in
the real MuJoCo Pusher (same seed, same recorded torques: the same physics), and from the moment
imagination starts the scene is also rendered along two paths the footage never took:

- ``stop``: the camera stays at the pose of the last context frame;
- ``reverse``: the camera turns back, mirroring the recorded path about that pose (clipped to
  the poses the model was trained on).

For each path the model imagines 16 frames twice: told that path (right) and told the recorded
path (wrong); both are scored (PSNR, SSIM) against the real renders along that path, as is
copying the last real frame. A model that follows the poses it is given scores higher when told
the right path. The replay is checked against the footage first (PSNR of the replayed frames
along the recorded path). The reversed path of the window that sweeps furthest is drawn to
experiments/results/camera_counterfactual.png: real renders, imagined told the reversed path,
imagined told the recorded path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from experiments.bench.camera_control import (
    CAMERA_DIMS,
    camera_bench_setup,
    film_scores,
    window_starts,
    windows,
    write_window_strip,
)
from experiments.bench.common import write_result
from experiments.model_card import held_out_episodes
from wfm_sim.data import Episode
from wfm_sim.sources.pusher import RobotPixelObservation, RobotSimConfig, make_robot_env
from wfm_sim.training.evaluate import open_loop_rollouts, psnr
from wfm_sim.training.world_model import encode_episodes

PATHS = ("stop", "reverse")
"""The counterfactual camera paths, from the pose of the last context frame on."""

REPLAY_MIN_PSNR = 30.0
"""Below this the replay does not reproduce the footage (another simulator build or config),
so its renders would not be the truth of the recorded physics."""


def counterfactual_poses(
    recorded: np.ndarray, pivot: np.ndarray, path: str, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """Camera poses (N, 3) of the imagined frames along ``path``, given the ``recorded`` poses
    (N, 3) of the same frames and the ``pivot`` pose (3,) of the last context frame: ``stop``
    holds the pivot, ``reverse`` mirrors the recorded path about it; clipped to [low, high]."""
    if path == "stop":
        poses = np.broadcast_to(pivot, recorded.shape)
    elif path == "reverse":
        poses = 2.0 * pivot - recorded
    else:
        raise ValueError(f"unknown camera path {path!r}; expected one of {PATHS}")
    return np.clip(poses, low, high).astype(np.float32)


def with_camera_path(window: Episode, context: int, poses: np.ndarray) -> Episode:
    """``window`` with the camera poses of its imagined frames (the actions from index
    ``context - 1`` on, each naming the pose of the frame it leads to) replaced by ``poses``."""
    actions = window.actions.copy()
    actions[context - 1 : context - 1 + len(poses), -CAMERA_DIMS:] = poses
    return window.with_actions(actions)


def episode_seeds(footage_dir: Path) -> dict[int, int]:
    """The simulator seed each recorded episode was reset with."""
    seeds: dict[int, int] = {}
    for path in sorted(footage_dir.glob("part-*.parquet")):
        table = pq.read_table(path, columns=["episode", "sim_seed"]).to_pandas()
        seeds.update(table.groupby("episode")["sim_seed"].first().astype(int).to_dict())
    return seeds


def replay(
    env: RobotPixelObservation,
    seed: int,
    episode: Episode,
    renders: dict[int, list[np.ndarray]],
) -> tuple[np.ndarray, dict[int, list[np.ndarray]]]:
    """Replay ``episode``'s torques from ``reset(seed)``: its frames along the recorded camera
    path (T+1, S, S, 3), and for each frame index in ``renders`` the scene drawn from each of
    the poses (3,) listed there."""
    frame, _ = env.reset(seed=seed)
    frames = [frame]
    drawn = {0: [env.render_from(*map(float, pose)) for pose in renders.get(0, [])]}
    for t, action in enumerate(episode.actions[:, : episode.actions.shape[1] - CAMERA_DIMS], 1):
        frames.append(env.step(action)[0])
        drawn[t] = [env.render_from(*map(float, pose)) for pose in renders.get(t, [])]
    return np.stack(frames), drawn


def render_truths(
    env: RobotPixelObservation,
    held_out: Sequence[Episode],
    seeds: dict[int, int],
    plans: list[tuple[int, int, dict[str, np.ndarray]]],
    context: int,
) -> tuple[dict[str, np.ndarray], float]:
    """Real renders (windows, steps, S, S, 3) along each counterfactual path of each planned
    window ``(episode index, start, {path: poses (steps, 3)})``, and the mean PSNR of the
    replayed frames against the footage."""
    truths: dict[str, list[np.ndarray]] = {path: [] for path in PATHS}
    replay_psnr = []
    for index, episode in enumerate(tqdm(held_out, desc="replaying held-out episodes")):
        mine = [plan for plan in plans if plan[0] == index]
        renders: dict[int, list[np.ndarray]] = {}
        for _, start, poses in mine:
            for path in PATHS:
                for step, pose in enumerate(poses[path]):
                    renders.setdefault(start + context + step, []).append(pose)
        frames, drawn = replay(env, seeds[episode.episode_id], episode, renders)
        replay_psnr.append(float(psnr(frames[None], episode.frames[None]).mean()))
        taken = {t: 0 for t in drawn}
        for _, start, poses in mine:
            for path in PATHS:
                film = []
                for step in range(len(poses[path])):
                    t = start + context + step
                    film.append(drawn[t][taken[t]])
                    taken[t] += 1
                truths[path].append(np.stack(film))
    return {path: np.stack(films) for path, films in truths.items()}, float(np.mean(replay_psnr))


def main() -> None:
    """Measure and write experiments/results/camera_counterfactual.json."""
    args, folder, model = camera_bench_setup(__doc__ or "", "camera_counterfactual")
    k, steps = model.config.context, args.steps
    low = np.asarray(model.config.action_low[-CAMERA_DIMS:], dtype=np.float32)
    high = np.asarray(model.config.action_high[-CAMERA_DIMS:], dtype=np.float32)
    footage = Path(args.footage)
    sim = json.loads((footage / "footage.json").read_text())["recorder"]["sim"]
    held_out = held_out_episodes(folder, args.footage)
    length = k - 1 + steps
    plans, cut = [], []
    for index, episode in enumerate(held_out):
        starts = window_starts(episode.length, length, args.stride)
        for start, window in zip(starts, windows(episode, length, args.stride), strict=True):
            recorded = window.actions[k - 1 :, -CAMERA_DIMS:]
            pivot = window.actions[k - 2, -CAMERA_DIMS:]
            poses = {p: counterfactual_poses(recorded, pivot, p, low, high) for p in PATHS}
            plans.append((index, start, poses))
            cut.append(window)
    env = make_robot_env(RobotSimConfig(**sim))
    assert isinstance(env, RobotPixelObservation)
    try:
        truths, replay_psnr = render_truths(env, held_out, episode_seeds(footage), plans, k)
    finally:
        env.close()
    if replay_psnr < REPLAY_MIN_PSNR:
        raise RuntimeError(
            f"replaying the footage's torques gives frames {replay_psnr:.1f} dB from the "
            f"footage (< {REPLAY_MIN_PSNR}): this simulator does not reproduce {footage}"
        )
    latents = encode_episodes(model, cut, torch.device("cpu"))
    recorded_films, _, last_context = open_loop_rollouts(model, cut, latents, steps)
    results: dict[str, dict[str, dict[str, float]]] = {}
    gains: dict[str, dict[str, float]] = {}
    reversed_film = recorded_films
    for path in PATHS:
        told = [with_camera_path(w, k, plan[2][path]) for w, plan in zip(cut, plans, strict=True)]
        films, _, _ = open_loop_rollouts(model, told, latents, steps)
        truth = truths[path]
        copy_last = np.broadcast_to(last_context[:, None], truth.shape)
        told_this, right = film_scores(films, truth)
        told_recorded, wrong = film_scores(recorded_films, truth)
        results[path] = {
            "told_this_path": told_this,
            "told_recorded_path": told_recorded,
            "copy_last_frame": film_scores(copy_last, truth)[0],
        }
        gains[path] = {
            "mean_db": float((right - wrong).mean()),
            "last_step_db": float((right - wrong)[:, -1].mean()),
            "windows_better": float((right[:, -1] > wrong[:, -1]).mean()),
        }
        if path == "reverse":
            reversed_film = films
    # How far each window's reversed path strays from the recorded one (azimuth, degrees).
    divergence = np.array(
        [
            np.abs(plan[2]["reverse"][:, 0] - w.actions[k - 1 :, -CAMERA_DIMS]).max()
            for w, plan in zip(cut, plans, strict=True)
        ]
    )
    payload = {
        "checkpoint": str(args.checkpoint),
        "held_out_episodes": len(held_out),
        "windows": len(cut),
        "window_stride": args.stride,
        "rollout_steps": steps,
        "replay_psnr_vs_footage": replay_psnr,
        "mean_reverse_azimuth_divergence_deg": float(divergence.mean()),
        "gain_of_the_right_path": gains,
        **results,
    }
    print(write_result(args.name, payload))
    print(json.dumps(payload, indent=1))
    widest = int(divergence.argmax())
    films_of_widest = (truths["reverse"], reversed_film, recorded_films)
    write_window_strip(
        args.name,
        last_context[widest],
        [f[widest] for f in films_of_widest],
        "real renders along the reversed path / imagined told the reversed path / imagined "
        "told the recorded path",
    )


if __name__ == "__main__":
    main()
