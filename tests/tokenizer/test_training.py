from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import wfm_sim.stage_loop as stage_loop
from wfm_sim.tokenizer import VideoTokenizerConfig, load_tokenizer
from wfm_sim.tokenizer.data import tokenizer_clips
from wfm_sim.tokenizer.training import TokenizerTrainConfig, train_tokenizer


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def make_config(tiny_shards: Path) -> Callable[..., TokenizerTrainConfig]:
    """``(run_dir, **overrides)``: 4 steps of batch 2 x 5 frames, every loss term on."""

    def make(run_dir: Path, **overrides: object) -> TokenizerTrainConfig:
        config = TokenizerTrainConfig(
            shards_dir=str(tiny_shards),
            run_dir=str(run_dir),
            held_out_fraction=0.34,
            steps=4,
            batch=2,
            clip_frames=5,
            checkpoint_every=2,
            eval_every=2,
            adversarial_weight=0.1,
            adversarial_start=2,
            tokenizer=VideoTokenizerConfig(kind="discrete", width=8),
        )
        return dataclasses.replace(config, **overrides)

    return make


@pytest.fixture(scope="module")
def finished_run(
    tmp_path_factory: pytest.TempPathFactory, make_config: Callable[..., TokenizerTrainConfig]
) -> Path:
    """The checkpoint folder of one uninterrupted 4-step run."""
    return train_tokenizer(make_config(tmp_path_factory.mktemp("run")))


def test_training_exports_a_loadable_tokenizer_with_its_report(finished_run: Path) -> None:
    run_dir = finished_run.parent
    assert finished_run == run_dir / "checkpoint"
    tokenizer = load_tokenizer(
        finished_run, expected=VideoTokenizerConfig(kind="discrete", width=8)
    )
    report = json.loads((finished_run / "training.json").read_text())
    assert report["name"] == tokenizer.config.name == "dv_4x8x8"
    assert report["clips"] == {"train": 4, "held_out": 2}
    assert 5 < report["held_out"]["psnr"] < 60 and -1 <= report["held_out"]["ssim"] <= 1
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    state = load_file(str(run_dir / "state.safetensors"))
    assert any(k.startswith("model.discriminator.") for k in state)  # the critic is resumed too


def test_a_killed_run_resumes_to_the_uninterrupted_weights(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    finished_run: Path,
    make_config: Callable[..., TokenizerTrainConfig],
) -> None:
    save = stage_loop.save_training_state

    def save_then_die(*args: object, **kwargs: object) -> None:
        save(*args, **kwargs)  # type: ignore[arg-type]
        if args[3] == 2:
            raise _Killed

    monkeypatch.setattr(stage_loop, "save_training_state", save_then_die)
    with pytest.raises(_Killed):
        train_tokenizer(make_config(tmp_path))
    assert not (tmp_path / "checkpoint").exists()
    monkeypatch.setattr(stage_loop, "save_training_state", save)
    resumed = load_tokenizer(train_tokenizer(make_config(tmp_path))).state_dict()
    # per-step batch seeds + restored AdamW moments: bit-identical on one thread
    for name, tensor in load_tokenizer(finished_run).state_dict().items():
        assert torch.equal(resumed[name], tensor), name


def test_resuming_under_another_schedule_or_model_is_refused(
    finished_run: Path, make_config: Callable[..., TokenizerTrainConfig]
) -> None:
    with pytest.raises(ValueError, match="schedule"):
        train_tokenizer(make_config(finished_run.parent, steps=6))
    other = VideoTokenizerConfig(kind="discrete", width=16)
    with pytest.raises(ValueError, match="another config"):
        train_tokenizer(make_config(finished_run.parent, tokenizer=other))


def test_clips_split_by_clip_deterministically(tiny_shards: Path) -> None:
    train, held_out = tokenizer_clips(tiny_shards, held_out_fraction=0.34, seed=0)
    again_train, again_held = tokenizer_clips(tiny_shards, held_out_fraction=0.34, seed=0)
    assert (len(train), len(held_out)) == (4, 2)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(train + held_out, again_train + again_held, strict=True)
    )
    assert sorted(len(c) for c in train + held_out) == [5, 6, 7, 9, 9, 11]
    assert all(c.dtype == np.uint8 and c.shape[1:] == (64, 64, 3) for c in train)
    with pytest.raises(FileNotFoundError, match="no shards at resolution 32x32"):
        tokenizer_clips(tiny_shards, resolution="32x32")


def test_windows_longer_than_every_clip_are_refused(
    tmp_path: Path, make_config: Callable[..., TokenizerTrainConfig]
) -> None:
    with pytest.raises(ValueError, match="clip_frames=33"):
        train_tokenizer(make_config(tmp_path, clip_frames=33))


def test_window_lengths_are_the_whole_groups_between_the_bounds() -> None:
    dv = VideoTokenizerConfig(kind="discrete", width=8)  # tc = 4
    assert TokenizerTrainConfig(clip_frames=17, tokenizer=dv).window_lengths() == [17]
    spread = TokenizerTrainConfig(clip_frames=17, min_clip_frames=1, tokenizer=dv)
    assert spread.window_lengths() == [1, 5, 9, 13, 17]
    assert TokenizerTrainConfig(
        clip_frames=17, min_clip_frames=6, tokenizer=dv
    ).window_lengths() == [9, 13, 17]
    per_frame = VideoTokenizerConfig(kind="discrete", width=8, temporal_compression=1)
    assert TokenizerTrainConfig(
        clip_frames=4, min_clip_frames=2, tokenizer=per_frame
    ).window_lengths() == [2, 3, 4]
    with pytest.raises(ValueError, match="min_clip_frames"):
        TokenizerTrainConfig(clip_frames=5, min_clip_frames=6, tokenizer=dv)
    with pytest.raises(ValueError, match=r"no window length 1 \+ k\*4"):
        TokenizerTrainConfig(clip_frames=8, min_clip_frames=6, tokenizer=dv)


def test_each_step_trains_on_windows_of_a_drawn_length(
    tmp_path: Path,
    make_config: Callable[..., TokenizerTrainConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import wfm_sim.tokenizer.training as training

    seen: list[int] = []
    original = training._step_losses

    def recording(*args: object) -> tuple[torch.Tensor, dict[str, float]]:
        video = args[2]
        assert isinstance(video, torch.Tensor)
        seen.append(video.shape[1])
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(training, "_step_losses", recording)
    train_tokenizer(make_config(tmp_path, steps=8, min_clip_frames=1, adversarial_weight=0.0))
    assert set(seen) == {1, 5}
