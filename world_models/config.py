"""The configuration of a world model: every number needed to rebuild its networks."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from wfm_sim.plain_data import require_known_keys
from wfm_sim.tokenizer.config import VideoTokenizerConfig


@dataclass
class WorldModelConfig:
    """Shapes and widths of the tokenizer, dynamics model and reward/termination heads.

    A frame (frame_size, frame_size, 3) is coded as a latent (latent_channels, s, s) with
    s = frame_size / 4: continuous values in [-1, 1], or, when ``fsq_levels`` is set, one
    discrete token per position (finite scalar quantization with one channel per level, so
    ``latent_channels`` must equal ``len(fsq_levels)``). A continuous model predicts the next
    latent directly; a discrete one predicts a distribution over each position's next token
    and samples it, so imagined objects stay sharp instead of blurring into their average.
    The frames are coded by the tokenizer family's causal video tokenizer that ``tokenizer``
    names (a ``VideoTokenizerConfig`` as a dict, each frame coded on its own as an image; its
    spatial compression must be 4 and its channels and FSQ levels this config's), or, when it
    is empty, by the conv ``FrameTokenizer`` of ``tokenizer_width``.
    The dynamics model sees ``context`` past latents and the actions taken
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
    dynamics_levels: int = 2
    """Resolutions of the dynamics U-Net: 2 = the latent grid and half of it; 3 adds a
    quarter-resolution level for a view of the whole frame."""
    head_width: int = 64
    tokenizer: dict[str, Any] = field(default_factory=dict)
    """The family tokenizer coding the frames (``VideoTokenizerConfig.to_dict()``); empty for
    the conv ``FrameTokenizer``."""
    fsq_levels: list[int] = field(default_factory=list)
    """Values per latent channel of a discrete (FSQ) tokenizer, e.g. [8, 5, 5, 5] = 1000
    tokens; empty for a continuous tokenizer."""
    decode_rounds: int = 4
    """Rounds in which a discrete model draws a next frame's tokens, the most confident first,
    each round seeing the tokens fixed before it (1 = every token drawn on its own at once)."""
    selection_noise: float = 0.0
    """Gumbel noise on the log-confidence that picks which draws a round keeps, scaled by
    selection_noise * (1 - (r + 1) / rounds) in round r (MaskGIT's choice temperature). Meant
    to keep a car whose next position is uncertain from losing every position to the surer
    road; on the driving model noise 2 and 4.5 ranked the policy zoo worse than none."""
    salient_priority: float = 0.0
    """How far ahead of surer draws a round keeps the draw of a salient token, one whose
    patches show a car (``WorldModel.code_salience``): its log-confidence is raised by
    salient_priority x the token's salience. The road is surer than any car whose next
    position is uncertain, so by confidence alone such a car loses its positions to the road
    and the imagined road empties; 100 keeps car draws first. 0 (off) orders by confidence."""

    def with_drawing_of(self, other: WorldModelConfig) -> WorldModelConfig:
        """This config with ``other``'s drawing options (``decode_rounds``, ``selection_noise``,
        ``salient_priority``): they change how frames are drawn, not the networks or weights."""
        return dataclasses.replace(
            self,
            decode_rounds=other.decode_rounds,
            selection_noise=other.selection_noise,
            salient_priority=other.salient_priority,
        )

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
        self.fsq_levels = [int(level) for level in self.fsq_levels]
        if self.fsq_levels and len(self.fsq_levels) != self.latent_channels:
            raise ValueError(
                f"a discrete tokenizer needs latent_channels == len(fsq_levels), got "
                f"{self.latent_channels} channels for fsq_levels {self.fsq_levels}"
            )
        if self.tokenizer:
            self._check_family_tokenizer()
        if self.selection_noise < 0:
            raise ValueError(f"selection_noise must be >= 0, got {self.selection_noise}")
        if self.decode_rounds < 1:
            raise ValueError(f"decode_rounds must be >= 1, got {self.decode_rounds}")
        if self.salient_priority < 0:
            raise ValueError(f"salient_priority must be >= 0, got {self.salient_priority}")
        if self.salient_priority and not self.fsq_levels:
            raise ValueError("salient_priority needs a discrete (fsq_levels) world model")
        if self.dynamics_levels not in (2, 3):
            raise ValueError(f"dynamics_levels must be 2 or 3, got {self.dynamics_levels}")
        if self.dynamics_levels == 3 and self.frame_size % 16:
            raise ValueError(
                f"dynamics_levels=3 needs frame_size a multiple of 16, got {self.frame_size}"
            )

    def family_tokenizer(self) -> VideoTokenizerConfig | None:
        """The family tokenizer's config, None for the conv ``FrameTokenizer``."""
        return VideoTokenizerConfig.from_dict(self.tokenizer) if self.tokenizer else None

    def _check_family_tokenizer(self) -> None:
        tokenizer = self.family_tokenizer()
        assert tokenizer is not None
        fsq = list(tokenizer.fsq_levels) if tokenizer.kind == "discrete" else []
        found = (tokenizer.frame_size, tokenizer.spatial_compression, tokenizer.channels, fsq)
        wanted = (self.frame_size, 4, self.latent_channels, self.fsq_levels)
        if found != wanted:
            raise ValueError(
                f"tokenizer {tokenizer.name} gives (frame_size, spatial_compression, channels, "
                f"fsq_levels) = {found}; this world model needs {wanted}"
            )

    @property
    def continuous_actions(self) -> bool:
        """Whether actions are float vectors (``action_dim`` > 0) rather than indices."""
        return self.action_dim > 0

    @property
    def discrete(self) -> bool:
        """Whether latents are FSQ tokens (``fsq_levels`` set) rather than continuous."""
        return bool(self.fsq_levels)

    @property
    def codebook_size(self) -> int:
        """Distinct tokens of a discrete tokenizer, prod(fsq_levels); 0 when continuous."""
        return math.prod(self.fsq_levels) if self.fsq_levels else 0

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
        require_known_keys(cls, values, "world-model")
        return cls(**values)
