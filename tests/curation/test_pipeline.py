"""The whole curation run on tiny footage: every stage's output, resume, quarantine, training."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from wfm_sim.curation import pipeline
from wfm_sim.curation.dedup import DedupConfig
from wfm_sim.curation.embed import EmbedTrainConfig, VideoEncoderConfig
from wfm_sim.curation.pipeline import CurationConfig, curate
from wfm_sim.data.shards import iter_shard_samples, read_catalog, read_shard_episodes, shard_paths
from wfm_sim.search import ClipIndex
from wfm_sim.sources.recorder import RecorderConfig, copy_dir, part_paths, record_footage

TINY_ENCODER = VideoEncoderConfig(frames=4, size=32, channels=(8, 16), frame_dim=32, groups=4)


@pytest.fixture(scope="module")
def footage_with_copies(tmp_path_factory: pytest.TempPathFactory, behaviours: list) -> Path:
    """6 episodes in 2 parts; part 0 also at 48x48."""
    out = tmp_path_factory.mktemp("footage") / "driving"
    config = RecorderConfig(
        out_dir=str(out), episodes=6, episodes_per_part=3, copies=["48x48"], copy_parts=1
    )
    return record_footage(config, behaviours, progress=False)


def _config(footage: Path, work: Path) -> CurationConfig:
    return CurationConfig(
        footage_dirs=[str(footage)],
        work_dir=str(work),
        clip_batch=4,
        clips_per_shard=3,
        device="cpu",
        encoder_holdout_fraction=0.0,
        encoder_training=EmbedTrainConfig(
            steps=3, batch_size=8, encoder=TINY_ENCODER, progress=False
        ),
        dedup=DedupConfig(clusters=2, epsilon=0.05),
    )


@pytest.fixture(scope="module")
def curated(footage_with_copies: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("curated")
    return curate(_config(footage_with_copies, work), progress=False)


def test_every_clip_is_catalogued_with_its_decisions(curated) -> None:
    summary = curated.summary
    assert summary["split"]["parts"] == 3 and not summary["split"]["quarantined"]
    # 2 native parts with 3 episodes each, and the 48x48 copy of part 0: 6 + 3 true cuts ... minus
    # one per part at frame 0 (not a cut): 2 + 2 + 2.
    cuts = summary["split"]["cuts"]
    assert cuts["tp"] + cuts["fn"] == 6
    assert cuts["recall"] >= 0.8 and cuts["precision"] >= 0.8
    catalog = read_catalog(curated.shards_dir).to_pandas()
    assert len(catalog) == summary["split"]["clips"] == catalog["clip_id"].nunique()
    assert set(catalog["height"]) == {64, 48}
    filtered = catalog["drop_reason"].isna()
    assert filtered.sum() == summary["filter"]["kept"]
    assert catalog.loc[filtered, "caption"].str.len().gt(10).all()
    assert catalog.loc[~filtered, "caption"].isna().all()
    kept = catalog[catalog["dedup_kept"].fillna(False).astype(bool)]
    assert kept["shard"].notna().all()
    dropped = catalog[filtered & ~catalog["dedup_kept"].fillna(True).astype(bool)]
    by_id = catalog.set_index("clip_id")
    for _, row in dropped.iterrows():
        original = by_id.loc[row["duplicate_of"]]
        assert bool(original["dedup_kept"]), "a dropped clip points at a kept clip"
        assert original["height"] * original["width"] >= row["height"] * row["width"]


def test_shards_group_by_resolution_and_feed_training(curated) -> None:
    catalog = read_catalog(curated.shards_dir).to_pandas()
    kept = catalog[catalog["dedup_kept"].fillna(False).astype(bool)]
    for shard in shard_paths(curated.shards_dir):
        group = shard.parent.relative_to(curated.shards_dir).as_posix()
        members = kept[kept["shard"] == f"{group}/{shard.name}"]
        assert 1 <= len(members) <= 3
        assert {f"{h}x{w}" for h, w in zip(members["height"], members["width"], strict=True)} == {
            shard.parent.name
        }
    episodes = read_shard_episodes(curated.shards_dir, resolution="64x64")
    native = kept[kept["height"] == 64]
    assert sum(len(e.frames) for e in episodes) <= int((native["end"] - native["start"]).sum())
    assert all(e.frames.shape[1:] == (64, 64, 3) for e in episodes)


def test_the_search_index_holds_the_kept_clips(curated) -> None:
    catalog = read_catalog(curated.shards_dir).to_pandas()
    kept = catalog[catalog["dedup_kept"].fillna(False).astype(bool)]
    with ClipIndex(curated.index_uri) as index:
        assert len(index) == len(kept) == curated.summary["index"]["clips"]
        clip_id = kept["clip_id"].iloc[0]
        hit = index.search(index.vector_of(clip_id), 1)[0][0]
        assert hit.clip_id == clip_id and hit.caption == kept["caption"].iloc[0]


def test_a_killed_run_resumes_without_redoing_finished_stages(
    footage_with_copies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(footage_with_copies, tmp_path / "work")
    real_caption = pipeline.caption_clips_stage
    calls = {"n": 0}

    def dies_after_one_batch(batch, clip_dir, captioner_name):
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt("killed")
        return real_caption(batch, clip_dir, captioner_name)

    monkeypatch.setattr(pipeline, "caption_clips_stage", dies_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        curate(config, progress=False)
    stored = sorted((tmp_path / "work/stages/3-caption").glob("batch-*.parquet"))
    assert len(stored) == 1

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    captioned: list[str] = []

    def counting_caption(batch, clip_dir, captioner_name):
        captioned.extend(row["clip_id"] for row in batch)
        return real_caption(batch, clip_dir, captioner_name)

    monkeypatch.setattr(pipeline, "split_parts", must_not_run)
    monkeypatch.setattr(pipeline, "filter_clips", must_not_run)
    monkeypatch.setattr(pipeline, "caption_clips_stage", counting_caption)
    result = curate(config, progress=False)
    done_before = {r for p in stored for r in pq.read_table(p).column("clip_id").to_pylist()}
    assert captioned and not done_before & set(captioned), "no clip captioned twice"
    assert len(done_before) + len(captioned) == result.summary["filter"]["kept"]


def test_a_corrupt_part_is_quarantined_and_the_run_goes_on(
    footage_with_copies: Path, tmp_path: Path
) -> None:
    footage = tmp_path / "driving"
    shutil.copytree(footage_with_copies, footage)
    mp4 = part_paths(footage, 1)[0]
    mp4.write_bytes(mp4.read_bytes()[: len(mp4.read_bytes()) // 3])  # a truncated upload
    copy_mp4 = part_paths(copy_dir(footage, "48x48"), 0)[0]
    copy_mp4.write_bytes(b"\x00" * 1000)
    result = curate(_config(footage, tmp_path / "work"), progress=False)
    quarantined = result.summary["split"]["quarantined"]
    assert len(quarantined) == 2
    assert all(reason.startswith("corrupt:") for reason in quarantined.values())
    assert result.summary["filter"]["kept"] > 0
    assert mp4.exists() and copy_mp4.exists(), "source footage is never deleted"


def test_a_missing_footage_folder_is_named(tmp_path: Path) -> None:
    config = dataclasses.replace(CurationConfig(), footage_dirs=[str(tmp_path / "nowhere")])
    with pytest.raises(FileNotFoundError, match="record footage first"):
        curate(config, progress=False)


def test_no_clip_file_is_half_written(curated) -> None:
    leftovers = list(Path(curated.work_dir).rglob("*.tmp*"))
    assert leftovers == []
    assert np.all([p.stat().st_size > 0 for p in shard_paths(curated.shards_dir)])


def test_a_rerun_with_another_epsilon_leaves_no_stale_shard_or_index_entry(
    footage_with_copies: Path, tmp_path: Path
) -> None:
    config = _config(footage_with_copies, tmp_path / "work")
    config = dataclasses.replace(config, dedup=DedupConfig(clusters=2, epsilon=0.0))
    first = curate(config, progress=False)
    looser = dataclasses.replace(config, dedup=DedupConfig(clusters=2, epsilon=2.0))
    second = curate(looser, progress=False)
    assert second.summary["dedup"]["kept"] == 2 < first.summary["dedup"]["kept"]  # 1 per cluster
    catalog = read_catalog(second.shards_dir).to_pandas()
    kept = set(catalog.loc[catalog["dedup_kept"].fillna(False).astype(bool), "clip_id"])
    in_shards = {s.key for s in iter_shard_samples(shard_paths(second.shards_dir))}
    assert in_shards == kept
    with ClipIndex(second.index_uri) as index:
        assert set(index.clip_ids()) == kept
