"""Finite scalar quantization (Mentzer et al. 2023): a codebook with no codebook to learn.

Each latent channel i is squashed into a bounded range and rounded to one of ``levels[i]``
values; a latent position's token is the tuple of its channels' values, one of prod(levels).
Rounding passes gradients straight through, so the encoder trains as in a plain autoencoder,
and every code is reachable (no dead codebook entries to revive).
"""

from __future__ import annotations

import torch
from torch import nn


class FSQ(nn.Module):
    """Quantize (B, C, ...) latents channel-wise to ``levels`` values in [-1, 1].

    levels: values per channel, e.g. (8, 5, 5, 5) = 1000 codes, ~9.97 bits per token.
    """

    _levels: torch.Tensor
    _half_width: torch.Tensor
    _half_l: torch.Tensor
    _offset: torch.Tensor
    _shift: torch.Tensor
    _basis: torch.Tensor

    def __init__(self, levels: tuple[int, ...]) -> None:
        super().__init__()
        if not levels or any(int(level) < 2 for level in levels):
            raise ValueError(f"FSQ levels must be >= 2 each, got {levels}")
        self.levels = tuple(int(level) for level in levels)
        lv = torch.tensor(self.levels, dtype=torch.float64)
        basis = torch.cumprod(torch.tensor((1, *self.levels[:-1]), dtype=torch.int64), 0)
        self.register_buffer("_levels", lv.float(), persistent=False)
        self.register_buffer("_half_width", (lv // 2).float(), persistent=False)
        # Even levels are offset by half a step, so their values stay symmetric after rounding.
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        half_l = (lv - 1) * (1 + 1e-3) / 2
        self.register_buffer("_half_l", half_l.float(), persistent=False)
        self.register_buffer("_offset", offset.float(), persistent=False)
        self.register_buffer("_shift", torch.atanh(offset / half_l).float(), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    @property
    def codebook_size(self) -> int:
        """Number of distinct tokens, prod(levels)."""
        return int(torch.prod(torch.tensor(self.levels)).item())

    def _view(self, buffer: torch.Tensor, ndim: int) -> torch.Tensor:
        """A per-channel (C,) buffer shaped (1, C, 1, ...) to broadcast over ``ndim`` dims."""
        return buffer.view(1, -1, *([1] * (ndim - 2)))

    def _check(self, z: torch.Tensor) -> None:
        if z.ndim < 2 or z.shape[1] != len(self.levels):
            raise ValueError(
                f"FSQ with {len(self.levels)} levels expects (B, {len(self.levels)}, ...) "
                f"latents, got {tuple(z.shape)}"
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, C, ...) float -> quantized (B, C, ...) in [-1, 1], straight-through gradient."""
        self._check(z)
        n = z.ndim
        shifted = z.float() + self._view(self._shift, n)
        bounded = torch.tanh(shifted) * self._view(self._half_l, n) - self._view(self._offset, n)
        rounded = bounded + (bounded.round() - bounded).detach()
        return rounded / self._view(self._half_width, n)

    def to_indices(self, quantized: torch.Tensor) -> torch.Tensor:
        """quantized (B, C, ...) -> token indices (B, ...) int64 in [0, prod(levels))."""
        self._check(quantized)
        n = quantized.ndim
        half_width = self._view(self._half_width, n)
        digits = (quantized * half_width + half_width).round().long()
        digits = torch.minimum(digits.clamp(min=0), self._view(self._levels, n).long() - 1)
        return (digits * self._view(self._basis, n)).sum(dim=1)

    def from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """token indices (B, ...) int64 -> quantized (B, C, ...) float32 in [-1, 1]."""
        if indices.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"token indices must be an integer tensor, got {indices.dtype}")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise ValueError(
                f"token indices must lie in [0, {self.codebook_size}), got "
                f"[{int(indices.min())}, {int(indices.max())}]"
            )
        n = indices.ndim + 1
        digits = indices.long().unsqueeze(1) // self._view(self._basis, n)
        digits = digits % self._view(self._levels, n).long()
        half_width = self._view(self._half_width, n)
        return (digits.float() - half_width) / half_width
