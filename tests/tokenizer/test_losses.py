"""Reconstruction losses: the salient weighting must not favour painting thin marks solid."""

from __future__ import annotations

import torch

from wfm_sim.tokenizer.losses import (
    salient_pixel_weights,
    symmetric_salient_weights,
    weighted_l1,
)

ROAD, WHITE = -0.2, 1.0


def _dashed_line() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A road with one dashed white row (4 on, 4 off), the same row drawn solid, and drawn
    missing: (target, solid, missing), each (1, 3, 16, 32)."""
    target = torch.full((1, 3, 16, 32), ROAD)
    solid = target.clone()
    missing = target.clone()
    for start in range(0, 32, 8):
        target[..., 8, start : start + 4] = WHITE
    solid[..., 8, :] = WHITE
    return target, solid, missing


def test_target_only_weights_prefer_a_solid_line_to_a_missing_one() -> None:
    target, solid, missing = _dashed_line()
    assert weighted_l1(solid, target) < weighted_l1(missing, target)


def test_symmetric_weights_charge_both_mistakes_alike() -> None:
    target, solid, missing = _dashed_line()
    solid_loss = weighted_l1(solid, target, symmetric_salient_weights(solid, target))
    missing_loss = weighted_l1(missing, target, symmetric_salient_weights(missing, target))
    assert torch.isclose(solid_loss, missing_loss)
    # ... and a perfect reconstruction is weighted as the target alone would weight it
    weights = symmetric_salient_weights(target, target)
    assert torch.equal(weights, salient_pixel_weights(target))


def test_symmetric_weights_do_not_pass_gradients_through_the_weighting() -> None:
    target, solid, _ = _dashed_line()
    recon = solid.clone().requires_grad_(True)
    weighted_l1(recon, target, symmetric_salient_weights(recon, target)).backward()
    assert recon.grad is not None
    # the gradient is the weighted sign of the error: 10 (salient) x sign / numel on the gaps
    gaps = (target[..., 8, :] == ROAD) & (solid[..., 8, :] == WHITE)
    expected = 10.0 / recon.numel()
    assert torch.allclose(recon.grad[..., 8, :][gaps], torch.tensor(expected))
