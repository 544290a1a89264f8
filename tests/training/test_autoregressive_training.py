"""Autoregressive pre-training: token windows from captioned shards, the next-token loss
learning, the pretrain -> Video2World hand-over, resumable and refusing runs, and two torchrun
processes training the weights one process trains.

A tiny random discrete tokenizer (32x32 frames -> 4 x 4 tokens of 4*3*3 = 36 ids, 4x temporal)
codes a shard folder of squares moving left or right, captioned by direction; the GPT is 32
wide.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import wfm_sim.stage_loop as stage_loop
import wfm_sim.training.autoregressive as training
from tests.training.torchrun import RELATIVE_GAP, hydra_overrides, relative_gap, run_torchrun
from wfm_sim.data.shards import ShardSample, shard_group, write_shard
from wfm_sim.tokenizer import VideoTokenizer, VideoTokenizerConfig, load_tokenizer, save_tokenizer
from wfm_sim.tokenizer.data import tokenizer_clips
from wfm_sim.training.autoregressive import (
    AutoregressiveTrainConfig,
    TokenWindows,
    evaluate_next_token,
    initial_model,
    next_token_loss,
    token_windows,
    train_autoregressive,
    unigram_cross_entropy,
)
from wfm_sim.video import write_mp4
from world_models.autoregressive import (
    AutoregressiveConfig,
    AutoregressiveWorldModel,
    load_autoregressive,
    read_autoregressive_checkpoint,
    with_text_conditioning,
)

REPO = Path(__file__).resolve().parents[2]
SIZE = 32
TOKENIZER = VideoTokenizerConfig(kind="discrete", frame_size=SIZE, fsq_levels=(4, 3, 3), width=8)
VOCAB = 36
MODEL = AutoregressiveConfig(vocab_size=VOCAB, latent_size=4, frames=3, width=32, depth=2, heads=2)
CAPTIONS = ("A red square slides to the left.", "A red square slides to the right.")
LENGTHS = (9, 10, 11, 12, 9, 13, 10, 11, 12, 9)
WINDOWS = sum(n - 8 for n in LENGTHS)  # 9-frame windows (3 latent frames), stride 1


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
    """A saved discrete tokenizer with fixed random weights."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        tokenizer = VideoTokenizer(TOKENIZER).eval()
    return save_tokenizer(tokenizer, tmp_path_factory.mktemp("tokenizer") / "checkpoint")


def _config(
    run_dir: Path, shards: Path, tokenizer_dir: Path, **overrides: Any
) -> AutoregressiveTrainConfig:
    config = AutoregressiveTrainConfig(
        shards_dir=str(shards),
        tokenizer_dir=str(tokenizer_dir),
        run_dir=str(run_dir),
        held_out_fraction=0.2,
        threads=1,
        pretrain_steps=60,
        video2world_steps=6,
        batch=8,
        lr=3e-3,
        video2world_lr=1e-3,
        text_tokens=2,
        checkpoint_every=2,
        eval_every=10,
        speed_clips=2,
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
    token_windows(_config(run_dir, shards, tokenizer_dir), load_tokenizer(tokenizer_dir))
    return run_dir / "latents.safetensors"


@pytest.fixture
def make_run(
    tmp_path: Path, shards: Path, tokenizer_dir: Path, latent_cache: Path
) -> Callable[..., AutoregressiveTrainConfig]:
    """``(name, **overrides) -> AutoregressiveTrainConfig`` of a fresh run folder with the cache."""

    def make(name: str, **overrides: Any) -> AutoregressiveTrainConfig:
        run_dir = tmp_path / name
        run_dir.mkdir()
        shutil.copy(latent_cache, run_dir / latent_cache.name)
        return _config(run_dir, shards, tokenizer_dir, **overrides)

    return make


@pytest.fixture(scope="module")
def finished(
    tmp_path_factory: pytest.TempPathFactory, shards: Path, tokenizer_dir: Path, latent_cache: Path
) -> dict[str, Path]:
    """The exports of one uninterrupted run (60 pretraining + 6 Video2World steps)."""
    run_dir = tmp_path_factory.mktemp("run")
    shutil.copy(latent_cache, run_dir / latent_cache.name)
    return train_autoregressive(_config(run_dir, shards, tokenizer_dir))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_token_windows_are_the_tokenizer_ids_of_each_window(
    shards: Path, tokenizer_dir: Path, latent_cache: Path
) -> None:
    tokenizer = load_tokenizer(tokenizer_dir)
    config = _config(latent_cache.parent, shards, tokenizer_dir)
    train, held = token_windows(config, tokenizer)
    assert len(train) + len(held) == WINDOWS
    assert train.tokens.shape[1:] == (3, 4, 4) and train.tokens.dtype == torch.int64
    assert set(train.clip.tolist()).isdisjoint(held.clip.tolist())
    assert len(torch.unique(torch.cat([train.tokens, held.tokens]))) > 4  # not one code
    # the held-out clips are the tokenizer's, and their windows are its token ids
    _, held_clips = tokenizer_clips(shards, f"{SIZE}x{SIZE}", 0.2, seed=0)
    with torch.no_grad():
        firsts = [tokenizer.encode_indices(torch.from_numpy(c[None, :9]))[0] for c in held_clips]
    assert len(firsts) == len(torch.unique(held.clip))
    for tokens in firsts:
        assert any(torch.equal(tokens, window) for window in held.tokens)
    same_clip = train.clip == train.clip[0]
    assert torch.equal(train.text[same_clip], train.text[0].expand(int(same_clip.sum()), -1))
    assert len(torch.unique(torch.cat([train.text, held.text]), dim=0)) == 2


def _shifting_windows(n: int, seed: int) -> TokenWindows:
    """Token clips whose frames 1 and 2 are frame 0's grid shifted one column per frame, left
    or right by the 'caption' (its first coordinate); frame 0 is random."""
    rng = np.random.default_rng(seed)
    direction = rng.integers(0, 2, n) * 2 - 1
    tokens = torch.zeros(n, 3, 4, 4, dtype=torch.long)
    tokens[:, 0] = torch.from_numpy(rng.integers(0, VOCAB, (n, 4, 4)))
    for i in range(n):
        for t in (1, 2):
            tokens[i, t] = torch.roll(tokens[i, t - 1], int(direction[i]), dims=1)
    text = torch.zeros(n, 384)
    text[:, 0] = torch.from_numpy(direction).float()
    return TokenWindows(tokens, text, torch.arange(n))


def _fit(
    model: AutoregressiveWorldModel,
    train: TokenWindows,
    steps: int,
    context_frames: int,
    rng: np.random.Generator,
) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    mask = torch.arange(MODEL.sequence_length)[None].expand(16, -1) >= context_frames * 16
    for _ in range(steps):
        windows = train.take(rng.integers(0, len(train), 16))
        text = windows.text if model.config.text_tokens else None
        keep = torch.from_numpy(rng.random(16) >= 0.1) if text is not None else None
        total, count = next_token_loss(model, windows.flat(), mask, text, keep)
        optimizer.zero_grad()
        (total / count).backward()
        optimizer.step()


def test_next_token_loss_falls_and_captions_help_the_continuation() -> None:
    train, held = _shifting_windows(256, seed=0), _shifting_windows(32, seed=1)
    model = initial_model(AutoregressiveTrainConfig(model=MODEL))
    before = evaluate_next_token(model, held)
    # small initial logits: about the uniform distribution's log(36) = 3.58 nats
    assert before["cross_entropy"] == pytest.approx(math.log(VOCAB), abs=0.05)
    assert unigram_cross_entropy(train, held, VOCAB) == pytest.approx(math.log(VOCAB), abs=0.05)
    rng = np.random.default_rng(0)
    _fit(model, train, 300, 0, rng)
    after = evaluate_next_token(model, held)
    # frame 0 is random (nothing to learn), frame 2 is frame 1 shifted the way frame 1 was
    assert after["per_frame"][0] > 3.4  # measured: 3.66
    assert after["per_frame"][2] < 0.5  # measured: 0.18
    # Video2World: the caption tells the direction before frame 1's tokens do
    with torch.random.fork_rng():
        torch.manual_seed(1)
        video2world = with_text_conditioning(model, 2)
    start = evaluate_next_token(video2world, held, context_frames=1)
    assert start == evaluate_next_token(model, held, context_frames=1)
    _fit(video2world, train, 150, 1, rng)
    with_text = evaluate_next_token(video2world, held, 1)["cross_entropy"]
    null_text = evaluate_next_token(video2world, held, 1, use_text=False)["cross_entropy"]
    assert with_text < start["cross_entropy"] and with_text < 0.97 * null_text  # 0.73, 0.85


def test_a_run_exports_both_stages_with_their_measurements(finished: dict[str, Path]) -> None:
    assert list(finished) == ["pretrain", "video2world"]
    run_dir = finished["pretrain"].parents[1]
    for stage, folder in finished.items():
        saved, tokenizer, info = read_autoregressive_checkpoint(folder)
        expected = MODEL if stage == "pretrain" else dataclasses.replace(MODEL, text_tokens=2)
        assert (saved, tokenizer, info["stage"]) == (expected, TOKENIZER, stage)
        load_autoregressive(folder, expected=expected)
        report = json.loads((folder / "training.json").read_text())
        assert report["windows"]["train"] + report["windows"]["held_out"] == WINDOWS
        assert report["processes"] == 1
        assert len(list((run_dir / "tb" / stage).glob("events.out.tfevents.*"))) == 1
    pretrain = json.loads((finished["pretrain"] / "training.json").read_text())["held_out"]
    scores = pretrain["context_0"]
    assert scores["before"]["cross_entropy"] == pytest.approx(math.log(VOCAB), abs=0.1)
    # the squares' tokens repeat a lot: 60 steps beat the start and the unigram baseline
    assert scores["after"]["cross_entropy"] < scores["unigram_cross_entropy"]
    assert scores["unigram_cross_entropy"] < scores["before"]["cross_entropy"]
    report = json.loads((finished["video2world"] / "training.json").read_text())
    assert set(report["held_out"]) == {"context_1", "context_2"}
    for scores in report["held_out"].values():
        assert len(scores["after"]["per_frame"]) == len(scores["after_null_text"]["per_frame"])
    sampled = report["held_out_video2world"]
    assert 0 <= sampled["greedy_token_accuracy"] <= 1 and sampled["context_frames"] == 1
    decoding = report["decoding"]
    assert decoding["same_tokens"] and decoding["generated_tokens"] == 2 * 2 * 16


def test_video2world_starts_from_the_pretrained_weights(
    finished: dict[str, Path], make_run: Callable[..., AutoregressiveTrainConfig]
) -> None:
    """A run whose Video2World has 0 steps exports the pretrained model plus zeroed
    cross-attention: the same weights where they overlap, the same predictions."""
    config = make_run("handover", video2world_steps=0)
    shutil.copy(  # pretraining is already done: the rerun only hands over
        finished["pretrain"].parents[1] / "pretrain_state.safetensors", config.run_dir
    )
    exports = train_autoregressive(config)
    pretrained, video2world = _weights(exports["pretrain"]), _weights(exports["video2world"])
    assert set(pretrained) < set(video2world)
    assert all(torch.equal(v, video2world[k]) for k, v in pretrained.items())
    assert all(torch.equal(v, _weights(finished["pretrain"])[k]) for k, v in pretrained.items())
    report = json.loads((exports["video2world"] / "training.json").read_text())["held_out"]
    for scores in report.values():
        assert scores["after"]["cross_entropy"] == pytest.approx(
            scores["before"]["cross_entropy"], abs=1e-6
        )
    trained = _weights(finished["video2world"])  # and training Video2World moves on
    assert not torch.equal(
        trained["blocks.0.cross.proj.weight"], video2world["blocks.0.cross.proj.weight"]
    )


def test_a_killed_run_resumes_to_the_uninterrupted_weights(
    finished: dict[str, Path],
    make_run: Callable[..., AutoregressiveTrainConfig],
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
        train_autoregressive(config)
    monkeypatch.setattr(stage_loop, "save_training_state", save)
    draw = training._draw_batch
    drawn: list[int] = []

    def counted(*args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        drawn.append(1)
        return draw(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(training, "_draw_batch", counted)
    resumed = _weights(train_autoregressive(config)["video2world"])
    assert len(drawn) == config.video2world_steps - 2  # only the steps after the saved state
    uninterrupted = _weights(finished["video2world"])
    for key, value in uninterrupted.items():
        assert torch.allclose(resumed[key], value, atol=1e-6), key


def test_runs_refuse_another_model_schedule_or_tokenizer(
    finished: dict[str, Path],
    make_run: Callable[..., AutoregressiveTrainConfig],
    tmp_path: Path,
) -> None:
    source = finished["pretrain"].parents[1]
    other_model = make_run("other_model", model=dataclasses.replace(MODEL, depth=3))
    shutil.copy(source / "run_config.json", other_model.run_dir)
    with pytest.raises(ValueError, match="another model or tokenizer"):
        train_autoregressive(other_model)
    longer = make_run("longer", pretrain_steps=40)
    shutil.copy(source / "pretrain_state.safetensors", longer.run_dir)
    with pytest.raises(ValueError, match="schedule"):
        train_autoregressive(longer)
    wrong_vocab = make_run("wrong_vocab", model=dataclasses.replace(MODEL, vocab_size=1000))
    with pytest.raises(ValueError, match="model.vocab_size=36"):
        train_autoregressive(wrong_vocab)
    continuous = save_tokenizer(
        VideoTokenizer(dataclasses.replace(TOKENIZER, kind="continuous")), tmp_path / "cv"
    )
    with pytest.raises(ValueError, match="needs a discrete"):
        train_autoregressive(
            dataclasses.replace(make_run("continuous"), tokenizer_dir=str(continuous))
        )
    with pytest.raises(ValueError, match="unconditioned pre-training model"):
        make_run("conditioned", model=dataclasses.replace(MODEL, text_tokens=2))


def test_two_torchrun_processes_train_the_weights_one_process_trains(
    finished: dict[str, Path], make_run: Callable[..., AutoregressiveTrainConfig]
) -> None:
    """The Hydra entry point under torchrun (gloo, 2 x batch 4) against one process (batch 8)."""
    config = make_run("parallel")
    overrides = hydra_overrides(config, groups=("model", "sampling"))
    hydra_dir = Path(config.run_dir) / "hydra"
    result = run_torchrun(
        "-m", "experiments.train_autoregressive", *overrides, f"hydra.run.dir={hydra_dir}"
    )
    exports = Path(config.run_dir) / "checkpoints"
    if not (exports / "video2world" / "training.json").exists():
        pytest.fail(f"the torchrun run failed:\n{result.stderr[-4000:]}")
    assert json.loads((exports / "video2world" / "training.json").read_text())["processes"] == 2
    init = initial_model(config).state_dict()
    # the pre-trained model's weights; Video2World adds cross-attention
    for stage in ("pretrain", "video2world"):
        single, parallel = _weights(finished[stage]), _weights(exports / stage)
        assert relative_gap(single, parallel, init) < RELATIVE_GAP, stage
    single, parallel = _weights(finished["video2world"]), _weights(exports / "video2world")
    # the weights Video2World adds, as a whole against their size (elementwise, Adam's division
    # by a nearly-zero gradient's magnitude turns summation order into visible differences)
    added = {key: torch.zeros_like(value) for key, value in single.items() if key not in init}
    assert relative_gap(single, parallel, added) < RELATIVE_GAP
