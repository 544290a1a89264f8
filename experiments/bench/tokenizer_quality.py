"""Tokenizer quality on held-out curated clips: PSNR and SSIM of each trained variant, against
H.264 at the same bits per pixel and the non-causal autoencoder of the same size; codebook usage
of the discrete ones; and a causality check.

    python -m experiments.bench.tokenizer_quality [--runs runs/tokenizer]
        [--shards data/curated/driving/shards] [--variants cv_4x8x8 dv_4x8x8 ...]
        [--max-clips 0] [--h264-clips 0] [--causality-clips 3] [--h264-rate config|clip]

Every variant whose checkpoint exists (runs/tokenizer/<name>/checkpoint) codes and decodes each
held-out clip of ``tokenizer_clips`` (the split its training left out). H.264 codes the same
clips at the variant's ``bits_per_pixel()`` (the quantizer searched per clip, see
``wfm_sim.tokenizer.h264``; the bits it achieved are recorded); it runs once per clip and rate,
so a causal variant and its non-causal sibling share it. Causality: for a few clips and several
t, the frames after t are replaced by noise or by another clip, and the latents (DV: also the
tokens) of every latent frame covering only frames <= t must stay bit-identical. A non-causal
variant is expected to fail it.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from experiments.bench.common import write_result
from wfm_sim.tokenizer.checkpoint import load_tokenizer
from wfm_sim.tokenizer.data import tokenizer_clips
from wfm_sim.tokenizer.h264 import h264_encode
from wfm_sim.tokenizer.metrics import codebook_usage, psnr, ssim
from wfm_sim.tokenizer.network import VideoTokenizer

VARIANTS = (
    "cv_4x8x8",
    "cv_8x8x8",
    "cv_8x16x16",
    "dv_4x8x8",
    "dv_8x8x8",
    "dv_8x16x16",
    "dv_1x4x4",
    "cv_4x8x8_noncausal",
    "dv_4x8x8_noncausal",
)
"""The variants of experiments/conf/tokenizer/, in table order."""


class _FrameMean:
    """Means over frames of per-clip means: each clip weighs by its frame count."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.frames = 0

    def add(self, frames: int, **values: float) -> None:
        self.frames += frames
        for key, value in values.items():
            self.total[key] = self.total.get(key, 0.0) + frames * value

    def means(self) -> dict[str, float]:
        return {key: value / max(1, self.frames) for key, value in self.total.items()}


@torch.inference_mode()
def _encode(tokenizer: VideoTokenizer, clip: np.ndarray) -> torch.Tensor:
    """clip (T, H, W, 3) uint8 -> latents (t, C, h, w)."""
    return tokenizer.encode(torch.from_numpy(np.ascontiguousarray(clip))[None])[0]


@torch.inference_mode()
def reconstruct(tokenizer: VideoTokenizer, clip: np.ndarray) -> tuple[np.ndarray, Any]:
    """clip (T, H, W, 3) uint8 -> (its reconstruction (T, H, W, 3) uint8, DV token ids (t, h, w)
    int64 or None for CV). DV goes through the token ids, as a downstream model sees them."""
    video = torch.from_numpy(np.ascontiguousarray(clip))[None]
    if tokenizer.config.kind == "discrete":
        indices = tokenizer.encode_indices(video)
        return tokenizer.decode_indices(indices, len(clip))[0].numpy(), indices[0]
    return tokenizer.decode(tokenizer.encode(video), len(clip))[0].numpy(), None


def causality_check(
    tokenizer: VideoTokenizer, clips: list[np.ndarray], seed: int = 0
) -> dict[str, Any]:
    """Change the frames after t (noise, or another clip's frames) for t in {0, tc, T//2, T-2}
    and compare the latents of latent frames 0..t//tc (those covering frames <= t only).

    Returns ``passed`` (every compared latent, and DV token, bit-identical), ``max_abs_diff``
    over the compared latents, and how many comparisons failed of how many.
    """
    rng = np.random.default_rng(seed)
    tc = tokenizer.config.temporal_compression
    fsq = tokenizer.fsq
    checks = failures = 0
    max_diff = 0.0
    times: list[int] = []
    for i, clip in enumerate(clips):
        length = len(clip)
        other = clips[(i + 1) % len(clips)] if len(clips) > 1 else 255 - clip
        base = _encode(tokenizer, clip)
        for t in sorted({t for t in (0, tc, length // 2, length - 2) if 0 <= t < length - 1}):
            times.append(t)
            keep = t // tc + 1
            replacements = {
                "noise": rng.integers(
                    0, 256, size=(length - t - 1, *clip.shape[1:]), dtype=np.uint8
                ),
                "other_clip": other[np.arange(length - t - 1) % len(other)],
            }
            for replacement in replacements.values():
                changed = clip.copy()
                changed[t + 1 :] = replacement
                latents = _encode(tokenizer, changed)
                same = torch.equal(latents[:keep], base[:keep])
                if fsq is not None:
                    tokens = fsq.to_indices(latents[None, :keep].transpose(1, 2))
                    same &= torch.equal(tokens, fsq.to_indices(base[None, :keep].transpose(1, 2)))
                max_diff = max(max_diff, float((latents[:keep] - base[:keep]).abs().max()))
                checks += 1
                failures += int(not same)
    return {
        "passed": failures == 0 and checks > 0,
        "expected_to_pass": tokenizer.config.causal,
        "max_abs_diff": max_diff,
        "checks": checks,
        "failures": failures,
        "clips": len(clips),
        "times": sorted(set(times)),
    }


class H264Baseline:
    """H.264 round trips of clips at given rates, each done once and shared by the variants."""

    def __init__(self) -> None:
        self._done: dict[tuple[int, float], dict[str, Any]] = {}

    def measure(self, index: int, clip: np.ndarray, bits_per_pixel: float) -> dict[str, Any]:
        key = (index, round(bits_per_pixel, 9))
        if key not in self._done:
            result = h264_encode(clip, bits_per_pixel)
            self._done[key] = {
                "psnr": result.psnr,
                "ssim": ssim(clip, result.frames),
                "bits_per_pixel": result.bits_per_pixel,
                "file_bits_per_pixel": result.file_bits_per_pixel,
                "on_target": result.on_target,
                "pixel_format": result.pixel_format,
            }
        return self._done[key]


def evaluate_variant(
    tokenizer: VideoTokenizer,
    clips: list[np.ndarray],
    h264: H264Baseline,
    h264_clips: int,
    causality_clips: int,
    seed: int = 0,
    progress: bool = True,
    h264_rate: str = "config",
) -> dict[str, Any]:
    """The quality row of one variant on ``clips`` (T, H, W, 3) uint8; H.264 on the first
    ``h264_clips`` of them, causality on ``causality_clips`` of the longest.

    h264_rate: "config" gives H.264 the variant's ``bits_per_pixel()`` (long-video rate);
    "clip" gives it what the variant's code of that very clip takes (more, for short clips,
    since frame 0 is coded alone)."""
    if h264_rate not in ("config", "clip"):
        raise ValueError(f"h264_rate must be 'config' or 'clip', got {h264_rate!r}")
    config = tokenizer.config
    bpp = config.bits_per_pixel()
    started = time.perf_counter()
    overall, subset, baseline = _FrameMean(), _FrameMean(), _FrameMean()
    code_bits = pixels = h264_target_bits = h264_bits = h264_file_bits = h264_pixels = 0.0
    on_target = 0
    formats: Counter[str] = Counter()
    tokens = []
    side = config.latent_size
    for index, clip in enumerate(tqdm(clips, desc=config.name, disable=not progress)):
        frames = len(clip)
        recon, indices = reconstruct(tokenizer, clip)
        scores = {"psnr": psnr(clip, recon), "ssim": ssim(clip, recon)}
        overall.add(frames, **scores)
        clip_pixels = frames * clip.shape[1] * clip.shape[2]
        clip_bits = config.latent_frames(frames) * side * side * config.bits_per_token()
        code_bits += clip_bits
        pixels += clip_pixels
        if indices is not None:
            tokens.append(indices.reshape(-1).numpy())
        if index < h264_clips:
            subset.add(frames, **scores)
            target = bpp if h264_rate == "config" else clip_bits / clip_pixels
            h = h264.measure(index, clip, target)
            h264_target_bits += target * clip_pixels
            baseline.add(frames, psnr=h["psnr"], ssim=h["ssim"])
            h264_bits += h["bits_per_pixel"] * clip_pixels
            h264_file_bits += h["file_bits_per_pixel"] * clip_pixels
            h264_pixels += clip_pixels
            on_target += int(h["on_target"])
            formats[h["pixel_format"]] += 1
    measured = min(h264_clips, len(clips))
    longest = sorted(range(len(clips)), key=lambda i: -len(clips[i]))[:causality_clips]
    row: dict[str, Any] = {
        "kind": config.kind,
        "ratio": f"{config.temporal_compression}x{config.spatial_compression}x"
        f"{config.spatial_compression}",
        "causal": config.causal,
        "config": config.to_dict(),
        "bits_per_pixel": bpp,
        "clip_bits_per_pixel": code_bits / max(1.0, pixels),
        "clips": len(clips),
        "frames": overall.frames,
        **overall.means(),
        "h264": {
            "rate": h264_rate,
            "target_bits_per_pixel": h264_target_bits / max(1.0, h264_pixels),
            "bits_per_pixel": h264_bits / max(1.0, h264_pixels),
            "file_bits_per_pixel": h264_file_bits / max(1.0, h264_pixels),
            "on_target_fraction": on_target / max(1, measured),
            "clips": measured,
            "pixel_formats": dict(formats),
            **baseline.means(),
            "tokenizer_psnr": subset.means().get("psnr", math.nan),
            "tokenizer_ssim": subset.means().get("ssim", math.nan),
        },
        "codebook": (
            codebook_usage(np.concatenate(tokens), config.codebook_size).to_dict()
            if tokens
            else None
        ),
        "causality": causality_check(tokenizer, [clips[i] for i in longest], seed),
    }
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def measure_quality(
    checkpoints: dict[str, Path],
    clips: list[np.ndarray],
    h264_clips: int | None = None,
    causality_clips: int = 3,
    seed: int = 0,
    progress: bool = True,
    h264_rate: str = "config",
) -> dict[str, Any]:
    """Rows for each variant of ``checkpoints`` (name -> checkpoint folder) on ``clips``."""
    h264_count = len(clips) if h264_clips is None else min(h264_clips, len(clips))
    baseline = H264Baseline()
    variants = {
        name: evaluate_variant(
            load_tokenizer(folder),
            clips,
            baseline,
            h264_count,
            causality_clips,
            seed,
            progress,
            h264_rate,
        )
        for name, folder in checkpoints.items()
    }
    return {
        "clips_measured": len(clips),
        "frames_measured": int(sum(len(c) for c in clips)),
        "h264_clips": h264_count,
        "variants": variants,
    }


def main() -> None:
    """Measure and write experiments/results/tokenizer_quality.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", default="runs/tokenizer")
    parser.add_argument("--shards", default="data/curated/driving/shards")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--max-clips", type=int, default=0, help="0: every held-out clip")
    parser.add_argument("--h264-clips", type=int, default=0, help="0: every measured clip")
    parser.add_argument("--causality-clips", type=int, default=3)
    parser.add_argument(
        "--h264-rate",
        choices=["config", "clip"],
        default="config",
        help="H.264's target: the variant's long-video bits per pixel, or its code's on each clip",
    )
    parser.add_argument("--held-out-fraction", type=float, default=0.1)
    parser.add_argument(
        "--seed", type=int, default=0, help="the split's (as in training) and noise's"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--name",
        default="tokenizer_quality",
        help="result file name; tokenizer_quality_<x> is summarised as its own table",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoints = {name: Path(args.runs) / name / "checkpoint" for name in args.variants}
    found = {name: path for name, path in checkpoints.items() if (path / "config.json").exists()}
    missing = sorted(set(checkpoints) - set(found), key=list(checkpoints).index)
    if missing:
        print(f"no checkpoint yet for {', '.join(missing)}; measuring {', '.join(found) or 'none'}")
    _, held_out = tokenizer_clips(
        args.shards, held_out_fraction=args.held_out_fraction, seed=args.seed
    )
    clips = held_out[: args.max_clips] if args.max_clips > 0 else held_out
    result = measure_quality(
        found,
        clips,
        h264_clips=args.h264_clips if args.h264_clips > 0 else None,
        causality_clips=args.causality_clips,
        seed=args.seed,
        h264_rate=args.h264_rate,
    )
    result.update(shards=args.shards, held_out_clips=len(held_out), missing=missing)
    print(write_result(args.name, result))
    for name, row in result["variants"].items():
        print(
            f"{name}: {row['bits_per_pixel']:.4f} bpp, PSNR {row['psnr']:.2f}, SSIM "
            f"{row['ssim']:.3f}; H.264 {row['h264']['psnr']:.2f} / {row['h264']['ssim']:.3f} at "
            f"{row['h264']['bits_per_pixel']:.4f} bpp; causality "
            f"{'pass' if row['causality']['passed'] else 'fail'}"
        )


if __name__ == "__main__":
    main()
