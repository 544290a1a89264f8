"""Shot-boundary detection: find where long footage jumps to a new scene, from its frames alone.

Raw footage holds several episodes back to back. Curation cuts it into clips at every jump of
the scene, so that no clip spans two episodes. The detector sees only pixels; the episode ids
of the footage's ground truth are used to *score* it (``true_cuts_from_ground_truth``,
``cut_precision_recall``), never as an input.

A cut between frames ``i - 1`` and ``i`` is declared when any of four cues fires:

==============  ===========================================================================
cue             fires when
==============  ===========================================================================
``appearance``  both the mean absolute pixel difference and the colour-histogram distance
                jump above an adaptive threshold (a multiple of their rolling median, with an
                absolute floor): a change of scene, lighting or palette.
``pan``         the background (the rows' mean-grey profile: for top-down driving the road
                and its markings) moves further than a camera following a car can move in one
                frame.
``subject``     the camera-locked subject (pixels that are foreground in most frames, e.g.
                the ego car the camera follows) returns to its usual colour after a frame in
                an unusual one: in highway-env a crash paints the ego car red and ends the
                episode, and the next episode starts with it green again.
``objects``     a foreground object appears or vanishes in the middle of the frame, where no
                motion within the allowed per-frame displacement could bring it in or take it
                out of view.
==============  ===========================================================================

Highway-env footage at 1 s per frame is hard for classic shot detectors: within an episode a
lane change shifts the whole road (mean absolute difference up to ~20 of 255), while a reset
into the same lane with similar traffic changes a few dozen pixels (~2). So the plain
appearance cue is only a safety net for real scene changes; the other cues carry the driving
footage. An optional prior, ``max_shot_frames``, adds the cuts that only a time limit
explains (episodes truncated after ``duration`` steps end without any visual event).

Geometry thresholds are fractions of the frame's larger side, so copies of the footage at other
resolutions (centre-cropped to an aspect ratio, then resized) are cut alike down to ~48 pixels;
below that the cars are too small to see.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy import ndimage

CUES: tuple[str, ...] = ("appearance", "pan", "subject", "objects")
"""The visual cues of ``cut_evidence``, in the order they are documented."""


@dataclass
class ShotConfig:
    """Thresholds of shot-boundary detection and the bounds of the clips cut from shots.

    The defaults are tuned on the driving footage (64x64 highway-env frames, 1 s per frame):
    none of the cues fires inside an episode of the 20 parts of ``data/footage/driving``.
    Sizes are fractions of the frame's larger side ("side" below).
    """

    rolling_window: int = 15
    """Frames in the rolling median that the appearance thresholds adapt to."""
    mad_factor: float = 4.0
    """Appearance: mean absolute difference must exceed this multiple of its rolling median..."""
    mad_floor: float = 30.0
    """...and this absolute floor (0..255 scale)."""
    hist_factor: float = 4.0
    """Appearance: colour-histogram distance must exceed this multiple of its rolling median..."""
    hist_floor: float = 0.25
    """...and this absolute floor (half the L1 distance of normalised histograms, 0..1)."""
    hist_bins: int = 8
    """Histogram bins per colour channel."""
    max_pan: float = 0.125
    """Pan: the largest vertical background shift within a shot (a lane change: 6 px of 64), per
    side."""
    pan_search: float = 0.25
    """Pan: shifts up to this fraction of the side are searched."""
    pan_min_gain: float = 1.0
    """Pan: the best shift must match the rows' profile this much better (grey levels) than no
    shift, so featureless backgrounds never report a pan."""
    foreground_saturation: int = 60
    """Foreground (subject and objects) = pixels with max - min over RGB at least this: the
    simulator draws vehicles in colour over a grey road."""
    subject_fraction: float = 0.5
    """Subject: pixels that are foreground in at least this fraction of the frames."""
    subject_margin: int = 2
    """Subject: pixels within this distance of the locked ones belong to it too."""
    subject_colour_change: float = 60.0
    """Subject: mean colour further than this (max over RGB) from its median is unusual."""
    object_min_pixels: int = 2
    """Objects: smaller foreground components are noise."""
    object_shift_left: float = 0.41
    """Objects: the largest leftward move per frame, per side (traffic the ego car overtakes
    drifts left by up to ~24 px of 64)."""
    object_shift_right: float = 0.125
    """Objects: the largest rightward move per frame, per side (faster traffic pulls ahead)."""
    object_shift_vertical: float = 0.125
    """Objects: the largest vertical move per frame relative to the background (another car's
    lane change), per side."""
    max_shot_frames: int | None = None
    """Optional prior: shots are at most this long (a simulator's time limit: highway-fast-v0
    episodes of ``duration`` 30 span 31 frames). When no cut is seen for this many frames one
    is added there. ``None`` trusts the frames alone."""
    min_clip_frames: int = 8
    """Clips shorter than this are still returned by ``split_into_clips``; filtering drops them
    later, with the reason."""
    max_clip_frames: int = 32
    """Shots longer than this are split evenly into clips of at most this many frames."""

    def __post_init__(self) -> None:
        if self.max_clip_frames < 1:
            raise ValueError(f"max_clip_frames must be >= 1, got {self.max_clip_frames}")
        if self.min_clip_frames > self.max_clip_frames:
            raise ValueError(
                f"min_clip_frames {self.min_clip_frames} exceeds max_clip_frames "
                f"{self.max_clip_frames}; no clip could pass"
            )
        if self.max_shot_frames is not None and self.max_shot_frames < 1:
            raise ValueError(f"max_shot_frames must be >= 1 or None, got {self.max_shot_frames}")


def detect_cuts(frames: np.ndarray, config: ShotConfig) -> np.ndarray:
    """Frame indices where a new shot begins.

    ``frames``: (T, H, W, 3) uint8, one footage part. Returns a sorted int64 array of indices
    ``i`` in ``1..T-1``: frame ``i`` starts a new shot (frames ``i - 1`` and ``i`` belong to
    different scenes).
    """
    evidence = cut_evidence(frames, config)
    fired = np.zeros(max(len(frames) - 1, 0), dtype=bool)
    for cue in CUES:
        fired |= evidence[cue]
    cuts = np.flatnonzero(fired) + 1
    if config.max_shot_frames is not None:
        cuts = _apply_time_limit(cuts, len(frames), config.max_shot_frames)
    return cuts.astype(np.int64)


def cut_evidence(frames: np.ndarray, config: ShotConfig) -> dict[str, np.ndarray]:
    """Which cue fires between each pair of consecutive frames (for diagnostics and tuning).

    ``frames``: (T, H, W, 3) uint8. Returns ``{cue: (T-1,) bool}`` for each cue in ``CUES``
    (element ``i - 1`` is the boundary before frame ``i``), plus the raw per-pair signals
    ``"mad"``, ``"hist"`` (float) and ``"pan_shift"`` (int, rows).
    """
    _check_frames(frames)
    pairs = len(frames) - 1
    if pairs < 1:
        empty_bool = np.zeros(0, dtype=bool)
        return {
            **{cue: empty_bool for cue in CUES},
            "mad": np.zeros(0),
            "hist": np.zeros(0),
            "pan_shift": np.zeros(0, dtype=np.int64),
        }
    side = max(frames.shape[1:3])
    mad, hist = _appearance_signals(frames, config.hist_bins)
    appearance = _adaptive_jump(mad, config.mad_factor, config.mad_floor, config.rolling_window)
    appearance &= _adaptive_jump(hist, config.hist_factor, config.hist_floor, config.rolling_window)

    shift, gain = _background_shift(frames, max(1, math.ceil(config.pan_search * side)))
    pan = (np.abs(shift) > config.max_pan * side) & (gain >= config.pan_min_gain)

    saturation = frames.max(axis=-1) - frames.min(axis=-1)
    foreground = saturation >= config.foreground_saturation
    subject_mask = foreground.mean(axis=0) >= config.subject_fraction
    if subject_mask.any():  # a margin for the subject's tilt and for being knocked aside
        subject_mask = ndimage.binary_dilation(subject_mask, iterations=config.subject_margin)
    unusual, usual = _subject_states(frames, foreground, subject_mask, config.subject_colour_change)
    subject = unusual[:-1] & usual[1:]
    # Around a subject in an unusual state (a crash) objects are knocked about: not evidence.
    objects = _object_jumps(foreground, subject_mask, shift, config) & ~unusual[1:]
    return {
        "appearance": appearance,
        "pan": pan,
        "subject": subject,
        "objects": objects,
        "mad": mad,
        "hist": hist,
        "pan_shift": shift,
    }


def split_into_clips(
    num_frames: int, cuts: np.ndarray, config: ShotConfig
) -> list[tuple[int, int]]:
    """Cut ``num_frames`` frames into clips ``[start, end)``: shots split at ``cuts``, and each
    shot longer than ``config.max_clip_frames`` split evenly into the fewest pieces that fit (so
    no tiny tail: piece lengths differ by at most one).

    Clips shorter than ``config.min_clip_frames`` are returned too; the filter stage drops them
    and records why. The clips cover ``[0, num_frames)`` exactly, in order.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    cuts = np.unique(np.asarray(cuts, dtype=np.int64))
    if cuts.size and (cuts[0] < 1 or cuts[-1] > num_frames - 1):
        raise ValueError(
            f"cuts must lie in 1..{num_frames - 1} (a cut at i starts a shot at frame i), "
            f"got {cuts[0]}..{cuts[-1]}"
        )
    bounds = [0, *cuts.tolist(), num_frames] if num_frames else []
    clips: list[tuple[int, int]] = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        length = end - start
        pieces = -(-length // config.max_clip_frames)
        edges = [start + (k * length) // pieces for k in range(pieces + 1)]
        clips += list(zip(edges[:-1], edges[1:], strict=True))
    return clips


def cut_precision_recall(
    detected: np.ndarray, true_cuts: np.ndarray, tolerance: int = 0
) -> dict[str, float]:
    """Score detected cuts against true ones, matching them one to one within ``tolerance``
    frames (a detection off by more is both a false positive and a miss).

    Returns ``precision``, ``recall``, ``f1`` and the counts ``tp``, ``fp``, ``fn``. With
    nothing detected precision is 1.0; with nothing to find recall is 1.0.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 frames, got {tolerance}")
    found = np.unique(np.asarray(detected, dtype=np.int64))
    truth = np.unique(np.asarray(true_cuts, dtype=np.int64))
    tp = i = j = 0
    while i < len(found) and j < len(truth):  # greedy in order is optimal for 1-D windows
        if abs(int(found[i]) - int(truth[j])) <= tolerance:
            tp, i, j = tp + 1, i + 1, j + 1
        elif found[i] < truth[j]:
            i += 1
        else:
            j += 1
    return _scores_from_counts(tp, len(found) - tp, len(truth) - tp)


def pooled_cut_precision_recall(
    parts: Iterable[tuple[np.ndarray, np.ndarray]], tolerance: int = 0
) -> dict[str, float]:
    """``cut_precision_recall`` over several videos at once: (detected, true cuts) per video,
    counts summed over videos before the ratios are taken."""
    totals = [0, 0, 0]
    for detected, true_cuts in parts:
        scores = cut_precision_recall(detected, true_cuts, tolerance)
        for i, key in enumerate(("tp", "fp", "fn")):
            totals[i] += int(scores[key])
    return _scores_from_counts(*totals)


def _scores_from_counts(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def true_cuts_from_ground_truth(table: pa.Table) -> np.ndarray:
    """The true cuts of a footage part: frame indices where the ``episode`` id changes.

    ``table``: the part's per-frame ground truth (columns ``frame`` and ``episode``). For
    scoring ``detect_cuts`` only.
    """
    missing = {"frame", "episode"} - set(table.column_names)
    if missing:
        raise ValueError(f"ground truth lacks column(s) {sorted(missing)}; is it a footage part?")
    frame = np.asarray(table.column("frame").to_numpy(), dtype=np.int64)
    episode = np.asarray(table.column("episode").to_numpy())
    order = np.argsort(frame, kind="stable")
    frame, episode = frame[order], episode[order]
    return frame[1:][episode[1:] != episode[:-1]].astype(np.int64)


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        kind = frames.dtype if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ValueError(f"frames must be a uint8 numpy array (T, H, W, 3), got {kind}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape[1:3]:
        raise ValueError(f"frames must have shape (T, H, W, 3) with H, W > 0, got {frames.shape}")


def _appearance_signals(
    frames: np.ndarray, bins: int, chunk: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Per consecutive pair: mean absolute difference (0..255) and colour-histogram distance
    (half the L1 distance of the normalised ``bins``-per-channel joint histograms, 0..1)."""
    if not 1 <= bins <= 256 or bins & (bins - 1):
        raise ValueError(f"hist_bins must be a power of two up to 256, got {bins}")
    shift = 8 - bins.bit_length() + 1
    hists = np.empty((len(frames), bins**3))
    for start in range(0, len(frames), chunk):
        codes = frames[start : start + chunk] >> np.uint8(shift)
        index = (codes[..., 0].astype(np.int64) * bins + codes[..., 1]) * bins + codes[..., 2]
        offsets = np.arange(len(codes))[:, None] * bins**3
        counts = np.bincount(
            (index.reshape(len(codes), -1) + offsets).ravel(), minlength=len(codes) * bins**3
        )
        hists[start : start + len(codes)] = counts.reshape(len(codes), -1) / index[0].size
    hist = 0.5 * np.abs(np.diff(hists, axis=0)).sum(axis=1)
    mad = np.empty(len(frames) - 1)
    for start in range(0, len(frames) - 1, chunk):
        stop = min(start + chunk, len(frames) - 1)
        block = frames[start : stop + 1].astype(np.int16)
        mad[start:stop] = np.abs(np.diff(block, axis=0)).mean(axis=(1, 2, 3))
    return mad, hist


def _adaptive_jump(signal: np.ndarray, factor: float, floor: float, window: int) -> np.ndarray:
    """``signal`` above both ``floor`` and ``factor`` times its rolling median."""
    median = ndimage.median_filter(signal, size=max(1, window), mode="nearest")
    return (signal > floor) & (signal > factor * median)


def _background_shift(frames: np.ndarray, search: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertical shift (rows) of each frame's background against the previous frame, and how much
    better it matches than no shift.

    The background is summarised by the rows' mean grey level (T, H): for a top-down view of a
    road along the x axis these profiles hold the road edges and lane markings, which move up
    or down as the followed car changes lanes. Smaller shifts win ties.
    """
    profile = frames.mean(axis=(2, 3))
    height = profile.shape[1]
    search = min(search, height - 1)
    before, after = profile[:-1], profile[1:]
    best_cost = np.full(len(after), np.inf)
    best = np.zeros(len(after), dtype=np.int64)
    zero_cost = np.abs(after - before).mean(axis=1)
    for dy in sorted(range(-search, search + 1), key=abs):
        # after[y] ~ before[y - dy]
        lo, hi = max(0, dy), height + min(0, dy)
        cost = np.abs(after[:, lo:hi] - before[:, lo - dy : hi - dy]).mean(axis=1)
        better = cost < best_cost
        best_cost[better], best[better] = cost[better], dy
    return best, zero_cost - best_cost


def _subject_states(
    frames: np.ndarray, foreground: np.ndarray, subject: np.ndarray, change: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, whether the camera-locked subject shows an unusual colour (far from its median
    over the frames: a crash paints the ego car red) or its usual one; (T,) bool each. Frames
    where no subject pixel is foreground are neither."""
    unusual = np.zeros(len(frames), dtype=bool)
    usual = np.zeros(len(frames), dtype=bool)
    if not subject.any():
        return unusual, usual
    pixels = foreground[:, subject]  # (T, S)
    count = pixels.sum(axis=1)
    seen = count > 0
    if not seen.any():
        return unusual, usual
    values = frames[:, subject].astype(np.float64)  # (T, S, 3)
    colour = np.full((len(frames), 3), np.nan)
    colour[seen] = (values[seen] * pixels[seen, :, None]).sum(axis=1) / count[seen, None]
    distance = np.abs(colour - np.nanmedian(colour, axis=0)).max(axis=1)
    unusual[seen] = distance[seen] > change
    usual[seen] = distance[seen] <= change
    return unusual, usual


def _object_jumps(
    foreground: np.ndarray, subject: np.ndarray, shift: np.ndarray, config: ShotConfig
) -> np.ndarray:
    """Boundaries where a foreground object appears or vanishes where it could not have moved
    in or out of view.

    ``foreground``: (T, H, W) bool; ``subject``: (H, W) bool, the camera-locked subject (not an
    object); ``shift``: (T-1,) background shift of each frame against the previous one (objects
    ride on the background).
    """
    frames, height, width = foreground.shape
    per_frame = _objects_per_frame(foreground, subject, config.object_min_pixels)
    side = max(height, width)
    left = config.object_shift_left * side
    right = config.object_shift_right * side
    lateral = config.object_shift_vertical * side
    jumps = np.zeros(frames - 1, dtype=bool)
    for i in range(1, frames):
        before, after, dy = per_frame[i - 1], per_frame[i], float(shift[i - 1])
        vanished = any(
            x_max - left >= 0  # cannot have left through the left edge...
            and x_min + right < width  # ...nor through the right one
            and not _seen_within((x - left, x + right), (y + dy - lateral, y + dy + lateral), after)
            for x, y, x_min, x_max in before
        )
        appeared = any(
            x_min + left < width  # cannot have come in through the right edge...
            and x_max - right >= 0  # ...nor through the left one
            and not _seen_within(
                (x - right, x + left), (y - dy - lateral, y - dy + lateral), before
            )
            for x, y, x_min, x_max in after
        )
        jumps[i - 1] = vanished or appeared
    return jumps


_Object = tuple[float, float, int, int]
"""A foreground object in one frame: centre x, centre y, first and last column."""


def _objects_per_frame(
    foreground: np.ndarray, subject: np.ndarray, min_pixels: int
) -> list[list[_Object]]:
    """The foreground objects of each frame outside the subject, leaving out specks."""
    within_frame = np.zeros((3, 3, 3), dtype=bool)
    within_frame[1] = True  # 8-connected, within a frame only
    along_rows = np.zeros((1, 1, 3), dtype=bool)
    along_rows[0, 0] = True
    objects = foreground & ~subject
    # Pieces one pixel apart along a row are one object: a tilted car at low resolution breaks
    # into pieces. (Not across rows: that would glue cars in adjacent lanes.)
    labels, _ = ndimage.label(
        ndimage.binary_dilation(objects, structure=along_rows) & ~subject, structure=within_frame
    )
    labels[~objects] = 0
    per_frame: list[list[_Object]] = [[] for _ in range(len(foreground))]
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        mask = labels[box][0] == index + 1
        if mask.sum() < min_pixels:
            continue
        ys, xs = np.nonzero(mask)
        per_frame[box[0].start].append(
            (
                float(xs.mean() + box[2].start),
                float(ys.mean() + box[1].start),
                box[2].start,
                box[2].stop - 1,
            )
        )
    return per_frame


def _seen_within(xs: tuple[float, float], ys: tuple[float, float], objects: list[_Object]) -> bool:
    """Whether an object's centre lies in the window ``xs`` x ``ys``."""
    return any(xs[0] <= x <= xs[1] and ys[0] <= y <= ys[1] for x, y, _, _ in objects)


def _apply_time_limit(cuts: np.ndarray, num_frames: int, limit: int) -> np.ndarray:
    """Add a cut ``limit`` frames after each shot start whose shot would run longer."""
    out: list[int] = []
    start = 0
    for cut in [*cuts.tolist(), num_frames]:
        while cut - start > limit:
            start += limit
            out.append(start)
        if cut < num_frames:
            out.append(cut)
        start = cut
    return np.asarray(out, dtype=np.int64)
