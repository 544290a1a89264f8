"""Read recorded footage (long mp4 parts + Parquet ground truth) back into episodes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from wfm_sim.video import CorruptFootageError, read_video

__all__ = ["CorruptFootageError", "Episode", "read_episodes", "read_video"]


@dataclass
class Episode:
    """One episode of footage.

    ``frames`` (T+1, ...) holds the frames (pixels (T+1, H, W, 3) uint8, or their latents);
    ``actions`` (T,) int64 for discrete actions or (T, A) float32 for vector ones, and
    ``rewards``/``terminated`` (T,), describe the T transitions between them.
    """

    episode_id: int
    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    behaviour: str = ""

    def __post_init__(self) -> None:
        n = len(self.actions)
        if len(self.frames) != n + 1 or len(self.rewards) != n or len(self.terminated) != n:
            raise ValueError(
                f"episode {self.episode_id}: {len(self.frames)} frames need "
                f"{len(self.frames) - 1} actions/rewards/terminations, got "
                f"{len(self.actions)}/{len(self.rewards)}/{len(self.terminated)}"
            )

    @property
    def length(self) -> int:
        """Number of transitions."""
        return len(self.actions)

    @property
    def ended_terminated(self) -> bool:
        """Whether the episode's last transition terminated it (in driving footage, a crash)
        rather than running out of time."""
        return self.length > 0 and bool(self.terminated[-1])

    def with_frames(self, frames: np.ndarray) -> Episode:
        """The same episode with its frames replaced (for example by their latents)."""
        return Episode(
            self.episode_id, frames, self.actions, self.rewards, self.terminated, self.behaviour
        )

    def with_actions(self, actions: np.ndarray) -> Episode:
        """The same episode with its actions replaced (for example another camera path)."""
        return Episode(
            self.episode_id, self.frames, actions, self.rewards, self.terminated, self.behaviour
        )


def read_episodes(footage_dir: str | Path, condition_columns: Sequence[str] = ()) -> list[Episode]:
    """All complete episodes of a footage folder, ordered by episode id.

    ``condition_columns`` names ground-truth columns (such as the camera pose) appended to each
    transition's action, taken at the frame the transition leads to: a model trained on such
    actions renders the next frame as those columns say (camera-conditioned generation).

    Raises ``FileNotFoundError`` for a folder without parts and ``CorruptFootageError`` for a
    part whose video is unreadable or whose frame count differs from its ground truth.
    """
    episodes: list[Episode] = []
    for parquet_path in _part_paths(footage_dir):
        table = pq.read_table(parquet_path).to_pandas()
        missing = sorted(set(condition_columns) - set(table.columns))
        if missing:
            raise ValueError(f"{parquet_path} has no columns {missing} to condition on")
        frames = read_video(parquet_path.with_suffix(".mp4"))
        if len(frames) != len(table):
            raise CorruptFootageError(
                f"{parquet_path.with_suffix('.mp4')} has {len(frames)} frames but its ground "
                f"truth has {len(table)} rows; re-record that part (delete both files)"
            )
        for episode_id, rows in table.groupby("episode", sort=True):
            rows = rows.sort_values("step")
            index = rows["frame"].to_numpy()
            episodes.append(
                episode_from_rows(int(episode_id), frames[index], rows, condition_columns)
            )
    return sorted(episodes, key=lambda e: e.episode_id)


def episode_lengths(footage_dir: str | Path) -> dict[int, int]:
    """Frames per episode of a footage folder, from its ground truth alone (no video is
    decoded): what a frame budget or a length check needs."""
    counts = _ground_truth(footage_dir, "episode").groupby("episode").size()
    return {int(e): int(n) for e, n in counts.sort_index().items()}


def episode_returns(footage_dir: str | Path) -> dict[int, float]:
    """Summed reward per episode of a footage folder, from its ground truth alone: what the
    behaviour that drove each episode earned in the real simulator."""
    sums = _ground_truth(footage_dir, "episode", "reward").groupby("episode")["reward"].sum()
    return {int(e): float(r) for e, r in sums.sort_index().items()}


def _ground_truth(footage_dir: str | Path, *columns: str) -> pd.DataFrame:
    """``columns`` of every part's ground truth, one frame a row (no video decoded)."""
    return pd.concat(
        [
            pq.read_table(path, columns=list(columns)).to_pandas()
            for path in _part_paths(footage_dir)
        ],
        ignore_index=True,
    )


def _part_paths(footage_dir: str | Path) -> list[Path]:
    """The ground-truth files of a footage folder's parts, in order; refuses a folder with
    none."""
    parquet_paths = sorted(Path(footage_dir).glob("part-*.parquet"))
    if not parquet_paths:
        raise FileNotFoundError(
            f"no footage parts in {footage_dir}; record some with `python -m experiments.record`"
        )
    return parquet_paths


def episode_from_rows(
    episode_id: int,
    frames: np.ndarray,
    rows: pd.DataFrame,
    condition_columns: Sequence[str] = (),
) -> Episode:
    """An ``Episode`` from its frames and their ground-truth rows (one per frame, in order);
    see ``read_episodes`` for ``condition_columns``."""
    return Episode(
        episode_id=episode_id,
        frames=frames,
        actions=_transition_actions(rows, condition_columns),
        rewards=rows["reward"].to_numpy()[:-1].astype(np.float32),
        terminated=rows["terminated"].to_numpy()[:-1].astype(bool),
        behaviour=str(rows["behaviour"].iloc[0]),
    )


def _transition_actions(rows: pd.DataFrame, condition_columns: Sequence[str]) -> np.ndarray:
    """(T,) int64 discrete actions, or (T, A) float32 vectors with the condition columns of
    the next frame appended."""
    taken = rows["action"].to_numpy()[:-1]
    vector = len(taken) > 0 and isinstance(taken[0], np.ndarray)
    if not vector and not condition_columns:
        return taken.astype(np.int64)
    actions = np.stack(taken).astype(np.float32) if vector else taken.astype(np.float32)[:, None]
    if condition_columns:
        following = rows[list(condition_columns)].to_numpy(np.float32)[1:]
        actions = np.concatenate([actions, following], axis=1)
    return actions
