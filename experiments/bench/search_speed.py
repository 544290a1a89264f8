"""Clip search speed and accuracy at 100k clips: Milvus Lite index types against exact search.

Data: ``clips`` random-but-clustered unit vectors (``centres`` random unit centres plus
Gaussian noise, seeded), the shape of 384-d MiniLM-sized clip embeddings. Queries: held-out
vectors from the same clusters, perturbed again. Method:

1. insert every clip into Milvus Lite at a temporary path (upsert in batches, flush): insert time;
2. for each index type Milvus Lite builds (FLAT, IVF_FLAT / IVF_SQ8 at several ``nprobe``,
   HNSW at several ``ef``): build time, then ``queries`` searches one query at a time (the
   interactive case, through ``ClipIndex.search``): latency p50 / p99; the same queries in
   batches of 100 per request (ms per query); recall@10 against ``exact_search``;
3. exact (numpy) search latency, one query at a time and batched, for comparison.

    python -m experiments.bench.search_speed [--clips 100000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.bench.common import write_result
from wfm_sim.search import ClipIndex, SearchIndexConfig, exact_search, recall_at_k


@dataclass
class SearchBenchConfig:
    clips: int = 100_000
    queries: int = 1000
    dim: int = 384
    centres: int = 1000
    noise: float = 2.0
    """Norm of the noise around a unit centre. At 1.5 and below the 1000 clusters are so well
    separated that every IVF setting finds all true neighbours; at 2.0 a clip's 10th neighbour
    is about as similar as clips of other clusters, as in real embedding spaces."""
    query_noise: float = 0.5
    """Extra noise on the held-out query vectors."""
    k: int = 10
    latency_queries: int = 1000
    """Queries timed one at a time per setting (recall always uses all ``queries``)."""
    seed: int = 0
    nlist: int = 1024
    nprobes: list[int] = field(default_factory=lambda: [8, 32, 128])
    hnsw_m: int = 16
    ef_construction: int = 100
    efs: list[int] = field(default_factory=lambda: [32, 64, 128])
    index_types: list[str] = field(default_factory=lambda: ["FLAT", "IVF_FLAT", "IVF_SQ8", "HNSW"])


def clustered_vectors(config: SearchBenchConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(clips (N, D), queries (Q, D))`` float32 unit vectors from the same seeded clusters."""
    rng = np.random.default_rng(config.seed)
    centres = rng.normal(size=(config.centres, config.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    n = config.clips + config.queries
    x = centres[rng.integers(config.centres, size=n)]
    x += (config.noise / np.sqrt(config.dim)) * rng.standard_normal((n, config.dim), np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    clips, queries = x[: config.clips], x[config.clips :]
    queries += (config.query_noise / np.sqrt(config.dim)) * rng.standard_normal(
        queries.shape, np.float32
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return clips, queries


def latency_ms(search: Any, queries: np.ndarray) -> tuple[dict[str, float], list[Any]]:
    """p50 / p99 / mean milliseconds of ``search(query)`` one query at a time, and the results."""
    search(queries[0])  # warm-up
    times, results = [], []
    for q in queries:
        t0 = time.perf_counter()
        results.append(search(q))
        times.append(1000 * (time.perf_counter() - t0))
    t = np.asarray(times)
    stats = {
        "p50_ms": float(np.percentile(t, 50)),
        "p99_ms": float(np.percentile(t, 99)),
        "mean_ms": float(t.mean()),
    }
    return stats, results


def _search_params(config: SearchBenchConfig, index_type: str) -> list[dict[str, Any]]:
    if index_type in ("IVF_FLAT", "IVF_SQ8"):
        return [{"nprobe": p} for p in config.nprobes]
    if index_type == "HNSW":
        return [{"ef": ef} for ef in config.efs]
    return [{}]


def run(config: SearchBenchConfig) -> dict[str, Any]:
    """Measure everything; returns the JSON-ready payload."""
    load_before = os.getloadavg()
    clips, queries = clustered_vectors(config)
    ids = [f"clip-{i:06d}" for i in range(config.clips)]
    captions = [f"synthetic clip {i}" for i in range(config.clips)]

    t0 = time.perf_counter()
    _, truth_rows = exact_search(clips, queries, config.k)
    exact_batched_s = time.perf_counter() - t0
    truth = [[ids[j] for j in row] for row in truth_rows]
    timed = queries[: config.latency_queries]
    exact_single, _ = latency_ms(lambda q: exact_search(clips, q, config.k, normalized=True), timed)
    results: dict[str, Any] = {
        "exact_numpy": {
            **exact_single,
            "batched_ms_per_query": 1000 * exact_batched_s / len(queries),
        }
    }

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clips.db"
        base = SearchIndexConfig(
            "FLAT",
            nlist=config.nlist,
            hnsw_m=config.hnsw_m,
            ef_construction=config.ef_construction,
        )
        with ClipIndex(path, dim=config.dim, config=base) as index:
            t0 = time.perf_counter()
            index.add(ids, clips, captions, progress=True)
            insert_s = time.perf_counter() - t0
            assert len(index) == config.clips
            results["insert"] = {"seconds": insert_s, "clips_per_s": config.clips / insert_s}
            results["db_mb"] = sum(f.stat().st_size for f in Path(tmp).rglob("*")) / 2**20
            for index_type in config.index_types:
                t0 = time.perf_counter()
                index.rebuild_index(dataclasses.replace(base, index_type=index_type))
                build_s = time.perf_counter() - t0
                for params in _search_params(config, index_type):
                    index.config = dataclasses.replace(index.config, **params)
                    stats, _ = latency_ms(lambda q: index.search(q, config.k), timed)
                    t0 = time.perf_counter()
                    hits = [
                        h
                        for b in range(0, len(queries), 100)
                        for h in index.search(queries[b : b + 100], config.k)
                    ]
                    batched_ms = 1000 * (time.perf_counter() - t0) / len(queries)
                    found = [[h.clip_id for h in per_query] for per_query in hits]
                    name = index_type + "".join(f"_{k}{v}" for k, v in params.items())
                    results[name] = {
                        "build_s": build_s,
                        f"recall@{config.k}": recall_at_k(found, truth),
                        **stats,
                        "batched_ms_per_query": batched_ms,
                    }
                    print(name, results[name], flush=True)
    results["load_average_before_after"] = [load_before, os.getloadavg()]
    return results


def main() -> None:
    """Measure and write experiments/results/search_speed.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=SearchBenchConfig.clips)
    parser.add_argument("--queries", type=int, default=SearchBenchConfig.queries)
    parser.add_argument("--latency-queries", type=int, default=SearchBenchConfig.latency_queries)
    parser.add_argument("--index-types", nargs="+", default=None)
    args = parser.parse_args()
    config = SearchBenchConfig(
        clips=args.clips, queries=args.queries, latency_queries=args.latency_queries
    )
    if args.index_types:
        config.index_types = [t.upper() for t in args.index_types]
    results = run(config)
    print(write_result("search_speed", {"config": dataclasses.asdict(config), **results}))
    for name, value in results.items():
        print(name, value)


if __name__ == "__main__":
    main()
