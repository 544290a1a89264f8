"""Embeddings: MiniLM text vectors, the video encoder's shapes, training, checkpoints, recall."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from wfm_sim.curation.captions import MetadataCaptioner
from wfm_sim.curation.clips import Clip, ClipSpan
from wfm_sim.curation.embed import (
    EmbedTrainConfig,
    TextEmbedder,
    VideoEncoder,
    VideoEncoderConfig,
    contrastive_loss,
    embed_videos,
    load_video_encoder,
    retrieval_recall_at_k,
    save_video_encoder,
    train_video_encoder,
)
from wfm_sim.data.footage import read_video

TINY = VideoEncoderConfig(frames=4, size=32, channels=(8, 16), frame_dim=32, groups=4)
"""An encoder small enough to train in a second or two on one core."""


@pytest.fixture(scope="module")
def text_embedder() -> TextEmbedder:
    """MiniLM, loaded once for the module (~4 s)."""
    embedder = TextEmbedder(device="cpu")
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture(scope="module")
def tiny_clips(tiny_footage: Path) -> list[Clip]:
    """The tiny footage cut into pieces of at most 8 frames, each within one episode."""
    clips = []
    for parquet in sorted(tiny_footage.glob("part-*.parquet")):
        table = pq.read_table(parquet)
        frames = read_video(parquet.with_suffix(".mp4"))
        episodes = table.column("episode").to_numpy()
        bounds = np.r_[0, np.flatnonzero(np.diff(episodes)) + 1, len(episodes)]
        for first, end in zip(bounds[:-1], bounds[1:], strict=True):
            for start in range(int(first), int(end), 8):
                stop = min(start + 8, int(end))
                span = ClipSpan("tiny", 0, start, stop, 64, 64)
                clips.append(Clip(span, frames[start:stop], table.slice(start, stop - start)))
    return clips


def _clips(generator: np.random.Generator, shapes: list[tuple[int, int, int]]) -> list[np.ndarray]:
    return [generator.integers(0, 256, (t, h, w, 3), dtype=np.uint8) for t, h, w in shapes]


def test_text_embeddings_are_unit_384d_and_meaningful(text_embedder: TextEmbedder) -> None:
    texts = [
        "The ego car changes lane to the left, then crashes.",
        "The ego car moves one lane to the left and collides with another car.",
        "A recipe for chocolate cake with three eggs.",
    ]
    embedded = text_embedder.embed(texts)
    assert embedded.shape == (3, 384) and embedded.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    similar, unrelated = embedded[0] @ embedded[1], embedded[0] @ embedded[2]
    assert similar > unrelated + 0.3
    assert text_embedder.embed([]).shape == (0, 384)
    with pytest.raises(TypeError, match="list of texts"):
        text_embedder.embed("one text")  # type: ignore[arg-type]


def test_video_encoder_takes_any_length_and_resolution() -> None:
    torch.manual_seed(0)
    encoder = VideoEncoder(TINY).eval()
    clips = _clips(np.random.default_rng(0), [(1, 64, 64), (5, 31, 47), (40, 96, 128), (3, 20, 20)])
    embedded = embed_videos(encoder, clips, batch_size=3)
    assert embedded.shape == (4, 384) and embedded.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        batch = encoder(torch.from_numpy(np.stack([clips[1]] * 2)))
    assert batch.shape == (2, 384)
    np.testing.assert_allclose(batch[0].numpy(), embedded[1], atol=1e-5)


def test_video_embeddings_are_deterministic_and_batch_independent() -> None:
    torch.manual_seed(0)
    encoder = VideoEncoder(TINY)
    clips = _clips(np.random.default_rng(1), [(6, 64, 64)] * 5)
    one_by_one = embed_videos(encoder, clips, batch_size=1)
    together = embed_videos(encoder, clips, batch_size=5)
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)
    np.testing.assert_array_equal(together, embed_videos(encoder, clips, batch_size=5))
    assert embed_videos(encoder, []).shape == (0, 384)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        encoder.prepare(np.zeros((4, 8, 8), np.uint8))


def test_default_encoder_is_a_few_hundred_thousand_parameters() -> None:
    params = sum(p.numel() for p in VideoEncoder().parameters())
    assert 100_000 < params < 1_000_000


def test_training_lowers_the_contrastive_loss(
    tiny_clips: list[Clip], text_embedder: TextEmbedder
) -> None:
    captions = MetadataCaptioner().caption_batch(tiny_clips)
    texts = text_embedder.embed(captions)
    frames = [clip.frames for clip in tiny_clips]
    config = EmbedTrainConfig(
        steps=40, batch_size=16, lr=3e-3, warmup_steps=5, progress=False, encoder=TINY
    )
    losses: list[float] = []
    encoder = train_video_encoder(
        frames, texts, config, on_step=lambda _, loss: losses.append(loss)
    )
    untrained = train_video_encoder(frames, texts, dataclasses.replace(config, steps=0))

    def loss_of(model: VideoEncoder) -> float:
        video = torch.from_numpy(embed_videos(model, frames))
        with torch.no_grad():
            return float(contrastive_loss(video, torch.from_numpy(texts), model.logit_scale))

    assert len(losses) == 40
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert loss_of(encoder) < 0.8 * loss_of(untrained)
    assert not encoder.training


def test_training_is_seeded() -> None:
    clips = _clips(np.random.default_rng(2), [(4, 32, 32)] * 6)
    texts = torch.nn.functional.normalize(torch.randn(6, 384), dim=1).numpy()
    config = EmbedTrainConfig(steps=3, batch_size=4, progress=False, encoder=TINY)
    first = train_video_encoder(clips, texts, config)
    second = train_video_encoder(clips, texts, config)
    other = train_video_encoder(clips, texts, dataclasses.replace(config, seed=1))
    np.testing.assert_array_equal(embed_videos(first, clips), embed_videos(second, clips))
    assert not np.array_equal(embed_videos(first, clips), embed_videos(other, clips))
    with pytest.raises(ValueError, match="N = 6 clips"):
        train_video_encoder(clips, texts[:5], config)


def test_soft_targets_do_not_punish_duplicate_captions() -> None:
    text = torch.nn.functional.normalize(torch.randn(2, 384), dim=1)
    duplicated = text[[0, 0, 1]]
    # Clips 0 and 1 share a caption, so swapping their embeddings costs nothing.
    video = duplicated[[1, 0, 2]]
    assert float(contrastive_loss(video, duplicated, 4.0)) == pytest.approx(
        float(contrastive_loss(duplicated, duplicated, 4.0)), abs=1e-5
    )


def test_save_load_round_trip_is_bit_identical(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = VideoEncoder(TINY)
    clips = _clips(np.random.default_rng(3), [(7, 64, 64), (2, 40, 56)])
    weights = save_video_encoder(encoder, tmp_path / "encoder")
    assert weights.name == "encoder.safetensors" and (tmp_path / "encoder.json").exists()
    loaded = load_video_encoder(weights, config=TINY)
    np.testing.assert_array_equal(embed_videos(encoder, clips), embed_videos(loaded, clips))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.json", "encoder.safetensors"]


def test_loading_a_checkpoint_of_another_config_fails(tmp_path: Path) -> None:
    save_video_encoder(VideoEncoder(TINY), tmp_path / "encoder.safetensors")
    wider = dataclasses.replace(TINY, frame_dim=48)
    with pytest.raises(ValueError, match="frame_dim"):
        load_video_encoder(tmp_path / "encoder", config=wider)
    stored = json.loads((tmp_path / "encoder.json").read_text())
    stored["config"]["frame_dim"] = 48
    (tmp_path / "encoder.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="do not fit their config"):
        load_video_encoder(tmp_path / "encoder")
    with pytest.raises(FileNotFoundError, match="save_video_encoder"):
        load_video_encoder(tmp_path / "missing")


def test_retrieval_recall() -> None:
    texts = torch.nn.functional.normalize(
        torch.randn(20, 384, generator=torch.Generator().manual_seed(0)), dim=1
    ).numpy()
    assert retrieval_recall_at_k(texts, texts, k=1) == 1.0
    reversed_videos = -texts
    assert retrieval_recall_at_k(reversed_videos, texts, k=5) == 0.0
    # Clips 0 and 1 share a caption: retrieving either one is a hit unless strict.
    shared = texts.copy()
    shared[1] = shared[0]
    videos = shared.copy()
    videos[0], videos[1] = texts[5], texts[0]
    assert retrieval_recall_at_k(videos, shared, k=1) == pytest.approx(19 / 20)
    assert retrieval_recall_at_k(videos, shared, k=1, same_caption_at=None) == pytest.approx(
        18 / 20
    )
    with pytest.raises(ValueError, match="same N and D"):
        retrieval_recall_at_k(texts[:3], texts, k=1)
