"""The density report: in-distribution queries are dense, far-away ones sparse, and the
threshold means what it says (5% of the clips themselves are above the 95th percentile)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from wfm_sim.search import density_report

DIM = 24


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """600 clips around 12 centres (unit vectors), the centres, and held-out clips."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(12, size=700)
    x = centres[labels] + 0.3 * rng.normal(size=(700, DIM)) / np.sqrt(DIM)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return {"clips": x[:600], "held_out": x[600:], "held_labels": labels[600:], "centres": centres}


def test_far_query_is_sparse_and_held_out_clips_are_dense(data: dict) -> None:
    far = np.random.default_rng(1).normal(size=(3, DIM))  # random directions: far from all 12
    queries = np.concatenate([data["held_out"][:20], far])
    report = density_report(queries, data["clips"], data["centres"], k=5)
    assert len(report) == 23
    assert not any(row.sparse for row in report.rows[:20])
    assert all(row.sparse for row in report.rows[20:])
    for row, label in zip(report.rows[:20], data["held_labels"][:20], strict=True):
        assert row.nearest_centroid == label
        assert row.centroid_distance < 0.2 and row.neighbours_in_radius >= 1
    for row in report.rows[20:]:
        assert row.knn_distance > 0.4 and row.neighbours_in_radius == 0
    assert report.sparse_fraction == pytest.approx(3 / 23)


def test_threshold_is_the_clips_own_percentile(data: dict) -> None:
    clips = data["clips"]
    report = density_report(clips, clips, data["centres"], k=5, reference_size=10_000)
    assert report.reference_clips == 600
    # Each clip is its own nearest neighbour as a query, so compare with the leave-one-out stat:
    sims = clips @ clips.T
    np.fill_diagonal(sims, -np.inf)
    own = 1.0 - np.sort(sims, axis=1)[:, ::-1][:, :5].mean(axis=1)
    assert report.sparse_threshold == pytest.approx(np.percentile(own, 95), rel=1e-5)
    assert np.mean(own > report.sparse_threshold) == pytest.approx(0.05, abs=0.005)
    kth = 1.0 - np.sort(sims, axis=1)[:, ::-1][:, 4]
    assert report.radius == pytest.approx(float(np.median(kth)), rel=1e-5)


def test_blockwise_matches_one_block(data: dict) -> None:
    args = (data["held_out"], data["clips"], data["centres"])
    small = density_report(*args, k=7, radius=0.1, block=50, reference_size=100)
    whole = density_report(*args, k=7, radius=0.1, block=10_000, reference_size=100)
    assert small.sparse_threshold == pytest.approx(whole.sparse_threshold, rel=1e-5)
    for a, b in zip(small.rows, whole.rows, strict=True):
        assert a.knn_distance == pytest.approx(b.knn_distance, abs=1e-5)
        assert (a.neighbours_in_radius, a.nearest_centroid, a.sparse) == (
            b.neighbours_in_radius,
            b.nearest_centroid,
            b.sparse,
        )


def test_table_carries_the_thresholds(data: dict) -> None:
    report = density_report(data["held_out"][:4], data["clips"], data["centres"], k=3)
    table = report.to_table()
    assert isinstance(table, pa.Table) and table.num_rows == 4
    assert table.column_names == [
        "query",
        "nearest_centroid",
        "centroid_distance",
        "knn_distance",
        "neighbours_in_radius",
        "sparse",
    ]
    meta = table.schema.metadata
    assert float(meta[b"sparse_threshold"]) == pytest.approx(report.sparse_threshold)
    assert float(meta[b"radius"]) == pytest.approx(report.radius)


def test_errors_name_the_problem(data: dict) -> None:
    clips, centres = data["clips"], data["centres"]
    with pytest.raises(ValueError, match="same model"):
        density_report(np.ones(DIM + 1), clips, centres)
    with pytest.raises(ValueError, match="NaN"):
        density_report(np.full(DIM, np.nan), clips, centres)
    with pytest.raises(ValueError, match="k must be"):
        density_report(clips[:1], clips[:5], centres, k=5)
    with pytest.raises(ValueError, match="radius"):
        density_report(clips[:1], clips, centres, radius=3.0)
