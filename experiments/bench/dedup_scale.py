"""Semantic dedup at scale: time and peak memory of the blockwise SemDeDup against the naive
full similarity matrix, on random-but-clustered 384-d embeddings.

The data: 1000 random unit centres and items = centre + noise (two items of a centre have
cosine about 0.5), normalised. The last 5% of the items are planted near-duplicates of earlier
ones, at a cosine distance drawn log-uniform in [1e-4, 1e-1], so each ε catches a different
share. Priorities are (pixels, quality): one of three resolutions and a uniform quality.

Each size runs in a fresh subprocess, so peak memory (the kernel's VmHWM, reset after the data
is made) is never mixed between sizes. k = N / 1000, so a cluster holds about 1000 items. The
naive N×N matrix only runs where about 5 N² bytes fit in the available memory; where it runs,
its keep/duplicate_of decisions must equal the blockwise ones. The workers run with
``OMP_WAIT_POLICY=PASSIVE`` (``--omp-wait-policy``): on cores shared with other jobs, spinning
OpenMP threads made every parallel op wait for a descheduled partner.

    python -m experiments.bench.dedup_scale [--sizes 100000 1000000] [--naive-sizes 10000 20000 40000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.bench.common import write_result
from wfm_sim.curation.dedup import DedupConfig, brute_force_dedup, semantic_dedup

DIM = 384
CENTRES = 1000
PLANTED_FRACTION = 0.05
ITEMS_PER_CLUSTER = 1000
NAIVE_BYTES_PER_PAIR = 5  # the float32 matrix plus its boolean mask


def make_embeddings(
    n: int, seed: int, dim: int = DIM, centres: int = CENTRES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, dim) float32 unit embeddings, (n, 2) priority keys and (n,) int64 planted sources.

    ``source[i]`` is the item that item i is a planted near-duplicate of, or -1. Made in chunks,
    so the only large array is the result.
    """
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal((centres, dim), dtype=np.float32)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    noise = np.float32(1.0 / np.sqrt(dim))  # |noise| ~ 1, so two items of a centre have cos ~0.5
    x = np.empty((n, dim), dtype=np.float32)
    chunk = 65536
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = rng.standard_normal((stop - start, dim), dtype=np.float32)
        block *= noise
        block += centre[rng.integers(centres, size=stop - start)]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[start:stop] = block
    copies = int(n * PLANTED_FRACTION)
    source = np.full(n, -1, dtype=np.int64)
    source[n - copies :] = rng.integers(n - copies, size=copies)
    distance = np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), size=copies)).astype(np.float32)
    for start in range(n - copies, n, chunk):
        stop = min(start + chunk, n)
        part = slice(start - (n - copies), stop - (n - copies))
        jitter = rng.standard_normal((stop - start, dim), dtype=np.float32)
        jitter *= np.sqrt(2.0 * distance[part] / dim)[:, None]  # 1 - cos ~ |jitter|² / 2
        block = x[source[start:stop]] + jitter
        x[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    pixels = rng.choice([360 * 640, 720 * 1280, 1080 * 1920], size=n).astype(np.float64)
    priority = np.stack([pixels, rng.random(n)], axis=1)
    return x, priority, source


def _memory_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS now, VmHWM the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _measure(run: Any) -> tuple[Any, dict[str, float]]:
    """Run ``run()``, returning its value and its wall time and peak memory above the start."""
    before = _memory_kib("VmRSS")
    reset = _reset_peak()
    start = time.perf_counter()
    value = run()
    seconds = time.perf_counter() - start
    peak = _memory_kib("VmHWM")
    return value, {
        "seconds": seconds,
        "rss_before_mib": before / 1024,
        "peak_rss_mib": peak / 1024,
        "peak_above_start_mib": (peak - before) / 1024 if reset else float("nan"),
    }


def _planted_recall(x: np.ndarray, source: np.ndarray, keep: np.ndarray, eps: float) -> float:
    """Of the planted pairs closer than ``eps``, the fraction with a member dropped."""
    copies = np.nonzero(source >= 0)[0]
    cos = np.einsum("ij,ij->i", x[copies], x[source[copies]])
    close = copies[cos >= np.float32(1.0 - eps)]
    if close.size == 0:
        return float("nan")
    return float(np.mean(~keep[close] | ~keep[source[close]]))


def worker(mode: str, n: int, config: DedupConfig, threads: int) -> dict[str, Any]:
    """One size in this process: the blockwise dedup, and with ``mode="naive"`` also the full
    matrix on the same clusters and the check that both decide the same."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    x, priority, source = make_embeddings(n, seed=config.seed)
    out: dict[str, Any] = {
        "n": n,
        "clusters": config.clusters,
        "data_seconds": time.perf_counter() - start,
        "data_mib": x.nbytes / 2**20,
        "load_average_before": os.getloadavg()[0],
    }
    result, memory = _measure(lambda: semantic_dedup(x, priority, config))
    out["blockwise"] = {
        **memory,
        "kmeans_seconds": result.seconds["kmeans"],
        "similarity_seconds": result.seconds["similarity"],
        "items_per_second": n / memory["seconds"],
        "largest_cluster": int(np.bincount(result.cluster).max()),
        "removed_fraction": result.removed_fraction,
        "removed_fraction_per_epsilon": {
            str(k): v for k, v in result.removed_fraction_per_epsilon.items()
        },
        "planted_fraction": PLANTED_FRACTION,
        "planted_recall_at_epsilon": _planted_recall(x, source, result.keep, config.epsilon),
    }
    if mode == "naive":
        brute, memory = _measure(lambda: brute_force_dedup(x, priority, result.cluster, config))
        finite = np.isfinite(result.max_similarity)
        out["naive"] = {
            **memory,
            "matrix_bytes": 4 * n * n,
            "similarity_seconds": brute.seconds["similarity"],
            "same_keep": bool(np.array_equal(result.keep, brute.keep)),
            "same_duplicate_of": bool(np.array_equal(result.duplicate_of, brute.duplicate_of)),
            "same_no_partner": bool(np.array_equal(finite, np.isfinite(brute.max_similarity))),
            "max_abs_similarity_difference": float(
                np.abs(result.max_similarity[finite] - brute.max_similarity[finite]).max(
                    initial=0.0
                )
            ),
        }
    out["load_average_after"] = os.getloadavg()[0]
    return out


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _spawn(mode: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "experiments.bench.dedup_scale", "--worker", mode]
    command += ["--sizes", str(n), "--threads", str(args.threads)]
    command += ["--iterations", str(args.iterations), "--block-size", str(args.block_size)]
    command += ["--epsilon", str(args.epsilon), "--seed", str(args.seed)]
    env = {**os.environ, "OMP_WAIT_POLICY": args.omp_wait_policy}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        return {"n": n, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _config(n: int, args: argparse.Namespace) -> DedupConfig:
    return DedupConfig(
        clusters=max(1, round(n / ITEMS_PER_CLUSTER)),
        kmeans_iterations=args.iterations,
        epsilon=args.epsilon,
        block_size=args.block_size,
        seed=args.seed,
    )


def main() -> None:
    """Measure each size in its own subprocess and write experiments/results/dedup_scale.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--naive-sizes", type=int, nargs="*", default=[10_000, 20_000, 40_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--omp-wait-policy",
        default="PASSIVE",
        help="OMP_WAIT_POLICY of the workers; PASSIVE stops idle OpenMP threads spinning, which "
        "on 2 cores shared with other jobs made 2-thread runs 3-6x slower than 1-thread ones",
    )
    parser.add_argument("--worker", choices=["blockwise", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        n = args.sizes[0]
        print(json.dumps(worker(args.worker, n, _config(n, args), args.threads)))
        return
    runs = []
    for n in args.sizes:
        print(f"blockwise n={n} ...", flush=True)
        runs.append(_spawn("blockwise", n, args))
        print(json.dumps(runs[-1]), flush=True)
    naive = []
    for n in sorted({*args.naive_sizes, *args.sizes}):
        need = NAIVE_BYTES_PER_PAIR * n * n + n * DIM * 4
        available = _available_bytes()
        if need > 0.7 * available:
            naive.append(
                {
                    "n": n,
                    "fits": False,
                    "needs_bytes": need,
                    "matrix_bytes": 4 * n * n,
                    "available_bytes": available,
                }
            )
            print(f"naive n={n}: needs {need / 2**30:.1f} GiB, does not fit", flush=True)
            continue
        print(f"naive n={n} ...", flush=True)
        naive.append({"fits": True, **_spawn("naive", n, args)})
        print(json.dumps(naive[-1]), flush=True)
    path = write_result(
        "dedup_scale",
        {
            "dim": DIM,
            "centres": CENTRES,
            "items_per_cluster": ITEMS_PER_CLUSTER,
            "threads": args.threads,
            "omp_wait_policy": args.omp_wait_policy,
            "config": {
                "kmeans_iterations": args.iterations,
                "block_size": args.block_size,
                "epsilon": args.epsilon,
                "seed": args.seed,
            },
            "blockwise": runs,
            "naive": naive,
        },
    )
    print(path)


if __name__ == "__main__":
    main()
