"""Building blocks of the causal video tokenizer, all on (B, T, C, H, W) feature videos.

Space and time are factorised (as in Cosmos' tokenizer): spatial work is a 2D conv on each
frame, temporal work a (k, 1, 1) conv across frames. A causal temporal conv pads on the left
only, by repeating the first frame, so output t sees inputs <= t and frame 0 is coded alone.
Each causal temporal conv can run on a stream: it keeps the inputs its next output still needs
in ``state[key]``, so feeding a video in chunks gives the outputs of feeding it whole.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

StreamState = dict[str, torch.Tensor]
"""Per-layer pending input frames (B, n, C, H, W) of a video being coded chunk by chunk."""


def _per_frame(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D op ``fn`` to every frame of x (B, T, C, H, W)."""
    b, t = x.shape[:2]
    y = fn(x.reshape(b * t, *x.shape[2:]))
    return y.reshape(b, t, *y.shape[1:])


class FrameNorm(nn.GroupNorm):
    """GroupNorm over each frame's (C, H, W) alone: normalising across time would leak the
    future into the past."""

    def __init__(self, channels: int) -> None:
        super().__init__(min(8, channels), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C, H, W) -> same shape."""
        b, t = x.shape[:2]
        return super().forward(x.reshape(b * t, *x.shape[2:])).reshape(x.shape)


class TemporalConv(nn.Module):
    """A (kernel, 1, 1) conv over time with stride ``stride``: causal or centred.

    Implemented as a 1x1 conv over the ``kernel`` frames stacked along channels (the same
    parameters as a Conv3d). With T = 1 + stride * m input frames it gives 1 + m outputs; causal
    output j sees inputs stride*j - kernel + 1 .. stride*j (first frame repeated before 0).
    """

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, causal: bool, key: str
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.causal, self.key = kernel, stride, causal, key
        self.proj = nn.Conv2d(kernel * c_in, c_out, 1)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """x (B, T, C_in, H, W) -> (B, T', C_out, H, W); ``state`` carries a stream's tail."""
        k, s = self.kernel, self.stride
        b, _, c, h, w = x.shape
        if self.causal:
            previous = None if state is None else state.get(self.key)
            if previous is None:
                previous = x[:, :1].expand(b, k - 1, c, h, w)
            buffer = torch.cat([previous, x], dim=1)
        else:
            if state is not None:
                raise ValueError("a non-causal tokenizer cannot code a video chunk by chunk")
            left = (k - 1) // 2
            right = k - 1 - left
            buffer = torch.cat(
                [x[:, :1].expand(b, left, c, h, w), x, x[:, -1:].expand(b, right, c, h, w)], 1
            )
        length = buffer.shape[1]
        outputs = (length - k) // s + 1 if length >= k else 0
        if state is not None:
            state[self.key] = buffer[:, s * outputs :]
        if outputs == 0:
            return x.new_zeros(b, 0, self.proj.out_channels, h, w)
        span = s * (outputs - 1) + 1
        taps = torch.cat([buffer[:, j : j + span : s] for j in range(k)], dim=2)
        return _per_frame(self.proj, taps)


class ResBlock(nn.Module):
    """Per-frame 3x3 conv then causal temporal conv (k=3), with a residual path."""

    def __init__(self, channels: int, causal: bool, key: str) -> None:
        super().__init__()
        self.norm1 = FrameNorm(channels)
        self.spatial = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = FrameNorm(channels)
        self.temporal = TemporalConv(channels, channels, 3, 1, causal, key)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """x (B, T, C, H, W) -> same shape."""
        y = _per_frame(self.spatial, F.silu(self.norm1(x)))
        return x + self.temporal(F.silu(self.norm2(y)), state)


class SpatialDown(nn.Module):
    """Halve each frame's height and width (3x3 conv, stride 2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """x (B, T, C, H, W) -> (B, T, C, H/2, W/2)."""
        return _per_frame(self.conv, x)


class SpatialUp(nn.Module):
    """Double each frame's height and width (nearest neighbour, then 3x3 conv)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """x (B, T, C, H, W) -> (B, T, C, 2H, 2W)."""
        return _per_frame(lambda f: self.conv(F.interpolate(f, scale_factor=2.0)), x)


class TemporalDown(nn.Module):
    """Halve the frame rate: 1 + 2m frames -> 1 + m (strided temporal conv, k=3).

    Causal output 0 sees frame 0 alone; output j sees frames 2j-2 .. 2j.
    """

    def __init__(self, channels: int, causal: bool, key: str) -> None:
        super().__init__()
        self.conv = TemporalConv(channels, channels, 3, 2, causal, key)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """x (B, 1 + 2m, C, H, W) -> (B, 1 + m, C, H, W)."""
        return self.conv(x, state)


class TemporalUp(nn.Module):
    """Double the frame rate: 1 + m frames -> 1 + 2m (temporal conv to 2C, depth-to-time).

    Input j becomes frames 2j-1 and 2j; the frame before frame 0 is dropped, so frame 0 comes
    from latent 0 alone. On a stream only the first chunk drops it.
    """

    def __init__(self, channels: int, causal: bool, key: str) -> None:
        super().__init__()
        self.conv = TemporalConv(channels, 2 * channels, 3, 1, causal, key)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """x (B, t, C, H, W) -> (B, 2t - 1, C, H, W) (first chunk) or (B, 2t, C, H, W)."""
        first = state is None or self.conv.key not in state
        y = self.conv(x, state)
        b, t, c2, h, w = y.shape
        y = y.reshape(b, t * 2, c2 // 2, h, w)
        return y[:, 1:] if first else y
