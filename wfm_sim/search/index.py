"""The clip index: unit-normalised clip embeddings in Milvus, searched by cosine similarity.

One class, :class:`ClipIndex`, over one Milvus collection. The same code runs embedded on a
laptop (``uri="clips.db"``: Milvus Lite, a single file, created if missing) and against a Milvus
server or cluster (``uri="http://host:19530"``). Each row is one clip:

=============  ======================  ==================================================
field          Milvus type             meaning
=============  ======================  ==================================================
clip_id        VARCHAR (primary key)   ``<source>-p<part>-<start>-<end>`` from curation
embedding      FLOAT_VECTOR (dim)      the clip's unit-length embedding
caption        VARCHAR                 what the clip shows, in words
resolution     VARCHAR                 ``"HxW"`` in pixels
source         VARCHAR                 the footage source the clip was cut from
cluster        INT64                   semantic cluster id, ``-1`` when unassigned
=============  ======================  ==================================================

Vectors are normalised to unit length on the way in and queries on the way to a search, so the
inner-product metric Milvus computes *is* the cosine similarity: a score of 1 is the same
direction, 0 unrelated. :func:`exact_search` is the numpy reference every approximate index is
measured against (recall@k); Milvus is the store, not the fastest scorer.

Cost on Milvus Lite 3.2 (experiments/bench/search_speed.py, 100k 384-d clips, 2 busy cores):
every search *request* walks all stored rows in Python (it resolves upserted versions), about
40 ms at 100k whatever the index, and FLAT scores all rows on top (p50 ~60 ms). Batch queries:
:meth:`ClipIndex.search` sends up to 1024 per request, ~1-3 ms a query. A Milvus server has
no such per-request walk.

pymilvus is imported lazily, so ``wfm_sim.search.exact_search`` and the density report work
without it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

if TYPE_CHECKING:
    from pymilvus import MilvusClient

INDEX_TYPES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "HNSW")
"""Vector index types that both Milvus Lite (with faiss-cpu) and a Milvus server build."""

_METRIC = "IP"  # on unit vectors the inner product is the cosine similarity
_VECTOR_FIELD = "embedding"
_MAX_LENGTHS = {"clip_id": 512, "caption": 8192, "resolution": 32, "source": 256}
"""Byte limits of the VARCHAR fields (Milvus counts UTF-8 bytes)."""
_SEARCH_BATCH = 1024  # queries per Milvus request
_MAX_TOP_K = 16384  # Milvus' limit on k
_SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://")


class IndexOpenError(RuntimeError):
    """The index's uri could not be opened or its collection does not fit this code."""


@dataclass
class SearchIndexConfig:
    """Which vector index Milvus builds over the embeddings, and how it searches it.

    ``FLAT`` is exact (recall 1) and needs no training. ``IVF_FLAT`` / ``IVF_SQ8`` cluster the
    vectors into ``nlist`` cells and scan the ``nprobe`` nearest cells per query (``nprobe =
    nlist`` is exact); ``HNSW`` walks a graph of ``hnsw_m`` links per node, exploring ``ef``
    candidates per query (raised to ``k`` when smaller). At 100k clips on Milvus Lite, FLAT's
    single-query p50 is ~60 ms against ~40 ms for the others, whose recall@10 is 0.90-0.97
    (see experiments/results/search_speed.json): FLAT, the default, is the exact choice at
    laptop scale; an approximate index pays off on a server or at millions of clips.
    """

    index_type: str = "FLAT"
    nlist: int = 1024
    nprobe: int = 32
    hnsw_m: int = 16
    ef_construction: int = 200
    ef: int = 64
    batch_size: int = 2000
    """Rows per upsert request when adding clips."""

    def __post_init__(self) -> None:
        self.index_type = self.index_type.upper()
        if self.index_type not in INDEX_TYPES:
            raise ValueError(
                f"index_type {self.index_type!r} is not supported; use one of {INDEX_TYPES}"
            )
        for name in ("nlist", "nprobe", "hnsw_m", "ef_construction", "ef", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"SearchIndexConfig.{name} must be >= 1, got {getattr(self, name)}"
                )

    def build_params(self) -> dict[str, int]:
        """The index-building parameters Milvus takes for ``index_type``."""
        if self.index_type in ("IVF_FLAT", "IVF_SQ8"):
            return {"nlist": self.nlist}
        if self.index_type == "HNSW":
            return {"M": self.hnsw_m, "efConstruction": self.ef_construction}
        return {}

    def search_params(self) -> dict[str, int]:
        """The per-query search parameters Milvus takes for ``index_type``."""
        if self.index_type in ("IVF_FLAT", "IVF_SQ8"):
            return {"nprobe": self.nprobe}
        if self.index_type == "HNSW":
            return {"ef": self.ef}
        return {}


@dataclass(frozen=True)
class SearchHit:
    """One search result: a clip, its cosine similarity to the query and its stored fields."""

    clip_id: str
    score: float
    """Cosine similarity to the query, in [-1, 1]; 1 is the same direction."""
    caption: str
    resolution: str = ""
    source: str = ""
    cluster: int = -1


@dataclass
class _Columns:
    """Validated per-clip columns of one ``add`` call."""

    clip_ids: list[str]
    vectors: np.ndarray
    captions: list[str]
    resolutions: list[str]
    sources: list[str]
    clusters: list[int]


def unit_rows(vectors: np.ndarray, what: str = "vectors") -> np.ndarray:
    """``vectors`` (N, D) as float32 rows of length 1; rejects NaN/inf and zero rows by name."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (N, D), got shape {array.shape}")
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)[:5].tolist()
        raise ValueError(f"{what} rows {bad} hold NaN or inf; fix the embedder's output first")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if (norms == 0).any():
        bad = np.flatnonzero(norms[:, 0] == 0)[:5].tolist()
        raise ValueError(f"{what} rows {bad} are all zeros and have no direction to search by")
    return array / norms


def exact_search(
    embeddings: np.ndarray,
    queries: np.ndarray,
    k: int,
    block: int = 16384,
    query_block: int = 1024,
    normalized: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` cosine search: the reference an approximate index is measured against.

    Args:
        embeddings: (N, D) clip embeddings, any length (normalised here, block by block).
        queries: (Q, D) or (D,) query vectors.
        k: neighbours per query; capped at N.
        block: embedding rows scored at a time, so memory stays (query_block, block), never
            (Q, N) or (N, N).
        query_block: queries scored at a time.
        normalized: the embeddings are already finite unit-length float32 rows (as stored in a
            :class:`ClipIndex`): skip checking and normalising them, a pass over all N rows that
            otherwise dominates a single query's cost.

    Returns:
        ``(scores, indices)``: (Q, k) float32 cosine similarities, best first, and (Q, k) int64
        row indices into ``embeddings``.
    """
    emb = np.asarray(embeddings)
    q = unit_rows(np.atleast_2d(np.asarray(queries, dtype=np.float32)), "queries")
    if emb.ndim != 2 or emb.shape[1] != q.shape[1]:
        raise ValueError(
            f"embeddings of shape {emb.shape} and queries of dimension {q.shape[1]} do not match; "
            "embed both with the same model"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, emb.shape[0])
    scores = np.empty((q.shape[0], k), np.float32)
    indices = np.empty((q.shape[0], k), np.int64)
    for q0 in range(0, q.shape[0], query_block):
        s, i = _topk_blockwise(q[q0 : q0 + query_block], emb, k, block, normalized)
        scores[q0 : q0 + query_block], indices[q0 : q0 + query_block] = s, i
    return scores, indices


def _topk_blockwise(
    queries: np.ndarray, embeddings: np.ndarray, k: int, block: int, normalized: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product of unit ``queries`` (Q, D) over ``embeddings`` (N, D), sorted."""
    best_s = np.full((queries.shape[0], k), -np.inf, np.float32)
    best_i = np.full((queries.shape[0], k), -1, np.int64)
    for start in range(0, embeddings.shape[0], block):
        rows = embeddings[start : start + block]
        sims = queries @ (rows if normalized else unit_rows(rows, "embeddings")).T
        kk = min(k, sims.shape[1])
        part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(sims, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        keep = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, keep, axis=1)
        best_i = np.take_along_axis(cand_i, keep, axis=1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_i, order, axis=1)


class ClipIndex:
    """A Milvus collection of clip embeddings with their captions, searchable by vector.

    Args:
        uri: a file path ending in ``.db`` (Milvus Lite, embedded, created with its folder if
            missing) or a server address ``http://host:19530`` (Milvus standalone or cluster).
        collection: the collection's name; one file or server can hold several.
        dim: embedding dimension. Required to create a collection; when opening an existing one
            it may be left out (read from the schema) or must match.
        config: the vector index to build. ``None`` keeps an existing collection's index (a new
            one gets ``SearchIndexConfig()``, FLAT); a config whose index type or build
            parameters differ from the stored index rebuilds it.
        token: ``"user:password"`` or an API key for a secured server.
        timeout: seconds per request to the server.

    Example::

        with ClipIndex("data/search/clips.db", dim=384) as index:
            index.add(ids, vectors, captions)
            hits = index.search(query_vectors, k=10)   # list (Q) of lists (k) of SearchHit
    """

    def __init__(
        self,
        uri: str | Path,
        collection: str = "clips",
        dim: int | None = None,
        config: SearchIndexConfig | None = None,
        token: str = "",
        timeout: float | None = None,
    ) -> None:
        self.uri = str(uri)
        self.collection = collection
        self._timeout = timeout
        self._client = _connect(self.uri, token, timeout)
        try:
            if self._client.has_collection(collection):
                self.dim = self._check_schema(dim)
                stored = self._stored_config()
                self.config = config or stored or SearchIndexConfig()
                if stored is None:
                    self._client.create_index(collection, _index_params(self._client, self.config))
                elif _index_differs(stored, self.config):
                    self.rebuild_index(self.config)
            else:
                if dim is None:
                    raise ValueError(
                        f"collection {collection!r} does not exist in {self.uri}; pass dim= (the "
                        "embedding dimension) to create it"
                    )
                if dim < 1:
                    raise ValueError(f"dim must be >= 1, got {dim}")
                self.dim = int(dim)
                self.config = config or SearchIndexConfig()
                self._create_collection()
            # A reopened Milvus Lite database is "released" until loaded (MACHINE-FACTS).
            self._client.load_collection(collection, timeout=timeout)
        except BaseException:
            self._client.close()
            raise

    # --- writing -------------------------------------------------------------------------

    def add(
        self,
        clip_ids: Sequence[str],
        embeddings: np.ndarray,
        captions: Sequence[str],
        resolutions: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        clusters: Sequence[int] | np.ndarray | None = None,
        progress: bool = False,
    ) -> int:
        """Insert or replace clips by id (upsert: re-running an add changes nothing), then flush.

        Args:
            clip_ids: N unique ids.
            embeddings: (N, dim) float vectors, normalised to unit length here.
            captions: N captions; resolutions ``"HxW"``, sources and clusters (``-1`` when
                unassigned) default to empty / ``-1``.
            progress: show a progress bar over batches of ``config.batch_size`` rows.

        Returns:
            The number of rows written (an empty add writes nothing).
        """
        if len(clip_ids) == 0 and len(captions) == 0 and np.size(embeddings) == 0:
            return 0
        cols = self._validate_add(clip_ids, embeddings, captions, resolutions, sources, clusters)
        n = len(cols.clip_ids)
        step = self.config.batch_size
        for start in tqdm(range(0, n, step), desc="index clips", disable=not progress):
            rows = [
                {
                    "clip_id": cols.clip_ids[i],
                    _VECTOR_FIELD: cols.vectors[i],
                    "caption": cols.captions[i],
                    "resolution": cols.resolutions[i],
                    "source": cols.sources[i],
                    "cluster": cols.clusters[i],
                }
                for i in range(start, min(start + step, n))
            ]
            self._client.upsert(self.collection, rows, timeout=self._timeout)
        # Unflushed rows are searched brute force from a growing buffer (~200 ms a query).
        self._client.flush(self.collection, timeout=self._timeout)
        return n

    def remove(self, clip_ids: Sequence[str]) -> None:
        """Delete clips by id (ids not in the index are ignored), then flush."""
        ids = list(clip_ids)
        for clip_id in ids:
            _check_clip_id(clip_id)
        for start in range(0, len(ids), self.config.batch_size):
            self._client.delete(
                self.collection,
                ids=ids[start : start + self.config.batch_size],
                timeout=self._timeout,
            )
        self._client.flush(self.collection, timeout=self._timeout)

    def clip_ids(self) -> list[str]:
        """Every clip id in the collection."""
        rows = self._client.query(
            self.collection,
            filter='clip_id != ""',
            output_fields=["clip_id"],
            timeout=self._timeout,
        )
        return sorted(str(row["clip_id"]) for row in rows)

    def rebuild_index(self, config: SearchIndexConfig) -> None:
        """Drop the vector index and build ``config``'s instead; the rows stay."""
        self._client.release_collection(self.collection, timeout=self._timeout)
        self._client.drop_index(self.collection, _VECTOR_FIELD, timeout=self._timeout)
        self._client.create_index(self.collection, _index_params(self._client, config))
        self._client.load_collection(self.collection, timeout=self._timeout)
        self.config = config

    # --- reading -------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int = 10, filter: str = "") -> list[list[SearchHit]]:
        """The ``k`` clips most similar to each query, best first.

        Args:
            queries: (Q, dim) or (dim,) query vectors (normalised here).
            k: hits per query (fewer when the index holds fewer clips).
            filter: an optional Milvus boolean expression on the fields,
                e.g. ``'source == "highway-env" and cluster in [3, 4]'``.

        Returns:
            Q lists of :class:`SearchHit`; ``score`` is the cosine similarity.
        """
        q = self._check_queries(queries)
        if not 1 <= k <= _MAX_TOP_K:
            raise ValueError(f"k must be in [1, {_MAX_TOP_K}], got {k}")
        params = {"metric_type": _METRIC, "params": self.config.search_params()}
        if self.config.index_type == "HNSW":
            params["params"] = {"ef": max(self.config.ef, k)}
        hits: list[list[SearchHit]] = []
        for start in range(0, q.shape[0], _SEARCH_BATCH):
            result = self._client.search(
                self.collection,
                data=list(q[start : start + _SEARCH_BATCH]),
                limit=k,
                filter=filter,
                output_fields=["caption", "resolution", "source", "cluster"],
                search_params=params,
                anns_field=_VECTOR_FIELD,
                timeout=self._timeout,
            )
            hits.extend([_to_hit(hit) for hit in per_query] for per_query in result)
        return hits

    def vector_of(self, clip_id: str) -> np.ndarray:
        """The stored (dim,) float32 unit embedding of ``clip_id``, so a clip can be a query."""
        _check_clip_id(clip_id)
        rows = self._client.get(
            self.collection, ids=[clip_id], output_fields=[_VECTOR_FIELD], timeout=self._timeout
        )
        if not rows:
            raise KeyError(
                f"clip {clip_id!r} is not in collection {self.collection!r} at {self.uri}; "
                "check the id, or add the clip first"
            )
        return np.asarray(rows[0][_VECTOR_FIELD], dtype=np.float32)

    def __contains__(self, clip_id: object) -> bool:
        if not isinstance(clip_id, str):
            return False
        try:
            _check_clip_id(clip_id)
        except ValueError:
            return False  # an id add() would refuse is never stored
        rows = self._client.get(
            self.collection, ids=[clip_id], output_fields=["clip_id"], timeout=self._timeout
        )
        return bool(rows)

    def __len__(self) -> int:
        """The number of clips in the collection."""
        rows = self._client.query(
            self.collection, filter="", output_fields=["count(*)"], timeout=self._timeout
        )
        return int(rows[0]["count(*)"])

    # --- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the connection (Milvus Lite keeps everything in the file)."""
        self._client.close()

    def __enter__(self) -> ClipIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ClipIndex(uri={self.uri!r}, collection={self.collection!r}, dim={self.dim}, "
            f"index_type={self.config.index_type!r})"
        )

    # --- internals -----------------------------------------------------------------------

    def _create_collection(self) -> None:
        from pymilvus import DataType

        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(
            "clip_id", DataType.VARCHAR, is_primary=True, max_length=_MAX_LENGTHS["clip_id"]
        )
        schema.add_field(_VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=self.dim)
        for name in ("caption", "resolution", "source"):
            schema.add_field(name, DataType.VARCHAR, max_length=_MAX_LENGTHS[name])
        schema.add_field("cluster", DataType.INT64)
        self._client.create_collection(
            self.collection,
            schema=schema,
            index_params=_index_params(self._client, self.config),
            timeout=self._timeout,
        )

    def _check_schema(self, dim: int | None) -> int:
        """The stored dimension, after checking the collection has this class's fields."""
        description = self._client.describe_collection(self.collection, timeout=self._timeout)
        fields = {f["name"]: f for f in description["fields"]}
        expected = {"clip_id", _VECTOR_FIELD, "caption", "resolution", "source", "cluster"}
        if not expected <= fields.keys():
            raise IndexOpenError(
                f"collection {self.collection!r} at {self.uri} has fields {sorted(fields)}, not "
                f"{sorted(expected)}; it was made by other code, so pick another collection name"
            )
        stored = int(fields[_VECTOR_FIELD]["params"]["dim"])
        if dim is not None and dim != stored:
            raise ValueError(
                f"collection {self.collection!r} at {self.uri} holds {stored}-d embeddings, "
                f"not {dim}-d; use the same embedding model, or another collection name"
            )
        return stored

    def _stored_config(self) -> SearchIndexConfig | None:
        """The config of the collection's current vector index, ``None`` when it has none."""
        described = self._client.describe_index(
            self.collection, _VECTOR_FIELD, timeout=self._timeout
        )
        if not described:
            return None
        # Milvus Lite nests build parameters under "params"; a server lists them flat.
        params: dict[str, Any] = {**described, **(described.get("params") or {})}
        defaults = SearchIndexConfig()
        index_type = str(described.get("index_type", "FLAT")).upper()
        return SearchIndexConfig(
            index_type=index_type if index_type in INDEX_TYPES else "FLAT",
            nlist=int(params.get("nlist", defaults.nlist)),
            hnsw_m=int(params.get("M", defaults.hnsw_m)),
            ef_construction=int(params.get("efConstruction", defaults.ef_construction)),
        )

    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(
                f"queries of shape {np.shape(queries)} do not match the index's {self.dim}-d "
                "embeddings; embed queries with the model the clips were embedded with"
            )
        return unit_rows(q, "queries")

    def _validate_add(
        self,
        clip_ids: Sequence[str],
        embeddings: np.ndarray,
        captions: Sequence[str],
        resolutions: Sequence[str] | None,
        sources: Sequence[str] | None,
        clusters: Sequence[int] | np.ndarray | None,
    ) -> _Columns:
        ids = [str(c) for c in clip_ids]
        n = len(ids)
        vectors = np.asarray(embeddings, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(
                f"embeddings of shape {vectors.shape} do not match the index's {self.dim}-d "
                "embeddings; pass (N, dim) rows from the same model"
            )
        columns: dict[str, list[Any]] = {
            "captions": [str(c) for c in captions],
            "resolutions": [""] * n if resolutions is None else [str(r) for r in resolutions],
            "sources": [""] * n if sources is None else [str(s) for s in sources],
            "clusters": [-1] * n if clusters is None else [int(c) for c in clusters],
        }
        lengths = {"clip_ids": n, "embeddings": vectors.shape[0]}
        lengths.update({name: len(values) for name, values in columns.items()})
        if len(set(lengths.values())) != 1:
            raise ValueError(f"add() needs one entry per clip in every argument, got {lengths}")
        for clip_id in ids:
            _check_clip_id(clip_id)
        if len(set(ids)) != n:
            dup = next(c for c, count in Counter(ids).items() if count > 1)
            raise ValueError(f"clip id {dup!r} appears twice in one add(); pass each clip once")
        for name in ("caption", "resolution", "source"):
            _check_lengths(columns[name + "s"], name)
        return _Columns(
            clip_ids=ids,
            vectors=unit_rows(vectors, "embeddings"),
            captions=columns["captions"],
            resolutions=columns["resolutions"],
            sources=columns["sources"],
            clusters=columns["clusters"],
        )


def _connect(uri: str, token: str, timeout: float | None) -> MilvusClient:
    """A client for a Milvus Lite file or a server, with errors that say what to do."""
    try:
        from pymilvus import MilvusClient
    except ImportError as error:
        raise ImportError(
            "the clip index needs pymilvus and milvus-lite: pip install pymilvus milvus-lite"
        ) from error
    if uri.startswith(_SERVER_SCHEMES):
        target, what = uri, "Milvus server"
    elif uri.endswith(".db"):
        path = Path(uri).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise IndexOpenError(
                f"cannot create the folder for Milvus Lite file {uri}: {error}; "
                "pick a writable path ending in .db"
            ) from error
        target, what = str(path.resolve()), "Milvus Lite file"
    else:
        raise ValueError(
            f"uri {uri!r} is neither a Milvus Lite file (a path ending in .db) nor a server "
            "address (http://host:19530)"
        )
    try:
        return MilvusClient(uri=target, token=token, timeout=timeout)
    except Exception as error:
        raise IndexOpenError(
            f"cannot open {what} {uri}: {error!r}; for a file check it is a writable path not "
            "open in another process, for a server check it is running and reachable"
        ) from error


def _index_params(client: MilvusClient, config: SearchIndexConfig) -> Any:
    """pymilvus IndexParams for ``config`` over the embedding field."""
    build = config.build_params()
    index_params = client.prepare_index_params()
    # pymilvus sends params flattened (what a server reads); Milvus Lite 3.2 reads them only
    # from a nested "params" key and silently uses its defaults otherwise, so send both.
    index_params.add_index(
        _VECTOR_FIELD,
        index_type=config.index_type,
        metric_type=_METRIC,
        params={**build, "params": build} if build else {},
    )
    return index_params


def _index_differs(stored: SearchIndexConfig, wanted: SearchIndexConfig) -> bool:
    return (stored.index_type, stored.build_params()) != (
        wanted.index_type,
        wanted.build_params(),
    )


def _to_hit(hit: Any) -> SearchHit:
    entity = hit["entity"]
    return SearchHit(
        clip_id=str(hit["clip_id"]),
        score=float(hit["distance"]),
        caption=str(entity.get("caption", "")),
        resolution=str(entity.get("resolution", "")),
        source=str(entity.get("source", "")),
        cluster=int(entity.get("cluster", -1)),
    )


def _check_clip_id(clip_id: str) -> None:
    if not clip_id or any(ch in clip_id for ch in "'\"\\"):
        raise ValueError(
            f"clip id {clip_id!r} is empty or holds a quote or backslash; use file-name-safe ids "
            "such as curation's '<source>-p<part>-<start>-<end>'"
        )
    if len(clip_id.encode()) > _MAX_LENGTHS["clip_id"]:
        raise ValueError(f"clip id {clip_id[:40]!r}... is over {_MAX_LENGTHS['clip_id']} bytes")


def _check_lengths(values: list[str], field_name: str) -> None:
    limit = _MAX_LENGTHS[field_name]
    for i, value in enumerate(values):
        if len(value.encode()) > limit:
            raise ValueError(
                f"{field_name} of clip {i} is {len(value.encode())} bytes, over the {limit}-byte "
                f"limit; shorten it"
            )


def recall_at_k(found: Sequence[Sequence[Any]], truth: Sequence[Sequence[Any]]) -> float:
    """Mean over queries of |found ∩ truth| / |truth|: 1.0 when every true neighbour is found."""
    if len(found) != len(truth):
        raise ValueError(f"{len(found)} result lists for {len(truth)} queries")
    if not truth:
        return math.nan
    return float(
        np.mean([len(set(f) & set(t)) / max(len(t), 1) for f, t in zip(found, truth, strict=True)])
    )
