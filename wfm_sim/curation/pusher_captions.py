"""Captions of robot-arm footage (Gymnasium's MuJoCo Pusher): what the arm does to the puck.

A caption says whether the arm moves, whether it reaches the puck, whether it pushes the puck
and which way relative to the goal, and where the puck ends, for example

    "The robot arm moves fast, reaches the puck and pushes it toward the goal, leaving it on
    the goal."

``PusherCaptioner`` reads these facts from the footage's per-frame ground truth (fingertip,
puck and goal positions, in metres; ``wfm_sim.sources.pusher``). Pusher's colours say little
that a caption needs, so a clip without ground truth gets a caption from its pixel motion alone
("The robot arm moves." / "The scene stays still.").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from wfm_sim.curation.captions import clip_frames
from wfm_sim.curation.clips import Clip

_POSITION_COLUMNS = ("tip_x", "tip_y", "object_x", "object_y", "goal_x", "goal_y")


@dataclass(frozen=True)
class PusherFacts:
    """What happens in one clip, in metres, from its ground truth.

    ``tip_path``: how far the fingertip travels; ``closest_reach``: the fingertip's closest
    approach to the puck (in the table's plane); ``puck_moved``: how far the puck ends from
    where it started; ``goal_start``/``goal_end``: the puck's distance to the goal at the
    clip's first and last frame; ``episodes``: how many episodes the clip spans.
    """

    tip_path: float
    closest_reach: float
    puck_moved: float
    goal_start: float
    goal_end: float
    episodes: int

    @classmethod
    def from_table(cls, table: pa.Table) -> PusherFacts:
        """The facts of a clip's ground-truth rows (columns ``tip_x`` ... ``goal_y``, and
        ``episode`` if the clip may span several; motion across an episode change is not
        counted)."""
        missing = [c for c in _POSITION_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(
                f"ground truth lacks {missing}; PusherCaptioner needs the Pusher recorder's "
                "columns (fingertip, puck and goal positions)"
            )
        if table.num_rows == 0:
            raise ValueError("a clip's ground truth has no rows")

        def column(name: str) -> np.ndarray:
            return np.asarray(table.column(name).to_numpy(zero_copy_only=False), np.float64)

        tip = np.stack([column("tip_x"), column("tip_y")], axis=1)
        puck = np.stack([column("object_x"), column("object_y")], axis=1)
        goal = np.stack([column("goal_x"), column("goal_y")], axis=1)
        if "episode" in table.column_names:
            episode = np.asarray(table.column("episode").to_numpy())
        else:
            episode = np.zeros(table.num_rows, dtype=np.int64)
        same = episode[1:] == episode[:-1]
        steps = np.linalg.norm(np.diff(tip, axis=0), axis=1)
        last = episode == episode[-1]
        first = episode == episode[0]
        to_goal = np.linalg.norm(puck - goal, axis=1)
        return cls(
            tip_path=float(steps[same].sum()),
            closest_reach=float(np.linalg.norm(tip - puck, axis=1).min()),
            puck_moved=float(np.linalg.norm(puck[last][-1] - puck[first][0])),
            goal_start=float(to_goal[0]),
            goal_end=float(to_goal[-1]),
            episodes=len(np.unique(episode)),
        )


@dataclass(frozen=True)
class PusherCaptioner:
    """Captions of Pusher clips from ground truth (no model needed; see the module docstring).

    Like ``MetadataCaptioner`` the wording is fixed and only the facts vary, so the sentence
    model that embeds captions separates clips by what happens in them. The defaults split the
    recorded behaviours: a scripted pusher (0.8-1.7 m of fingertip travel in 100 steps,
    reaching within 0.08 m, pushing the puck 0.02-0.24 m), random torques (0.4-2 m, no push)
    and a still arm (under 0.005 m).
    """

    still_below: float = 0.02
    """Fingertip travel (m) below which the arm stays still."""
    fast_from: float = 0.012
    """Mean fingertip travel per frame (m) from which the arm moves fast."""
    reach_within: float = 0.09
    """The arm reaches the puck when the fingertip comes this close (m)."""
    push_from: float = 0.01
    """The puck is pushed when it ends this far (m) from where it started."""
    toward_from: float = 0.01
    """A push goes toward (away from) the goal when it brings the puck this much (m) closer
    (further)."""
    on_goal_within: float = 0.05
    """The puck is on the goal within this distance (m)..."""
    near_goal_within: float = 0.12
    """...and near it within this one."""
    still_motion: float = 0.05
    """Without ground truth: mean absolute frame difference (0..255) below this is still."""

    def caption(self, clip: Clip) -> str:
        """One sentence describing ``clip``."""
        frames = clip_frames(clip)
        table = clip.ground_truth
        if table is None or table.num_rows == 0:
            return self._caption_from_pixels(frames)
        if table.num_rows != len(frames):
            raise ValueError(
                f"clip {clip.span.clip_id} has {len(frames)} frames but {table.num_rows} "
                "ground-truth rows; cut the ground truth with the same span as the frames"
            )
        return self.describe(PusherFacts.from_table(table), len(frames))

    def describe(self, facts: PusherFacts, frames: int) -> str:
        """The caption of a clip of ``frames`` frames with these facts."""
        if facts.tip_path < self.still_below:
            sentence = "The robot arm stays still"
        else:
            per_frame = facts.tip_path / max(frames - 1, 1)
            speed = "fast" if per_frame >= self.fast_from else "slowly"
            sentence = f"The robot arm moves {speed}"
            if facts.closest_reach <= self.reach_within:
                sentence += ", reaches the puck"
            else:
                sentence += " without reaching the puck"
        if facts.puck_moved >= self.push_from:
            change = facts.goal_start - facts.goal_end
            if change >= self.toward_from:
                way = " toward the goal"
            elif change <= -self.toward_from:
                way = " away from the goal"
            else:
                way = ""  # across: about as far from the goal as before
            sentence += f" and pushes it{way}, leaving it {self._place(facts.goal_end)}"
        else:
            sentence += f"; the puck stays {self._place(facts.goal_end)}"
        if facts.episodes > 1:
            sentence += f", then the footage cuts to {facts.episodes - 1} other episode(s)"
        return sentence + "."

    def _place(self, distance: float) -> str:
        if distance <= self.on_goal_within:
            return "on the goal"
        if distance <= self.near_goal_within:
            return "near the goal"
        return "far from the goal"

    def _caption_from_pixels(self, frames: np.ndarray) -> str:
        if len(frames) < 2:
            return "A still view of the robot arm and the puck."
        motion = float(np.abs(np.diff(frames.astype(np.float32), axis=0)).mean())
        if motion < self.still_motion:
            return "The scene stays still: the robot arm and the puck do not move."
        return "The robot arm moves."
