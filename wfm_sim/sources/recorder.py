"""Record long footage: several episodes back to back in one mp4, as raw footage is.

Footage is a folder of parts. Part ``k`` is ``part-0000k.mp4`` (the frames) plus
``part-0000k.parquet`` (one row of ground truth per frame). A part is written whole and renamed
into place, the Parquet file last, so a killed run loses only the part it was recording and a
re-run resumes from the first missing part with the same seeds.

Raw footage often exists at several resolutions (the same drive uploaded at 720p and 1080p). To
give curation's semantic dedup real copies to find, the first ``copy_parts`` parts can also be
written at the resolutions in ``copies`` (centre-cropped to their aspect ratio, then resized),
each as its own footage folder ``<out_dir>/copies/<H>x<W>/``.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from wfm_sim.frames import parse_resolution, resize_frames
from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.sources.registry import Source, get_source
from wfm_sim.video import read_video, write_mp4

BehaviourFn = Callable[[np.ndarray, dict[str, Any], np.random.Generator], Any]
"""A behaviour policy: (frame (H, W, 3) uint8, the frame's info dict, rng) -> action (an int
for a discrete action space, a float vector for a box). One that keeps an episode's history (a
planner) has a ``begin_episode()`` method, called before each episode's first frame."""

NO_ACTION = -1
"""The ``action`` of an episode's last frame (from which no action was taken) in footage with
discrete actions; footage with vector actions stores null there."""


@dataclass
class RecorderConfig:
    """What to record and where. ``episodes`` are split into parts of ``episodes_per_part``."""

    out_dir: str = "data/footage/driving"
    source: str = "highway"
    """A name in ``wfm_sim.sources.registry.SOURCES``: ``highway`` or ``pusher``."""
    sim: dict[str, Any] = field(default_factory=dict)
    """The source's config fields that differ from its defaults (``DrivingSimConfig``,
    ``RobotSimConfig``)."""
    episodes: int = 400
    episodes_per_part: int = 25
    seed: int = 0
    fps: int = 5
    crf: int = 12
    copies: list[str] = field(default_factory=list)
    """Extra resolutions ``"HxW"`` to also write the first ``copy_parts`` parts at."""
    copy_parts: int = 0


FOOTAGE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("part", pa.int32()),
    ("frame", pa.int32()),
    ("episode", pa.int32()),
    ("step", pa.int32()),
    ("reward", pa.float32()),
    ("terminated", pa.bool_()),
    ("truncated", pa.bool_()),
    ("behaviour", pa.string()),
    ("sim_seed", pa.int64()),
)
"""Columns of every footage, besides ``action`` and the source's ground truth. One row per
frame: ``action``/``reward``/``terminated``/``truncated`` describe the transition taken *from*
that frame; on an episode's last frame they are no action/NaN/False/False."""


def footage_schema(source: Source, action_space: gym.Space) -> pa.Schema:
    """The Parquet schema of footage from ``source`` with ``action_space``: int8 actions for a
    discrete space, fixed-size float32 lists for a box."""
    if isinstance(action_space, gym.spaces.Discrete):
        action_type: pa.DataType = pa.int8()
    elif isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        action_type = pa.list_(pa.float32(), action_space.shape[0])
    else:
        raise ValueError(f"cannot record actions of {action_space}: need Discrete or a 1-d Box")
    return pa.schema([*FOOTAGE_COLUMNS, ("action", action_type), *source.ground_truth])


def part_paths(out_dir: Path, part: int) -> tuple[Path, Path]:
    """The (mp4, parquet) paths of one footage part."""
    stem = out_dir / f"part-{part:05d}"
    return stem.with_suffix(".mp4"), stem.with_suffix(".parquet")


def episode_seed(base_seed: int, episode: int) -> int:
    """The simulator seed of a global episode index: fixed, so re-runs record the same footage."""
    return base_seed * 1_000_003 + episode


def copy_dir(out_dir: Path, resolution: str) -> Path:
    """The footage folder holding the copies of ``out_dir``'s parts at ``resolution`` ("HxW")."""
    height, width = parse_resolution(resolution)
    return out_dir / "copies" / f"{height}x{width}"


def _part_episodes(config: RecorderConfig, part: int) -> int:
    return min(config.episodes_per_part, config.episodes - part * config.episodes_per_part)


def _record_episode(
    env: gym.Env,
    source: Source,
    behaviour: BehaviourFn,
    rng: np.random.Generator,
    sim_seed: int,
) -> tuple[list[np.ndarray], list[dict]]:
    frame, info = env.reset(seed=sim_seed)
    begin_episode = getattr(behaviour, "begin_episode", None)
    if begin_episode is not None:
        begin_episode()
    frames, rows = [frame], []
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    done = False
    while not done:
        action = _checked_action(behaviour(frame, info, rng), env.action_space)
        next_frame, reward, terminated, truncated, next_info = env.step(action)
        recorded = int(action) if discrete else [float(a) for a in action]
        rows.append(_row(source, info, recorded, float(reward), terminated, truncated))
        frames.append(next_frame)
        frame, info, done = next_frame, next_info, terminated or truncated
    rows.append(_row(source, info, NO_ACTION if discrete else None, float("nan"), False, False))
    return frames, rows


def _checked_action(action: Any, space: gym.Space) -> Any:
    """A behaviour's action in the form ``space`` takes, or a ``ValueError`` naming it."""
    if not isinstance(space, gym.spaces.Box):
        return int(action)
    value = np.asarray(action, dtype=np.float32)
    if value.shape != space.shape or not np.isfinite(value).all():
        raise ValueError(f"behaviour returned {action!r}; expected a finite vector in {space}")
    return np.clip(value, space.low, space.high)


def _row(
    source: Source, info: dict, action: Any, reward: float, terminated: bool, truncated: bool
) -> dict:
    return {
        "action": action,
        "reward": reward,
        "terminated": bool(terminated),
        "truncated": bool(truncated),
        **{name: info[name] for name, _ in source.ground_truth},
    }


def _write_part(
    out_dir: Path,
    part: int,
    config: RecorderConfig,
    frames: list[np.ndarray],
    rows: list[dict],
    schema: pa.Schema,
) -> None:
    mp4_path, parquet_path = part_paths(out_dir, part)
    write_mp4(mp4_path, np.stack(frames), config.fps, config.crf)
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_path(parquet_path) as tmp:
        pq.write_table(table, tmp)


def write_copies(config: RecorderConfig, progress: bool = True) -> list[Path]:
    """Write the copies (``config.copies`` resolutions of the first ``config.copy_parts`` parts)
    that are missing, from the recorded parts; returns the copy folders.

    Copies are made from the recorded mp4 (centre-cropped to the copy's aspect ratio, then
    resized with antialiasing), so footage recorded earlier can get copies later.
    """
    out_dir = Path(config.out_dir)
    folders = [copy_dir(out_dir, resolution) for resolution in config.copies]
    n_parts = min(config.copy_parts, -(-config.episodes // config.episodes_per_part))
    todo = [
        (folder, resolution, part)
        for folder, resolution in zip(folders, config.copies, strict=True)
        for part in range(n_parts)
        if not all(f.exists() for f in part_paths(folder, part))
    ]
    for folder, resolution, part in tqdm(todo, desc="writing copies", disable=not progress):
        mp4_path, parquet_path = part_paths(out_dir, part)
        video = resize_frames(read_video(mp4_path), *parse_resolution(resolution))
        copy_mp4, copy_parquet = part_paths(folder, part)
        write_mp4(copy_mp4, video, config.fps, config.crf)
        with atomic_path(copy_parquet) as tmp:
            shutil.copyfile(parquet_path, tmp)
    return folders


def record_footage(
    config: RecorderConfig,
    behaviours: Sequence[tuple[str, BehaviourFn]],
    progress: bool = True,
) -> Path:
    """Record ``config.episodes`` episodes into long mp4 parts with per-frame ground truth.

    Each episode is driven by one behaviour, cycling through ``behaviours`` so the footage mixes
    good and bad driving. Parts already on disk are kept, so an interrupted run resumes.
    Returns the footage folder.
    """
    if not behaviours:
        raise ValueError("record_footage needs at least one (name, behaviour) pair")
    source = get_source(config.source)
    for resolution in config.copies:
        parse_resolution(resolution)  # fail before recording, not after the first part
    env = source.make_env(dict(config.sim))
    schema = footage_schema(source, env.action_space)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        out_dir / "footage.json",
        {
            "source": source.name,
            "recorder": dataclasses.asdict(config),
            "behaviours": [name for name, _ in behaviours],
            "schema": schema.names,
        },
    )
    n_parts = -(-config.episodes // config.episodes_per_part)
    todo = [p for p in range(n_parts) if not all(f.exists() for f in part_paths(out_dir, p))]
    bar = tqdm(total=config.episodes, desc="recording episodes", disable=not progress)
    bar.update(sum(_part_episodes(config, p) for p in range(n_parts) if p not in todo))
    try:
        for part in todo:
            first = part * config.episodes_per_part
            last = first + _part_episodes(config, part)
            frames: list[np.ndarray] = []
            rows: list[dict] = []
            for episode in range(first, last):
                name, behaviour = behaviours[episode % len(behaviours)]
                sim_seed = episode_seed(config.seed, episode)
                rng = np.random.default_rng(sim_seed)
                ep_frames, ep_rows = _record_episode(env, source, behaviour, rng, sim_seed)
                for step, row in enumerate(ep_rows):
                    row.update(
                        part=part,
                        frame=len(frames) + step,
                        episode=episode,
                        step=step,
                        behaviour=name,
                        sim_seed=sim_seed,
                    )
                frames.extend(ep_frames)
                rows.extend(ep_rows)
                bar.update(1)
            _write_part(out_dir, part, config, frames, rows, schema)
    finally:
        bar.close()
        env.close()
    write_copies(config, progress)
    return out_dir
