"""The curation pipeline: footage -> clips -> filtered, captioned, embedded, deduplicated ->
shards, catalog and a search index.

``curate(config)`` runs the stages in order. Each stage is a function over batches of rows run
by ``run_stage`` (in-process, or on Ray with ``executor="ray"``), stores its output batch by
batch under ``work_dir/stages/``, and is skipped batch by batch on a re-run, so a killed run
resumes where it stopped. Every drop is recorded with its reason in the catalog.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from wfm_sim.curation.captions import Captioner, MetadataCaptioner
from wfm_sim.curation.clips import Clip, ClipSpan, clip_paths, read_clip, source_name, write_clip
from wfm_sim.curation.dedup import DedupConfig, DedupResult, semantic_dedup
from wfm_sim.curation.embed import (
    EmbedTrainConfig,
    TextEmbedder,
    embed_videos,
    load_video_encoder,
    save_video_encoder,
    train_video_encoder,
)
from wfm_sim.curation.filters import FilterConfig, clip_scores, drop_reason
from wfm_sim.curation.pusher_captions import PusherCaptioner
from wfm_sim.curation.runner import Rows, batch_key, make_executor, run_stage
from wfm_sim.curation.shots import (
    ShotConfig,
    detect_cuts,
    pooled_cut_precision_recall,
    split_into_clips,
    true_cuts_from_ground_truth,
)
from wfm_sim.data.footage import CorruptFootageError, read_video
from wfm_sim.data.shards import CATALOG_NAME, ShardSample, shard_group, shard_paths, write_shard
from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.search import ClipIndex, ClipSearchEngine
from wfm_sim.sources.recorder import part_paths

EMBEDDINGS_NAME = "embeddings.parquet"
"""Per kept clip: its video embedding and its caption's text embedding (work_dir)."""
ENCODER_NAME = "encoder/video_encoder"
"""The trained video encoder (work_dir), as ``.safetensors`` + ``.json``."""
CAPTIONERS: dict[str, Callable[[], Captioner]] = {
    "highway": MetadataCaptioner,
    "pusher": PusherCaptioner,
}
"""The captioner of each footage source, by the name ``CurationConfig.captioner`` takes."""


def make_captioner(name: str) -> Captioner:
    """The captioner called ``name`` in ``CAPTIONERS``; a clear error for an unknown name."""
    if name not in CAPTIONERS:
        raise ValueError(
            f"unknown captioner {name!r}; choose one of {sorted(CAPTIONERS)} (the footage's "
            "source: highway-env driving or MuJoCo Pusher)"
        )
    return CAPTIONERS[name]()


@dataclass
class CurationConfig:
    """Where footage comes from, where curated data goes, and each stage's settings.

    ``footage_dirs`` are footage folders (as the recorder writes them); with ``include_copies``
    each folder's ``copies/<H>x<W>`` sub-folders (the same footage at other resolutions) are
    curated too.
    """

    footage_dirs: list[str] = field(default_factory=lambda: ["data/footage/driving"])
    include_copies: bool = True
    work_dir: str = "data/curated/driving"
    captioner: str = "highway"
    """Which of ``CAPTIONERS`` captions the clips: the one made for the footage's source."""
    executor: str = "local"
    ray_address: str | None = None
    clip_batch: int = 64
    clips_per_shard: int = 256
    threads: int = 0
    device: str = "auto"
    seed: int = 0
    encoder_holdout_fraction: float = 0.2
    shots: ShotConfig = field(default_factory=ShotConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    encoder_training: EmbedTrainConfig = field(default_factory=EmbedTrainConfig)
    """The video encoder (``encoder_training.encoder``) and how it is trained on kept clips."""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    index_uri: str = ""
    """Milvus URI of the search index: empty for ``<work_dir>/search.db`` (Milvus Lite)."""


@dataclass
class CurationResult:
    """Where the outputs are and what each stage kept and dropped (``summary``)."""

    work_dir: Path
    shards_dir: Path
    catalog: Path
    index_uri: str
    summary: dict[str, Any]


def footage_sources(config: CurationConfig) -> list[Path]:
    """The footage folders to curate: the configured ones and, if asked, their copies."""
    folders: list[Path] = []
    for folder in map(Path, config.footage_dirs):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"footage folder {folder} does not exist; record footage first "
                "(`python -m experiments.record`)"
            )
        folders.append(folder)
        if config.include_copies:
            folders += sorted(p for p in (folder / "copies").glob("*") if p.is_dir())
    return folders


def _part_rows(folders: list[Path]) -> Rows:
    rows = []
    for folder in folders:
        for parquet in sorted(folder.glob("part-*.parquet")):
            part = int(parquet.stem.split("-")[1])
            rows.append(
                {
                    "key": f"{source_name(folder)}-p{part:05d}",
                    "source": source_name(folder),
                    "source_dir": str(folder),
                    "part": part,
                }
            )
    return rows


def split_parts(batch: Rows, shots: ShotConfig, clip_dir: str) -> Rows:
    """Stage 1: detect cuts in each footage part and store its clips. One row per part, with its
    detected and true cuts and its clips; a part that cannot be read is quarantined with the
    reason (and nothing else happens to it)."""
    out: Rows = []
    for row in batch:
        mp4, parquet = part_paths(Path(row["source_dir"]), int(row["part"]))
        result = {**row, "detected_cuts": [], "true_cuts": [], "clips": [], "frames": 0}
        try:
            truth = pq.read_table(parquet)
            frames = read_video(mp4)
            if len(frames) != truth.num_rows:
                raise CorruptFootageError(
                    f"{mp4} is truncated or padded: {len(frames)} frames for "
                    f"{truth.num_rows} ground-truth rows"
                )
        except (CorruptFootageError, OSError, pa.ArrowInvalid) as error:
            out.append({**result, "quarantine_reason": f"corrupt: {error}"})
            continue
        cuts = detect_cuts(frames, shots)
        height, width = frames.shape[1:3]
        clips = []
        for start, end in split_into_clips(len(frames), cuts, shots):
            span = ClipSpan(row["source"], int(row["part"]), start, end, height, width)
            if not clip_paths(clip_dir, span.clip_id)[1].exists():
                write_clip(clip_dir, Clip(span, frames[start:end], truth.slice(start, end - start)))
            clips.append([start, end])
        out.append(
            {
                **result,
                "frames": len(frames),
                "height": height,
                "width": width,
                "detected_cuts": cuts.tolist(),
                "true_cuts": true_cuts_from_ground_truth(truth).tolist(),
                "clips": clips,
                "quarantine_reason": None,
            }
        )
    return out


def filter_clips(batch: Rows, filters: FilterConfig, clip_dir: str, quarantine_dir: str) -> Rows:
    """Stage 2: score each clip (length, motion, blankness, sharpness) and decide keep/drop.

    A clip whose mp4 cannot be decoded is moved to ``quarantine_dir`` and dropped as corrupt."""
    out: Rows = []
    for row in batch:
        span = ClipSpan.from_row(row)
        try:
            clip = read_clip(clip_dir, span)
        except (CorruptFootageError, OSError, pa.ArrowInvalid) as error:
            Path(quarantine_dir).mkdir(parents=True, exist_ok=True)
            for path in clip_paths(clip_dir, span.clip_id):
                if path.exists():
                    shutil.move(str(path), Path(quarantine_dir) / path.name)
            out.append({"clip_id": span.clip_id, "drop_reason": f"corrupt: {error}"})
            continue
        scores = clip_scores(clip.frames)
        out.append({"clip_id": span.clip_id, **scores, "drop_reason": drop_reason(scores, filters)})
    return out


def caption_clips_stage(batch: Rows, clip_dir: str, captioner_name: str) -> Rows:
    """Stage 3: a caption per clip, from its pixels and ground truth, by the captioner called
    ``captioner_name`` (see ``CAPTIONERS``)."""
    captioner = make_captioner(captioner_name)
    return [
        {
            "clip_id": row["clip_id"],
            "caption": captioner.caption(read_clip(clip_dir, ClipSpan.from_row(row))),
        }
        for row in batch
    ]


@functools.cache
def _text_embedder(device: str) -> TextEmbedder:
    return TextEmbedder(device=device)


def embed_clips(batch: Rows, clip_dir: str, encoder_path: str, device: str) -> Rows:
    """Stage 4: a video embedding per clip and a text embedding per caption, in one space."""
    encoder = _load_encoder(encoder_path)
    frames = [read_clip(clip_dir, ClipSpan.from_row(row)).frames for row in batch]
    videos = embed_videos(encoder, frames, batch_size=32)
    texts = _text_embedder(device).embed([row["caption"] for row in batch])
    return [
        {"clip_id": row["clip_id"], "video_embedding": v.tolist(), "text_embedding": t.tolist()}
        for row, v, t in zip(batch, videos, texts, strict=True)
    ]


@functools.cache
def _load_encoder(encoder_path: str) -> Any:
    return load_video_encoder(encoder_path)


def _train_encoder(
    config: CurationConfig, clips: Rows, captions: dict[str, str], clip_dir: str, encoder_path: Path
) -> dict[str, Any]:
    """Train the video encoder on the kept clips' captions once; a re-run reuses it.

    Whole footage parts are held out (``encoder_holdout_fraction`` of them), so no copy of a
    held-out clip at another resolution is trained on; the held-out clips measure retrieval.
    """
    split_path = encoder_path.with_name("split.json")
    if encoder_path.with_suffix(".json").exists() and split_path.exists():
        return {"trained": False, "path": str(encoder_path), **json.loads(split_path.read_text())}
    parts = sorted({int(row["part"]) for row in clips})
    rng = np.random.default_rng(config.seed)
    n_held = int(round(len(parts) * config.encoder_holdout_fraction))
    held_parts = {int(p) for p in rng.choice(parts, size=n_held, replace=False)} if parts else set()
    train_rows = sorted(
        (row for row in clips if int(row["part"]) not in held_parts), key=lambda r: r["clip_id"]
    )
    if len(train_rows) < 2:
        raise ValueError(
            f"only {len(train_rows)} clips to train the video encoder on after filtering and "
            "holding out parts; record more footage or lower encoder_holdout_fraction"
        )
    frames = [
        read_clip(clip_dir, ClipSpan.from_row(row)).frames
        for row in tqdm(train_rows, desc="loading clips", leave=False)
    ]
    text = _text_embedder(config.device).embed([captions[row["clip_id"]] for row in train_rows])
    encoder = train_video_encoder(frames, text, config.encoder_training)
    save_video_encoder(encoder, encoder_path)
    split = {
        "held_out_parts": sorted(held_parts),
        "train_clips": len(train_rows),
        "held_out_clips": len(clips) - len(train_rows),
    }
    write_json_atomic(split_path, split)
    return {"trained": True, "path": str(encoder_path), **split}


def write_shards_stage(batch: Rows, clip_dir: str, shards_dir: str) -> Rows:
    """Stage 6: write one shard (all rows of ``batch`` share its ``shard`` path)."""
    shard = batch[0]["shard"]
    samples = []
    for row in batch:
        mp4, parquet = clip_paths(clip_dir, row["clip_id"])
        meta = {k: v for k, v in row.items() if not k.endswith("_embedding")}
        samples.append(ShardSample(row["clip_id"], mp4.read_bytes(), parquet.read_bytes(), meta))
    write_shard(Path(shards_dir) / shard, samples)
    return [{"clip_id": row["clip_id"], "shard": shard} for row in batch]


def _assign_shards(rows: Rows, clips_per_shard: int) -> dict[str, Rows]:
    """Group kept clips by aspect ratio and resolution, then cut each group into shards, named
    by their position and a hash of their clips (so a shard on disk is the shard wanted)."""
    groups: dict[str, Rows] = {}
    for row in sorted(rows, key=lambda r: r["clip_id"]):
        groups.setdefault(shard_group(int(row["height"]), int(row["width"])), []).append(row)
    shards: dict[str, Rows] = {}
    for group, members in groups.items():
        for index in range(0, len(members), clips_per_shard):
            rows = members[index : index + clips_per_shard]
            digest = batch_key([r["clip_id"] for r in rows])[:8]
            shard = f"{group}/shard-{index // clips_per_shard:05d}-{digest}.tar"
            shards[shard] = [{**r, "shard": shard} for r in rows]
    return shards


def curate(config: CurationConfig, progress: bool = True) -> CurationResult:
    """Run every curation stage over ``config.footage_dirs``; resumes a killed run."""
    make_captioner(config.captioner)  # an unknown name fails before any work
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    work = Path(config.work_dir)
    clip_dir, quarantine_dir = work / "clips", work / "quarantine"
    shards_dir = work / "shards"
    executor = make_executor(config.executor, config.ray_address)

    def stage(name: str, rows: Rows, fn: Callable[[Rows], Rows], key: str, size: int) -> Rows:
        return run_stage(
            name,
            rows,
            fn,
            work / "stages",
            key=key,
            batch_size=size,
            executor=executor,
            progress=progress,
        )

    parts = stage(
        "1-split",
        _part_rows(footage_sources(config)),
        functools.partial(split_parts, shots=config.shots, clip_dir=str(clip_dir)),
        "key",
        1,
    )
    clips = [
        ClipSpan(p["source"], int(p["part"]), s, e, int(p["height"]), int(p["width"])).to_row()
        for p in parts
        if p["quarantine_reason"] is None
        for s, e in p["clips"]
    ]
    scored = stage(
        "2-filter",
        clips,
        functools.partial(
            filter_clips,
            filters=config.filters,
            clip_dir=str(clip_dir),
            quarantine_dir=str(quarantine_dir),
        ),
        "clip_id",
        config.clip_batch,
    )
    catalog = {row["clip_id"]: {**row} for row in clips}
    for row in scored:
        catalog[row["clip_id"]].update(row)
    kept = [catalog[r["clip_id"]] for r in scored if r["drop_reason"] is None]
    for row in stage(
        "3-caption",
        kept,
        functools.partial(
            caption_clips_stage, clip_dir=str(clip_dir), captioner_name=config.captioner
        ),
        "clip_id",
        config.clip_batch,
    ):
        catalog[row["clip_id"]]["caption"] = row["caption"]

    encoder_path = work / ENCODER_NAME
    encoder_info = _train_encoder(
        config,
        kept,
        {r["clip_id"]: catalog[r["clip_id"]]["caption"] for r in kept},
        str(clip_dir),
        encoder_path,
    )
    embedded = stage(
        "4-embed",
        [catalog[r["clip_id"]] for r in kept],
        functools.partial(
            embed_clips,
            clip_dir=str(clip_dir),
            encoder_path=str(encoder_path),
            device=config.device,
        ),
        "clip_id",
        config.clip_batch,
    )
    for row in embedded:
        catalog[row["clip_id"]].update(row)

    dedup_summary = _dedup(config, [catalog[r["clip_id"]] for r in embedded], catalog, work)
    survivors = [catalog[r["clip_id"]] for r in embedded if catalog[r["clip_id"]]["dedup_kept"]]
    shards = _assign_shards(survivors, config.clips_per_shard)
    todo = [rows for shard, rows in shards.items() if not (shards_dir / shard).exists()]
    write = functools.partial(
        write_shards_stage, clip_dir=str(clip_dir), shards_dir=str(shards_dir)
    )
    for _ in tqdm(executor.map(write, todo), total=len(todo), desc="6-shard", disable=not progress):
        pass
    for stale in set(shard_paths(shards_dir)) - {shards_dir / shard for shard in shards}:
        stale.unlink()  # a shard of an earlier run's decisions
    for shard, rows in shards.items():
        for row in rows:
            catalog[row["clip_id"]]["shard"] = shard

    with atomic_path(work / EMBEDDINGS_NAME) as tmp:
        pq.write_table(
            pa.Table.from_pylist(
                [
                    {k: r[k] for k in ("clip_id", "video_embedding", "text_embedding")}
                    for r in survivors
                ]
            ),
            tmp,
        )
    catalog_table = _catalog_table(catalog)
    with atomic_path(shards_dir / CATALOG_NAME) as tmp:
        pq.write_table(catalog_table, tmp)
    index_uri = config.index_uri or str(work / "search.db")
    with ClipIndex(
        index_uri, dim=len(survivors[0]["video_embedding"]) if survivors else 384
    ) as index:
        index.add(
            [r["clip_id"] for r in survivors],
            np.asarray([r["video_embedding"] for r in survivors], dtype=np.float32),
            [r["caption"] for r in survivors],
            resolutions=[f"{r['height']}x{r['width']}" for r in survivors],
            sources=[r["source"] for r in survivors],
            clusters=[int(r["cluster"]) for r in survivors],
            progress=progress,
        )
        index.remove(sorted(set(index.clip_ids()) - {r["clip_id"] for r in survivors}))
        indexed = len(index)
    summary = _summary(parts, scored, catalog, dedup_summary, shards, encoder_info, indexed)
    write_json_atomic(work / "summary.json", summary)
    return CurationResult(work, shards_dir, shards_dir / CATALOG_NAME, index_uri, summary)


def _dedup(config: CurationConfig, rows: Rows, catalog: dict[str, dict], work: Path) -> dict:
    """Stage 5: semantic dedup over every embedded clip, one global step.

    Its decisions are stored under a hash of the clip ids and the dedup config, so a re-run
    with the same input reuses them and one with another ε recomputes."""
    ids = [r["clip_id"] for r in rows]
    dedup = dataclasses.replace(config.dedup, clusters=max(1, min(config.dedup.clusters, len(ids))))
    digest = batch_key([*ids, json.dumps(dataclasses.asdict(dedup), sort_keys=True)])
    path = work / "stages" / f"5-dedup-{digest}.parquet"
    fractions_path = path.with_suffix(".json")
    if not (path.exists() and fractions_path.exists()):
        embeddings = np.asarray([r["video_embedding"] for r in rows], dtype=np.float32)
        priority = np.asarray(
            [[r["height"] * r["width"], r["sharpness"]] for r in rows], dtype=np.float64
        )
        result = semantic_dedup(embeddings, priority, dedup, device=config.device)
        write_json_atomic(
            fractions_path, {str(k): v for k, v in result.removed_fraction_per_epsilon.items()}
        )
        with atomic_path(path) as tmp:
            pq.write_table(pa.Table.from_pylist(_dedup_rows(ids, result)), tmp)
    for row in pq.read_table(path).to_pylist():
        catalog[row["clip_id"]].update(row)
    return {
        "removed_fraction_per_epsilon": json.loads(fractions_path.read_text()),
        "epsilon": dedup.epsilon,
        "clusters": dedup.clusters,
    }


def _dedup_rows(ids: list[str], result: DedupResult) -> Rows:
    """Per clip: its cluster, its max similarity to a higher-priority clip of that cluster, and
    for a dropped clip the kept clip it duplicates."""
    rows = []
    for i, clip_id in enumerate(ids):
        kept = i
        while result.duplicate_of[kept] >= 0:
            kept = int(result.duplicate_of[kept])
        similarity = float(result.max_similarity[i])
        rows.append(
            {
                "clip_id": clip_id,
                "cluster": int(result.cluster[i]),
                "max_similarity": similarity if np.isfinite(similarity) else None,
                "duplicate_of": ids[kept] if kept != i else None,
                "dedup_kept": bool(result.keep[i]),
            }
        )
    return rows


_CATALOG_COLUMNS = (
    "clip_id",
    "source",
    "part",
    "start",
    "end",
    "height",
    "width",
    "frames",
    "motion",
    "pixel_std",
    "sharpness",
    "drop_reason",
    "caption",
    "cluster",
    "max_similarity",
    "duplicate_of",
    "dedup_kept",
    "shard",
)


def _catalog_table(catalog: dict[str, dict]) -> pa.Table:
    """One row per clip seen, kept or not, with every stage's decision."""
    rows = []
    for clip_id in sorted(catalog):
        row = catalog[clip_id]
        rows.append({column: row.get(column) for column in _CATALOG_COLUMNS})
    return pa.Table.from_pylist(rows)


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


def _summary(
    parts: Rows,
    scored: Rows,
    catalog: dict[str, dict],
    dedup: dict,
    shards: dict[str, Rows],
    encoder: dict,
    indexed: int,
) -> dict[str, Any]:
    cuts = pooled_cut_precision_recall(
        (np.asarray(part["detected_cuts"]), np.asarray(part["true_cuts"]))
        for part in parts
        if part["quarantine_reason"] is None
    )
    drops = Counter(_reason_kind(r["drop_reason"]) for r in scored if r["drop_reason"])
    kept_after_filter = [r for r in scored if r["drop_reason"] is None]
    removed = sum(1 for r in kept_after_filter if not catalog[r["clip_id"]].get("dedup_kept", True))
    groups: Counter[str] = Counter()
    for shard, rows in shards.items():
        groups[shard.rsplit("/", 1)[0]] += len(rows)
    return {
        "split": {
            "parts": len(parts),
            "quarantined": {
                p["key"]: p["quarantine_reason"] for p in parts if p["quarantine_reason"]
            },
            "clips": len(catalog),
            "cuts": cuts,
        },
        "filter": {"kept": len(kept_after_filter), "dropped": dict(sorted(drops.items()))},
        "caption": {"captioned": len(kept_after_filter)},
        "embed": {"embedded": len(kept_after_filter), "encoder": encoder},
        "dedup": {**dedup, "removed": removed, "kept": len(kept_after_filter) - removed},
        "shard": {"shards": len(shards), "clips_per_group": dict(sorted(groups.items()))},
        "index": {"clips": indexed},
    }


def open_search(
    work_dir: str | Path, device: str = "auto", index_uri: str = ""
) -> ClipSearchEngine:
    """The search engine over a curated folder: its index, its video encoder and MiniLM.

    Text queries are embedded by MiniLM; video queries (a clip id or frames from an mp4) by the
    curation's video encoder, which was trained into MiniLM's space."""
    work = Path(work_dir)
    encoder = load_video_encoder(work / ENCODER_NAME, device=device)
    text = TextEmbedder(device=device)
    index = ClipIndex(index_uri or str(work / "search.db"))
    return ClipSearchEngine(
        index,
        embed_text=text.embed,
        embed_video=lambda frames: embed_videos(encoder, [frames])[0],
    )
