"""Semantic dedup: the blockwise scan equals the full matrix, the best copy survives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wfm_sim.curation.dedup import (
    DedupConfig,
    DedupResult,
    brute_force_dedup,
    cluster_max_similarity,
    kmeans,
    semantic_dedup,
)
from wfm_sim.curation.dedup import _update_centroids as update_centroids


def _clustered(
    n: int, dim: int, centres: int, seed: int, copies: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 points around ``centres`` directions, the last ``copies`` rows planted
    near-duplicates of earlier rows (cosine distance log-uniform in [1e-4, 0.1], a fifth of
    them exact copies); and (n, 2) priority keys (pixels, quality)."""
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal((centres, dim)).astype(np.float32)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    x = centre[rng.integers(centres, size=n)] + 0.08 * rng.standard_normal((n, dim)).astype(
        np.float32
    )
    source = rng.integers(n - copies, size=copies)
    unit = x[source] / np.linalg.norm(x[source], axis=1, keepdims=True)
    distance = np.exp(rng.uniform(np.log(1e-4), np.log(0.1), size=copies))
    noise = np.sqrt(2 * distance / dim)[:, None] * rng.standard_normal((copies, dim))
    x[n - copies :] = unit + noise.astype(np.float32)
    exact = rng.random(copies) < 0.2
    x[n - copies :][exact] = x[source[exact]]
    pixels = rng.choice([360 * 640, 720 * 1280, 1080 * 1920], size=n)
    priority = np.stack([pixels, rng.random(n)], axis=1)
    return x, priority


def _full_matrix_max(
    x: np.ndarray, cluster: np.ndarray, order: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force oracle in numpy: max similarity to same-cluster items (ranked above)."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = unit @ unit.T
    allowed = cluster[:, None] == cluster[None, :]
    np.fill_diagonal(allowed, False)
    if order is not None:
        rank = np.empty(len(x), dtype=np.int64)
        rank[order] = np.arange(len(x))
        allowed &= rank[None, :] < rank[:, None]
        sim, allowed = sim[:, order], allowed[:, order]
    sim = np.where(allowed, sim, -np.inf)
    best = sim.max(axis=1)
    partner = sim.argmax(axis=1)
    if order is not None:
        partner = order[partner]
    return best.astype(np.float32), np.where(np.isinf(best), -1, partner)


def _assert_same_dedup(block: DedupResult, brute: DedupResult) -> None:
    assert np.array_equal(block.keep, brute.keep)
    assert np.array_equal(block.duplicate_of, brute.duplicate_of)
    a, b = block.max_similarity, brute.max_similarity
    assert np.array_equal(np.isinf(a), np.isinf(b))
    finite = np.isfinite(a)
    np.testing.assert_allclose(a[finite], b[finite], atol=1e-6, rtol=0)


@pytest.mark.parametrize("block_size", [7, 50, 64, 4096])
def test_blockwise_equals_brute_force(block_size: int) -> None:
    x, priority = _clustered(600, 24, centres=4, seed=1, copies=120)
    config = DedupConfig(clusters=4, block_size=block_size, epsilon=0.01)
    result = semantic_dedup(x, priority, config)
    assert np.bincount(result.cluster).max() > 2 * block_size or block_size == 4096
    brute = brute_force_dedup(x, priority, result.cluster, config)
    _assert_same_dedup(result, brute)
    assert result.removed_fraction_per_epsilon == brute.removed_fraction_per_epsilon
    assert 0.05 < result.removed_fraction < 0.2


@pytest.mark.parametrize("block_size", [5, 16, 1000])
@pytest.mark.parametrize("ranked", [False, True])
def test_cluster_max_similarity_equals_full_matrix(block_size: int, ranked: bool) -> None:
    x, priority = _clustered(300, 16, centres=3, seed=2)
    cluster = np.random.default_rng(3).integers(3, size=300)
    cluster[0] = 7  # a singleton cluster has no partner
    order = np.random.default_rng(4).permutation(300) if ranked else None
    best, partner = cluster_max_similarity(x, cluster, block_size, order=order)
    expected_best, expected_partner = _full_matrix_max(x, cluster, order)
    assert np.array_equal(partner, expected_partner)
    assert np.array_equal(np.isinf(best), np.isinf(expected_best))
    finite = np.isfinite(best)
    np.testing.assert_allclose(best[finite], expected_best[finite], atol=1e-6, rtol=0)
    assert best[0] == -np.inf and partner[0] == -1
    assert best.dtype == np.float32 and partner.dtype == np.int64


def test_highest_resolution_then_quality_copy_is_kept() -> None:
    x, _ = _clustered(200, 16, centres=2, seed=5)
    copies = [10, 50, 90, 130]
    x[copies] = x[10] * np.array([1.0, 2.0, 0.5, 3.0], dtype=np.float32)[:, None]
    pixels = np.full(200, 360 * 640, dtype=np.float64)
    quality = np.zeros(200)
    pixels[[50, 90]] = 1080 * 1920  # the two highest-resolution copies...
    quality[[50, 90]] = [0.3, 0.9]  # ...of which 90 has the higher quality
    quality[130] = 1.0  # the best quality, but at low resolution
    result = semantic_dedup(
        x, np.stack([pixels, quality], 1), DedupConfig(clusters=2, block_size=8)
    )
    assert result.keep[90]
    assert not result.keep[[10, 50, 130]].any()
    assert np.all(result.duplicate_of[[10, 50, 130]] == 90)
    assert result.duplicate_of[90] == -1


def test_equal_priority_keeps_the_first_copy() -> None:
    x, _ = _clustered(100, 8, centres=2, seed=6)
    x[[20, 70]] = x[40]
    result = semantic_dedup(x, np.zeros(100), DedupConfig(clusters=2))
    assert result.keep[20] and not result.keep[[40, 70]].any()
    assert np.all(result.duplicate_of[[40, 70]] == 20)


def test_removed_fraction_grows_with_epsilon() -> None:
    x, priority = _clustered(500, 16, centres=5, seed=7, copies=100)
    config = DedupConfig(clusters=5, epsilons=(0.0001, 0.001, 0.01, 0.05, 0.5), epsilon=0.01)
    result = semantic_dedup(x, priority, config)
    fractions = [result.removed_fraction_per_epsilon[e] for e in sorted(config.epsilons)]
    assert fractions == sorted(fractions)
    assert fractions[0] < fractions[-1]
    assert result.removed_fraction_per_epsilon[0.01] == pytest.approx(result.removed_fraction)
    dropped = ~result.keep
    assert np.all(result.max_similarity[dropped] >= np.float32(0.99))
    assert np.all(result.duplicate_of[dropped] >= 0) and np.all(result.duplicate_of[~dropped] < 0)
    partner = result.duplicate_of[dropped]
    assert np.all(result.cluster[partner] == result.cluster[dropped])


def test_torch_input_gives_the_numpy_result() -> None:
    x, priority = _clustered(300, 16, centres=3, seed=8, copies=40)
    config = DedupConfig(clusters=3, block_size=32)
    from_numpy = semantic_dedup(x, priority, config)
    from_torch = semantic_dedup(torch.from_numpy(x), torch.from_numpy(priority), config)
    _assert_same_dedup(from_numpy, from_torch)
    assert np.array_equal(from_numpy.cluster, from_torch.cluster)


def test_kmeans_is_deterministic_per_seed() -> None:
    x, _ = _clustered(800, 16, centres=6, seed=9)
    first = kmeans(x, 6, iterations=10, seed=3, block_size=16, max_points_per_cluster=50)
    again = kmeans(x, 6, iterations=10, seed=3, block_size=16, max_points_per_cluster=50)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    centroids, assignment = first
    assert centroids.shape == (6, 16) and centroids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    assert assignment.shape == (800,) and assignment.dtype == np.int64


@pytest.mark.parametrize("max_points_per_cluster", [None, 20])
def test_kmeans_separates_well_separated_blobs(max_points_per_cluster: int | None) -> None:
    rng = np.random.default_rng(10)
    blobs = 5
    centre = np.linalg.qr(rng.standard_normal((32, blobs)))[0].T  # orthogonal directions
    truth = rng.integers(blobs, size=1000)
    x = (centre[truth] + 0.05 * rng.standard_normal((1000, 32))).astype(np.float32)
    _, assignment = kmeans(
        x,
        blobs,
        iterations=10,
        seed=0,
        block_size=64,
        max_points_per_cluster=max_points_per_cluster,
    )
    pairs = {(int(t), int(a)) for t, a in zip(truth, assignment, strict=True)}
    assert len(pairs) == blobs  # each blob is exactly one cluster
    assert len({a for _, a in pairs}) == blobs


def test_kmeans_with_k_equal_n_gives_every_point_its_own_cluster() -> None:
    x = np.random.default_rng(11).standard_normal((12, 4)).astype(np.float32)
    centroids, assignment = kmeans(x, 12, iterations=5)
    assert sorted(assignment.tolist()) == list(range(12))


def test_empty_cluster_is_reseeded_with_the_worst_served_point() -> None:
    x = torch.eye(4)
    index = torch.arange(4)
    labels = torch.tensor([0, 0, 0, 1])
    best = torch.tensor([0.9, 0.8, 0.1, 1.0])  # point 2 is served worst
    centroids = update_centroids(x, torch.ones(4), index, labels, best, k=3, rows=2)
    assert torch.equal(centroids[2], x[2])
    assert torch.allclose(centroids[1], x[3])


@pytest.mark.parametrize(
    ("embeddings", "priority", "match"),
    [
        (np.ones(10, dtype=np.float32), np.zeros(10), "expected \\(N, D\\)"),
        (np.ones((2, 5, 3), dtype=np.float32), np.zeros(2), "expected \\(N, D\\)"),
        (np.ones((10, 4), dtype=np.int64), np.zeros(10), "pass floats"),
        (np.ones((10, 4), dtype=np.float32), np.zeros(9), "9 rows but embeddings have 10"),
        (np.ones((10, 4), dtype=np.float32), np.zeros((10, 2, 2)), "priority has shape"),
        (np.ones((10, 4), dtype=np.float32), np.full(10, np.nan), "priority contains NaN"),
    ],
)
def test_bad_input_is_named(embeddings: np.ndarray, priority: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        semantic_dedup(embeddings, priority, DedupConfig(clusters=2))


@pytest.mark.parametrize(("value", "match"), [(np.nan, "NaN or inf"), (np.inf, "NaN or inf")])
def test_non_finite_embeddings_are_named(value: float, match: str) -> None:
    x = np.ones((10, 4), dtype=np.float32)
    x[3, 1] = value
    with pytest.raises(ValueError, match=f"rows \\[3\\].*{match}"):
        semantic_dedup(x, np.zeros(10), DedupConfig(clusters=2))


def test_zero_embedding_is_named() -> None:
    x = np.ones((10, 4), dtype=np.float32)
    x[5] = 0
    with pytest.raises(ValueError, match="rows \\[5\\].*all zeros"):
        kmeans(x, 2)


def test_more_clusters_than_items_is_named() -> None:
    with pytest.raises(ValueError, match="k=11 clusters for 10 embeddings"):
        semantic_dedup(np.ones((10, 4), dtype=np.float32), np.zeros(10), DedupConfig(clusters=11))
    with pytest.raises(ValueError, match="k=11 clusters for 10 embeddings"):
        kmeans(np.ones((10, 4), dtype=np.float32), 11)


def test_bad_config_and_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="epsilon=-0.1"):
        DedupConfig(epsilon=-0.1)
    with pytest.raises(ValueError, match="block_size=0"):
        DedupConfig(block_size=0)
    with pytest.raises(ValueError, match="clusters=0"):
        DedupConfig(clusters=0)
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="assignment has shape"):
        cluster_max_similarity(x, np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match="not a permutation"):
        cluster_max_similarity(x, np.zeros(6, dtype=np.int64), order=np.zeros(6, dtype=np.int64))
