"""Tokenizer encode and decode speed on this CPU, frames per second, per trained variant: a batch
of clips coded at once, and one long video coded chunk by chunk (``wfm_sim.tokenizer.streaming``,
causal variants only: a non-causal one looks ahead and cannot stream).

    python -m experiments.bench.tokenizer_speed [--runs runs/tokenizer] [--variants ...]
        [--batch 8] [--frames 17] [--long-frames 129] [--chunk-frames 16] [--chunk-latents 4]

Frames are seeded random pixels of the variant's frame size: the networks do the same work
whatever the content. Timings are the median of ``--repeats`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from experiments.bench.common import write_result
from experiments.bench.tokenizer_quality import VARIANTS
from wfm_sim.tokenizer.checkpoint import load_tokenizer
from wfm_sim.tokenizer.network import VideoTokenizer
from wfm_sim.tokenizer.streaming import decode_video, encode_video


def _median_seconds(work: Callable[[], object], repeats: int) -> float:
    work()  # warm-up: first-call allocations and oneDNN kernel choice
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@torch.inference_mode()
def measure_speed(
    tokenizer: VideoTokenizer,
    batch: int = 8,
    frames: int = 17,
    long_frames: int = 129,
    chunk_frames: int = 16,
    chunk_latents: int = 4,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Frames per second of ``tokenizer`` encoding and decoding a (batch, frames) uint8 batch,
    and (causal only) streaming one ``long_frames`` video; None where it cannot stream."""
    size = tokenizer.config.frame_size
    generator = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (batch, frames, size, size, 3), generator=generator).to(
        torch.uint8
    )
    latents = tokenizer.encode(video)
    encode_s = _median_seconds(lambda: tokenizer.encode(video), repeats)
    decode_s = _median_seconds(lambda: tokenizer.decode(latents, frames), repeats)
    row: dict[str, Any] = {
        "encode_fps": batch * frames / encode_s,
        "decode_fps": batch * frames / decode_s,
        "stream_encode_fps": None,
        "stream_decode_fps": None,
    }
    if tokenizer.config.causal:
        long = torch.randint(0, 256, (long_frames, size, size, 3), generator=generator).to(
            torch.uint8
        )
        long_latents = encode_video(tokenizer, long, chunk_frames)
        stream_encode_s = _median_seconds(
            lambda: encode_video(tokenizer, long, chunk_frames), repeats
        )
        stream_decode_s = _median_seconds(
            lambda: decode_video(tokenizer, long_latents, long_frames, chunk_latents), repeats
        )
        row["stream_encode_fps"] = long_frames / stream_encode_s
        row["stream_decode_fps"] = long_frames / stream_decode_s
    return row


def main() -> None:
    """Measure and write experiments/results/tokenizer_speed.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", default="runs/tokenizer")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--long-frames", type=int, default=129)
    parser.add_argument("--chunk-frames", type=int, default=16)
    parser.add_argument("--chunk-latents", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--name",
        default="tokenizer_speed",
        help="result file name; tokenizer_speed_<x> is summarised as its own table",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoints = {name: Path(args.runs) / name / "checkpoint" for name in args.variants}
    found = {name: path for name, path in checkpoints.items() if (path / "config.json").exists()}
    missing = [name for name in checkpoints if name not in found]
    if missing:
        print(f"no checkpoint yet for {', '.join(missing)}; measuring {', '.join(found) or 'none'}")
    variants = {
        name: measure_speed(
            load_tokenizer(folder),
            args.batch,
            args.frames,
            args.long_frames,
            args.chunk_frames,
            args.chunk_latents,
            args.repeats,
        )
        for name, folder in tqdm(found.items(), desc="variants")
    }
    result = {
        "torch_threads": torch.get_num_threads(),
        "batch": {"clips": args.batch, "frames": args.frames},
        "streaming": {
            "frames": args.long_frames,
            "chunk_frames": args.chunk_frames,
            "chunk_latents": args.chunk_latents,
        },
        "repeats": args.repeats,
        "variants": variants,
        "missing": missing,
    }
    print(write_result(args.name, result))
    for name, row in variants.items():
        print(name, {k: None if v is None else round(v, 1) for k, v in row.items()})


if __name__ == "__main__":
    main()
