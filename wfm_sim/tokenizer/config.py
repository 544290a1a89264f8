"""The configuration of a causal video tokenizer: every number needed to rebuild its networks."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from wfm_sim.plain_data import require_known_keys

KINDS = ("continuous", "discrete")


@dataclass
class VideoTokenizerConfig:
    """Shape of a continuous (CV) or discrete (DV, FSQ) causal video tokenizer.

    A video (T, frame_size, frame_size, 3) with T = 1 + tc * n is coded as 1 + n latent frames
    (C, s, s), s = frame_size / spatial_compression: latent 0 codes frame 0 alone (so an image
    is a 1-frame video) and latent j >= 1 codes frames (j-1)*tc+1 .. j*tc, looking only back.
    CV latents have ``latent_channels`` channels; DV latents have one channel per FSQ level,
    quantized to ``fsq_levels[i]`` values each, i.e. one token of prod(fsq_levels) codes.
    ``causal=False`` gives the non-causal autoencoder of the same size (symmetric temporal
    padding, identical parameter count), the baseline the causal one is compared against.
    Not frozen: OmegaConf makes a frozen dataclass node read-only, so Hydra could not fill it.
    """

    kind: str = "continuous"
    temporal_compression: int = 4
    spatial_compression: int = 8
    latent_channels: int = 16
    fsq_levels: tuple[int, ...] = (8, 5, 5, 5)
    width: int = 32
    causal: bool = True
    frame_size: int = 64

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.temporal_compression not in (1, 2, 4, 8, 16):
            raise ValueError(
                f"temporal_compression must be a power of two up to 16, got "
                f"{self.temporal_compression}"
            )
        if self.spatial_compression not in (4, 8, 16, 32):
            raise ValueError(
                f"spatial_compression must be 4, 8, 16 or 32, got {self.spatial_compression}"
            )
        if self.frame_size % self.spatial_compression:
            raise ValueError(
                f"frame_size {self.frame_size} must be a multiple of spatial_compression "
                f"{self.spatial_compression}"
            )
        if self.kind == "discrete" and (
            not self.fsq_levels or any(level < 2 for level in self.fsq_levels)
        ):
            raise ValueError(f"fsq_levels must be >= 2 each, got {self.fsq_levels}")
        if self.latent_channels < 1 or self.width < 8:
            raise ValueError(
                f"latent_channels must be >= 1 and width >= 8, got {self.latent_channels}, "
                f"{self.width}"
            )
        # Hydra hands lists over; a tuple keeps configs comparable whichever way they came.
        self.fsq_levels = tuple(int(v) for v in self.fsq_levels)

    @property
    def name(self) -> str:
        """``cv_4x8x8``, ``dv_8x16x16``, ``cv_4x8x8_noncausal``: kind, then T x H x W ratio."""
        tc, sc = self.temporal_compression, self.spatial_compression
        prefix = "cv" if self.kind == "continuous" else "dv"
        return f"{prefix}_{tc}x{sc}x{sc}" + ("" if self.causal else "_noncausal")

    @property
    def channels(self) -> int:
        """Channels of a latent frame: ``latent_channels`` (CV) or ``len(fsq_levels)`` (DV)."""
        return self.latent_channels if self.kind == "continuous" else len(self.fsq_levels)

    @property
    def latent_size(self) -> int:
        """Side of a latent frame's grid."""
        return self.frame_size // self.spatial_compression

    @property
    def codebook_size(self) -> int:
        """Number of distinct DV tokens, prod(fsq_levels)."""
        return math.prod(self.fsq_levels)

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames of a ``num_frames``-frame video: 1 + ceil((T - 1) / tc)."""
        if num_frames < 1:
            raise ValueError(f"a video has at least 1 frame, got {num_frames}")
        return 1 + -(-(num_frames - 1) // self.temporal_compression)

    def bits_per_token(self) -> float:
        """Bits of one latent position: log2(prod(levels)) (DV) or 16 * channels (CV, bf16)."""
        if self.kind == "discrete":
            return math.log2(self.codebook_size)
        return 16.0 * self.latent_channels

    def bits_per_pixel(self) -> float:
        """Code bits per video pixel for long videos: bits_per_token / (tc * sc * sc)."""
        sc = self.spatial_compression
        return self.bits_per_token() / (self.temporal_compression * sc * sc)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form stored in a checkpoint's config.json."""
        values = dataclasses.asdict(self)
        values["fsq_levels"] = list(self.fsq_levels)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VideoTokenizerConfig:
        """Rebuild from ``to_dict`` output, refusing unknown keys with a clear message."""
        require_known_keys(cls, values, "tokenizer")
        values = dict(values)
        if "fsq_levels" in values:
            values["fsq_levels"] = tuple(values["fsq_levels"])
        return cls(**values)
