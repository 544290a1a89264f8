"""The clip index and search engine on Milvus Lite: round trips through the file, agreement
with exact search, upserts, engine queries by text / clip / mp4, and errors that say what to do.

One Milvus Lite file per module holds the shared collections (a Lite start costs ~0.1-1 s).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from wfm_sim.search import (
    ClipIndex,
    ClipSearchEngine,
    IndexOpenError,
    SearchIndexConfig,
    exact_search,
    recall_at_k,
)

DIM = 32
N_CLIPS = 400


def _clustered(n: int, dim: int, centres: int, noise: float, rng: np.random.Generator):
    """(n, dim) unit vectors around ``centres`` random unit centres, and each one's centre."""
    c = rng.normal(size=(centres, dim))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    labels = rng.integers(centres, size=n)
    x = c[labels] + noise * rng.normal(size=(n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("search") / "clips.db"


@pytest.fixture(scope="module")
def clips() -> dict[str, list | np.ndarray]:
    vectors, labels = _clustered(N_CLIPS, DIM, centres=20, noise=0.5, rng=np.random.default_rng(0))
    return {
        "clip_ids": [
            f"highway-env-p{i // 50:05d}-{i % 50 * 8:06d}-{i % 50 * 8 + 8:06d}"
            for i in range(N_CLIPS)
        ],
        "embeddings": vectors,
        "captions": [f"clip {i} of cluster {labels[i]}" for i in range(N_CLIPS)],
        "resolutions": ["48x64" if i % 2 else "64x64" for i in range(N_CLIPS)],
        "sources": ["highway-env"] * N_CLIPS,
        "clusters": labels,
    }


@pytest.fixture(scope="module")
def index(db_path: Path, clips: dict) -> Iterator[ClipIndex]:
    """A FLAT index of the clips; tests only read it."""
    with ClipIndex(db_path, dim=DIM) as index:
        index.add(**clips)
        yield index


def test_search_finds_each_clip_by_its_own_vector(index: ClipIndex, clips: dict) -> None:
    hits = index.search(clips["embeddings"][:5], k=3)
    assert [h[0].clip_id for h in hits] == clips["clip_ids"][:5]
    for i, per_query in enumerate(hits):
        top = per_query[0]
        assert top.score == pytest.approx(1.0, abs=1e-5)
        assert top.caption == clips["captions"][i]
        assert (top.resolution, top.source, top.cluster) == (
            clips["resolutions"][i],
            "highway-env",
            clips["clusters"][i],
        )
        assert [h.score for h in per_query] == sorted((h.score for h in per_query), reverse=True)


def test_flat_index_agrees_with_exact_search(index: ClipIndex, clips: dict) -> None:
    queries, _ = _clustered(50, DIM, centres=20, noise=0.8, rng=np.random.default_rng(1))
    scores, rows = exact_search(clips["embeddings"], queries, k=10)
    hits = index.search(queries, k=10)
    ids = np.asarray(clips["clip_ids"])
    assert recall_at_k([[h.clip_id for h in q] for q in hits], ids[rows].tolist()) == 1.0
    np.testing.assert_allclose([[h.score for h in q] for q in hits], scores, atol=1e-5)


def test_exact_search_is_blockwise_and_normalises() -> None:
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(1000, 8)).astype(np.float32) * 3.0  # not unit length
    queries = rng.normal(size=(7, 8)).astype(np.float32)
    scores, rows = exact_search(emb, queries, k=5, block=64, query_block=3)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    full = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    np.testing.assert_array_equal(rows, np.argsort(-full, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :5], rtol=1e-5)
    assert exact_search(emb[:3], queries, k=10)[1].shape == (7, 3)  # k capped at N


def test_reopen_from_the_file_keeps_rows_and_index(tmp_path: Path, clips: dict) -> None:
    path = tmp_path / "nested" / "clips.db"  # the folder is created too
    config = SearchIndexConfig("IVF_FLAT", nlist=8, nprobe=8)
    with ClipIndex(path, dim=DIM, config=config) as index:
        index.add(clips["clip_ids"][:100], clips["embeddings"][:100], clips["captions"][:100])
    with ClipIndex(path) as reopened:  # dim and index type read back from the file
        assert (reopened.dim, len(reopened)) == (DIM, 100)
        assert (reopened.config.index_type, reopened.config.nlist) == ("IVF_FLAT", 8)
        reopened.config.nprobe = 8  # all cells: exact
        top = reopened.search(clips["embeddings"][42], k=1)[0][0]
        assert (top.clip_id, top.caption) == (clips["clip_ids"][42], clips["captions"][42])
        assert top.score == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(
            reopened.vector_of(clips["clip_ids"][42]), clips["embeddings"][42], atol=1e-6
        )
    with ClipIndex(path, config=SearchIndexConfig("HNSW", hnsw_m=8)) as rebuilt:
        assert rebuilt.config.index_type == "HNSW"
        assert rebuilt.search(clips["embeddings"][7], k=1)[0][0].clip_id == clips["clip_ids"][7]


def test_add_is_an_idempotent_upsert(db_path: Path, clips: dict) -> None:
    with ClipIndex(db_path, collection="upserts", dim=DIM) as index:
        ids, vectors = clips["clip_ids"][:20], clips["embeddings"][:20]
        index.add(ids, vectors, ["first"] * 20)
        index.add(ids, vectors, ["first"] * 20)
        assert len(index) == 20
        index.add(ids[:2], vectors[10:12] * 5.0, ["second", "second"])  # new vector and caption
        assert len(index) == 20
        top = index.search(vectors[10], k=2)[0]
        assert {h.clip_id for h in top} == {ids[0], ids[10]}
        assert {h.caption for h in top} == {"first", "second"}
        np.testing.assert_allclose(np.linalg.norm(index.vector_of(ids[0])), 1.0, atol=1e-6)
        assert ids[0] in index and "no-such-clip" not in index
        assert index.add([], np.asarray([], np.float32), []) == 0 and len(index) == 20


def test_errors_name_the_problem(index: ClipIndex, tmp_path: Path, db_path: Path) -> None:
    good = np.ones(DIM, np.float32)
    with pytest.raises(ValueError, match="do not match the index's 32-d"):
        index.search(np.ones(DIM + 1, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full(DIM, np.nan, np.float32))
    with pytest.raises(ValueError, match="all zeros"):
        index.search(np.zeros(DIM, np.float32))
    with pytest.raises(ValueError, match="k must be"):
        index.search(good, k=0)
    with pytest.raises(KeyError, match="not in collection"):
        index.vector_of("no-such-clip")
    with pytest.raises(ValueError, match="do not match"):
        index.add(["x"], np.ones((1, DIM + 1)), ["c"])
    with pytest.raises(ValueError, match="one entry per clip"):
        index.add(["x", "y"], np.ones((2, DIM)), ["c"])
    with pytest.raises(ValueError, match="appears twice"):
        index.add(["x", "x"], np.ones((2, DIM)), ["c", "c"])
    with pytest.raises(ValueError, match="quote"):
        index.add(["it's"], np.ones((1, DIM)), ["c"])
    with pytest.raises(ValueError, match="holds 32-d embeddings, not 16-d"):
        ClipIndex(db_path, dim=16)
    with pytest.raises(ValueError, match="pass dim="):
        ClipIndex(db_path, collection="never_made")
    with pytest.raises(ValueError, match="neither a Milvus Lite file"):
        ClipIndex(tmp_path / "clips.sqlite", dim=DIM)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(IndexOpenError, match="cannot create the folder"):
        ClipIndex(tmp_path / "a_file" / "clips.db", dim=DIM)
    with pytest.raises(IndexOpenError, match="is it running|running and reachable"):
        ClipIndex("http://127.0.0.1:9", dim=DIM, timeout=2)
    with pytest.raises(ValueError, match="not supported"):
        SearchIndexConfig("DISKANN")


# --- the engine, with stand-in embedders of a toy world where clip i is grey level 16 i ---

N_TOY = 12
TOY_CAPTIONS = [f"toy clip {i}: {'rain' if i % 2 else 'sun'} on lane {i % 3}" for i in range(N_TOY)]


def _text_vectors(texts: list[str]) -> np.ndarray:
    """Stand-in text embedder: a Gaussian vector seeded by the text's hash."""
    seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
    return np.stack([np.random.default_rng(s).normal(size=DIM) for s in seeds]).astype(np.float32)


def _toy_frames(i: int) -> np.ndarray:
    """(4, 32, 32, 3) uint8 frames of toy clip i: flat grey 16 i."""
    return np.full((4, 32, 32, 3), 16 * i, np.uint8)


def _video_vector(frames: np.ndarray) -> np.ndarray:
    """Stand-in video embedder: reads the clip number off the grey level (survives mp4's
    few-level error) and lands next to that clip's caption, as a joint text-video model would."""
    i = int(np.clip(round(float(frames.mean()) / 16), 0, N_TOY - 1))
    return _text_vectors([TOY_CAPTIONS[i]])[0] + 0.05


@pytest.fixture(scope="module")
def engine(db_path: Path) -> Iterator[ClipSearchEngine]:
    with ClipIndex(db_path, collection="toy", dim=DIM) as index:
        index.add([f"toy-{i}" for i in range(N_TOY)], _text_vectors(TOY_CAPTIONS), TOY_CAPTIONS)
        yield ClipSearchEngine(index, embed_text=_text_vectors, embed_video=_video_vector)


def test_engine_by_text_finds_the_captioned_clip(engine: ClipSearchEngine) -> None:
    hits = engine.by_text(TOY_CAPTIONS[5], k=3)
    assert len(hits) == 3
    assert (hits[0].clip_id, hits[0].caption) == ("toy-5", TOY_CAPTIONS[5])
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h[0].clip_id for h in engine.by_texts(TOY_CAPTIONS[:3], k=1)] == [
        "toy-0",
        "toy-1",
        "toy-2",
    ]


def test_engine_by_clip_leaves_the_clip_out(engine: ClipSearchEngine) -> None:
    hits = engine.by_clip("toy-3", k=4)
    assert len(hits) == 4 and "toy-3" not in {h.clip_id for h in hits}
    expected = exact_search(_text_vectors(TOY_CAPTIONS), _text_vectors([TOY_CAPTIONS[3]]), k=5)[1]
    assert [h.clip_id for h in hits] == [f"toy-{j}" for j in expected[0][1:]]
    with pytest.raises(KeyError, match="toy-99"):
        engine.by_clip("toy-99")


def test_engine_by_video_file_reads_an_mp4(engine: ClipSearchEngine, tmp_path: Path) -> None:
    path = tmp_path / "query.mp4"
    imageio.mimwrite(path, list(_toy_frames(9)), fps=5, macro_block_size=1)
    hits = engine.by_video_file(path, k=2)  # the project's mp4 reader, the stand-in embedder
    assert hits[0].clip_id == "toy-9" and hits[0].score > 0.99
    with pytest.raises(FileNotFoundError, match="does not exist"):
        engine.by_video_file(tmp_path / "missing.mp4")


def test_engine_checks_what_the_embedders_return(engine: ClipSearchEngine) -> None:
    wrong_dim = ClipSearchEngine(engine.index, lambda t: np.ones((len(t), 5)), _video_vector)
    with pytest.raises(ValueError, match="embed_text returned shape"):
        wrong_dim.by_text("rain")
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        engine.by_frames(np.zeros((4, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="non-empty"):
        engine.by_text("  ")


def test_exact_search_on_stored_unit_vectors_skips_normalising(clips: dict) -> None:
    emb = clips["embeddings"]
    plain = exact_search(emb, emb[:4], k=5)
    trusted = exact_search(emb, emb[:4], k=5, normalized=True)
    np.testing.assert_array_equal(plain[1], trusted[1])
    np.testing.assert_allclose(plain[0], trusted[0], atol=1e-6)
