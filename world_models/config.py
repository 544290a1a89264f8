"""The configuration of a world model: every number needed to rebuild its networks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WorldModelConfig:
    """Shapes and widths of the tokenizer, dynamics model and reward/termination heads.

    A frame (frame_size, frame_size, 3) is coded as a latent (latent_channels, s, s) with
    s = frame_size / 4. The dynamics model sees ``context`` past latents and the actions taken
    from them: ``n_actions`` discrete actions (plus one padding action before an episode's
    start), or, when ``action_dim`` > 0, vectors of ``action_dim`` floats in the box
    [``action_low``, ``action_high``] (a joint torque, a camera pose), padded with NaN rows.
    """

    frame_size: int = 64
    latent_channels: int = 8
    tokenizer_width: int = 32
    context: int = 4
    n_actions: int = 5
    action_dim: int = 0
    action_low: list[float] = field(default_factory=list)
    action_high: list[float] = field(default_factory=list)
    action_embedding: int = 8
    dynamics_width: int = 64
    dynamics_blocks: int = 2
    head_width: int = 64

    def __post_init__(self) -> None:
        if self.frame_size % 4:
            raise ValueError(f"frame_size must be a multiple of 4, got {self.frame_size}")
        if self.context < 1:
            raise ValueError(f"context must be >= 1, got {self.context}")
        if self.action_dim < 0:
            raise ValueError(f"action_dim must be >= 0, got {self.action_dim}")
        bounds = (len(self.action_low), len(self.action_high))
        if bounds != (self.action_dim, self.action_dim):
            raise ValueError(
                f"action_low and action_high need action_dim={self.action_dim} values each, "
                f"got {bounds[0]} and {bounds[1]}"
            )
        if any(lo >= hi for lo, hi in zip(self.action_low, self.action_high, strict=True)):
            raise ValueError(f"action_low {self.action_low} must lie below action_high")

    @property
    def continuous_actions(self) -> bool:
        """Whether actions are float vectors (``action_dim`` > 0) rather than indices."""
        return self.action_dim > 0

    @property
    def latent_size(self) -> int:
        """Side of the latent grid."""
        return self.frame_size // 4

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form stored in a checkpoint's config.json."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> WorldModelConfig:
        """Rebuild from ``to_dict`` output, refusing unknown keys with a clear message."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown world-model config keys {unknown}; known: {sorted(known)}")
        return cls(**values)
