"""The tokenizer benches on tiny tokenizers and clips: every field the summary reads is there,
the causality check passes for causal variants and fails for non-causal ones."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.bench import common, summarize, tokenizer_quality, tokenizer_speed
from experiments.bench.tokenizer_quality import causality_check, measure_quality
from experiments.bench.tokenizer_speed import measure_speed
from wfm_sim.data.shards import ShardSample, shard_group, write_shard
from wfm_sim.tokenizer import VideoTokenizer, VideoTokenizerConfig, load_tokenizer, save_tokenizer
from wfm_sim.video import write_mp4

SIZE = 32


def _clip(seed: int, frames: int) -> np.ndarray:
    """(frames, 32, 32, 3) uint8: a coloured square moving over a grey road."""
    rng = np.random.default_rng(seed)
    clip = np.full((frames, SIZE, SIZE, 3), 90, np.uint8)
    x, y, colour = rng.integers(0, 20), rng.integers(0, 20), rng.integers(0, 256, 3)
    for t in range(frames):
        clip[t, y : y + 8, (x + t) % 24 : (x + t) % 24 + 8] = colour
    return clip


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [_clip(0, 13), _clip(1, 9), _clip(2, 10)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/tokenizer-like folder: <name>/checkpoint for CV, DV and their non-causal twins."""
    root = tmp_path_factory.mktemp("tokenizer_runs")
    for kind in ("continuous", "discrete"):
        for causal in (True, False):
            torch.manual_seed(0)
            config = VideoTokenizerConfig(
                kind=kind, causal=causal, width=8, latent_channels=4, frame_size=SIZE
            )
            save_tokenizer(VideoTokenizer(config).eval(), root / config.name / "checkpoint")
    return root


def _checkpoints(runs: Path) -> dict[str, Path]:
    names = ["cv_4x8x8", "dv_4x8x8", "cv_4x8x8_noncausal", "dv_4x8x8_noncausal"]
    return {name: runs / name / "checkpoint" for name in names}


def test_quality_rows_hold_every_field_and_causality_verdicts(
    runs: Path, clips: list[np.ndarray]
) -> None:
    result = measure_quality(
        _checkpoints(runs), clips, h264_clips=1, causality_clips=2, progress=False
    )
    assert result["clips_measured"] == 3 and result["frames_measured"] == 32
    assert result["h264_clips"] == 1
    for name, row in result["variants"].items():
        assert row["ratio"] == "4x8x8" and row["frames"] == 32
        assert math.isfinite(row["psnr"]) and 0 < row["ssim"] <= 1
        assert row["clip_bits_per_pixel"] > row["bits_per_pixel"]  # frame 0 is coded alone
        h = row["h264"]
        assert h["target_bits_per_pixel"] == row["bits_per_pixel"]
        assert h["bits_per_pixel"] > 0 and h["file_bits_per_pixel"] > h["bits_per_pixel"]
        assert h["clips"] == 1 and math.isfinite(h["psnr"]) and 0 < h["ssim"] <= 1
        check = row["causality"]
        assert check["checks"] > 0 and check["clips"] == 2
        assert check["passed"] is row["causal"], name
        assert check["expected_to_pass"] is row["causal"]
        if row["causal"]:
            assert check["max_abs_diff"] == 0.0
        else:
            assert check["max_abs_diff"] > 0.0
        if row["kind"] == "discrete":
            usage = row["codebook"]
            assert usage["codebook_size"] == 1000 and 0 < usage["used_fraction"] <= 1
            assert 1 <= usage["perplexity"] <= usage["used"]
        else:
            assert row["codebook"] is None
    # The non-causal twin shares the causal one's H.264 (same clips, same rate).
    causal, twin = (result["variants"][n]["h264"] for n in ("cv_4x8x8", "cv_4x8x8_noncausal"))
    assert causal["psnr"] == twin["psnr"] and causal["bits_per_pixel"] == twin["bits_per_pixel"]


def test_causality_check_catches_a_peek_at_later_frames(
    runs: Path, clips: list[np.ndarray]
) -> None:
    tokenizer = load_tokenizer(runs / "cv_4x8x8" / "checkpoint")
    assert causality_check(tokenizer, clips[:1])["passed"]
    original = tokenizer.encode

    def peeking(video: torch.Tensor) -> torch.Tensor:
        latents = original(video)
        return latents + video[:, -1:].float().mean() * 1e-3  # every code sees the last frame

    tokenizer.encode = peeking  # type: ignore[method-assign]
    check = causality_check(tokenizer, clips[:1])
    assert not check["passed"] and check["failures"] == check["checks"]


def test_speed_rows_stream_only_causal_variants(runs: Path) -> None:
    kwargs = dict(batch=2, frames=5, long_frames=9, chunk_frames=4, chunk_latents=2, repeats=1)
    causal = measure_speed(load_tokenizer(runs / "dv_4x8x8" / "checkpoint"), **kwargs)
    assert causal["encode_fps"] > 0 and causal["decode_fps"] > 0
    assert causal["stream_encode_fps"] > 0 and causal["stream_decode_fps"] > 0
    noncausal = measure_speed(load_tokenizer(runs / "cv_4x8x8_noncausal" / "checkpoint"), **kwargs)
    assert noncausal["encode_fps"] > 0 and noncausal["stream_encode_fps"] is None


def _write_shards(root: Path, clips: list[np.ndarray]) -> Path:
    samples = []
    for i, clip in enumerate(clips):
        path = root / f"clip{i}.mp4"
        write_mp4(path, clip)
        samples.append(ShardSample(f"clip{i:03d}", path.read_bytes(), b"", {"clip": i}))
    write_shard(root / "shards" / shard_group(SIZE, SIZE) / "shard-00000.tar", samples)
    return root / "shards"


def test_benches_write_json_that_the_summary_renders(
    runs: Path, clips: list[np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path / "results")
    assert "Not measured yet" in "\n".join(summarize._tokenizer_sections())
    shards = _write_shards(tmp_path, clips)
    torch_threads = torch.get_num_threads()
    common_args = ["--runs", str(runs), "--variants", "cv_4x8x8", "dv_4x8x8_noncausal", "dv_8x8x8"]
    quality_argv = [
        "tokenizer_quality",
        *common_args,
        "--shards",
        str(shards),
        "--held-out-fraction",
        "0.5",
        "--max-clips",
        "1",
        "--h264-clips",
        "1",
        "--causality-clips",
        "1",
        "--threads",
        str(torch_threads),
    ]
    monkeypatch.setattr(sys, "argv", quality_argv)
    monkeypatch.setattr(tokenizer_quality, "tokenizer_clips", _resolution(SIZE))
    tokenizer_quality.main()
    monkeypatch.setattr(
        sys,
        "argv",
        ["tokenizer_speed", *common_args, "--batch", "1", "--frames", "5", "--long-frames", "9"]
        + ["--repeats", "1", "--threads", str(torch_threads)],
    )
    tokenizer_speed.main()

    quality = json.loads((tmp_path / "results" / "tokenizer_quality.json").read_text())
    speed = json.loads((tmp_path / "results" / "tokenizer_speed.json").read_text())
    assert quality["benchmark"] == "tokenizer_quality" and "machine" in quality
    assert quality["missing"] == ["dv_8x8x8"] and quality["held_out_clips"] == 2
    assert set(quality["variants"]) == {"cv_4x8x8", "dv_4x8x8_noncausal"}
    assert speed["torch_threads"] == torch_threads and speed["missing"] == ["dv_8x8x8"]
    text = "\n".join(summarize._tokenizer_sections())
    assert "| cv_4x8x8 | 4x8x8 | CV |" in text and "| dv_4x8x8_noncausal |" in text
    assert "fails, as expected" in text and "pass (max Δ 0)" in text
    assert "Not trained yet: dv_8x8x8" in text and "Not measured yet" not in text

    # a variant measured apart (--name tokenizer_quality_<x>) gets a table of its own
    monkeypatch.setattr(sys, "argv", [*quality_argv, "--name", "tokenizer_quality_apart"])
    tokenizer_quality.main()
    text = "\n".join(summarize._tokenizer_sections())
    assert "### `tokenizer_quality_apart`" in text
    assert text.count("| cv_4x8x8 | 4x8x8 | CV |") == 2
    assert "Speed not measured yet" in text.split("### `tokenizer_quality_apart`")[1]


def _resolution(size: int):
    """``tokenizer_clips`` at the tiny clips' resolution (the bench reads 64x64)."""
    from wfm_sim.tokenizer.data import tokenizer_clips

    def clips_at(shards_dir: str, **kwargs: object):
        return tokenizer_clips(shards_dir, resolution=f"{size}x{size}", **kwargs)  # type: ignore[arg-type]

    return clips_at


def test_h264_can_get_the_bits_the_code_of_each_clip_takes(
    runs: Path, clips: list[np.ndarray]
) -> None:
    checkpoints = {"cv_4x8x8": runs / "cv_4x8x8" / "checkpoint"}
    row = measure_quality(
        checkpoints, clips[:1], causality_clips=1, progress=False, h264_rate="clip"
    )["variants"]["cv_4x8x8"]
    assert row["h264"]["rate"] == "clip"
    assert row["h264"]["target_bits_per_pixel"] == pytest.approx(row["clip_bits_per_pixel"])
    with pytest.raises(ValueError, match="h264_rate"):
        measure_quality(checkpoints, clips[:1], progress=False, h264_rate="file")
