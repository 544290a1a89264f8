from __future__ import annotations

import math

import pytest
import torch

from wfm_sim.tokenizer import FSQ, VideoTokenizerConfig


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (7, 5, 5, 5, 5), (2, 3)])
def test_every_code_round_trips_and_indices_stay_in_range(levels: tuple[int, ...]) -> None:
    fsq = FSQ(levels)
    size = math.prod(levels)
    assert fsq.codebook_size == size
    every = torch.arange(size).view(1, size)
    values = fsq.from_indices(every)  # (1, C, size)
    assert values.shape == (1, len(levels), size)
    assert values.min() >= -1 and values.max() <= 1
    for channel, level in enumerate(levels):
        assert len(values[0, channel].unique()) == level
    assert torch.equal(fsq.to_indices(values), every)

    z = torch.randn(3, len(levels), 4, 5, 5) * 4
    indices = fsq.to_indices(fsq(z))
    assert indices.shape == (3, 4, 5, 5) and indices.dtype == torch.int64
    assert indices.min() >= 0 and indices.max() < size
    # quantized values are exactly the codebook's values
    assert torch.equal(fsq.from_indices(indices), fsq(z))


def test_quantization_is_deterministic_and_passes_gradients_straight_through() -> None:
    fsq = FSQ((8, 5, 5, 5))
    z = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    first, second = fsq(z), fsq(z.detach().clone())
    assert torch.equal(first, second)
    assert torch.equal(fsq.to_indices(first), fsq.to_indices(second))
    first.sum().backward()
    assert z.grad is not None and (z.grad > 0).all()  # d tanh > 0: rounding was skipped


def test_bits_per_token_of_the_default_levels() -> None:
    config = VideoTokenizerConfig(kind="discrete")
    assert config.codebook_size == 1000
    assert config.bits_per_token() == pytest.approx(math.log2(1000))
    assert config.bits_per_pixel() == pytest.approx(math.log2(1000) / (4 * 8 * 8))


def test_bad_levels_channels_and_indices_are_refused() -> None:
    with pytest.raises(ValueError, match=">= 2"):
        FSQ((8, 1))
    fsq = FSQ((8, 5, 5, 5))
    with pytest.raises(ValueError, match=r"\(B, 4, \.\.\.\)"):
        fsq(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        fsq.from_indices(torch.tensor([[1000]]))
    with pytest.raises(ValueError, match="integer"):
        fsq.from_indices(torch.zeros(1, 2))
