"""Diffusion pre-training: windows coded from captioned shards, the EDM loss learning, the
Text2World -> Video2World hand-over, resumable and refusing runs, and two torchrun processes
training the weights one process trains.

A tiny random causal tokenizer (32x32 frames -> 4 x 4 x 4 latents, 4x temporal) codes a shard
folder of squares moving left or right, captioned by direction; the denoiser is 32 wide.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import wfm_sim.stage_loop as stage_loop
import wfm_sim.training.diffusion as training
from tests.training.torchrun import RELATIVE_GAP, hydra_overrides, relative_gap, run_torchrun
from wfm_sim.data.shards import ShardSample, shard_group, write_shard
from wfm_sim.tokenizer import VideoTokenizer, VideoTokenizerConfig, load_tokenizer, save_tokenizer
from wfm_sim.tokenizer.data import held_out_clip_ids, tokenizer_clips
from wfm_sim.training.diffusion import (
    DiffusionTrainConfig,
    LatentWindows,
    denoising_error,
    encode_windows,
    evaluate_denoising,
    fit_latent_statistics,
    latent_windows,
    train_diffusion,
    window_source,
)
from wfm_sim.video import write_mp4
from world_models.diffusion import (
    DiffusionConfig,
    DiffusionWorldModel,
    load_diffusion,
    read_diffusion_checkpoint,
)

REPO = Path(__file__).resolve().parents[2]
SIZE = 32
TOKENIZER = VideoTokenizerConfig(frame_size=SIZE, latent_channels=4, width=8)
MODEL = DiffusionConfig(latent_channels=4, latent_size=4, frames=3, width=32, depth=2, heads=2)
CAPTIONS = ("A red square slides to the left.", "A red square slides to the right.")
LENGTHS = (9, 10, 11, 12, 9, 13, 10, 11, 12, 9)


class _Killed(Exception):
    pass


def _square_clip(rng: np.random.Generator, frames: int, direction: int) -> np.ndarray:
    clip = np.full((frames, SIZE, SIZE, 3), 60, np.uint8)
    x, y = int(rng.integers(0, 24)), int(rng.integers(0, 24))
    for t in range(frames):
        left = (x + direction * 2 * t) % 24
        clip[t, y : y + 8, left : left + 8] = (220, 40, 40)
    return clip


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 clips (9-13 frames) of a square moving left (even clips) or right, captioned so."""
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    samples = []
    for i, frames in enumerate(LENGTHS):
        mp4 = root / f"clip{i}.mp4"
        write_mp4(mp4, _square_clip(rng, frames, 1 if i % 2 else -1))
        samples.append(
            ShardSample(f"clip{i:03d}", mp4.read_bytes(), b"", {"caption": CAPTIONS[i % 2]})
        )
        mp4.unlink()
    write_shard(root / shard_group(SIZE, SIZE) / "shard-00000.tar", samples)
    return root


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tokenizer with fixed random weights (its latents keep the clips' structure)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        tokenizer = VideoTokenizer(TOKENIZER).eval()
    return save_tokenizer(tokenizer, tmp_path_factory.mktemp("tokenizer") / "checkpoint")


def _config(
    run_dir: Path, shards: Path, tokenizer_dir: Path, **overrides: Any
) -> DiffusionTrainConfig:
    config = DiffusionTrainConfig(
        shards_dir=str(shards),
        tokenizer_dir=str(tokenizer_dir),
        run_dir=str(run_dir),
        held_out_fraction=0.2,
        threads=1,
        text2world_steps=60,
        video2world_steps=6,
        batch=16,
        lr=5e-3,
        video2world_lr=1e-3,
        checkpoint_every=2,
        eval_every=10,
        bf16=False,  # fp32: reruns and process counts differ only by summation order
        model=MODEL,
    )
    return dataclasses.replace(config, **overrides)


@pytest.fixture(scope="module")
def latent_cache(
    tmp_path_factory: pytest.TempPathFactory, shards: Path, tokenizer_dir: Path
) -> Path:
    """The coded windows and caption embeddings (MiniLM loads once), for runs to copy."""
    run_dir = tmp_path_factory.mktemp("cache")
    latent_windows(
        window_source(_config(run_dir, shards, tokenizer_dir)), load_tokenizer(tokenizer_dir)
    )
    return run_dir / "latents.safetensors"


@pytest.fixture
def make_run(
    tmp_path: Path, shards: Path, tokenizer_dir: Path, latent_cache: Path
) -> Callable[..., DiffusionTrainConfig]:
    """``(name, **overrides) -> DiffusionTrainConfig`` of a fresh run folder holding the cache."""

    def make(name: str, **overrides: Any) -> DiffusionTrainConfig:
        run_dir = tmp_path / name
        run_dir.mkdir()
        shutil.copy(latent_cache, run_dir / latent_cache.name)
        return _config(run_dir, shards, tokenizer_dir, **overrides)

    return make


@pytest.fixture(scope="module")
def finished(
    tmp_path_factory: pytest.TempPathFactory, shards: Path, tokenizer_dir: Path, latent_cache: Path
) -> dict[str, Path]:
    """The exports of one uninterrupted run (60 Text2World + 6 Video2World steps)."""
    run_dir = tmp_path_factory.mktemp("run")
    shutil.copy(latent_cache, run_dir / latent_cache.name)
    return train_diffusion(_config(run_dir, shards, tokenizer_dir))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_held_out_clips_are_the_ones_the_tokenizer_held_out(shards: Path) -> None:
    keys = [f"clip{i:03d}" for i in range(len(LENGTHS))]
    held = held_out_clip_ids(keys, 0.2, seed=0)
    assert len(held) == 2
    _, tokenizer_held = tokenizer_clips(shards, f"{SIZE}x{SIZE}", 0.2, seed=0)
    assert sorted(len(c) for c in tokenizer_held) == sorted(LENGTHS[int(k[4:])] for k in held)


def test_each_window_is_coded_on_its_own_from_its_first_frame(tokenizer_dir: Path) -> None:
    tokenizer = load_tokenizer(tokenizer_dir)
    rng = np.random.default_rng(1)
    clips = [_square_clip(rng, 11, 1), _square_clip(rng, 8, -1), _square_clip(rng, 10, -1)]
    latents, clip = encode_windows(tokenizer, clips, window_frames=9, stride=1, batch=2)
    assert clip.tolist() == [0, 0, 0, 2, 2]  # the 8-frame clip is too short for a window
    assert latents.shape == (5, 3, 4, 4, 4)
    with torch.no_grad():
        alone = tokenizer.encode(torch.from_numpy(clips[0][2:11])[None])[0]
    assert torch.allclose(latents[2], alone, atol=1e-6)
    strided, _ = encode_windows(tokenizer, clips, window_frames=9, stride=2)
    assert len(strided) == 3
    with pytest.raises(ValueError, match="no clip has the 13 frames"):
        encode_windows(tokenizer, clips, window_frames=13, stride=1)


def test_cached_windows_pair_each_clip_with_its_caption(
    shards: Path, tokenizer_dir: Path, latent_cache: Path
) -> None:
    config = _config(latent_cache.parent, shards, tokenizer_dir)
    train, held = latent_windows(window_source(config), load_tokenizer(tokenizer_dir))
    assert len(train) + len(held) == sum(n - 8 for n in LENGTHS)
    assert set(train.clip.tolist()).isdisjoint(held.clip.tolist())
    every = torch.cat([train.text, held.text])
    assert len(torch.unique(every, dim=0)) == 2  # one embedding per caption
    same_clip = train.clip == train.clip[0]
    assert torch.equal(train.text[same_clip], train.text[0].expand(int(same_clip.sum()), -1))
    assert float(train.text[0].norm()) == pytest.approx(1.0, abs=1e-4)  # a MiniLM unit vector


def test_latent_statistics_centre_each_channel() -> None:
    latents = torch.randn(50, 3, 4, 4, 4) * 0.3 + torch.tensor([0.5, -0.2, 0.0, 0.1])[:, None, None]
    mean, sigma_data = fit_latent_statistics(latents)
    assert torch.allclose(mean, torch.tensor([0.5, -0.2, 0.0, 0.1]), atol=0.02)
    assert sigma_data == pytest.approx(0.3, abs=0.01)


def _structured_windows(n: int, seed: int) -> LatentWindows:
    """Latent clips of a bump moving one cell per frame, left or right by the 'caption'."""
    rng = np.random.default_rng(seed)
    direction = rng.integers(0, 2, n) * 2 - 1
    start = rng.integers(0, 4, n)
    latents = torch.full((n, 3, 4, 4, 4), -0.3)
    for i in range(n):
        for t in range(3):
            latents[i, t, :2, :, (start[i] + direction[i] * t) % 4] = 0.6
    text = torch.zeros(n, 384)
    text[:, 0] = torch.from_numpy(direction).float()
    return LatentWindows(latents, text, torch.arange(n))


def test_edm_error_starts_at_one_and_falls_when_fitting_structured_clips() -> None:
    train, held = _structured_windows(64, seed=0), _structured_windows(16, seed=1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = DiffusionWorldModel(MODEL)
    model.set_latent_statistics(*fit_latent_statistics(train.latents))
    before = evaluate_denoising(model, held, context_latents=0)["mean"]
    # zero-initialised output: D = c_skip x, whose EDM error is 1 for data of std sigma_data
    assert before == pytest.approx(1.0, abs=0.1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(80):
        index = rng.integers(0, len(train), 16)
        sigma = torch.from_numpy(np.exp(-1.0 + 1.4 * rng.standard_normal(16))).float()
        total, count = denoising_error(
            model,
            model.normalize(train.latents[index]),
            sigma,
            torch.randn(16, 3, 4, 4, 4, generator=generator),
            train.text[index],
            None,
            torch.zeros(16, 3, dtype=torch.bool),
        )
        optimizer.zero_grad()
        (total / count).backward()
        optimizer.step()
    after = evaluate_denoising(model, held, context_latents=0)["mean"]
    assert after < 0.6 * before, (before, after)  # measured: 0.98 -> 0.44


def test_a_run_exports_both_stages_with_their_measurements(
    finished: dict[str, Path], shards: Path, tokenizer_dir: Path
) -> None:
    assert list(finished) == ["text2world", "video2world"]
    run_dir = finished["text2world"].parents[1]
    for stage, folder in finished.items():
        saved, tokenizer, info = read_diffusion_checkpoint(folder)
        assert (saved, tokenizer, info["stage"]) == (MODEL, TOKENIZER, stage)
        model = load_diffusion(folder, expected=MODEL)
        assert 0.05 < float(model.sigma_data) < 2.0
        report = json.loads((folder / "training.json").read_text())
        assert report["windows"]["train"] + report["windows"]["held_out"] == sum(
            n - 8 for n in LENGTHS
        )
        assert report["processes"] == 1
        assert len(list((run_dir / "tb" / stage).glob("events.out.tfevents.*"))) == 1
    # 60 steps fit the moving squares: an untrained model scores 1.0 (see the test above)
    config = _config(run_dir, shards, tokenizer_dir)
    train, held = latent_windows(window_source(config), load_tokenizer(tokenizer_dir))
    text2world = load_diffusion(finished["text2world"])
    untrained = DiffusionWorldModel(MODEL)
    untrained.set_latent_statistics(text2world.latent_mean, float(text2world.sigma_data))
    for windows, bound in ((train, 0.9), (held, 1.0)):  # measured: 0.81, 0.90 (untrained 1.0)
        trained = evaluate_denoising(text2world, windows, 0)["mean"]
        assert trained < bound * evaluate_denoising(untrained, windows, 0)["mean"]
    video2world = json.loads((finished["video2world"] / "training.json").read_text())
    sampled = video2world["held_out_video2world"]
    assert sampled["context_latents"] == 1 and sampled["rmse"] > 0 and sampled["copy_last_rmse"] > 0


def test_video2world_starts_from_the_text2world_weights(
    finished: dict[str, Path], make_run: Callable[..., DiffusionTrainConfig]
) -> None:
    """A run whose Video2World has 0 steps exports Text2World's weights as Video2World."""
    config = make_run("handover", video2world_steps=0)
    shutil.copy(  # Text2World is already done: the rerun only hands over
        finished["text2world"].parents[1] / "text2world_state.safetensors", config.run_dir
    )
    exports = train_diffusion(config)
    text2world, video2world = _weights(exports["text2world"]), _weights(exports["video2world"])
    assert text2world.keys() == video2world.keys()
    assert all(torch.equal(text2world[k], video2world[k]) for k in text2world)
    assert all(torch.equal(v, _weights(finished["text2world"])[k]) for k, v in text2world.items())
    # and training Video2World moves on from there
    trained = _weights(finished["video2world"])
    assert not torch.equal(trained["patch_in.weight"], text2world["patch_in.weight"])


def test_a_killed_run_resumes_to_the_uninterrupted_weights(
    finished: dict[str, Path],
    make_run: Callable[..., DiffusionTrainConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_run("killed")
    save = stage_loop.save_training_state

    def save_then_die(path: Path, *args: object, **kwargs: object) -> None:
        save(path, *args, **kwargs)  # type: ignore[arg-type]
        if "video2world" in str(path) and args[2] == 2:
            raise _Killed

    monkeypatch.setattr(stage_loop, "save_training_state", save_then_die)
    with pytest.raises(_Killed):
        train_diffusion(config)
    monkeypatch.setattr(stage_loop, "save_training_state", save)
    draw = training._draw_batch
    drawn: list[int] = []

    def counted(*args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        drawn.append(1)
        return draw(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(training, "_draw_batch", counted)
    resumed = _weights(train_diffusion(config)["video2world"])
    assert len(drawn) == config.video2world_steps - 2  # only the steps after the saved state
    uninterrupted = _weights(finished["video2world"])
    for key, value in uninterrupted.items():
        assert torch.allclose(resumed[key], value, atol=1e-6), key


def test_runs_refuse_another_model_schedule_or_tokenizer(
    finished: dict[str, Path], make_run: Callable[..., DiffusionTrainConfig]
) -> None:
    source = finished["text2world"].parents[1]
    other_model = make_run("other_model", model=dataclasses.replace(MODEL, depth=3))
    shutil.copy(source / "run_config.json", other_model.run_dir)
    with pytest.raises(ValueError, match="another model or tokenizer"):
        train_diffusion(other_model)
    longer = make_run("longer", text2world_steps=40)
    shutil.copy(source / "text2world_state.safetensors", longer.run_dir)
    with pytest.raises(ValueError, match="schedule"):
        train_diffusion(longer)
    wrong_shape = make_run("wrong_shape", model=dataclasses.replace(MODEL, latent_size=8))
    with pytest.raises(ValueError, match="model.latent_size=4"):
        train_diffusion(wrong_shape)


def test_two_torchrun_processes_train_the_weights_one_process_trains(
    finished: dict[str, Path], make_run: Callable[..., DiffusionTrainConfig]
) -> None:
    """The Hydra entry point under torchrun (gloo, 2 x batch 4) against one process (batch 8)."""
    config = make_run("parallel")
    overrides = hydra_overrides(config, groups=("model", "sampler"))
    hydra_dir = Path(config.run_dir) / "hydra"
    result = run_torchrun(
        "-m", "experiments.train_diffusion", *overrides, f"hydra.run.dir={hydra_dir}"
    )
    exports = Path(config.run_dir) / "checkpoints"
    if not (exports / "video2world" / "training.json").exists():
        pytest.fail(f"the torchrun run failed:\n{result.stderr[-4000:]}")
    assert json.loads((exports / "video2world" / "training.json").read_text())["processes"] == 2
    with torch.random.fork_rng():  # as the trainer draws its initial weights
        torch.manual_seed(config.seed)
        init = DiffusionWorldModel(MODEL).state_dict()
    single, parallel = _weights(finished["video2world"]), _weights(exports / "video2world")
    assert relative_gap(single, parallel, init) < RELATIVE_GAP
