"""The post-guard on generated video: malformed, corrupt, blank or physically implausible clips.

Cosmos checks every generated video before it is returned; here a clip ``(T, H, W, 3)`` (uint8,
or floats in ``float_range``) goes through, in order:

| stage       | refuses                                                                  |
|-------------|--------------------------------------------------------------------------|
| ``format``    | not a 4-d array of 3-channel frames of the tokenizer's size, no frames, |
|             | a dtype that is neither uint8 nor floating                               |
| ``finite``    | NaN or infinite values; floats outside ``float_range``                  |
| ``corrupt``   | frames nearly all at 0 or 255 (dropped, all-black or saturated frames)  |
| ``blank``     | near-constant frames (pixel std below ``blank_std`` grey levels)        |
| ``tokenizer`` | frames the world model's tokenizer cannot reconstruct: mean absolute    |
|             | error (grey levels) above the calibrated threshold. A tokenizer trained  |
|             | on real footage reconstructs what looks like it; shuffled patches,      |
|             | noise, smeared or broken scenes reconstruct badly                        |
| ``temporal``  | a frame-to-frame change real footage never shows: the mean absolute     |
|             | difference between consecutive frames after the best global shift of up  |
|             | to ``max_shift`` pixels (the camera follows the ego car, so real frames  |
|             | move as a whole) above the calibrated threshold: the scene tearing      |
|             | apart, jumping or dissolving between two frames                          |

The two thresholds come from real footage (``calibrate_video_guard``: a high percentile of
the scores of real frames, times a margin) and are tied to the tokenizer they were measured
with by a hash of its weights. Thresholds for the zoo's ``driving`` model ship with the package.

    guard = VideoGuard(VideoGuardConfig(world_model="driving"))
    decision = guard.check(frames)          # frames: (T, 64, 64, 3) uint8
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import world_models
from wfm_sim.guardrail.decision import GuardDecision, log_refusal
from wfm_sim.io import write_json_atomic
from world_models import WorldModel
from world_models.tokenizer import PerFrameTokenizer

_FORMAT = "wfm_sim.guardrail.video_thresholds/1"
SHIPPED_DIR = Path(__file__).parent
"""Where shipped thresholds live: ``video_guard_<zoo name>.json``."""


def shipped_thresholds_path(world_model: str) -> Path:
    """The path of the shipped thresholds for a zoo world model."""
    return SHIPPED_DIR / f"video_guard_{world_model}.json"


def tokenizer_fingerprint(tokenizer: nn.Module) -> str:
    """Hex SHA-256 of a tokenizer's weights (names, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(tokenizer.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype};".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def reconstruction_errors(
    tokenizer: PerFrameTokenizer, frames: np.ndarray, batch_size: int = 64
) -> np.ndarray:
    """Per-frame mean absolute error (grey levels) ``(T,)`` of ``frames`` ``(T, H, W, 3)``
    uint8 after an encode/decode round trip through ``tokenizer``."""
    device = next(tokenizer.parameters()).device
    errors = []
    for start in range(0, len(frames), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(frames[start : start + batch_size]))
        decoded = tokenizer.decode(tokenizer.encode(chunk.to(device))).cpu()
        error = (decoded.float() - chunk.float()).abs().mean(dim=(1, 2, 3))
        errors.append(error.numpy())
    return np.concatenate(errors).astype(np.float64) if errors else np.zeros(0)


def temporal_residuals(frames: np.ndarray, max_shift: int) -> np.ndarray:
    """Per pair of consecutive frames ``(T-1,)``: the mean absolute difference (grey levels)
    between frame t and frame t+1 moved by the integer shift within ``max_shift`` pixels (in
    each direction) that makes it smallest, over the overlapping region."""
    if len(frames) < 2:
        return np.zeros(0)
    x = torch.from_numpy(np.ascontiguousarray(frames)).float()
    first, second = x[:-1], x[1:]
    _, height, width, _ = x.shape
    best = torch.full((len(first),), math.inf)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            h, w = height - abs(dy), width - abs(dx)
            a = first[:, max(0, -dy) : max(0, -dy) + h, max(0, -dx) : max(0, -dx) + w]
            b = second[:, max(0, dy) : max(0, dy) + h, max(0, dx) : max(0, dx) + w]
            best = torch.minimum(best, (a - b).abs().mean(dim=(1, 2, 3)))
    return best.numpy().astype(np.float64)


@dataclass
class VideoGuardThresholds:
    """Calibrated thresholds of the video guard, and where they came from.

    ``reconstruction`` and ``temporal`` are in grey levels (see the module docstring);
    ``tokenizer_sha256`` fingerprints the tokenizer they hold for; ``max_shift`` is the shift
    search the temporal scores were measured with. ``calibration`` records the real footage
    used (counts, score percentiles); ``evaluation`` the pass/refusal rates measured after.
    """

    world_model: str
    tokenizer_sha256: str
    reconstruction: float
    temporal: float
    max_shift: int
    percentile: float
    margin: float
    calibration: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.reconstruction > 0 and self.temporal > 0):
            raise ValueError(
                f"thresholds must be positive, got reconstruction={self.reconstruction} and "
                f"temporal={self.temporal}; calibrate them with calibrate_video_guard"
            )
        if self.max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {self.max_shift}")

    def save(self, path: str | Path) -> Path:
        """Write as JSON atomically; returns the path."""
        write_json_atomic(path, {"format": _FORMAT, **asdict(self)})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> VideoGuardThresholds:
        """Read thresholds written by ``save``."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"no video-guard thresholds at {path}; calibrate them with "
                "`python -m wfm_sim.guardrail calibrate-video-guard`"
            )
        payload = json.loads(path.read_text("utf-8"))
        if payload.pop("format", None) != _FORMAT:
            raise ValueError(f"{path} is not a video-guard thresholds file of format {_FORMAT}")
        return cls(**payload)


@dataclass
class VideoGuardConfig:
    """How the video guard judges clips.

    ``world_model``: a zoo name or checkpoint folder whose tokenizer scores frames.
    ``thresholds_path``: calibrated thresholds; ``None`` takes the shipped ones for a zoo name.
    ``blank_std``: a frame whose pixel standard deviation is below this (grey levels) is blank.
    ``saturated_fraction``: a frame with at least this share of values at 0 or 255 is corrupt.
    ``float_range``: the value range float frames must lie in (mapped to 0..255).
    ``log_path``: JSON-lines file refusals are appended to (``None``: only ``logging``).
    """

    world_model: str = "driving"
    thresholds_path: str | None = None
    blank_std: float = 2.0
    saturated_fraction: float = 0.9
    float_range: tuple[float, float] = (0.0, 1.0)
    log_path: str | None = None
    device: str = "cpu"
    batch_size: int = 64

    def __post_init__(self) -> None:
        self.float_range = (float(self.float_range[0]), float(self.float_range[1]))
        if not self.float_range[0] < self.float_range[1]:
            raise ValueError(
                f"float_range must be (low, high) with low < high, got {self.float_range}"
            )
        if self.blank_std < 0:
            raise ValueError(f"blank_std must be >= 0, got {self.blank_std}")
        if not 0.0 < self.saturated_fraction <= 1.0:
            raise ValueError(f"saturated_fraction must be in (0, 1], got {self.saturated_fraction}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


class VideoGuard:
    """Screens generated clips before they are returned; see the module docstring.

    ``model`` may be passed to reuse an already loaded world model (its tokenizer is used);
    otherwise ``config.world_model`` is loaded. Thresholds calibrated on another tokenizer are
    refused with an error: re-calibrate after retraining the tokenizer.
    """

    def __init__(
        self,
        config: VideoGuardConfig | None = None,
        model: WorldModel | None = None,
        thresholds: VideoGuardThresholds | None = None,
    ) -> None:
        self.config = config = config or VideoGuardConfig()
        model = (
            model
            if model is not None
            else world_models.load_world_model(config.world_model, config.device)
        )
        self.tokenizer = model.tokenizer.eval()
        self.frame_size = model.config.frame_size
        if thresholds is None:
            path = (
                Path(config.thresholds_path)
                if config.thresholds_path is not None
                else shipped_thresholds_path(config.world_model)
            )
            thresholds = VideoGuardThresholds.load(path)
        fingerprint = tokenizer_fingerprint(self.tokenizer)
        if thresholds.tokenizer_sha256 != fingerprint:
            raise ValueError(
                f"the video-guard thresholds were calibrated on another tokenizer "
                f"({thresholds.tokenizer_sha256[:12]}, world model {thresholds.world_model!r}) "
                f"than {config.world_model!r}'s ({fingerprint[:12]}); re-calibrate with "
                "`python -m wfm_sim.guardrail calibrate-video-guard`"
            )
        self.thresholds = thresholds

    def check(self, frames: np.ndarray | torch.Tensor, clip_id: str = "") -> GuardDecision:
        """Decide whether a generated clip ``(T, H, W, 3)`` may be returned; refusals are
        logged with ``clip_id``."""
        decision = self.decide(frames)
        if not decision.allowed:
            log_refusal(decision, "video", self.config.log_path, clip_id=clip_id)
        return decision

    def decide(self, frames: np.ndarray | torch.Tensor) -> GuardDecision:
        """The decision ``check`` makes, without logging (for measuring the guard)."""
        array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else frames
        if not isinstance(array, np.ndarray):
            return GuardDecision(
                False, f"frames must be an array, got {type(frames).__name__}", "format"
            )
        size = self.frame_size
        if array.ndim != 4 or array.shape[1:] != (size, size, 3) or len(array) == 0:
            return GuardDecision(
                False,
                f"frames must be (T, {size}, {size}, 3) with T >= 1, got {array.shape}",
                "format",
            )
        if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
            return GuardDecision(
                False, f"frames must be uint8 or floating point, got {array.dtype}", "format"
            )
        if array.dtype != np.uint8:
            bad = ~np.isfinite(array).reshape(len(array), -1).all(axis=1)
            if bad.any():
                return GuardDecision(
                    False, f"frames {_indices(bad)} hold NaN or infinite values", "finite"
                )
            low, high = self.config.float_range
            tolerance = 1e-3 * (high - low)
            if array.min() < low - tolerance or array.max() > high + tolerance:
                return GuardDecision(
                    False,
                    f"float frames must lie in [{low}, {high}], got values in "
                    f"[{float(array.min()):.3g}, {float(array.max()):.3g}]",
                    "finite",
                )
            scaled = (array.astype(np.float64) - low) / (high - low) * 255.0
            array = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
        return self._judge_pixels(array)

    def _judge_pixels(self, frames: np.ndarray) -> GuardDecision:
        flat = frames.reshape(len(frames), -1)
        saturated = ((flat == 0) | (flat == 255)).mean(axis=1) >= self.config.saturated_fraction
        if saturated.any():
            return GuardDecision(
                False,
                f"frames {_indices(saturated)} are corrupt: at least "
                f"{self.config.saturated_fraction:.0%} of their values are 0 or 255",
                "corrupt",
            )
        blank = flat.std(axis=1) < self.config.blank_std
        if blank.any():
            return GuardDecision(
                False,
                f"frames {_indices(blank)} are blank (pixel std < {self.config.blank_std})",
                "blank",
            )
        reconstruction = reconstruction_errors(self.tokenizer, frames, self.config.batch_size)
        temporal = temporal_residuals(frames, self.thresholds.max_shift)
        scores = {"reconstruction": float(reconstruction.max())}
        if len(temporal):
            scores["temporal"] = float(temporal.max())
        ratios = {
            "tokenizer": scores["reconstruction"] / self.thresholds.reconstruction,
            "temporal": scores.get("temporal", 0.0) / self.thresholds.temporal,
        }
        score = max(ratios.values())
        bad_frames = reconstruction > self.thresholds.reconstruction
        if bad_frames.any():
            return GuardDecision(
                False,
                f"frames {_indices(bad_frames)} look unlike real footage: the tokenizer "
                f"reconstructs them with error up to {scores['reconstruction']:.2f} grey levels "
                f"(threshold {self.thresholds.reconstruction:.2f})",
                "tokenizer",
                score,
                scores,
            )
        bad_pairs = temporal > self.thresholds.temporal
        if bad_pairs.any():
            return GuardDecision(
                False,
                f"the scene changes implausibly between frames {_indices(bad_pairs)} and the "
                f"next: motion-compensated change up to {scores['temporal']:.2f} grey levels "
                f"(threshold {self.thresholds.temporal:.2f})",
                "temporal",
                score,
                scores,
            )
        return GuardDecision(
            True,
            f"plausible clip (its worst score is {score:.2f} of its calibrated threshold)",
            "temporal",
            score,
            scores,
        )


def _indices(mask: np.ndarray, shown: int = 5) -> str:
    index = np.flatnonzero(mask).tolist()
    listed = ", ".join(str(i) for i in index[:shown])
    return f"[{listed}{', ...' if len(index) > shown else ''}]"
