"""Reconstruction losses for tokenizers: salient-weighted L1 and MSE, (1 - SSIM), PatchGAN hinge.

Driving frames are mostly flat road; a plain pixel loss learns the road and blurs the cars and
lane marks that matter downstream, hence the salient weighting. SSIM rewards local structure
(edges of cars, dashes of lanes) that L1 averages away; the adversarial term sharpens what
both leave blurry.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def salient_pixel_weights(frames: torch.Tensor) -> torch.Tensor:
    """Per-pixel loss weights (B, 1, H, W): cars and lane marks count 10x the plain road.

    frames: (B, 3, H, W) in [-1, 1]. Salient pixels are those far from the frame's median colour.
    """
    median = frames.flatten(2).median(dim=2).values[:, :, None, None]
    salient = (frames - median).abs().amax(dim=1, keepdim=True) > 0.15
    return 1.0 + 9.0 * salient.float()


def symmetric_salient_weights(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel weights (B, 1, H, W) that count a pixel 10x when it is salient in the target
    *or* in the (detached) reconstruction.

    Weighting by the target alone is lopsided on thin periodic marks: painting a dashed lane
    line solid costs only the plain weight on its gaps, while missing a dash costs 10x, so a
    decoder unsure of the dash phase learns solid lines. Counting what the reconstruction
    paints as well makes both errors cost the same. The reconstruction's side ramps from 1 to
    10 as its distance from the target's median colour goes from 0.1 to 0.2 (the target's
    threshold is 0.15), so the weights change continuously with the reconstruction and tiny
    numerical differences (another summation order) cannot flip a pixel's weight.
    """
    median = target.flatten(2).median(dim=2).values[:, :, None, None]
    distance = (recon.detach() - median).abs().amax(dim=1, keepdim=True)
    painted = 1.0 + 9.0 * ((distance - 0.1) / 0.1).clamp(0.0, 1.0)
    return torch.maximum(salient_pixel_weights(target), painted)


def weighted_l1(
    recon: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean salient-weighted L1 of frames (N, 3, H, W) in [-1, 1] (default weights:
    ``salient_pixel_weights(target)``)."""
    weights = salient_pixel_weights(target) if weights is None else weights
    return (weights * (recon - target).abs()).mean()


def weighted_mse(
    recon: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean salient-weighted squared error of frames (N, 3, H, W) in [-1, 1] (weights as in
    ``weighted_l1``).

    L1 alone stalls on jumpy driving footage: while the decoder cannot yet tell the frames of a
    latent apart, the weighted median paints every lane position of the group white, a flat
    optimum. The squared error's gradient grows with the error and pulls it out (measured on
    4 clips: 15 dB after 400 steps with L1 alone, 25 dB with L1 + MSE).
    """
    weights = salient_pixel_weights(target) if weights is None else weights
    return (weights * (recon - target).square()).mean()


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM (11x11 Gaussian window, per channel) of frames (N, 3, H, W) in [-1, 1]."""
    channels = recon.shape[1]
    g = _gaussian().to(recon)
    kernel_h = g.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    kernel_w = g.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, kernel_h, groups=channels)
        return F.conv2d(x, kernel_w, groups=channels)

    x, y = (recon + 1) / 2, (target + 1) / 2
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return 1 - ssim.mean()


class PatchDiscriminator(nn.Module):
    """PatchGAN critic on single frames: (N, 3, 64, 64) -> realness logits (N, 1, 8, 8).

    Each logit judges one overlapping ~22-pixel patch, so it penalises blur locally.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.GroupNorm(8, 2 * width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 4, 2, 1),
            nn.GroupNorm(8, 2 * width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 3, 1, 1),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (N, 3, H, W) in [-1, 1] -> logits (N, 1, H/8, W/8)."""
        return self.net(frames)


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the critic: push real logits above 1 and fake ones below -1."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge GAN: raise the critic's logits on reconstructions."""
    return -fake_logits.mean()
