"""How dense the clip data is around a set of queries: where the training data is thin.

For each query (an embedded prompt, a clip a world model failed on, a planned scenario)
:func:`density_report` measures, in cosine distance ``1 - cos`` (0 = same direction, 1 =
unrelated, 2 = opposite):

===================== ===============================================================
column                meaning
===================== ===============================================================
nearest_centroid      the semantic cluster the query falls in
centroid_distance     its distance to that cluster's centre
knn_distance          mean distance to its ``k`` nearest clips: small = well covered
neighbours_in_radius  clips within ``radius`` of it
sparse                ``knn_distance`` above the ``percentile`` (95th) of the same statistic
                      for the indexed clips themselves (each clip's ``k`` nearest *other*
                      clips): the data around the query is thinner than around 95% of the
                      training clips, so a model trained on them has seen little like it
===================== ===============================================================

The clips' own statistic is estimated on a seeded sample of ``reference_size`` clips, and
``radius`` defaults to the median distance from a clip to its ``k``-th nearest other clip, so
a typical clip has about ``k`` neighbours within it. Everything is scored block by block: memory
stays (block, rows), never (N, N).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields

import numpy as np
import pyarrow as pa

from wfm_sim.search.index import unit_rows


@dataclass(frozen=True)
class DensityRow:
    """The neighbourhood of one query; distances are cosine distances ``1 - cos``."""

    query: int
    """The query's row in ``queries``."""
    nearest_centroid: int
    centroid_distance: float
    knn_distance: float
    neighbours_in_radius: int
    sparse: bool


@dataclass(frozen=True)
class DensityReport:
    """Per-query :class:`DensityRow` s plus the thresholds they were judged by."""

    rows: list[DensityRow]
    k: int
    radius: float
    """Cosine distance within which ``neighbours_in_radius`` counts clips."""
    sparse_threshold: float
    """A query is sparse when its ``knn_distance`` is above this."""
    percentile: float
    """``sparse_threshold`` is this percentile of the indexed clips' own ``knn_distance``."""
    reference_clips: int
    """How many indexed clips the threshold and default radius were estimated on."""

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[DensityRow]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> DensityRow:
        return self.rows[i]

    @property
    def sparse_fraction(self) -> float:
        """The fraction of queries flagged sparse."""
        return float(np.mean([r.sparse for r in self.rows])) if self.rows else 0.0

    def to_table(self) -> pa.Table:
        """The rows as a pyarrow Table (write it with ``pyarrow.parquet``); the thresholds are
        in the schema metadata."""
        columns = {f.name: [getattr(r, f.name) for r in self.rows] for f in fields(DensityRow)}
        schema = pa.schema(
            [
                ("query", pa.int64()),
                ("nearest_centroid", pa.int64()),
                ("centroid_distance", pa.float32()),
                ("knn_distance", pa.float32()),
                ("neighbours_in_radius", pa.int64()),
                ("sparse", pa.bool_()),
            ],
            metadata={
                key: str(value)
                for key, value in asdict(self).items()
                if key != "rows"  # the thresholds travel with the table
            },
        )
        return pa.table(columns, schema=schema)


def density_report(
    queries: np.ndarray,
    embeddings: np.ndarray,
    centroids: np.ndarray,
    k: int = 10,
    radius: float | None = None,
    percentile: float = 95.0,
    reference_size: int = 2000,
    rng: np.random.Generator | None = None,
    block: int = 16384,
) -> DensityReport:
    """Measure how densely the clips cover each query, and flag queries where they are sparse.

    Args:
        queries: (Q, D) query embeddings, or (D,) for one.
        embeddings: (N, D) indexed clip embeddings, N > k.
        centroids: (C, D) cluster centres of the clip embeddings (e.g. from semantic dedup's
            k-means).
        k: neighbours averaged in ``knn_distance``.
        radius: cosine distance for ``neighbours_in_radius``; ``None`` for the median distance
            from a clip to its k-th nearest other clip.
        percentile: of the clips' own ``knn_distance``, above which a query is sparse.
        reference_size: clips sampled to estimate that percentile (all of them when N is
            smaller); the cost is (reference_size, N) similarities.
        rng: draws the reference sample; ``None`` for ``np.random.default_rng(0)``.
        block: embedding rows scored at a time.

    Returns:
        A :class:`DensityReport` with one row per query.
    """
    q = unit_rows(np.atleast_2d(np.asarray(queries, dtype=np.float32)), "queries")
    emb = np.asarray(embeddings)
    cents = unit_rows(np.atleast_2d(np.asarray(centroids, dtype=np.float32)), "centroids")
    n = emb.shape[0] if emb.ndim == 2 else 0
    if emb.ndim != 2 or emb.shape[1] != q.shape[1] or cents.shape[1] != q.shape[1]:
        raise ValueError(
            f"queries (…, {q.shape[1]}), embeddings {emb.shape} and centroids {cents.shape} must "
            "share one embedding dimension; embed them all with the same model"
        )
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, N-1] = [1, {n - 1}] for {n} clips, got {k}")
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    if radius is not None and not 0.0 <= radius <= 2.0:
        raise ValueError(f"radius is a cosine distance in [0, 2], got {radius}")

    rng = np.random.default_rng(0) if rng is None else rng
    ref_ids = np.sort(rng.choice(n, size=min(reference_size, n), replace=False))
    ref_vectors = unit_rows(emb[ref_ids], "embeddings")
    ref_sims, _ = _neighbours(ref_vectors, emb, k, block, exclude=ref_ids)
    ref_knn = 1.0 - ref_sims.mean(axis=1)
    threshold = float(np.percentile(ref_knn, percentile))
    if radius is None:
        radius = float(np.median(1.0 - ref_sims[:, -1]))

    sims, counts = _neighbours(q, emb, k, block, count_within=1.0 - radius)
    knn = 1.0 - sims.mean(axis=1)
    centroid_sims = q @ cents.T
    nearest = centroid_sims.argmax(axis=1)
    centroid_dist = 1.0 - centroid_sims[np.arange(q.shape[0]), nearest]
    rows = [
        DensityRow(
            query=i,
            nearest_centroid=int(nearest[i]),
            centroid_distance=float(centroid_dist[i]),
            knn_distance=float(knn[i]),
            neighbours_in_radius=int(counts[i]),
            sparse=bool(knn[i] > threshold),
        )
        for i in range(q.shape[0])
    ]
    return DensityReport(
        rows=rows,
        k=k,
        radius=radius,
        sparse_threshold=threshold,
        percentile=percentile,
        reference_clips=len(ref_ids),
    )


def _neighbours(
    queries: np.ndarray,
    embeddings: np.ndarray,
    k: int,
    block: int,
    exclude: np.ndarray | None = None,
    count_within: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` cosine similarities (Q, k), best first, of unit ``queries`` over
    ``embeddings``, and per query the count of clips with similarity >= ``count_within``.

    ``exclude`` (Q,) names each query's own row in ``embeddings``, left out of both.
    """
    best = np.full((queries.shape[0], k), -np.inf, np.float32)
    counts = np.zeros(queries.shape[0], np.int64)
    rows = np.arange(queries.shape[0])
    for start in range(0, embeddings.shape[0], block):
        sims = queries @ unit_rows(embeddings[start : start + block], "embeddings").T
        if exclude is not None:
            inside = (exclude >= start) & (exclude < start + sims.shape[1])
            sims[rows[inside], exclude[inside] - start] = -np.inf
        if count_within is not None:
            counts += (sims >= count_within).sum(axis=1)
        kk = min(k, sims.shape[1])
        top = np.take_along_axis(sims, np.argpartition(-sims, kk - 1, axis=1)[:, :kk], axis=1)
        both = np.concatenate([best, top], axis=1)
        best = -np.partition(-both, k - 1, axis=1)[:, :k]
    return -np.sort(-best, axis=1), counts
