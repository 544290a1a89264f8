"""Captioning: one English sentence per clip saying what happens in it.

A caption names the ego car's manoeuvres (lane changes, speeding up, slowing down), its speed,
the lane it drives in, how dense the traffic is and whether it crashes, for example

    "The ego car drives fast (about 105 km/h) in the right lane in dense traffic, changes lane
    to the left twice, then crashes."

Captions come from a ``Captioner``. ``MetadataCaptioner`` derives them from the clip itself:
traffic density, lane position and crashes are read from the pixels (highway-env draws the ego
car green, other cars light blue and crashed cars red, on a grey road with white lane lines),
and speed, lane changes and crashes from the footage's per-frame ground truth where the clip
has it. A clip without ground truth gets a caption from its pixels alone.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
from scipy import ndimage

from wfm_sim.curation.clips import Clip

# highway-env's DiscreteMetaAction indices (wfm_sim.sources.highway.ACTION_NAMES); kept here so
# captioning does not import the simulator.
_LANE_LEFT, _IDLE, _LANE_RIGHT, _FASTER, _SLOWER = 0, 1, 2, 3, 4

# highway-env's rendering palette (highway_env.vehicle.graphics.VehicleGraphics), RGB.
_EGO_GREEN = (50, 200, 0)
_OTHER_BLUE = (100, 200, 255)
_CRASHED_RED = (255, 100, 100)
_PALETTE = np.array(
    [
        (100, 100, 100),  # road
        (255, 255, 255),  # lane lines
        (60, 60, 60),  # vehicle outlines
        _EGO_GREEN,
        _OTHER_BLUE,
        _CRASHED_RED,
    ],
    dtype=np.float32,
)
_GREEN, _BLUE, _RED = 3, 4, 5
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@runtime_checkable
class Captioner(Protocol):
    """Anything that turns a clip into one English sentence.

    ``caption(clip)`` returns the caption of one clip; a captioner may also offer
    ``caption_batch(clips) -> list[str]`` when it is faster in batches (``caption_clips`` uses
    it if present).

    A vision-language model plugs in here: wrap it in a class whose ``caption`` samples a few
    frames of ``clip.frames`` ``(T, H, W, 3) uint8``, prompts the model ("Describe what the
    green ego car does: lane changes, speed, traffic, crashes.") and returns its answer, and
    whose ``caption_batch`` batches those prompts on the GPU. Nothing downstream depends on how
    a caption was made, only on it being a sentence the text embedder can read.
    """

    def caption(self, clip: Clip) -> str:
        """One sentence describing ``clip``."""
        ...


def caption_clips(captioner: Captioner, clips: Sequence[Clip]) -> list[str]:
    """Captions of ``clips`` in order, batched when the captioner offers ``caption_batch``."""
    batch = getattr(captioner, "caption_batch", None)
    if callable(batch):
        captions = list(batch(list(clips)))
        if len(captions) != len(clips):
            raise ValueError(
                f"{type(captioner).__name__}.caption_batch returned {len(captions)} captions "
                f"for {len(clips)} clips; it must return exactly one per clip"
            )
        return captions
    return [captioner.caption(clip) for clip in clips]


def clip_frames(clip: Clip) -> np.ndarray:
    """``clip.frames`` as a ``(T, H, W, 3)`` array with T >= 1, or a clear error naming it."""
    frames = np.asarray(clip.frames)
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(
            f"clip {clip.span.clip_id} has frames of shape {frames.shape}; "
            "expected (T, H, W, 3) uint8 with T >= 1"
        )
    return frames


@dataclass(frozen=True)
class FrameObservation:
    """What one frame shows, read from its pixels.

    ``others`` is the number of other vehicles in view; ``ego_row``/``ego_col`` the ego car's
    centre in pixels (NaN when it cannot be found); ``ego_crashed`` whether it is drawn red;
    ``lane``/``lanes`` the ego car's lane (0 = leftmost in the driving direction) and the
    number of lanes, -1 when the lane lines are not all in view.
    """

    others: int
    ego_row: float
    ego_col: float
    ego_crashed: bool
    lane: int
    lanes: int


def observe_frame(
    frame: np.ndarray,
    ego_hint: tuple[float, float] | None = None,
    max_colour_distance: float = 70.0,
) -> FrameObservation:
    """Read the traffic, the ego car and its lane from one frame ``(H, W, 3) uint8``.

    Each pixel takes the nearest colour of highway-env's palette (within
    ``max_colour_distance``); vehicles are the 8-connected components of the green, blue and
    red pixels (``scipy.ndimage.label``). The ego car is the green one, or after a crash the red
    one nearest ``ego_hint`` (row, col) (default: where highway-env keeps the ego car, half-way
    down and a quarter in from the left). Lane lines are rows that are mostly white; the road's
    edges are the outermost ones.
    """
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"a frame must be (H, W, 3) uint8, got shape {frame.shape}")
    height, width = frame.shape[:2]
    pixels = frame.astype(np.float32)
    distance = np.square(pixels[:, :, None, :] - _PALETTE).sum(axis=-1)
    colour = np.argmin(distance, axis=-1)
    colour[distance.min(axis=-1) > max_colour_distance**2] = -1
    min_size = max(2, (height * width) // 2048)

    green = colour == _GREEN
    ego_row, ego_col, ego_crashed = float("nan"), float("nan"), False
    if green.sum() >= min_size:
        rows, cols = np.nonzero(green)
        ego_row, ego_col = float(rows.mean()), float(cols.mean())

    labels, n = ndimage.label((colour == _BLUE) | (colour == _RED), structure=_EIGHT_CONNECTED)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    vehicles = [label for label in range(1, n + 1) if sizes[label] >= min_size]
    if np.isnan(ego_row) and vehicles:
        hint = ego_hint or (height / 2, width / 4)
        red = [v for v in vehicles if np.any(colour[labels == v] == _RED)]
        if red:
            centres = ndimage.center_of_mass(np.ones_like(labels), labels, red)
            gaps = [np.hypot(r - hint[0], c - hint[1]) for r, c in centres]
            nearest = int(np.argmin(gaps))
            if gaps[nearest] <= max(height, width) / 6:
                ego_row, ego_col = (float(x) for x in centres[nearest])
                ego_crashed = True
                vehicles.remove(red[nearest])

    lane, lanes = _lane_from_lines(frame, ego_row)
    return FrameObservation(len(vehicles), ego_row, ego_col, ego_crashed, lane, lanes)


def _lane_from_lines(frame: np.ndarray, ego_row: float) -> tuple[int, int]:
    """(lane, lanes) from the rows of white lane lines around ``ego_row``; (-1, -1) if unsure."""
    bright = frame.min(axis=-1) > 190
    line_rows = np.flatnonzero(bright.mean(axis=1) > 0.25)
    if len(line_rows) < 2 or np.isnan(ego_row):
        return -1, -1
    groups = np.split(line_rows, np.flatnonzero(np.diff(line_rows) > 1) + 1)
    centres = np.array([g.mean() for g in groups])
    lanes = len(centres) - 1
    if not centres[0] < ego_row < centres[-1]:
        return -1, lanes
    return int(np.searchsorted(centres, ego_row) - 1), lanes


@dataclass(frozen=True)
class _Event:
    """Something the ego car does at frame ``t``: ``kind`` is left/right/faster/slower/crash."""

    t: int
    kind: str
    count: int = 1


def _merge(
    events: list[_Event], kinds: tuple[str, str], merged: str, min_count: int
) -> list[_Event]:
    """Replace ``min_count`` or more events of ``kinds`` that go both ways by one ``merged``."""
    chosen = [e for e in events if e.kind in kinds]
    directions = {e.kind for e in chosen}
    if len(chosen) < min_count or len(directions) < 2:
        return events
    rest = [e for e in events if e.kind not in kinds]
    return sorted(
        [*rest, _Event(chosen[0].t, merged, len(chosen))], key=lambda e: (e.t, e.kind == "crash")
    )


_SUBJECTS = ("The ego car", "The green ego car", "Our car")
_DRIVES = ("drives", "travels", "cruises")
_LEFT = ("changes lane to the left", "moves one lane to the left")
_RIGHT = ("changes lane to the right", "moves one lane to the right")
_FASTER_WORDS = ("speeds up", "accelerates")
_SLOWER_WORDS = ("slows down", "brakes")
_WEAVE = ("weaves between the lanes", "zigzags between the lanes")
_VARIES = ("keeps changing its speed", "speeds up and slows down repeatedly")
_CRASH = ("crashes", "crashes into another car", "collides with another car")
_CRASH_START = ("is crashed", "stands crashed")
_COUNT_WORDS = {1: "", 2: " twice", 3: " three times"}
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")


class MetadataCaptioner:
    """Captions from what a clip shows plus the footage's ground truth (no model needed).

    Traffic density and the lane lines are always read from the pixels (see
    ``observe_frame``). With ground-truth columns (``speed``, ``lane``, ``crashed``, ``action``,
    ``episode``) the caption also gives the speed in km/h, lane changes from the ``lane``
    column, speeding up / slowing down from the speed trend (or from FASTER/SLOWER actions when
    there is no ``speed`` column) and crashes from ``crashed``; without them, lane changes and
    crashes come from the pixels and the speed is left out.

    Captions are deterministic and short, with the facts as the only thing that varies, because
    the sentence model that embeds them weighs wording more than facts: in all-MiniLM-L6-v2,
    "The ego car drives ..." against "Our car cruises ..." with the same facts scores cosine
    0.60, while "left lane" against "right lane" in the same sentence scores 0.997. With
    ``paraphrase`` the wording (subject, verbs) is picked by a hash of the clip id instead, for
    human-like variety at the cost of text-to-clip retrieval.

    ``slow_below``/``fast_from`` (km/h, compared after rounding to 5 km/h as in the caption)
    bound "slow" and "fast" speeds, ``speed_change`` (m/s)
    is the smallest change called speeding up or slowing down, and ``light_below``/
    ``dense_from`` bound the mean number of other cars in view for light and dense traffic (the
    defaults split the 64x64 driving footage, where 1-2.5 cars are in view, into roughly 15%
    light, 70% moderate, 15% dense; below 0.5 cars the road is empty).
    """

    def __init__(
        self,
        paraphrase: bool = False,
        slow_below: float = 80.0,
        fast_from: float = 100.0,
        speed_change: float = 3.0,
        light_below: float = 1.25,
        dense_from: float = 2.0,
    ) -> None:
        self.paraphrase = paraphrase
        self.slow_below = slow_below
        self.fast_from = fast_from
        self.speed_change = speed_change
        self.light_below = light_below
        self.dense_from = dense_from

    def caption(self, clip: Clip) -> str:
        """One sentence describing ``clip`` (see the class docstring)."""
        frames = clip_frames(clip)
        observations = _observe_clip(frames)
        truth = _GroundTruth.from_table(clip.ground_truth, len(frames))
        pick = _Picker(clip.span.clip_id if self.paraphrase else "")

        lanes_in_view = [o.lanes for o in observations if o.lanes > 0]
        lanes = int(np.median(lanes_in_view)) if lanes_in_view else 3
        pixel_lanes = np.array([o.lane for o in observations])
        lane_seq = truth.lane if truth.lane is not None else pixel_lanes
        events = self._events(truth, observations, lane_seq)
        crash_at_start = events[:1] == [_Event(0, "crash")]

        parts = [pick("subject", _SUBJECTS)]
        speed = truth.mean_speed()
        if crash_at_start:
            parts.append(pick("crash_start", _CRASH_START))
        else:
            parts.append(pick("drive", _DRIVES))
            if speed is not None:
                parts.append(self._speed_words(speed))
        start_lane = next((int(x) for x in lane_seq if x >= 0), -1)
        if start_lane >= 0:
            parts.append(f"in the {_lane_name(start_lane, lanes)}")
        parts.append(self._traffic_words(observations))
        head = " ".join(parts)

        described = self._describe(events[1:] if crash_at_start else events, pick)
        scenes = truth.episodes()
        if scenes > 1:
            described.append(f"then the footage cuts to {scenes - 1} other drive(s)")
        if not described:
            return f"{head}."
        if len(described) == 1:
            return f"{head}, and {described[0]}."
        return f"{head}, {', '.join(described[:-1])}, then {described[-1]}."

    def caption_batch(self, clips: Sequence[Clip]) -> list[str]:
        """``caption`` of each clip, in order."""
        return [self.caption(clip) for clip in clips]

    def _events(
        self,
        truth: _GroundTruth,
        observations: list[FrameObservation],
        lane_seq: np.ndarray,
    ) -> list[_Event]:
        events: list[_Event] = []
        same_episode = truth.same_episode_steps()
        for t in range(len(lane_seq) - 1):
            a, b = int(lane_seq[t]), int(lane_seq[t + 1])
            if same_episode[t] and a >= 0 and b >= 0 and a != b:
                events.extend(
                    _Event(t + 1, "left" if b < a else "right") for _ in range(abs(b - a))
                )
        events.extend(self._speed_events(truth, same_episode))
        crashed = truth.crashed
        if crashed is None:
            crashed = np.array([o.ego_crashed for o in observations])
        if crashed.any():
            events.append(_Event(int(np.argmax(crashed)), "crash"))
        return sorted(events, key=lambda e: (e.t, e.kind == "crash"))

    def _speed_events(self, truth: _GroundTruth, same_episode: np.ndarray) -> list[_Event]:
        """Runs of speed change of at least ``speed_change`` m/s, or FASTER/SLOWER actions."""
        if truth.speed is None:
            if truth.action is None:
                return []
            return [
                _Event(t, "faster" if a == _FASTER else "slower")
                for t, a in enumerate(truth.action[:-1])
                if same_episode[t] and a in (_FASTER, _SLOWER)
            ][:4]
        steps = np.diff(truth.speed)
        crashed = truth.crashed if truth.crashed is not None else np.zeros(len(truth.speed), bool)
        events: list[_Event] = []
        run_start, run_sum = 0, 0.0
        for t, step in enumerate(steps):
            valid = same_episode[t] and not crashed[t + 1] and abs(step) > 0.3
            sign = np.sign(step) if valid else 0.0
            if sign != 0 and sign == np.sign(run_sum):
                run_sum += float(step)
                continue
            self._close_run(events, run_start, run_sum)
            run_start, run_sum = t, float(step) if sign != 0 else 0.0
        self._close_run(events, run_start, run_sum)
        return events

    def _close_run(self, events: list[_Event], start: int, total: float) -> None:
        if abs(total) >= self.speed_change:
            events.append(_Event(start, "faster" if total > 0 else "slower"))

    def _describe(self, events: list[_Event], pick: _Picker) -> list[str]:
        """Phrases for the events in time order, repeats grouped ("changes lane ... twice").

        Three or more lane changes in both directions become one "weaves between the lanes";
        three or more speed changes in both directions become one "keeps changing its speed".
        """
        events = _merge(events, ("left", "right"), "weave", min_count=3)
        events = _merge(events, ("faster", "slower"), "varies", min_count=3)
        words = {
            "left": pick("left", _LEFT),
            "right": pick("right", _RIGHT),
            "faster": pick("faster", _FASTER_WORDS),
            "slower": pick("slower", _SLOWER_WORDS),
            "varies": pick("varies", _VARIES),
            "crash": pick("crash", _CRASH),
        }
        phrases: list[str] = []
        i = 0
        while i < len(events):
            j = i
            while j + 1 < len(events) and events[j + 1].kind == events[i].kind:
                j += 1
            kind = events[i].kind
            if kind == "weave":
                phrases.append(f"{pick('weave', _WEAVE)} ({events[i].count} lane changes)")
            else:
                count = j - i + 1
                phrases.append(words[kind] + _COUNT_WORDS.get(count, f" {count} times"))
            i = j + 1
        return phrases

    def _speed_words(self, speed: float) -> str:
        kmh = int(round(speed * 3.6 / 5.0) * 5)
        if kmh < self.slow_below:
            word = "slowly"
        elif kmh < self.fast_from:
            word = "at a moderate speed"
        else:
            word = "fast"
        return f"{word} (about {kmh} km/h)"

    def _traffic_words(self, observations: list[FrameObservation]) -> str:
        mean = float(np.mean([o.others for o in observations]))
        if mean < 0.5:
            return "on an empty road"
        if mean < self.light_below:
            return "in light traffic"
        if mean < self.dense_from:
            return "in moderate traffic"
        return "in dense traffic"


def _lane_name(lane: int, lanes: int) -> str:
    if lanes <= 1:
        return "only lane"
    if lane <= 0:
        return "left lane"
    if lane >= lanes - 1:
        return "right lane"
    if lanes == 3:
        return "middle lane"
    return f"{_ORDINALS[min(lane, len(_ORDINALS) - 1)]} lane from the left"


def _observe_clip(frames: np.ndarray) -> list[FrameObservation]:
    """``observe_frame`` of every frame, following the ego car from frame to frame."""
    observations: list[FrameObservation] = []
    hint: tuple[float, float] | None = None
    for frame in frames:
        observation = observe_frame(frame, ego_hint=hint)
        if not np.isnan(observation.ego_row):
            hint = (observation.ego_row, observation.ego_col)
        observations.append(observation)
    return observations


class _Picker:
    """Deterministic choice of wording: the same clip id and slot always give the same words."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, slot: str, options: Sequence[str]) -> str:
        if not self.key:
            return options[0]
        return options[zlib.crc32(f"{self.key}/{slot}".encode()) % len(options)]


@dataclass
class _GroundTruth:
    """The ground-truth columns a caption uses, each ``(T,)`` or None when absent."""

    length: int
    speed: np.ndarray | None
    lane: np.ndarray | None
    crashed: np.ndarray | None
    action: np.ndarray | None
    episode: np.ndarray | None

    @classmethod
    def from_table(cls, table: pa.Table | None, frames: int) -> _GroundTruth:
        if table is None or table.num_rows == 0:
            return cls(frames, None, None, None, None, None)
        if table.num_rows != frames:
            raise ValueError(
                f"clip has {frames} frames but {table.num_rows} ground-truth rows; "
                "cut the ground truth with the same span as the frames"
            )

        def column(name: str, dtype: type) -> np.ndarray | None:
            if name not in table.column_names:
                return None
            values = table.column(name).to_numpy(zero_copy_only=False)
            if dtype is float:
                return np.asarray(values, dtype=np.float64)
            return np.asarray(values).astype(dtype)

        return cls(
            length=frames,
            speed=column("speed", float),
            lane=column("lane", int),
            crashed=column("crashed", bool),
            action=column("action", int),
            episode=column("episode", int),
        )

    def same_episode_steps(self) -> np.ndarray:
        """``(T-1,)`` bool: whether frames t and t+1 belong to the same episode."""
        if self.episode is None:
            return np.ones(max(self.length - 1, 0), dtype=bool)
        return self.episode[1:] == self.episode[:-1]

    def episodes(self) -> int:
        return 1 if self.episode is None else len(np.unique(self.episode))

    def mean_speed(self) -> float | None:
        if self.speed is None:
            return None
        speed = self.speed
        if self.crashed is not None and not self.crashed.all():
            speed = speed[~self.crashed]
        speed = speed[np.isfinite(speed)]
        return float(speed.mean()) if len(speed) else None
