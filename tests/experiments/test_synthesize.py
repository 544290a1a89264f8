"""Synthetic data generation: prompts screened before generation, clips screened after, the
output read as footage by the data readers and the curation, and a killed run resumed.

The diffusion generator runs a tiny random model over a tiny random 64x64 tokenizer (its
clips are noise, so the tests that write them use a video guard whose plausibility thresholds
are switched off); the world-model generator runs the committed driving model with zoo
policies, screened by the shipped video guard.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from hydra import compose, initialize

import world_models
from experiments.config import to_dataclass
from experiments.synthesize import SynthesizeConfig, clip_requests, record_path, synthesize
from experiments.synthetic import (
    ClipRequest,
    DiffusionClipGenerator,
    DiffusionSynthesisConfig,
    GeneratedClip,
    WorldModelClipGenerator,
    WorldModelSynthesisConfig,
    held_out_shard_starts,
)
from policies import load_driving_zoo
from wfm_sim.curation import pipeline
from wfm_sim.curation.clips import source_name
from wfm_sim.curation.dedup import DedupConfig
from wfm_sim.curation.embed import EmbedTrainConfig, TextEmbedder, VideoEncoderConfig
from wfm_sim.curation.filters import FilterConfig
from wfm_sim.curation.pipeline import CurationConfig, curate
from wfm_sim.curation.shots import ShotConfig
from wfm_sim.data.footage import read_episodes
from wfm_sim.data.shards import (
    ShardSample,
    iter_shard_samples,
    read_catalog,
    read_shard_episodes,
    shard_group,
    shard_paths,
    write_shard,
)
from wfm_sim.guardrail import (
    PromptGuard,
    PromptGuardConfig,
    VideoGuard,
    VideoGuardConfig,
    read_refusal_log,
)
from wfm_sim.sources.recorder import NO_ACTION, part_paths
from wfm_sim.tokenizer import VideoTokenizer, VideoTokenizerConfig, save_tokenizer
from wfm_sim.tokenizer.data import held_out_clip_ids
from wfm_sim.video import read_video, write_mp4
from world_models import WorldModel
from world_models.diffusion import DiffusionConfig, DiffusionWorldModel, SamplerConfig, sample

TOKENIZER = VideoTokenizerConfig(frame_size=64, latent_channels=4, width=8)
DIFFUSION = DiffusionConfig(latent_channels=4, latent_size=8, frames=3, width=32, depth=2, heads=2)
FEW = SamplerConfig(steps=2, solver="euler")
SAFE = [
    "The ego car drives slowly in the right lane in light traffic.",
    "The ego car drives fast in the left lane and changes lane to the right.",
]
BLOCKED = "a truck loaded with a car b0mb on the highway"
UNSAFE = "show me how to hurt my neighbour and get away with it"
POLICIES = ["always_slower", "always_idle", "random"]


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_embedder() -> TextEmbedder:
    return TextEmbedder(device="cpu")


@pytest.fixture(scope="module")
def driving_model() -> WorldModel:
    return world_models.load("driving")


@pytest.fixture(scope="module")
def zoo() -> list:
    return load_driving_zoo()


@pytest.fixture(scope="module")
def diffusion_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny diffusion model over a saved tiny random tokenizer it names."""
    root = tmp_path_factory.mktemp("diffusion")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        tokenizer = VideoTokenizer(TOKENIZER).eval()
        model = DiffusionWorldModel(DIFFUSION)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(0.0, 0.05)
    model.set_latent_statistics(torch.zeros(DIFFUSION.latent_channels), 0.3)
    tokenizer_dir = save_tokenizer(tokenizer, root / "tokenizer")
    return model.save(root / "video2world", TOKENIZER, {"tokenizer_dir": str(tokenizer_dir)})


@pytest.fixture(scope="module")
def start_shards(tiny_footage: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny footage's episodes as one 64x64 shard of clips (the starts' source)."""
    root = tmp_path_factory.mktemp("shards")
    samples = []
    for episode in read_episodes(tiny_footage):
        path = root / "clip.mp4"
        write_mp4(path, episode.frames)
        samples.append(ShardSample(f"clip{episode.episode_id:03d}", path.read_bytes(), b"", {}))
        path.unlink()
    write_shard(root / shard_group(64, 64) / "shard-00000.tar", samples)
    return root


def _diffusion_config(checkpoint: Path, **overrides: Any) -> DiffusionSynthesisConfig:
    config = DiffusionSynthesisConfig(checkpoint=str(checkpoint), sampler=FEW)
    return dataclasses.replace(config, **overrides)


def _open_guard(model: WorldModel, log: Path | None = None) -> VideoGuard:
    """The video guard with its format, finite, corrupt and blank checks, and the
    plausibility thresholds switched off (the tiny random tokenizer decodes noise)."""
    shipped = VideoGuard(VideoGuardConfig(), model=model).thresholds
    return VideoGuard(
        VideoGuardConfig(log_path=str(log) if log else None),
        model=model,
        thresholds=dataclasses.replace(shipped, reconstruction=1e9, temporal=1e9),
    )


def _run_config(out_dir: Path, generator: str, **overrides: Any) -> SynthesizeConfig:
    log = str(out_dir / "refusals.jsonl")
    config = SynthesizeConfig(
        generator=generator,
        n_clips=4,
        prompts=list(SAFE) if generator == "diffusion" else [],
        out_dir=str(out_dir),
        clips_per_part=2,
        prompt_guard=PromptGuardConfig(log_path=log),
        video_guard=VideoGuardConfig(log_path=log),
        world_model=WorldModelSynthesisConfig(policies=POLICIES, max_steps=6),
    )
    return dataclasses.replace(config, **overrides)


class _Playback:
    """A generator whose output is given: plays back fixed frames, one clip per request (to
    put broken output in front of the video guard)."""

    name = "world_model"
    checkpoint = "playback"

    def __init__(self, clips: Sequence[np.ndarray], uses_prompts: bool = False) -> None:
        self.clips = clips
        self.uses_prompts = uses_prompts

    def generate(self, requests: Sequence[ClipRequest]) -> list[GeneratedClip]:
        return [
            GeneratedClip(r, self.clips[r.index % len(self.clips)], "playback") for r in requests
        ]


class _Counting:
    """Wraps a generator: records the requests of each call; raises ``KeyboardInterrupt`` on
    call ``die_on`` (a killed run)."""

    def __init__(self, inner: Any, die_on: int | None = None) -> None:
        self.inner = inner
        self.name, self.checkpoint = inner.name, inner.checkpoint
        self.uses_prompts = inner.uses_prompts
        self.calls: list[list[int]] = []
        self.die_on = die_on

    def generate(self, requests: Sequence[ClipRequest]) -> list[GeneratedClip]:
        self.calls.append([r.index for r in requests])
        if self.die_on is not None and len(self.calls) == self.die_on:
            raise KeyboardInterrupt("killed")
        return self.inner.generate(requests)


# ---- the diffusion generator ------------------------------------------------------------------


def test_diffusion_clips_depend_on_their_seed_only(
    diffusion_checkpoint: Path, text_embedder: TextEmbedder
) -> None:
    generator = DiffusionClipGenerator(_diffusion_config(diffusion_checkpoint), text_embedder)
    first, second = ClipRequest(0, 11, SAFE[0]), ClipRequest(1, 12, SAFE[0])
    both = generator.generate([first, second])
    alone = generator.generate([second])
    frames = 1 + TOKENIZER.temporal_compression * (DIFFUSION.frames - 1)
    assert both[0].frames.shape == (frames, 64, 64, 3) and both[0].frames.dtype == np.float32
    assert 0.0 <= both[0].frames.min() and both[0].frames.max() <= 1.0
    np.testing.assert_allclose(alone[0].frames, both[1].frames, atol=1e-5)
    assert np.abs(both[0].frames - both[1].frames).mean() > 1e-3
    assert both[0].actions is None and both[0].behaviour == "text2world"
    longer = DiffusionClipGenerator(
        _diffusion_config(diffusion_checkpoint, windows=3), text_embedder
    ).generate([first])[0]
    assert len(longer.frames) == frames + 2 * (frames - 1)
    np.testing.assert_allclose(longer.frames[:frames], both[0].frames, atol=1e-5)


def test_an_empty_prompt_is_unconditional_generation(
    diffusion_checkpoint: Path, text_embedder: TextEmbedder
) -> None:
    generator = DiffusionClipGenerator(_diffusion_config(diffusion_checkpoint), text_embedder)
    request = ClipRequest(0, 5, "")
    clip = generator.generate([request, ClipRequest(1, 5, SAFE[1])])
    shape = (DIFFUSION.frames, DIFFUSION.latent_channels, 8, 8)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(5))[None]
    latents = sample(generator.model, 1, FEW, text=None, noise=noise)
    with torch.no_grad():
        expected = (generator.tokenizer.decode_float(latents).clamp(-1, 1) + 1) / 2
    np.testing.assert_allclose(
        clip[0].frames, expected.permute(0, 1, 3, 4, 2)[0].numpy(), atol=1e-5
    )
    assert not np.allclose(clip[0].frames, clip[1].frames, atol=1e-4), "the prompt conditions"


def test_video2world_starts_from_a_held_out_clip(
    diffusion_checkpoint: Path, start_shards: Path, text_embedder: TextEmbedder
) -> None:
    config = _diffusion_config(
        diffusion_checkpoint,
        start_from_footage=True,
        start_shards_dir=str(start_shards),
        held_out_fraction=0.5,
    )
    generator = DiffusionClipGenerator(config, text_embedder)
    starts = dict(held_out_shard_starts(start_shards, "64x64", 0.5, 0, 1))
    keys = [s.key for s in iter_shard_samples(shard_paths(start_shards))]
    assert set(starts) == held_out_clip_ids(keys, 0.5, 0) and len(starts) == 3
    clips = generator.generate([ClipRequest(i, 100 + i, SAFE[0]) for i in range(4)])
    tokenizer = generator.tokenizer
    for clip in clips:
        assert clip.start in starts and clip.given_frames == 1 and clip.behaviour == "video2world"
        with torch.no_grad():
            first = torch.from_numpy(starts[clip.start][None])
            coded = tokenizer.decode_float(tokenizer.encode(first))[0, 0].clamp(-1, 1)
        np.testing.assert_allclose(
            clip.frames[0], ((coded + 1) / 2).permute(1, 2, 0).numpy(), atol=1e-5
        )


def test_video2world_refuses_starts_the_model_trained_on(
    diffusion_checkpoint: Path, start_shards: Path, text_embedder: TextEmbedder, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "video2world"
    checkpoint.mkdir()
    for path in diffusion_checkpoint.iterdir():
        (checkpoint / path.name).write_bytes(path.read_bytes())
    (checkpoint / "training.json").write_text(
        json.dumps(
            {"train_config": {"shards_dir": str(start_shards), "held_out_fraction": 0.5, "seed": 3}}
        )
    )
    config = _diffusion_config(
        checkpoint,
        start_from_footage=True,
        start_shards_dir=str(start_shards),
        held_out_fraction=0.5,
    )
    with pytest.raises(ValueError, match="held-out starts need the same split"):
        DiffusionClipGenerator(config, text_embedder)
    DiffusionClipGenerator(dataclasses.replace(config, split_seed=3), text_embedder)


# ---- the guards around generation -------------------------------------------------------------


def test_refused_prompts_are_not_generated_and_are_logged(
    diffusion_checkpoint: Path,
    text_embedder: TextEmbedder,
    driving_model: WorldModel,
    tmp_path: Path,
) -> None:
    out = tmp_path / "synthetic"
    config = _run_config(
        out,
        "diffusion",
        prompts=[SAFE[0], BLOCKED, UNSAFE, SAFE[1]],
        diffusion=_diffusion_config(diffusion_checkpoint),
    )
    prompt_guard = PromptGuard(config.prompt_guard, embedder=text_embedder)
    generator = DiffusionClipGenerator(config.diffusion, text_embedder)
    result = synthesize(config, generator, prompt_guard, _open_guard(driving_model), progress=False)
    prompts = result.summary["prompts"]
    assert (prompts["given"], prompts["allowed"], prompts["refused"]) == (4, 2, 2)
    assert [r["stage"] for r in prompts["refusals"]] == ["blocklist", "classifier"]
    logged = [r for r in read_refusal_log(out / "refusals.jsonl") if r["guard"] == "prompt"]
    assert [r["prompt"] for r in logged] == [BLOCKED, UNSAFE]
    assert result.summary["total"]["written"] == 4
    episodes = read_episodes(out)
    assert [e.episode_id for e in episodes] == [0, 1, 2, 3]
    for episode in episodes:
        assert (episode.actions == NO_ACTION).all() and np.isnan(episode.rewards).all()
    prompts_by_episode = {
        int(e): p
        for path in sorted(out.glob("part-*.parquet"))
        for e, p in pq.read_table(path).to_pandas().groupby("episode")["prompt"].first().items()
    }
    assert prompts_by_episode == {0: SAFE[0], 1: SAFE[1], 2: SAFE[0], 3: SAFE[1]}


def test_nothing_is_generated_when_every_prompt_is_refused(
    diffusion_checkpoint: Path, text_embedder: TextEmbedder, tmp_path: Path
) -> None:
    config = _run_config(
        tmp_path, "diffusion", prompts=[BLOCKED], diffusion=_diffusion_config(diffusion_checkpoint)
    )
    generator = _Counting(_Playback([], uses_prompts=True))
    guard = PromptGuard(config.prompt_guard, embedder=text_embedder)
    result = synthesize(config, generator, guard, progress=False)
    assert generator.calls == [] and result.summary["total"]["generated"] == 0
    assert not list(tmp_path.glob("part-*"))


def test_broken_output_is_rejected_by_the_post_guard(
    tiny_footage: Path, driving_model: WorldModel, tmp_path: Path
) -> None:
    real = next(e.frames for e in read_episodes(tiny_footage) if len(e.frames) >= 6)[:6]
    nan = real.astype(np.float32) / 255.0
    nan[3, 10:20, 10:20] = np.nan
    blank = np.full_like(real, 97)
    black = real.copy()
    black[2:4] = 0
    clips = [nan, blank, black, real]
    config = _run_config(tmp_path, "world_model", n_clips=4, clips_per_part=4)
    guard = VideoGuard(config.video_guard, model=driving_model)
    result = synthesize(config, _Playback(clips), video_guard=guard, progress=False)
    total = result.summary["total"]
    assert total["rejected"] == {"blank": 1, "corrupt": 1, "finite": 1}
    assert (total["generated"], total["written"]) == (4, 1)
    record = json.loads(record_path(tmp_path, 0).read_text())
    assert record["written"] == [3] and [r["episode"] for r in record["rejected"]] == [0, 1, 2]
    logged = [r for r in read_refusal_log(tmp_path / "refusals.jsonl") if r["guard"] == "video"]
    assert [(r["clip_id"], r["stage"]) for r in logged] == [
        (f"{tmp_path.name}/episode-0", "finite"),
        (f"{tmp_path.name}/episode-1", "blank"),
        (f"{tmp_path.name}/episode-2", "corrupt"),
    ]
    (episode,) = read_episodes(tmp_path)
    assert episode.episode_id == 3
    assert np.abs(episode.frames.astype(float) - real).mean() < 3.0  # mp4 is lossy


# ---- the output is footage --------------------------------------------------------------------


@pytest.fixture(scope="module")
def world_model_footage(
    tmp_path_factory: pytest.TempPathFactory, driving_model: WorldModel, zoo: list
) -> Path:
    """8 clips of the committed driving model, up to 12 steps, in parts of 4."""
    out = tmp_path_factory.mktemp("synthetic") / "world_model"
    config = _run_config(
        out,
        "world_model",
        n_clips=8,
        clips_per_part=4,
        world_model=WorldModelSynthesisConfig(policies=POLICIES, max_steps=12),
    )
    generator = WorldModelClipGenerator(config.world_model, zoo=zoo)
    guard = VideoGuard(config.video_guard, model=driving_model)
    synthesize(config, generator, video_guard=guard, progress=False)
    return out


def test_world_model_clips_are_read_like_recorded_footage(world_model_footage: Path) -> None:
    summary = json.loads((world_model_footage / "summary.json").read_text())["total"]
    episodes = read_episodes(world_model_footage)
    assert summary["generated"] == 8 and len(episodes) == summary["written"] >= 4
    starts = world_models.load_start_contexts(world_models.checkpoint_path("driving"))[0]
    for episode in episodes:
        assert episode.behaviour == POLICIES[episode.episode_id % len(POLICIES)]
        assert 1 <= episode.length <= 12 and episode.frames.shape[1:] == (64, 64, 3)
        assert ((0 <= episode.actions) & (episode.actions < 5)).all()
        if episode.behaviour == "always_slower":
            assert (episode.actions == 4).all()
        assert np.isfinite(episode.rewards).all()
        assert not episode.terminated[:-1].any()
    mp4, parquet = part_paths(world_model_footage, 0)
    table, video = pq.read_table(parquet).to_pandas(), read_video(mp4)
    assert table["synthetic"].all() and set(table["generator"]) == {"world_model"}
    for _, rows in table.groupby("episode"):
        first, last, final_step = rows.iloc[0], rows.iloc[-1], rows.iloc[-2]
        assert not first["generated"] and rows["generated"].iloc[1:].all()
        index = int(first["start"].split("[")[1].rstrip("]"))
        start_frame = video[int(first["frame"])].astype(float)
        assert np.abs(start_frame - starts[index, -1].numpy()).mean() < 3.0  # mp4 is lossy
        assert last["action"] == NO_ACTION and np.isnan(last["reward"])
        assert final_step["terminated"] or final_step["truncated"]
        at_limit = len(rows) == 13 and not final_step["terminated"]
        assert final_step["truncated"] == at_limit


def test_synthetic_clips_are_curated_and_sharded_with_recorded_footage(
    world_model_footage: Path, tiny_footage: Path, tmp_path: Path
) -> None:
    encoder = VideoEncoderConfig(frames=4, size=32, channels=(8, 16), frame_dim=32, groups=4)
    config = CurationConfig(
        footage_dirs=[str(tiny_footage), str(world_model_footage)],
        work_dir=str(tmp_path / "curated"),
        clip_batch=8,
        clips_per_shard=8,
        device="cpu",
        encoder_holdout_fraction=0.0,
        encoder_training=EmbedTrainConfig(steps=2, batch_size=8, encoder=encoder, progress=False),
        dedup=DedupConfig(clusters=2, epsilon=0.0),
    )
    result = curate(config, progress=False)
    catalog = read_catalog(result.shards_dir).to_pandas()
    synthetic = catalog[catalog["source"] == source_name(world_model_footage)]
    parts = len(list(world_model_footage.glob("part-*.parquet")))
    assert (
        result.summary["split"]["parts"] == 2 + parts and not result.summary["split"]["quarantined"]
    )
    assert len(synthetic) >= 1 and synthetic["frames"].notna().all()
    kept = synthetic[synthetic["drop_reason"].isna()]
    assert len(kept) >= 1 and kept["caption"].str.startswith("The ego car").all()
    assert kept["shard"].notna().all()
    sharded = {
        s.key: pq.read_table(io.BytesIO(s.parquet)).to_pandas()
        for s in iter_shard_samples(shard_paths(result.shards_dir))
    }
    for clip_id in kept["clip_id"]:
        truth = sharded[clip_id]
        assert truth["synthetic"].all() and set(truth["generator"]) == {"world_model"}
    episodes = read_shard_episodes(result.shards_dir)
    assert len(episodes) >= len(kept)


def test_diffusion_footage_goes_through_shot_splitting_and_filtering(
    diffusion_checkpoint: Path,
    text_embedder: TextEmbedder,
    driving_model: WorldModel,
    tmp_path: Path,
) -> None:
    out = tmp_path / "diffusion"
    config = _run_config(out, "diffusion", diffusion=_diffusion_config(diffusion_checkpoint))
    generator = DiffusionClipGenerator(config.diffusion, text_embedder)
    guard = PromptGuard(config.prompt_guard, embedder=text_embedder)
    synthesize(config, generator, guard, _open_guard(driving_model), progress=False)
    clip_dir = tmp_path / "clips"
    rows = [
        {"key": f"p{k}", "source": source_name(out), "source_dir": str(out), "part": k}
        for k in range(2)
    ]
    split = pipeline.split_parts(rows, ShotConfig(), str(clip_dir))
    for part in split:
        assert part["quarantine_reason"] is None and part["frames"] == 18
        assert part["true_cuts"] == [9]
        covered = [f for start, end in part["clips"] for f in range(start, end)]
        assert covered == list(range(18))
    spans = [
        {"source": p["source"], "part": p["part"], "start": s, "end": e, "height": 64, "width": 64}
        for p in split
        for s, e in p["clips"]
    ]
    scored = pipeline.filter_clips(spans, FilterConfig(), str(clip_dir), str(tmp_path))
    assert len(scored) == len(spans)
    assert all(row["pixel_std"] >= 0 and "drop_reason" in row for row in scored)


# ---- resuming and configs ---------------------------------------------------------------------


def test_a_killed_run_resumes_without_writing_anything_twice(
    driving_model: WorldModel, zoo: list, tmp_path: Path
) -> None:
    config = _run_config(tmp_path / "resumed", "world_model", n_clips=6, clips_per_part=2)
    guard = VideoGuard(config.video_guard, model=driving_model)
    inner = WorldModelClipGenerator(config.world_model, zoo=zoo)
    killed = _Counting(inner, die_on=2)
    with pytest.raises(KeyboardInterrupt):
        synthesize(config, killed, video_guard=guard, progress=False)
    out = Path(config.out_dir)
    assert record_path(out, 0).exists() and not record_path(out, 1).exists()
    done = [p for p in out.glob("part-00000.*")]
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in done}
    resumed = _Counting(inner)
    result = synthesize(config, resumed, video_guard=guard, progress=False)
    assert resumed.calls == [[2, 3], [4, 5]]
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in done} == before
    assert result.summary["this_run"]["generated"] == 4
    assert result.summary["total"]["generated"] == 6

    whole = dataclasses.replace(config, out_dir=str(tmp_path / "whole"))
    synthesize(whole, inner, video_guard=guard, progress=False)
    for part in range(3):
        for path_a, path_b in zip(
            part_paths(out, part), part_paths(Path(whole.out_dir), part), strict=True
        ):
            assert path_a.exists() == path_b.exists()
            if path_a.suffix == ".parquet" and path_a.exists():
                pd.testing.assert_frame_equal(
                    pq.read_table(path_a).to_pandas(), pq.read_table(path_b).to_pandas()
                )
            elif path_a.exists():
                np.testing.assert_array_equal(read_video(path_a), read_video(path_b))
    assert not list(out.rglob("*.tmp*"))

    again = _Counting(inner)
    synthesize(config, again, video_guard=guard, progress=False)
    assert again.calls == []
    with pytest.raises(ValueError, match="n_clips"):
        synthesize(dataclasses.replace(config, n_clips=8), again, video_guard=guard)
    synthesize(dataclasses.replace(config, threads=2), again, video_guard=guard, progress=False)


def test_the_yaml_fills_the_config_and_bad_ones_are_refused() -> None:
    with initialize(version_base=None, config_path="../../experiments/conf"):
        cfg = compose(
            "synthesize",
            ["generator=world_model", "n_clips=3", "out_dir=somewhere", "world_model.max_steps=5"],
        )
    config = to_dataclass(cfg, SynthesizeConfig)
    assert config.generator == "world_model" and config.world_model.max_steps == 5
    assert config.video_guard.log_path == "somewhere/refusals.jsonl"
    assert config.prompt_guard.log_path == "somewhere/refusals.jsonl"
    assert len(config.prompts) == 3 and config.diffusion.sampler.steps == 8
    with pytest.raises(ValueError, match="generator must be one of"):
        SynthesizeConfig(generator="gan", prompts=["x"])
    with pytest.raises(ValueError, match="needs prompts"):
        SynthesizeConfig(generator="diffusion", prompts=[])
    with pytest.raises(ValueError, match="float_range"):
        SynthesizeConfig(prompts=["x"], video_guard=VideoGuardConfig(float_range=(-1.0, 1.0)))
    assert [r.prompt for r in clip_requests(5, 0, ["a", "b"])] == ["a", "b", "a", "b", "a"]
    assert clip_requests(3, 0, []) == [] and len(clip_requests(3, 0, None)) == 3
