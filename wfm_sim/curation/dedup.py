"""Semantic dedup (SemDeDup): drop clips whose embedding nearly repeats a better copy's.

The all-pairs similarity matrix of N clips has N² entries (4 TB of float32 at 1M clips), so
Cosmos, following SemDeDup (Abbas et al., 2023), dedups in two steps:

1. Spherical k-means over the unit-normalised clip embeddings (``k`` clusters; Cosmos used
   10,000 at 2M hours of video). Near-duplicates lie close together, so they share a cluster.
2. Inside each cluster, with the items sorted by priority (highest resolution first, then
   highest quality), an item is a duplicate when its cosine similarity to an item ranked above
   it reaches ``1 - ε``. So the best copy of a group of duplicates is always kept. The
   similarities are computed in ``block_size × block_size`` tiles over the lower triangle of
   the priority-sorted cluster, keeping a running max for each item. The full matrix is never
   formed, so the working memory depends on ``block_size`` and not on the cluster size.

Each item's max similarity to the items ranked above it is kept, so the fraction removed at
any ε takes one threshold pass (``removed_fraction_per_epsilon``) and no recomputation.
Duplicates that k-means puts in different clusters are not found; SemDeDup accepts that loss
of recall to keep the memory bounded.

    >>> result = semantic_dedup(embeddings, np.stack([height * width, quality], 1), DedupConfig())
    >>> kept_clips = clip_ids[result.keep]
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from wfm_sim.devices import resolve_device

ArrayLike = np.ndarray | torch.Tensor
"""A numpy array or a torch tensor (on any device); results are returned as numpy."""


@dataclass
class DedupConfig:
    """How to dedup.

    ``clusters``: k of the k-means (Cosmos: 10,000 at 2M hours; about N/1000 keeps a cluster's
    similarity tiles small). ``kmeans_iterations``: the most Lloyd iterations to run; it stops
    earlier once the assignment stops changing. ``max_points_per_cluster``: k-means is trained on
    a seeded sample of at most ``k * max_points_per_cluster`` embeddings and then assigns all of
    them (faiss uses the same trick); ``None`` trains on all of them. ``epsilons``: the ε values
    whose removed fraction is reported. ``epsilon``: the ε the keep/drop decision uses (an item
    is a duplicate when its cosine similarity to a higher-priority item is ``>= 1 - epsilon``).
    ``block_size``: a similarity tile holds at most ``block_size²`` float32 values (64 MiB at
    4096), which bounds the working memory. ``seed``: the seed of the k-means sample and init.
    """

    clusters: int = 1000
    kmeans_iterations: int = 20
    max_points_per_cluster: int | None = 256
    epsilons: tuple[float, ...] = (0.001, 0.005, 0.01, 0.02, 0.05)
    epsilon: float = 0.01
    block_size: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        self.epsilons = tuple(float(e) for e in self.epsilons)
        if self.clusters < 1:
            raise ValueError(f"clusters={self.clusters}: k-means needs at least 1 cluster")
        if self.kmeans_iterations < 0:
            raise ValueError(f"kmeans_iterations={self.kmeans_iterations} must be >= 0")
        if self.max_points_per_cluster is not None and self.max_points_per_cluster < 1:
            raise ValueError(
                f"max_points_per_cluster={self.max_points_per_cluster} must be >= 1, or None to "
                "train k-means on every embedding"
            )
        if self.block_size < 1:
            raise ValueError(f"block_size={self.block_size} must be >= 1 (e.g. 4096)")
        for eps in (*self.epsilons, self.epsilon):
            _check_epsilon(eps)


@dataclass
class DedupResult:
    """The outcome of a dedup over N items, as numpy arrays.

    ``keep``: (N,) bool, False for the items dropped at ``epsilon``.
    ``duplicate_of``: (N,) int64. For a dropped item, the index of the highest-priority item of
    its cluster that it duplicates (similarity ``>= 1 - epsilon``); that item may be dropped too,
    so follow ``duplicate_of`` until you reach a kept item. -1 for a kept item.
    ``max_similarity``: (N,) float32, the item's max cosine similarity to the items of its
    cluster ranked above it; ``-inf`` for the top item of each cluster.
    ``cluster``: (N,) int64 k-means assignment. ``centroids``: (k, D) float32 unit rows.
    ``removed_fraction_per_epsilon``: ε -> the fraction of the N items dropped at that ε.
    ``seconds``: wall time per phase (``"kmeans"``, ``"similarity"``).
    """

    keep: np.ndarray
    duplicate_of: np.ndarray
    max_similarity: np.ndarray
    cluster: np.ndarray
    centroids: np.ndarray
    removed_fraction_per_epsilon: dict[float, float]
    epsilon: float
    seconds: dict[str, float]

    @property
    def removed_fraction(self) -> float:
        """The fraction of items dropped at ``epsilon``."""
        return float(1.0 - self.keep.mean()) if self.keep.size else 0.0


def semantic_dedup(
    embeddings: ArrayLike,
    priority: ArrayLike,
    config: DedupConfig | None = None,
    *,
    device: str = "cpu",
    progress: bool = False,
) -> DedupResult:
    """Find the near-duplicate clips and keep the best copy of each, in bounded memory.

    ``embeddings``: (N, D) float clip embeddings (normalised here; the scale is ignored).
    ``priority``: (N,) scores or (N, K) keys compared lexicographically, higher is better,
    e.g. ``np.stack([height * width, quality], 1)``, which keeps the highest-resolution copy
    and then the highest-quality one. Equal priorities are broken by the smaller index.
    ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``. ``progress``: show a bar over clusters.

    k-means, then for each item its max cosine similarity to the items of its cluster that rank
    above it, computed tile by tile (see ``cluster_max_similarity``). An item is dropped when
    that max is ``>= 1 - config.epsilon``; copies that k-means puts in different clusters are
    missed. Working memory beyond the input is O(N) plus one ``block_size²`` tile. On CUDA keep
    TF32 matmuls off (torch's default): their 10-bit mantissa blurs similarities near ``1 - ε``.
    """
    config = config or DedupConfig()
    dev = resolve_device(device)
    x = _as_embeddings(embeddings, dev)
    n = x.shape[0]
    order = _priority_order(priority, n)
    _check_clusters(config.clusters, n)
    start = time.perf_counter()
    norms = _row_norms(x, config.block_size)
    centroids, assignment = _kmeans(
        x,
        norms,
        config.clusters,
        config.kmeans_iterations,
        config.seed,
        config.block_size,
        config.max_points_per_cluster,
        progress,
    )
    assignment_np = assignment.cpu().numpy()
    kmeans_seconds = time.perf_counter() - start
    start = time.perf_counter()
    max_sim, _, hit = _scan_clusters(
        x,
        norms,
        assignment_np,
        order,
        config.block_size,
        ranked=True,
        threshold=_threshold(config.epsilon),
        progress=progress,
        want_argmax=False,
    )
    seconds = {"kmeans": kmeans_seconds, "similarity": time.perf_counter() - start}
    return _result(max_sim, hit, assignment_np, centroids.cpu().numpy(), config, seconds)


def kmeans(
    embeddings: ArrayLike,
    k: int,
    iterations: int = 20,
    seed: int = 0,
    block_size: int = 4096,
    *,
    max_points_per_cluster: int | None = 256,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical (cosine) k-means of ``embeddings`` (N, D).

    Returns ``(centroids (k, D) float32 unit rows, assignment (N,) int64)``; each embedding
    goes to the centroid of highest cosine similarity (ties to the lower cluster index).

    Trained on a sample of at most ``k * max_points_per_cluster`` embeddings drawn with
    ``seed`` (all of them when ``None``), started by k-means++ on at most ``8k`` of those, run
    for at most ``iterations`` Lloyd steps (fewer if the assignment stops changing). A cluster
    left empty is re-seeded with the sample point worst served by its centroid. Similarities
    are computed ``block_size² / k`` rows at a time, so memory stays bounded. Deterministic per
    seed on CPU; on CUDA, ``index_add_`` sums in any order, so near-ties can differ run to run.
    """
    x = _as_embeddings(embeddings, resolve_device(device))
    _check_clusters(k, x.shape[0])
    norms = _row_norms(x, block_size)
    centroids, assignment = _kmeans(
        x, norms, k, iterations, seed, block_size, max_points_per_cluster, progress
    )
    return centroids.cpu().numpy(), assignment.cpu().numpy()


def cluster_max_similarity(
    embeddings: ArrayLike,
    assignment: ArrayLike,
    block_size: int = 4096,
    *,
    order: ArrayLike | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """For each item, its max cosine similarity to another item of the same cluster.

    ``embeddings``: (N, D); ``assignment``: (N,) non-negative cluster ids. Without ``order``,
    the max runs over all other items of the cluster. With ``order``, an (N,) permutation listing
    the items from the highest priority down, it runs only over the items of the cluster listed
    before the item (SemDeDup's rule, as ``semantic_dedup`` uses it).

    Returns ``(max_sim (N,) float32, argmax (N,) int64)``: the partner's index, or ``-inf`` and
    -1 for an item with no partner. An exact tie goes to the partner with the smaller index (the
    one earlier in ``order``). The cluster is cut into ``block_size`` blocks and only the tiles
    of block pairs (I, J) with I <= J are computed. Each tile updates the running max of its J
    items and, without ``order``, of its I items too, so no tile larger than ``block_size²``
    is ever formed.
    """
    if block_size < 1:
        raise ValueError(f"block_size={block_size} must be >= 1 (e.g. 4096)")
    dev = resolve_device(device)
    x = _as_embeddings(embeddings, dev)
    n = x.shape[0]
    labels = _as_assignment(assignment, n)
    ranked = order is not None
    perm = _as_permutation(order, n) if order is not None else np.arange(n)
    norms = _row_norms(x, block_size)
    max_sim, argmax, _ = _scan_clusters(
        x, norms, labels, perm, block_size, ranked=ranked, threshold=None, progress=progress
    )
    return max_sim, argmax


def brute_force_dedup(
    embeddings: ArrayLike,
    priority: ArrayLike,
    cluster: ArrayLike,
    config: DedupConfig | None = None,
    *,
    device: str = "cpu",
) -> DedupResult:
    """The naive reference of ``semantic_dedup`` for a given clustering: one full N×N matrix.

    The same rule (drop an item when its similarity to a higher-priority item of its cluster
    reaches ``1 - epsilon``), computed from the whole similarity matrix with a mask, so it
    needs about ``5 N²`` bytes (40 GB for the matrix alone at N = 100k). For tests and
    benchmarks; ``centroids`` is empty and ``seconds`` has only ``"similarity"``.
    """
    config = config or DedupConfig()
    dev = resolve_device(device)
    x = _as_embeddings(embeddings, dev)
    n = x.shape[0]
    order = _priority_order(priority, n)
    labels = _as_assignment(cluster, n)
    start = time.perf_counter()
    norms = _row_norms(x, config.block_size)
    order_t = torch.from_numpy(order).to(dev)
    ranked = _unit_rows(x, norms, order_t)
    sim = ranked @ ranked.T
    ranked_labels = torch.from_numpy(labels).to(dev)[order_t]
    allowed = ranked_labels[:, None] == ranked_labels[None, :]
    allowed.tril_(-1)
    sim.masked_fill_(allowed.logical_not_(), -math.inf)
    del allowed
    best, _ = sim.max(dim=1)
    threshold = _threshold(config.epsilon)
    rows = torch.nonzero(best >= threshold).squeeze(1)
    first = (sim[rows] >= threshold).to(torch.uint8).argmax(dim=1)
    del sim
    hit_ranked = torch.full((n,), -1, dtype=torch.int64, device=dev)
    hit_ranked[rows] = order_t[first]
    max_sim = np.empty(n, dtype=np.float32)
    max_sim[order] = best.cpu().numpy()
    hit = np.empty(n, dtype=np.int64)
    hit[order] = hit_ranked.cpu().numpy()
    seconds = {"similarity": time.perf_counter() - start}
    centroids = np.zeros((0, x.shape[1]), dtype=np.float32)
    return _result(max_sim, hit, labels, centroids, config, seconds)


def _result(
    max_sim: np.ndarray,
    hit: np.ndarray,
    cluster: np.ndarray,
    centroids: np.ndarray,
    config: DedupConfig,
    seconds: dict[str, float],
) -> DedupResult:
    n = max(len(max_sim), 1)
    fractions = {
        eps: float(np.count_nonzero(max_sim >= _threshold(eps)) / n)
        for eps in sorted({*config.epsilons, config.epsilon})
    }
    return DedupResult(
        keep=hit < 0,
        duplicate_of=hit,
        max_similarity=max_sim,
        cluster=cluster,
        centroids=centroids,
        removed_fraction_per_epsilon=fractions,
        epsilon=config.epsilon,
        seconds=seconds,
    )


def _check_epsilon(eps: float) -> None:
    if not 0.0 <= eps <= 2.0:
        raise ValueError(f"epsilon={eps} is outside [0, 2]: cosine distance 1 - cos lies there")


def _threshold(eps: float) -> float:
    """``1 - eps`` rounded to float32, so numpy and torch compare float32 sims to one number."""
    _check_epsilon(eps)
    return float(np.float32(1.0 - eps))


def _check_clusters(k: int, n: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(
            f"k={k} clusters for {n} embeddings: k-means needs 1 <= k <= N; lower "
            "DedupConfig.clusters (about N/1000 keeps a cluster's tiles small)"
        )


def _as_embeddings(embeddings: ArrayLike, device: torch.device) -> torch.Tensor:
    """(N, D) float32 on ``device``; shares memory with a float32 CPU input."""
    tensor = torch.as_tensor(embeddings)
    if tensor.ndim != 2:
        raise ValueError(
            f"embeddings have shape {tuple(tensor.shape)}; expected (N, D), one row per clip"
        )
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(f"embeddings have shape {tuple(tensor.shape)}; need N >= 1 and D >= 1")
    if not tensor.is_floating_point():
        raise ValueError(f"embeddings have dtype {tensor.dtype}; pass floats (float32)")
    return tensor.to(device=device, dtype=torch.float32).contiguous()


def _row_norms(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """(N,) Euclidean row norms, computed in blocks; raises on NaN/inf and on zero rows."""
    rows = max(1, block_size * block_size // x.shape[1])
    norms = torch.cat(
        [torch.linalg.vector_norm(x[s : s + rows], dim=1) for s in range(0, x.shape[0], rows)]
    )
    bad = torch.nonzero(~torch.isfinite(norms)).squeeze(1)
    if bad.numel():
        raise ValueError(
            f"embeddings rows {bad[:5].tolist()} ({bad.numel()} in all) contain NaN or inf "
            "(or overflow); drop or re-embed those clips"
        )
    zero = torch.nonzero(norms == 0).squeeze(1)
    if zero.numel():
        raise ValueError(
            f"embeddings rows {zero[:5].tolist()} ({zero.numel()} in all) are all zeros, which "
            "have no direction for cosine similarity; drop or re-embed those clips"
        )
    return norms


def _unit_rows(x: torch.Tensor, norms: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` of ``x`` divided by their norms: (len(index), D)."""
    return x.index_select(0, index).div_(norms.index_select(0, index).unsqueeze(1))


def _to_numpy(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _priority_order(priority: ArrayLike, n: int) -> np.ndarray:
    """(n,) int64 permutation: highest priority first, lexicographic over keys, ties by index."""
    keys = _to_numpy(priority)
    if keys.ndim == 1:
        keys = keys[:, None]
    if keys.ndim != 2 or keys.shape[1] == 0:
        raise ValueError(
            f"priority has shape {keys.shape}; expected (N,) scores or (N, K) keys, e.g. "
            "np.stack([height * width, quality], 1)"
        )
    if keys.shape[0] != n:
        raise ValueError(
            f"priority has {keys.shape[0]} rows but embeddings have {n}; give one priority "
            "(or one row of keys) per clip"
        )
    if not np.issubdtype(keys.dtype, np.number) and keys.dtype != np.bool_:
        raise ValueError(f"priority has dtype {keys.dtype}; pass numbers")
    keys = keys.astype(np.float64)
    if not np.isfinite(keys).all():
        raise ValueError("priority contains NaN or inf; give every clip a finite priority")
    sort_keys = [np.arange(n)] + [-keys[:, j] for j in reversed(range(keys.shape[1]))]
    return np.lexsort(sort_keys).astype(np.int64)


def _as_assignment(assignment: ArrayLike, n: int) -> np.ndarray:
    labels = _to_numpy(assignment)
    if labels.shape != (n,):
        raise ValueError(f"assignment has shape {labels.shape}; expected ({n},), one id per item")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"assignment has dtype {labels.dtype}; cluster ids must be integers")
    if n and labels.min() < 0:
        raise ValueError("assignment has negative cluster ids; ids must be >= 0")
    return labels.astype(np.int64)


def _as_permutation(order: ArrayLike, n: int) -> np.ndarray:
    perm = _to_numpy(order)
    if perm.shape != (n,) or not np.issubdtype(perm.dtype, np.integer):
        raise ValueError(f"order has shape {perm.shape}; expected an ({n},) integer permutation")
    if perm.min(initial=0) < 0 or perm.max(initial=0) >= n or len(np.unique(perm)) != n:
        raise ValueError(f"order is not a permutation of 0..{n - 1}: list every item once")
    return perm.astype(np.int64)


def _kmeans(
    x: torch.Tensor,
    norms: torch.Tensor,
    k: int,
    iterations: int,
    seed: int,
    block_size: int,
    max_points_per_cluster: int | None,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spherical k-means; see ``kmeans``. Returns device tensors (k, D) and (N,)."""
    n = x.shape[0]
    if block_size < 1:
        raise ValueError(f"block_size={block_size} must be >= 1 (e.g. 4096)")
    if iterations < 0:
        raise ValueError(f"iterations={iterations} must be >= 0")
    rng = np.random.default_rng(seed)
    sample = n if max_points_per_cluster is None else min(n, k * max_points_per_cluster)
    train = np.arange(n) if sample == n else np.sort(rng.choice(n, sample, replace=False))
    train_t = torch.from_numpy(train).to(x.device)
    rows = max(1, block_size * block_size // max(k, x.shape[1]))
    centroids = _kmeans_plus_plus(x, norms, train, k, rng)
    previous: torch.Tensor | None = None
    for _ in tqdm(range(iterations), desc="k-means", leave=False, disable=not progress):
        labels, best = _assign(x, norms, train_t, centroids, rows)
        if previous is not None and torch.equal(labels, previous):
            break
        centroids = _update_centroids(x, norms, train_t, labels, best, k, rows)
        previous = labels
    everything = torch.arange(n, device=x.device)
    assignment, _ = _assign(x, norms, everything, centroids, rows)
    return centroids, assignment


def _kmeans_plus_plus(
    x: torch.Tensor, norms: torch.Tensor, train: np.ndarray, k: int, rng: np.random.Generator
) -> torch.Tensor:
    """k-means++ seeding (distance² = 2 - 2 cos) on at most 8k of the training rows: (k, D)."""
    size = min(len(train), 8 * k)
    pool = train if size == len(train) else np.sort(rng.choice(train, size, replace=False))
    points = _unit_rows(x, norms, torch.from_numpy(pool).to(x.device))
    chosen = [int(rng.integers(size))]
    dist2 = (2.0 - 2.0 * (points @ points[chosen[0]])).clamp_(min=0.0).double()
    dist2[chosen[0]] = 0.0
    taken = torch.zeros(size, dtype=torch.bool, device=x.device)
    taken[chosen[0]] = True
    for _ in range(1, k):
        cumulative = torch.cumsum(dist2, 0)
        total = float(cumulative[-1])
        if total > 0.0:
            target = torch.tensor([rng.random() * total], dtype=torch.float64, device=x.device)
            pick = min(int(torch.searchsorted(cumulative, target, right=True)), size - 1)
            if taken[pick]:
                pick = int(torch.nonzero(dist2).max())
        else:
            free = torch.nonzero(~taken).squeeze(1)
            pick = int(free[int(rng.integers(free.numel()))])
        chosen.append(pick)
        taken[pick] = True
        new = (2.0 - 2.0 * (points @ points[pick])).clamp_(min=0.0).double()
        torch.minimum(dist2, new, out=dist2)
        dist2[pick] = 0.0
    return points[chosen].clone()


def _assign(
    x: torch.Tensor, norms: torch.Tensor, index: torch.Tensor, centroids: torch.Tensor, rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of rows ``index``, ``rows`` at a time: (labels (M,), cos (M,))."""
    labels = torch.empty(index.numel(), dtype=torch.int64, device=x.device)
    best = torch.empty(index.numel(), dtype=torch.float32, device=x.device)
    for s in range(0, index.numel(), rows):
        sim = _unit_rows(x, norms, index[s : s + rows]) @ centroids.T
        best[s : s + rows], labels[s : s + rows] = sim.max(dim=1)
    return labels, best


def _update_centroids(
    x: torch.Tensor,
    norms: torch.Tensor,
    index: torch.Tensor,
    labels: torch.Tensor,
    best: torch.Tensor,
    k: int,
    rows: int,
) -> torch.Tensor:
    """Normalised mean direction per cluster; empty ones take the worst-served points."""
    sums = torch.zeros(k, x.shape[1], dtype=torch.float32, device=x.device)
    for s in range(0, index.numel(), rows):
        sums.index_add_(0, labels[s : s + rows], _unit_rows(x, norms, index[s : s + rows]))
    lengths = torch.linalg.vector_norm(sums, dim=1)
    empty = torch.nonzero(lengths == 0).squeeze(1)
    centroids = sums / lengths.clamp(min=torch.finfo(torch.float32).tiny)[:, None]
    if empty.numel():
        worst = torch.argsort(best, stable=True)[: empty.numel()]
        centroids[empty[: worst.numel()]] = _unit_rows(x, norms, index[worst])
    return centroids


def _scan_clusters(
    x: torch.Tensor,
    norms: torch.Tensor,
    assignment: np.ndarray,
    order: np.ndarray,
    block_size: int,
    *,
    ranked: bool,
    threshold: float | None,
    progress: bool,
    want_argmax: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-item (max similarity, argmax partner, first partner >= threshold) over all clusters.

    Items are grouped by cluster, keeping ``order`` inside each cluster, and each cluster writes
    into its slice of the grouped outputs. Returns (N,) arrays in the original indexing: float32
    max (``-inf`` when none), int64 argmax and first hit (-1 when none, or when not asked for).
    """
    n = x.shape[0]
    dev = x.device
    grouped = order[np.argsort(assignment[order], kind="stable")]
    counts = np.bincount(assignment, minlength=1)
    ends = np.cumsum(counts)
    starts = ends - counts
    grouped_t = torch.from_numpy(grouped).to(dev)
    best = torch.full((n,), -math.inf, dtype=torch.float32, device=dev)
    arg = torch.full((n,), -1, dtype=torch.int64, device=dev)
    hit = torch.full((n,), -1, dtype=torch.int64, device=dev)
    side = min(block_size, int(counts.max(initial=0)))
    mask = torch.zeros(side, side, dtype=torch.float32, device=dev)
    if ranked:  # a row's partners are the columns before it
        mask.masked_fill_(torch.ones_like(mask, dtype=torch.bool).triu_(), -math.inf)
    else:  # every column but itself
        mask.fill_diagonal_(-math.inf)
    multi = np.nonzero(counts >= 2)[0]
    for c in tqdm(multi, desc="dedup clusters", leave=False, disable=not progress):
        start, stop = int(starts[c]), int(ends[c])
        _scan_cluster(
            x,
            norms,
            grouped_t[start:stop],
            start,
            block_size,
            mask,
            best[start:stop],
            arg[start:stop] if want_argmax else None,
            hit[start:stop] if threshold is not None else None,
            ranked=ranked,
            threshold=threshold,
        )
    arg = torch.where(arg >= 0, grouped_t[arg.clamp(min=0)], -1)
    hit = torch.where(hit >= 0, grouped_t[hit.clamp(min=0)], -1)
    out_best = torch.empty_like(best).index_copy_(0, grouped_t, best)
    out_arg = torch.empty_like(arg).index_copy_(0, grouped_t, arg)
    out_hit = torch.empty_like(hit).index_copy_(0, grouped_t, hit)
    return out_best.cpu().numpy(), out_arg.cpu().numpy(), out_hit.cpu().numpy()


def _scan_cluster(
    x: torch.Tensor,
    norms: torch.Tensor,
    members: torch.Tensor,
    base: int,
    block_size: int,
    mask: torch.Tensor,
    best: torch.Tensor,
    arg: torch.Tensor | None,
    hit: torch.Tensor | None,
    *,
    ranked: bool,
    threshold: float | None,
) -> None:
    """One cluster's running max over block tiles, written into ``best``/``arg``/``hit`` (n,).

    Positions written are ``base`` + indices into ``members``. Tile (I, J), I <= J, is
    ``sim[j, i] = <x_j, x_i>`` for rows j of block J and columns i of block I; on the diagonal
    tile ``mask`` (0 or -inf) removes the pairs not allowed. Ranked: row j takes the max over
    columns ranked strictly before it. Unranked: rows take the max over their columns and, for
    I < J, columns take it over their rows. Each item meets its partner blocks in increasing
    order, the first tile sets its max and later tiles replace it only when strictly larger, so
    ties go to the earliest partner, as a full-matrix ``max`` would.
    """
    n = members.numel()
    for js in range(0, n, block_size):
        je = min(js + block_size, n)
        rows = _unit_rows(x, norms, members[js:je])
        for is_ in range(0, js + 1, block_size):
            ie = min(is_ + block_size, n)
            if is_ == js:
                sim = torch.addmm(mask[: je - js, : je - js], rows, rows.T)
            else:
                sim = rows @ _unit_rows(x, norms, members[is_:ie]).T
            if arg is None:
                row_max, row_arg = sim.amax(dim=1), None
            else:
                row_max, row_arg = sim.max(dim=1)
                row_arg += base + is_
            _raise_max(best, arg, js, row_max, row_arg, first=is_ == 0)
            if hit is not None and threshold is not None:
                _first_hit(hit, js, sim, row_max, base + is_, threshold)
            if not ranked and is_ < js:
                col_max, col_arg = sim.max(dim=0)
                _raise_max(best, arg, is_, col_max, col_arg + base + js, first=False)


def _raise_max(
    best: torch.Tensor,
    arg: torch.Tensor | None,
    start: int,
    value: torch.Tensor,
    index: torch.Tensor | None,
    *,
    first: bool,
) -> None:
    """Where ``value`` is strictly larger, replace ``best[start:]``/``arg[start:]`` with it.

    ``first``: the running max is still at its start (-inf), so ``value`` is taken as is.
    """
    stop = start + value.numel()
    better = value > best[start:stop]
    if first:
        best[start:stop] = value
    else:
        best[start:stop] = torch.where(better, value, best[start:stop])
    if arg is not None and index is not None:
        arg[start:stop] = torch.where(better, index, arg[start:stop])


def _first_hit(
    hit: torch.Tensor,
    start: int,
    sim: torch.Tensor,
    row_max: torch.Tensor,
    offset: int,
    threshold: float,
) -> None:
    """For rows still without one, record the first column whose similarity is >= threshold."""
    rows = torch.nonzero((row_max >= threshold) & (hit[start : start + row_max.numel()] < 0))
    if rows.numel():
        rows = rows.squeeze(1)
        first = (sim[rows] >= threshold).to(torch.uint8).argmax(dim=1)
        hit[start + rows] = first + offset
