"""Per-frame coding through the tokenizer family (``FrameCoder``) and the MaskGIT world model
built on it: shapes over any leading dimensions, each frame coded alone, token ids round
trip, and a world-model config that refuses a family tokenizer of another latent shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import world_models
from tests.tiny_wfms import CONTINUOUS, PER_FRAME
from wfm_sim.tokenizer import VideoTokenizer
from world_models import WorldModel, WorldModelConfig
from world_models.tokenizer import FrameCoder

FAMILY = PER_FRAME
MODEL = WorldModelConfig(
    latent_channels=3,
    fsq_levels=[5, 3, 3],
    tokenizer=FAMILY.to_dict(),
    context=2,
    dynamics_width=16,
    dynamics_blocks=1,
    head_width=16,
    decode_rounds=2,
)


def _frames(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (*shape, 64, 64, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def coder() -> FrameCoder:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return FrameCoder(VideoTokenizer(CONTINUOUS).eval())


@pytest.fixture(scope="module")
def discrete_coder() -> FrameCoder:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return FrameCoder(VideoTokenizer(FAMILY).eval())


@torch.no_grad()
def test_frame_coder_shapes(coder: FrameCoder) -> None:
    c, s = CONTINUOUS.channels, coder.video.config.latent_size
    clips = coder.encode(_frames((2, 3)))
    assert clips.shape == (2, 3, c, s, s) and clips.dtype == torch.float32
    decoded = coder.decode(clips)
    assert decoded.shape == (2, 3, 64, 64, 3) and decoded.dtype == torch.uint8
    single = coder.encode(_frames((4,)))
    assert single.shape == (4, c, s, s)
    assert coder.decode(single).shape == (4, 64, 64, 3)
    floats = coder.decode_float(single)
    assert floats.shape == (4, 3, 64, 64) and floats.dtype == torch.float32
    expected = ((floats.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(1, -1)
    torch.testing.assert_close(coder.decode(single), expected)


@torch.no_grad()
def test_frame_coder_codes_each_frame_alone(coder: FrameCoder) -> None:
    pair = _frames((1, 2), seed=1)
    together = coder.encode(pair)
    alone = coder.encode(pair[:, :1])
    # equal up to float summation order (a batch of 2 frames vs 1)
    torch.testing.assert_close(together[:, :1], alone, atol=1e-5, rtol=1e-5)
    swapped = coder.encode(pair.flip(1))
    torch.testing.assert_close(swapped[:, 1:], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(together[:, 1], alone[:, 0], atol=1e-3)


def test_frame_coder_refuses_token_ids_of_a_continuous_tokenizer(coder: FrameCoder) -> None:
    with pytest.raises(ValueError, match="continuous"):
        coder.to_indices(torch.zeros(1, 1, CONTINUOUS.channels, 8, 8))


@torch.no_grad()
def test_token_ids_round_trip_over_any_leading_dimensions(discrete_coder: FrameCoder) -> None:
    for shape in ((3,), (2, 3)):
        latents = discrete_coder.encode(_frames(shape, seed=2))
        tokens = discrete_coder.to_indices(latents)
        assert tokens.shape == (*shape, 16, 16) and tokens.dtype == torch.int64
        assert 0 <= int(tokens.min()) and int(tokens.max()) < 5 * 3 * 3
        torch.testing.assert_close(discrete_coder.from_indices(tokens), latents)


def test_frame_coder_names_a_frame_of_the_wrong_size(discrete_coder: FrameCoder) -> None:
    with pytest.raises(ValueError, match="64x64"):
        discrete_coder.encode(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))


@torch.no_grad()
def test_world_model_codes_frames_with_its_family_tokenizer(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = WorldModel(MODEL).eval()
    assert isinstance(model.tokenizer, FrameCoder)
    assert model.tokenizer.video.config == FAMILY
    latents = model.tokenizer.encode(_frames((2, MODEL.context), seed=3))
    assert latents.shape == (2, MODEL.context, *model.latent_shape)
    actions = torch.zeros(2, MODEL.context, dtype=torch.long)
    uniforms = torch.rand(2, *model.draw_shape, generator=torch.Generator().manual_seed(0))
    step = model.imagine(latents, actions, uniforms)
    assert step.latent.shape == (2, *model.latent_shape)
    assert model.tokenizer.decode(step.latent).shape == (2, 64, 64, 3)

    model.save(tmp_path / "checkpoint")
    loaded = world_models.load(tmp_path / "checkpoint")
    assert loaded.config == MODEL
    again = loaded.imagine(latents, actions, uniforms)
    torch.testing.assert_close(again.latent, step.latent)
    torch.testing.assert_close(again.reward, step.reward)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("spatial_compression", 8, "spatial_compression"),
        ("fsq_levels", (8, 5, 5), "fsq_levels"),
        ("frame_size", 32, "frame_size"),
        ("kind", "continuous", "channels"),
    ],
)
def test_world_model_config_refuses_a_family_tokenizer_of_another_latent_shape(
    field: str, value: object, named: str
) -> None:
    tokenizer = {**FAMILY.to_dict(), field: value}
    if field == "fsq_levels":
        tokenizer[field] = list(value)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=named):
        WorldModelConfig(latent_channels=3, fsq_levels=[5, 3, 3], tokenizer=tokenizer)


def test_encoder_features_are_the_latents_before_quantization(
    discrete_coder: FrameCoder,
) -> None:
    frames = _frames((2,), seed=4)
    pixels = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    features = discrete_coder.encoder_features(pixels.requires_grad_())
    assert features.shape == (2, 3, 16, 16) and features.requires_grad
    fsq = discrete_coder.video.fsq
    assert fsq is not None
    with torch.no_grad():
        torch.testing.assert_close(fsq(features), discrete_coder.encode(frames))
