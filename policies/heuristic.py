"""A hand-written driving policy that reads the top-down frame by colour.

The frame (highway-env's renderer at 1.5 px/m) shows the ego car in green, a quarter of the
way in from the left and vertically centred, other cars in blue (red once crashed), lanes
6 px tall separated by dashed white markings and bounded by solid white lines. The heuristic
finds those by colour thresholds loose enough to survive a world model's blur, then keeps its
lane, overtakes through a free adjacent lane when blocked, or slows down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)


@dataclass
class HeuristicConfig:
    """Distances (in pixels, 1.5 px per metre) that the heuristic reacts to.

    | field           | meaning                                                           |
    |-----------------|-------------------------------------------------------------------|
    | block_px        | a car closer than this ahead in the ego lane forces a change/brake |
    | clear_px        | no car closer than this ahead in the ego lane allows FASTER        |
    | side_ahead_px   | an adjacent lane is free if no car this far ahead of the ego front |
    | side_behind_px  | ... and no car this far behind the ego's rear                      |
    | merge_px        | FASTER also needs adjacent lanes clear this far (cars cut in)      |
    | lane_width_px   | lane height in the frame, used when markings are not visible       |
    | keep_right      | move to a free lane on the right when cruising (rewarded)          |
    """

    block_px: int = 38
    clear_px: int = 48
    side_ahead_px: int = 24
    side_behind_px: int = 8
    merge_px: int = 30
    lane_width_px: int = 6
    keep_right: bool = False


@dataclass
class _Scene:
    """What the heuristic reads from one frame: ego box, lane row bands, obstacle mask."""

    ego_front: int
    ego_back: int
    ego_band: tuple[int, int]
    left_band: tuple[int, int] | None
    right_band: tuple[int, int] | None
    obstacles: np.ndarray  # (H, W) bool


def _colour_masks(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ego, other-car, white-marking and road-grey masks of one ``(H, W, 3) uint8`` frame."""
    f = frame.astype(np.int16)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    ego = (g > 140) & (r < 120) & (b < 90)
    blue = (b > 190) & (g > 140) & (r < 170)
    red = (r > 190) & (g < 170) & (b < 170) & (r - g > 60)
    yellow = (r > 150) & (g > 150) & (b < 90)
    white = (r > 200) & (g > 200) & (b > 200)
    grey = (np.abs(r - 100) < 20) & (np.abs(g - 100) < 20) & (np.abs(b - 100) < 20)
    return ego, blue | red | yellow, white, grey


def _marking_rows(white: np.ndarray, grey: np.ndarray) -> list[tuple[float, bool]]:
    """Rows holding a lane marking, as (row, solid); adjacent rows merge into one marking.

    A dashed marking alternates white and road grey along its row; a solid one has no grey
    gaps (only cars may hide parts of it).
    """
    width = white.shape[1]
    counts = white.sum(axis=1)
    rows = np.nonzero(counts > 0.4 * width)[0]
    markings: list[tuple[float, bool]] = []
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i] != rows[i - 1] + 1:
            group = rows[start:i]
            gaps = int(grey[group].sum(axis=1).min())
            markings.append((float(group.mean()), gaps <= max(2, width // 32)))
            start = i
    return markings


def _read_scene(frame: np.ndarray, config: HeuristicConfig) -> _Scene | None:
    """The scene around the ego car, or None when no ego car is visible."""
    height = frame.shape[0]
    ego, obstacles, white, grey = _colour_masks(frame)
    ys, xs = np.nonzero(ego)
    if len(ys) == 0:
        return None
    ego_row, front, back = float(ys.mean()), int(xs.max()) + 1, int(xs.min()) - 1
    half = config.lane_width_px / 2
    markings = _marking_rows(white, grey)
    above = [m for m in markings if m[0] < ego_row - 0.5]
    below = [m for m in markings if m[0] > ego_row + 0.5]
    top = above[-1] if above else (ego_row - half, False)
    bottom = below[0] if below else (ego_row + half, False)

    def band(lo: float, hi: float) -> tuple[int, int]:
        return max(0, int(np.floor(lo)) + 1), min(height, int(np.ceil(hi)))

    left_band = right_band = None
    if above and not top[1]:
        upper = above[-2][0] if len(above) >= 2 else top[0] - config.lane_width_px
        left_band = band(upper, top[0])
    if below and not bottom[1]:
        lower = below[1][0] if len(below) >= 2 else bottom[0] + config.lane_width_px
        right_band = band(bottom[0], lower)
    return _Scene(
        ego_front=front,
        ego_back=back,
        ego_band=band(top[0], bottom[0]),
        left_band=left_band,
        right_band=right_band,
        obstacles=obstacles,
    )


def _gap_ahead(scene: _Scene, band: tuple[int, int], start: int) -> float:
    """Pixels from column ``start`` to the nearest obstacle ahead in rows ``band`` (inf if none)."""
    cols = np.nonzero(scene.obstacles[band[0] : band[1], max(0, start) :].any(axis=0))[0]
    return float(cols[0]) if len(cols) else float("inf")


class LaneKeepingHeuristic:
    """Keep the lane, FASTER when clear, overtake through a free adjacent lane, else SLOWER.

    Works from a single frame, so it cannot see speeds: it keeps generous margins instead.
    On a frame without a visible ego car (e.g. a black frame) it returns IDLE.
    """

    def __init__(self, name: str = "heuristic", config: HeuristicConfig | None = None) -> None:
        self.name = name
        self.config = config or HeuristicConfig()

    def act(self, observation: np.ndarray, rng: np.random.Generator) -> int:
        """The action for one ``(H, W, 3) uint8`` frame; ``rng`` is unused (deterministic)."""
        if observation.ndim != 3 or observation.shape[-1] != 3:
            raise ValueError(f"expected an (H, W, 3) frame, got shape {observation.shape}")
        cfg = self.config
        scene = _read_scene(observation, cfg)
        if scene is None:
            return IDLE
        gap = _gap_ahead(scene, scene.ego_band, scene.ego_front)
        if gap < cfg.block_px:
            options = [
                (self._side_gap(scene, band), action)
                for band, action in ((scene.right_band, LANE_RIGHT), (scene.left_band, LANE_LEFT))
                if band is not None
            ]
            free = [(g, a) for g, a in options if g > gap + cfg.lane_width_px]
            if free:
                return max(free, key=lambda ga: ga[0])[1]
            return SLOWER
        if cfg.keep_right and scene.right_band is not None:
            if self._side_gap(scene, scene.right_band) >= cfg.clear_px:
                return LANE_RIGHT
        if gap < cfg.clear_px:
            return IDLE
        for band in (scene.left_band, scene.right_band):
            if band is not None and _gap_ahead(scene, band, scene.ego_back) < cfg.merge_px:
                return IDLE
        return FASTER

    def _side_gap(self, scene: _Scene, band: tuple[int, int]) -> float:
        """Gap ahead in an adjacent lane, or 0 when a car is alongside or just behind the ego."""
        start = scene.ego_back - self.config.side_behind_px
        stop = scene.ego_front + self.config.side_ahead_px
        alongside = scene.obstacles[band[0] : band[1], max(0, start) : max(0, stop)]
        if alongside.any():
            return 0.0
        return _gap_ahead(scene, band, scene.ego_front)
