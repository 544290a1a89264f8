"""The diffusion world model: EDM preconditioning, sampler determinism, causality, conditioning
(text with its null embedding, context, frame conditioning) and the checkpoint format."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from wfm_sim.tokenizer import VideoTokenizerConfig
from world_models.checkpoint_folder import CONFIG_FILE
from world_models.diffusion import (
    DiffusionConfig,
    DiffusionWorldModel,
    SamplerConfig,
    edm_coefficients,
    karras_sigmas,
    load_diffusion,
    read_diffusion_checkpoint,
    sample,
    with_frame_conditioning,
)
from world_models.model import CheckpointMismatchError

CONFIG = DiffusionConfig(latent_channels=4, latent_size=8, frames=4, width=32, depth=2, heads=2)
SHAPE = (CONFIG.frames, CONFIG.latent_channels, CONFIG.latent_size, CONFIG.latent_size)
FEW = SamplerConfig(steps=3)


def _model(config: DiffusionConfig = CONFIG, seed: int = 0) -> DiffusionWorldModel:
    """A model with every weight random (the zero-initialised output and gates too), so that
    each input can change the output; latent statistics set to non-trivial values."""
    torch.manual_seed(seed)
    model = DiffusionWorldModel(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.05)
    model.set_latent_statistics(torch.linspace(-0.2, 0.2, config.latent_channels), 0.4)
    return model.eval()


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def model() -> DiffusionWorldModel:
    return _model()


def test_config_refuses_shapes_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="multiple of patch"):
        DiffusionConfig(latent_size=8, patch=3)
    with pytest.raises(ValueError, match="multiple of heads"):
        DiffusionConfig(width=30, heads=4)
    with pytest.raises(ValueError, match="frames"):
        DiffusionConfig(frames=0)
    with pytest.raises(ValueError, match="solver"):
        SamplerConfig(solver="dpm")
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        SamplerConfig(sigma_min=1.0, sigma_max=0.5)


def test_denoiser_keeps_the_latent_shape_and_names_wrong_inputs(
    model: DiffusionWorldModel,
) -> None:
    x = _randn(3, *SHAPE)
    out = model(x, torch.full((3,), 0.7), _randn(3, 384, seed=1))
    assert out.shape == x.shape and out.dtype == torch.float32
    with pytest.raises(ValueError, match="latents must be"):
        model(_randn(3, CONFIG.frames + 1, *SHAPE[1:]), torch.ones(3))
    with pytest.raises(ValueError, match="context_mask must be"):
        model(x, torch.ones(3), context=x, context_mask=torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="takes no frame_cond"):
        model(x, torch.ones(3), frame_cond=torch.zeros(3, CONFIG.frames, 2))


@pytest.mark.parametrize("sigma", [0.01, 0.3, 2.0, 40.0])
def test_preconditioning_gives_unit_variance_input_and_target(sigma: float) -> None:
    """EDM's design rule: for data of std sigma_data, c_in x and the network's target
    (y - c_skip x) / c_out both have unit variance, whatever sigma."""
    sigma_data = 0.35
    y = _randn(200_000, seed=1) * sigma_data
    x = y + sigma * _randn(200_000, seed=2)
    c_skip, c_out, c_in, _ = edm_coefficients(torch.tensor(sigma), sigma_data)
    assert float((c_in * x).std()) == pytest.approx(1.0, abs=0.01)
    assert float(((y - c_skip * x) / c_out).std()) == pytest.approx(1.0, abs=0.01)


def test_denoiser_returns_its_input_as_sigma_vanishes(model: DiffusionWorldModel) -> None:
    """c_skip -> 1 and c_out -> 0 as sigma -> 0, so D(x; sigma) -> x even with random weights."""
    x = _randn(2, *SHAPE)
    text = _randn(2, 384, seed=1)
    tiny = model(x, torch.full((2,), 1e-6), text)
    assert torch.allclose(tiny, x, atol=1e-5)
    # ... and the network does contribute at a real noise level
    assert not torch.allclose(model(x, torch.full((2,), 0.5), text), x, atol=1e-2)


def test_karras_schedule_runs_from_sigma_max_down_to_zero() -> None:
    sigmas = karras_sigmas(SamplerConfig(steps=6, sigma_min=0.01, sigma_max=20.0))
    assert len(sigmas) == 7 and sigmas[-1] == 0
    assert float(sigmas[0]) == pytest.approx(20.0) and float(sigmas[-2]) == pytest.approx(0.01)
    assert bool((sigmas[1:] < sigmas[:-1]).all())


def test_sampler_is_deterministic_per_seed(model: DiffusionWorldModel) -> None:
    text = _randn(2, 384, seed=3)

    def draw(seed: int, config: SamplerConfig = FEW) -> torch.Tensor:
        return sample(model, 2, config, torch.Generator().manual_seed(seed), text=text)

    first = draw(0)
    assert first.shape == (2, *SHAPE) and torch.isfinite(first).all()
    assert torch.equal(first, draw(0))
    assert not torch.allclose(first, draw(1), atol=1e-3)
    assert not torch.allclose(first, draw(0, dataclasses.replace(FEW, solver="euler")), atol=1e-3)


def test_sampler_keeps_the_context_and_continues_from_it(model: DiffusionWorldModel) -> None:
    context = _randn(2, 2, *SHAPE[1:], seed=4)
    noise = _randn(2, *SHAPE, seed=5)
    out = sample(model, 2, FEW, context=context, noise=noise)
    assert torch.equal(out[:, :2], context)
    other = sample(model, 2, FEW, context=context + 0.5, noise=noise)
    assert not torch.allclose(out[:, 2:], other[:, 2:], atol=1e-3)  # the future reads it
    with pytest.raises(ValueError, match="context must be"):
        sample(model, 2, FEW, context=_randn(2, CONFIG.frames, *SHAPE[1:]), noise=noise)


def _perturb_after(t: int, *tensors: torch.Tensor) -> list[torch.Tensor]:
    changed = []
    for tensor in tensors:
        copy = tensor.clone()
        copy[:, t + 1 :] += 1.0 + _randn(*copy[:, t + 1 :].shape, seed=9)
        changed.append(copy)
    return changed


@pytest.mark.parametrize("t", [0, 2])
def test_denoised_frame_t_depends_only_on_inputs_up_to_t(t: int) -> None:
    """Block-causal attention: changing the noisy latents, context and frame conditioning of
    frames after t leaves the output of frames <= t unchanged; a non-causal model does not."""
    causal = with_frame_conditioning(_model(), 3)
    with torch.no_grad():
        causal.frame_embed.weight.normal_(0, 0.5)  # type: ignore[union-attr]
    x, context, frame_cond = _randn(2, *SHAPE), _randn(2, *SHAPE, seed=1), _randn(2, 4, 3)
    mask = torch.tensor([[True, False, True, False], [False, True, False, False]])
    sigma, text = torch.full((2,), 0.8), _randn(2, 384, seed=2)
    base = causal(x, sigma, text, None, context, mask, frame_cond)
    x2, context2, frame_cond2 = _perturb_after(t, x, context, frame_cond)
    moved = causal(x2, sigma, text, None, context2, mask, frame_cond2)
    assert torch.allclose(base[:, : t + 1], moved[:, : t + 1], atol=1e-6)
    assert not torch.allclose(base[:, t + 1 :], moved[:, t + 1 :], atol=1e-3)
    full = _model(dataclasses.replace(CONFIG, causal=False))
    base, moved = full(x, sigma, text), full(x2, sigma, text)
    assert not torch.allclose(base[:, : t + 1], moved[:, : t + 1], atol=1e-3)


def test_sampled_frame_t_depends_only_on_noise_up_to_t(model: DiffusionWorldModel) -> None:
    text = _randn(2, 384, seed=1)
    noise = _randn(2, *SHAPE, seed=2)
    (later,) = _perturb_after(1, noise)
    a = sample(model, 2, FEW, text=text, noise=noise)
    b = sample(model, 2, FEW, text=text, noise=later)
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-5)
    assert not torch.allclose(a[:, 2:], b[:, 2:], atol=1e-3)


def test_dropped_text_is_the_learned_null_embedding(model: DiffusionWorldModel) -> None:
    x, sigma, text = _randn(3, *SHAPE), torch.full((3,), 0.6), _randn(3, 384, seed=1)
    unconditional = model(x, sigma)
    keep = torch.tensor([True, False, True])
    mixed = model(x, sigma, text, keep)
    conditional = model(x, sigma, text)
    assert torch.allclose(mixed[1], unconditional[1], atol=1e-6)
    assert torch.allclose(mixed[[0, 2]], conditional[[0, 2]], atol=1e-6)
    assert not torch.allclose(conditional, unconditional, atol=1e-3)


def test_guidance_interpolates_between_unconditional_and_conditional(
    model: DiffusionWorldModel,
) -> None:
    text, noise = _randn(2, 384, seed=1), _randn(2, *SHAPE, seed=2)

    def run(guidance: float, with_text: bool = True) -> torch.Tensor:
        config = dataclasses.replace(FEW, guidance=guidance)
        return sample(model, 2, config, text=text if with_text else None, noise=noise)

    assert torch.allclose(run(0.0), run(1.0, with_text=False), atol=1e-4)
    assert not torch.allclose(run(3.0), run(1.0), atol=1e-3)


def test_frame_conditioning_is_added_without_changing_the_model(
    model: DiffusionWorldModel,
) -> None:
    expanded = with_frame_conditioning(model, 5)
    assert expanded.config.frame_cond_dim == 5
    x, sigma, text = _randn(2, *SHAPE), torch.full((2,), 0.6), _randn(2, 384, seed=1)
    actions = _randn(2, CONFIG.frames, 5, seed=3)
    assert torch.equal(expanded(x, sigma, text, frame_cond=actions), model(x, sigma, text))
    with torch.no_grad():
        expanded.frame_embed.weight.normal_(0, 0.5)  # type: ignore[union-attr]
    assert not torch.allclose(expanded(x, sigma, text, frame_cond=actions), model(x, sigma, text))
    with pytest.raises(ValueError, match="frame_cond must be"):
        expanded(x, sigma, frame_cond=actions[:, :, :4])


def test_checkpoint_round_trip_keeps_weights_statistics_and_tokenizer(
    tmp_path: Path, model: DiffusionWorldModel
) -> None:
    tokenizer = VideoTokenizerConfig(latent_channels=4)
    folder = model.save(tmp_path / "ckpt", tokenizer, {"stage": "text2world"})
    loaded = load_diffusion(folder, expected=CONFIG)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert float(loaded.sigma_data) == pytest.approx(0.4)
    noise = _randn(1, *SHAPE)
    assert torch.equal(sample(model, 1, FEW, noise=noise), sample(loaded, 1, FEW, noise=noise))
    config, saved_tokenizer, info = read_diffusion_checkpoint(folder)
    assert (config, saved_tokenizer, info) == (CONFIG, tokenizer, {"stage": "text2world"})


def test_checkpoint_of_another_config_is_refused(
    tmp_path: Path, model: DiffusionWorldModel
) -> None:
    folder = model.save(tmp_path / "ckpt")
    with pytest.raises(CheckpointMismatchError, match="depth"):
        load_diffusion(folder, expected=dataclasses.replace(CONFIG, depth=3))
    payload = json.loads((folder / CONFIG_FILE).read_text())
    payload["diffusion"]["width"] = 64
    (folder / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(CheckpointMismatchError, match="do not fit"):
        load_diffusion(folder)
    payload["format"] = "something/else"
    (folder / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(CheckpointMismatchError, match="format"):
        load_diffusion(folder)
