from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from tests.tokenizer.conftest import random_video
from wfm_sim.tokenizer import VideoTokenizer, decode_video, encode_video
from wfm_sim.tokenizer.fsq import FSQ

Make = Callable[..., VideoTokenizer]


@pytest.mark.parametrize(("kind", "tc", "sc"), [("continuous", 4, 8), ("discrete", 8, 16)])
def test_chunked_coding_equals_whole_video_coding(
    make_tokenizer: Make, kind: str, tc: int, sc: int
) -> None:
    tokenizer = make_tokenizer(kind=kind, temporal_compression=tc, spatial_compression=sc)
    frames = 2 * tc + 3  # not 1 + k*tc: padded, then trimmed
    video = random_video(1, frames, seed=3)
    with torch.no_grad():
        whole = tokenizer.encode(video)[0]
        whole_pixels = tokenizer.decode_float(whole[None], frames)[0]
    for chunk in (1, 3, tc, tc + 1, 100):  # chunk sizes that are not multiples of tc too
        latents = encode_video(tokenizer, video[0], chunk_frames=chunk)
        assert latents.shape == whole.shape, chunk
        torch.testing.assert_close(latents, whole, rtol=0, atol=1e-5)
        if kind == "discrete":
            fsq = tokenizer.fsq
            assert isinstance(fsq, FSQ)
            assert torch.equal(fsq.to_indices(latents[None]), fsq.to_indices(whole[None]))
    expected = ((whole_pixels.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1)
    for chunk in (1, 2, 100):
        decoded = decode_video(tokenizer, whole, frames, chunk_latents=chunk)
        assert decoded.shape == (frames, 64, 64, 3) and decoded.dtype == torch.uint8
        # equal up to float rounding at a grey level's half-way point
        assert (decoded.float() - expected).abs().max() <= 0.5 + 1e-3, chunk


def test_streaming_refuses_noncausal_tokenizers_and_bad_chunks(make_tokenizer: Make) -> None:
    video = random_video(1, 5)[0]
    noncausal = make_tokenizer(causal=False)
    with pytest.raises(ValueError, match="non-causal"):
        encode_video(noncausal, video, chunk_frames=4)
    latents = noncausal.encode(video[None])[0]
    with pytest.raises(ValueError, match="non-causal"):
        decode_video(noncausal, latents, 5, chunk_latents=1)
    causal = make_tokenizer()
    with pytest.raises(ValueError, match="chunk_frames must be >= 1"):
        encode_video(causal, video, chunk_frames=0)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        encode_video(causal, video[None], chunk_frames=4)
    with pytest.raises(ValueError, match="num_frames=20"):
        decode_video(causal, causal.encode(video[None])[0], 20, chunk_latents=1)
