from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from tests.tokenizer.conftest import random_video
from wfm_sim.tokenizer import VideoTokenizer, VideoTokenizerConfig

Make = Callable[..., VideoTokenizer]
RATIOS = [(4, 8), (8, 8), (8, 16)]


def test_names_and_latent_geometry() -> None:
    assert VideoTokenizerConfig().name == "cv_4x8x8"
    assert (
        VideoTokenizerConfig(kind="discrete", temporal_compression=8, spatial_compression=16).name
        == "dv_8x16x16"
    )
    assert VideoTokenizerConfig(causal=False).name == "cv_4x8x8_noncausal"
    config = VideoTokenizerConfig(temporal_compression=8, spatial_compression=16)
    assert [config.latent_frames(t) for t in (1, 2, 9, 10, 17)] == [1, 2, 2, 3, 3]
    assert config.latent_size == 4
    assert config.bits_per_pixel() == pytest.approx(16 * 16 / (8 * 16 * 16))
    assert VideoTokenizerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown tokenizer config keys"):
        VideoTokenizerConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="kind"):
        VideoTokenizerConfig(kind="vq")


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
@pytest.mark.parametrize(("tc", "sc"), RATIOS)
def test_round_trip_shapes_for_odd_lengths(
    make_tokenizer: Make, kind: str, tc: int, sc: int
) -> None:
    tokenizer = make_tokenizer(kind=kind, temporal_compression=tc, spatial_compression=sc)
    channels = tokenizer.config.channels
    for frames in (1, 2, tc, tc + 2, 2 * tc + 1):
        video = random_video(2, frames)
        with torch.no_grad():
            latents = tokenizer.encode(video)
            decoded = tokenizer.decode(latents, num_frames=frames)
        expected_t = 1 + -(-(frames - 1) // tc)
        assert latents.shape == (2, expected_t, channels, 64 // sc, 64 // sc), frames
        assert latents.dtype == torch.float32
        assert decoded.shape == video.shape and decoded.dtype == torch.uint8, frames


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
@pytest.mark.parametrize(("tc", "sc"), RATIOS)
def test_codes_depend_only_on_past_frames(
    make_tokenizer: Make, kind: str, tc: int, sc: int
) -> None:
    tokenizer = make_tokenizer(kind=kind, temporal_compression=tc, spatial_compression=sc)
    frames, cut = 2 * tc + 3, tc + 1  # frames >= cut change
    video = random_video(1, frames, seed=1)
    changed = video.clone()
    changed[:, cut:] = random_video(1, frames - cut, seed=2)
    with torch.no_grad():
        latents, latents_changed = tokenizer.encode(video), tokenizer.encode(changed)
        decoded = tokenizer.decode_float(latents, frames)
        decoded_changed = tokenizer.decode_float(latents_changed, frames)
        image_latent = tokenizer.encode(video[:, :1])
    # latent j covers frames up to j*tc: those with j*tc < cut are unchanged, the next is not
    kept = (cut - 1) // tc + 1
    assert torch.equal(latents[:, :kept], latents_changed[:, :kept])
    assert not torch.equal(latents[:, kept], latents_changed[:, kept])
    assert torch.equal(decoded[:, : (kept - 1) * tc + 1], decoded_changed[:, : (kept - 1) * tc + 1])
    # the first frame is coded alone: an image's latent is the video's first latent
    torch.testing.assert_close(image_latent[:, 0], latents[:, 0], rtol=0, atol=1e-5)


def test_the_noncausal_baseline_has_the_same_size_and_looks_ahead(make_tokenizer: Make) -> None:
    causal, noncausal = make_tokenizer(), make_tokenizer(causal=False)
    sizes = [sum(p.numel() for p in m.parameters()) for m in (causal, noncausal)]
    assert sizes[0] == sizes[1]
    video = random_video(1, 9, seed=1)
    changed = video.clone()
    changed[:, 8] = 0
    with torch.no_grad():
        assert not torch.equal(noncausal.encode(video)[:, 0], noncausal.encode(changed)[:, 0])


def test_discrete_tokens_are_deterministic_and_decode_like_the_latents(
    make_tokenizer: Make,
) -> None:
    tokenizer = make_tokenizer(kind="discrete", fsq_levels=(7, 5, 5))
    video = random_video(2, 6)
    with torch.no_grad():
        tokens = tokenizer.encode_indices(video)
        assert torch.equal(tokens, tokenizer.encode_indices(video))
        assert tokens.shape == (2, 3, 8, 8) and tokens.dtype == torch.int64
        assert tokens.min() >= 0 and tokens.max() < 175
        assert torch.equal(
            tokenizer.decode_indices(tokens, 6), tokenizer.decode(tokenizer.encode(video), 6)
        )


def test_wrong_inputs_are_refused_with_the_expected_shape(make_tokenizer: Make) -> None:
    tokenizer = make_tokenizer()
    video = random_video(1, 5)
    cases = [
        (video.float(), "dtype torch.float32"),
        (video[0], r"\(B, T, 64, 64, 3\) uint8"),
        (video[..., :2], r"\(B, T, 64, 64, 3\) uint8"),
        (random_video(1, 5, size=32), "64x64"),
        (video.numpy(), "torch tensor"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            tokenizer.encode(bad)  # type: ignore[arg-type]
    latents = tokenizer.encode(video)
    with pytest.raises(ValueError, match=r"\(B, t, 16, 8, 8\) float"):
        tokenizer.decode(latents[:, :, :4])
    with pytest.raises(ValueError, match="float"):
        tokenizer.decode(latents.long())
    with pytest.raises(ValueError, match="num_frames=9"):
        tokenizer.decode(latents, num_frames=9)
    with pytest.raises(ValueError, match="continuous"):
        tokenizer.encode_indices(video)
