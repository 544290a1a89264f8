"""World-model training: an exported checkpoint, resumable state, and learning that happens."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

import wfm_sim.stage_loop as stage_loop
import wfm_sim.training.world_model as training
import world_models
from tests.tiny_wfms import PER_FRAME
from wfm_sim.checkpoints import load_training_state, save_training_state
from wfm_sim.data import read_episodes
from wfm_sim.data.footage import Episode
from wfm_sim.data.shards import ShardSample, shard_group, write_shard
from wfm_sim.tokenizer import VideoTokenizer, save_tokenizer
from wfm_sim.training import TrainConfig, train_world_model
from wfm_sim.training.world_model import crash_frame_indices, dynamics_loss
from wfm_sim.video import read_video, write_mp4
from world_models import WorldModel, WorldModelConfig, load_start_contexts, read_config
from world_models.model import SALIENCE_FILE, WEIGHTS_FILE


class _Killed(Exception):
    """Stands in for a run killed right after it saved its state."""


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / WEIGHTS_FILE))


def _module_and_optimizer(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.SiLU(), torch.nn.Linear(4, 2))
    return module, torch.optim.AdamW(module.parameters(), lr=1e-2)


def _adam_step(module: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(seed))
    optimizer.zero_grad()
    module(x).square().mean().backward()
    optimizer.step()


def test_tiny_run_exports_a_loadable_checkpoint_with_start_frames(
    tiny_checkpoint: Path, tiny_model_config: WorldModelConfig, tiny_footage: Path
) -> None:
    model = world_models.load(tiny_checkpoint)
    assert model.config == tiny_model_config
    # The tokens' salience (which show cars) is measured on the training footage and saved.
    assert (tiny_checkpoint / SALIENCE_FILE).exists()
    assert isinstance(model, WorldModel) and model.has_salience
    assert float(model.code_salience.min()) >= 0 and float(model.code_salience.max()) <= 1

    report = json.loads((tiny_checkpoint / "training.json").read_text())
    split = json.loads((tiny_checkpoint.parent / "split.json").read_text())
    assert report["held_out_episode_ids"] == split["held_out"]
    assert len(split["held_out"]) == 2 and sorted(split["train"] + split["held_out"]) == list(
        range(6)
    )
    # The start contexts are the first K frames and K-1 actions of held-out episodes (long
    # enough not to end inside them), never of training ones.
    episodes = {e.episode_id: e for e in read_episodes(tiny_footage)}
    frames, actions = load_start_contexts(tiny_checkpoint)
    k = read_config(tiny_checkpoint).context
    usable = [i for i in split["held_out"] if episodes[i].length >= k]
    assert frames.shape == (len(usable), k, 64, 64, 3) and frames.dtype == torch.uint8
    assert actions.shape == (len(usable), k - 1)
    for start, start_actions, episode_id in zip(
        frames.numpy(), actions.numpy(), usable, strict=True
    ):
        np.testing.assert_array_equal(start, episodes[episode_id].frames[:k])
        np.testing.assert_array_equal(start_actions, episodes[episode_id].actions[: k - 1])

    for stage in ("tokenizer", "dynamics", "rollout_finetune"):
        state = tiny_checkpoint.parent / f"{stage}_state.safetensors"
        assert load_file(str(state)), f"{stage} state is empty"


def test_training_state_round_trip(tmp_path: Path) -> None:
    module, optimizer = _module_and_optimizer(seed=0)
    for seed in range(3):
        _adam_step(module, optimizer, seed)
    save_training_state(tmp_path / "state.safetensors", module, optimizer, step=3)

    restored, restored_optimizer = _module_and_optimizer(seed=1)
    assert load_training_state(tmp_path / "state.safetensors", restored, restored_optimizer) == 3
    for name, tensor in module.state_dict().items():
        assert torch.equal(restored.state_dict()[name], tensor), name
    moments = optimizer.state_dict()["state"]
    restored_moments = restored_optimizer.state_dict()["state"]
    assert moments.keys() == restored_moments.keys()
    for index, slots in moments.items():
        for slot in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(restored_moments[index][slot], slots[slot]), (index, slot)
    assert restored_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]

    # Restored moments carry on exactly: the next step is the same in both.
    _adam_step(module, optimizer, seed=9)
    _adam_step(restored, restored_optimizer, seed=9)
    for name, tensor in module.state_dict().items():
        assert torch.equal(restored.state_dict()[name], tensor), name


@pytest.mark.parametrize("stage", ["tokenizer", "dynamics", "rollout_finetune"])
def test_killed_run_resumes_to_the_uninterrupted_weights(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_checkpoint: Path,
    make_train_config: Callable[..., TrainConfig],
    stage: str,
) -> None:
    # tiny_checkpoint is the same 4 + 4-step run, never interrupted.
    config = make_train_config(tmp_path)
    save = stage_loop.save_training_state

    def save_then_die(
        path: Path, module: torch.nn.Module, optimizer, step: int, schedule: dict
    ) -> None:
        save(path, module, optimizer, step, schedule)
        if Path(path).name.startswith(stage) and step == 2:
            raise _Killed

    monkeypatch.setattr(stage_loop, "save_training_state", save_then_die)
    with pytest.raises(_Killed):
        train_world_model(config)
    assert not (tmp_path / "checkpoint").exists()
    monkeypatch.setattr(stage_loop, "save_training_state", save)

    resumed = _weights(train_world_model(config))
    uninterrupted = _weights(tiny_checkpoint)
    # Batches are drawn from per-step seeds and AdamW's moments are restored, so on one CPU
    # thread the resumed run is bit-identical, not merely close.
    for name, tensor in uninterrupted.items():
        assert torch.equal(resumed[name], tensor), name


def test_extending_a_finished_run_under_a_new_schedule_is_refused(
    tmp_path: Path, make_train_config: Callable[..., TrainConfig]
) -> None:
    # The LR schedule spans the run's total steps and the dynamics model is trained on one
    # tokenizer's latents, so resuming with other step counts would silently train something
    # else: it must be refused, naming the schedules.
    train_world_model(make_train_config(tmp_path, tokenizer_steps=2, dynamics_steps=2))
    with pytest.raises(ValueError, match="saved under schedule.*use a new run_dir"):
        train_world_model(make_train_config(tmp_path))


def test_training_state_of_another_config_is_refused(
    tmp_path: Path, tiny_checkpoint: Path, make_train_config: Callable[..., TrainConfig]
) -> None:
    shutil.copy(tiny_checkpoint.parent / "tokenizer_state.safetensors", tmp_path)
    wider = WorldModelConfig(
        tokenizer_width=24, dynamics_width=16, head_width=16, dynamics_blocks=1, context=2
    )
    with pytest.raises(ValueError, match="another config.*delete it or use another run_dir"):
        train_world_model(make_train_config(tmp_path, model=wider))

    module, optimizer = _module_and_optimizer(seed=0)
    with pytest.raises(ValueError, match="another config"):
        load_training_state(tmp_path / "tokenizer_state.safetensors", module, optimizer)


def test_dynamics_loss_falls_when_fitting_a_fixed_batch() -> None:
    config = WorldModelConfig(
        frame_size=32,
        latent_channels=4,
        tokenizer_width=8,
        context=2,
        dynamics_width=8,
        dynamics_blocks=1,
        head_width=8,
    )
    torch.manual_seed(0)
    model = WorldModel(config)
    generator = torch.Generator().manual_seed(0)
    batch, horizon = 4, 2
    latent = (config.latent_channels, config.latent_size, config.latent_size)
    windows = {
        "frames": torch.rand((batch, config.context + horizon, *latent), generator=generator) - 0.5,
        "actions": torch.randint(0, 5, (batch, config.context + horizon - 1), generator=generator),
        "rewards": torch.rand((batch, horizon), generator=generator),
        "terminated": torch.tensor([[False, True], [False, False], [False, True], [False, False]]),
        "valid": torch.ones((batch, horizon), dtype=torch.bool),
    }
    pixels = torch.randint(
        0, 256, (batch, config.context + horizon, 32, 32, 3), dtype=torch.uint8, generator=generator
    )
    params = list(model.dynamics.parameters()) + list(model.heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-2)

    def losses() -> dict[str, torch.Tensor]:
        return dynamics_loss(model, windows, pixels, config.context, end_pos_weight=1.0)

    with torch.no_grad():
        before = {k: float(v) for k, v in losses().items()}
    for _ in range(30):
        optimizer.zero_grad()
        sum(losses().values()).backward()
        optimizer.step()
    with torch.no_grad():
        after = {k: float(v) for k, v in losses().items()}
    # Measured: latent 0.29 -> 0.04, reward 0.30 -> 0.06, end 0.80 -> 0.57 (BCE falls slowest).
    for name, factor in {"latent": 0.3, "reward": 0.4, "end": 0.85}.items():
        assert after[name] < factor * before[name], (name, before[name], after[name])


def test_training_reads_curated_shards(
    tiny_footage: Path, tmp_path: Path, make_train_config: Callable[..., TrainConfig]
) -> None:
    """A run with ``shards_dir`` trains on the shard clips at the model's frame size only."""
    shards = tmp_path / "shards"
    for size in (64, 32):
        samples = []
        for parquet in sorted(tiny_footage.glob("part-*.parquet")):
            frames = read_video(parquet.with_suffix(".mp4"))[:, :size, :size]
            mp4 = tmp_path / f"{parquet.stem}-{size}.mp4"
            write_mp4(mp4, frames)
            buffer = io.BytesIO()
            pq.write_table(pq.read_table(parquet), buffer)
            samples.append(
                ShardSample(f"{parquet.stem}-{size}", mp4.read_bytes(), buffer.getvalue(), {})
            )
        write_shard(shards / shard_group(size, size) / "shard-00000.tar", samples)

    config = make_train_config(tmp_path / "run", shards_dir=str(shards), footage_dir="")
    episodes = training.training_episodes(config)
    raw = read_episodes(tiny_footage)
    assert [len(e.frames) for e in episodes] == [len(e.frames) for e in raw]
    export = train_world_model(config)
    info = json.loads((export / "training.json").read_text())
    assert info["shards_dir"] == str(shards)
    assert info["episodes"]["train"] + info["episodes"]["held_out"] == len(raw)


def test_footage_without_actions_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from wfm_sim.data import Episode

    frames = np.zeros((4, 64, 64, 3), dtype=np.uint8)
    unlabelled = Episode(7, frames, np.full(3, -1), np.zeros(3), np.zeros(3, dtype=bool))
    monkeypatch.setattr(training, "read_episodes", lambda folder, columns: [unlabelled])
    with pytest.raises(ValueError, match="episode 7 of synthetic/t2w has transitions without"):
        training.load_episodes("synthetic/t2w", "", 64)


def test_a_run_can_start_from_an_exported_checkpoint(
    tmp_path: Path, tiny_checkpoint: Path, make_train_config: Callable[..., TrainConfig]
) -> None:
    # No steps at all: the export must give back the checkpoint it started from, end-head
    # calibration included (undone on loading, applied again on export).
    config = make_train_config(
        tmp_path / "again",
        init_checkpoint=str(tiny_checkpoint),
        tokenizer_steps=0,
        dynamics_steps=0,
        finetune_steps=0,
    )
    exported = train_world_model(config)
    before, after = _weights(tiny_checkpoint), _weights(exported)
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        torch.testing.assert_close(after[name], tensor, msg=name)

    other = dataclasses.replace(config.model, dynamics_width=8)
    with pytest.raises(world_models.CheckpointMismatchError, match="dynamics_width"):
        train_world_model(dataclasses.replace(config, run_dir=str(tmp_path / "other"), model=other))


def test_a_run_may_draw_in_other_rounds_than_its_start_checkpoint(
    tmp_path: Path, tiny_checkpoint: Path, make_train_config: Callable[..., TrainConfig]
) -> None:
    config = make_train_config(
        tmp_path / "rounds",
        init_checkpoint=str(tiny_checkpoint),
        tokenizer_steps=0,
        dynamics_steps=0,
        finetune_steps=0,
    )
    saved_rounds = world_models.load(tiny_checkpoint, device="cpu").config.decode_rounds
    more = dataclasses.replace(config.model, decode_rounds=saved_rounds + 3)
    exported = train_world_model(dataclasses.replace(config, model=more))
    assert world_models.load(exported, device="cpu").config.decode_rounds == saved_rounds + 3


def test_coloured_token_weights_mark_the_tokens_over_cars() -> None:
    frames = np.full((1, 16, 16, 3), 100, np.uint8)  # plain road
    frames[0, 5:7, 9:11] = (50, 200, 50)  # a car across tokens (1, 2) of a 4x4 grid
    weights = training.coloured_token_weights(torch.from_numpy(frames), 4, 5.0)
    expected = torch.ones((1, 4, 4))
    expected[0, 1, 2] = 5.0
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(
        training.coloured_token_weights(torch.from_numpy(frames), 4, 1.0), torch.ones((1, 4, 4))
    )


def _car_batch(
    model_config: WorldModelConfig, horizon: int
) -> tuple[WorldModel, dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
    """A fresh model, windows of 3 (as ``dynamics_loss`` takes them) of a grey road with one
    green car, their pixels, and the unroll's token draws."""
    torch.manual_seed(0)
    model = WorldModel(model_config)
    generator = torch.Generator().manual_seed(1)
    batch, k = 3, model.config.context
    pixels = torch.full((batch, k + horizon, 64, 64, 3), 100, dtype=torch.uint8)
    pixels[:, :, 20:28, 30:40] = torch.tensor([40, 200, 40], dtype=torch.uint8)
    with torch.no_grad():
        latents = model.tokenizer.encode(pixels)
    windows = {
        "frames": latents,
        "actions": torch.randint(0, 5, (batch, k + horizon - 1), generator=generator),
        "rewards": torch.rand((batch, horizon), generator=generator),
        "terminated": torch.zeros((batch, horizon), dtype=torch.bool),
        "valid": torch.ones((batch, horizon), dtype=torch.bool),
    }
    draws = training.token_draws(batch, horizon, model.config, generator)
    return model, windows, pixels, draws


def test_coloured_token_weight_reweights_a_discrete_models_token_loss(
    tiny_model_config: WorldModelConfig,
) -> None:
    model, windows, pixels, draws = _car_batch(tiny_model_config, horizon=2)
    k = model.config.context

    def token_loss(weight: float) -> float:
        with torch.no_grad():
            terms = dynamics_loss(
                model, windows, pixels, k, 1.0, draws=draws, coloured_token_weight=weight
            )
        return float(terms["latent"])

    assert token_loss(1.0) == token_loss(1.0)
    assert token_loss(10.0) != pytest.approx(token_loss(1.0), rel=1e-4)
    with pytest.raises(ValueError, match="coloured_token_weight"):
        TrainConfig(coloured_token_weight=0.5)


def test_unroll_temperature_sets_how_the_unrolled_steps_draw_their_context(
    tiny_model_config: WorldModelConfig,
) -> None:
    model, windows, pixels, draws = _car_batch(tiny_model_config, horizon=3)
    other_uniforms = dict(draws, uniforms=torch.rand(draws["uniforms"].shape))

    def token_loss(temperature: float, step_draws: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            terms = dynamics_loss(
                model,
                windows,
                pixels,
                model.config.context,
                1.0,
                draws=step_draws,
                temperature=temperature,
            )
        return float(terms["latent"])

    # at 0 every drawn context is the most likely frame, whatever the uniforms
    assert token_loss(0.0, draws) == token_loss(0.0, other_uniforms)
    assert token_loss(1.0, draws) != pytest.approx(token_loss(1.0, other_uniforms), rel=1e-6)
    assert token_loss(0.4, draws) != pytest.approx(token_loss(1.0, draws), rel=1e-6)
    with pytest.raises(ValueError, match="unroll_temperature"):
        TrainConfig(unroll_temperature=-0.1)


def test_head_weights_scale_the_heads_terms_and_leave_the_dynamics_term(
    tiny_model_config: WorldModelConfig,
) -> None:
    model, windows, pixels, draws = _car_batch(tiny_model_config, horizon=2)
    windows["terminated"][:, 1] = True

    def terms(head_weights: torch.Tensor | None) -> dict[str, float]:
        with torch.no_grad():
            losses = dynamics_loss(
                model,
                windows,
                pixels,
                model.config.context,
                1.0,
                draws=draws,
                head_weights=head_weights,
            )
        return {name: float(value) for name, value in losses.items()}

    plain, doubled = terms(None), terms(torch.full((3,), 2.0))
    first_only = terms(torch.tensor([1.0, 0.0, 0.0]))
    assert doubled["latent"] == pytest.approx(plain["latent"])
    for head in ("reward", "end"):
        assert plain[head] > 0
        assert doubled[head] == pytest.approx(2 * plain[head], rel=1e-5)
        assert 0 < first_only[head] < plain[head]
    with pytest.raises(ValueError, match="crash_window_share"):
        TrainConfig(crash_window_share=1.0)


def test_a_run_can_favour_the_windows_that_hold_a_crash(
    tmp_path: Path, make_train_config: Callable[..., TrainConfig], tiny_checkpoint: Path
) -> None:
    further = dict(
        init_checkpoint=str(tiny_checkpoint),
        tokenizer_steps=0,
        dynamics_steps=0,
        finetune_steps=2,
        crash_window_share=0.5,
    )
    export = train_world_model(make_train_config(tmp_path / "crash", **further))
    before = world_models.load(tiny_checkpoint).state_dict()
    after = world_models.load(export).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if "dynamics" in k)


def test_crash_frames_are_the_last_frames_of_the_episodes_that_crashed() -> None:
    def episode(steps: int, crashed: bool) -> Episode:
        terminated = np.zeros(steps, dtype=bool)
        terminated[-1] = crashed
        frames = np.zeros((steps + 1, 64, 64, 3), dtype=np.uint8)
        return Episode(0, frames, np.zeros(steps, dtype=np.int64), np.zeros(steps), terminated)

    episodes = [episode(3, True), episode(2, False), episode(4, True)]
    # frames laid end to end: 4, then 3, then 5; the crashed episodes end at 3 and 11
    assert crash_frame_indices(episodes).tolist() == [3, 11]
    assert crash_frame_indices(episodes[1:2]).tolist() == []
    with pytest.raises(ValueError, match="tokenizer_crash_share"):
        TrainConfig(tokenizer_crash_share=1.0)


def test_a_run_can_favour_crash_frames_in_the_tokenizer_stage(
    tmp_path: Path,
    make_train_config: Callable[..., TrainConfig],
    tiny_checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn: list[np.ndarray] = []
    original = training.draw_favouring

    def recording(*args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        index, weights = original(*args, **kwargs)
        drawn.append(index)
        return index, weights

    monkeypatch.setattr(training, "draw_favouring", recording)
    config = make_train_config(
        tmp_path / "crash_frames",
        init_checkpoint=str(tiny_checkpoint),
        tokenizer_steps=2,
        dynamics_steps=0,
        finetune_steps=0,
        tokenizer_crash_share=0.5,
    )
    export = train_world_model(config)
    crash = set(crash_frame_indices(read_episodes(config.footage_dir)).tolist())
    frames = np.concatenate(drawn)
    # about half the batch from the few crash frames (uniform draws would hit them rarely)
    assert crash and np.isin(frames, list(crash)).mean() >= 0.25
    before = world_models.load(tiny_checkpoint).state_dict()
    after = world_models.load(export).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("tokenizer"))


def test_a_run_codes_frames_with_a_family_tokenizer_checkpoint(
    tmp_path: Path, make_train_config: Callable[..., TrainConfig]
) -> None:
    family = PER_FRAME
    torch.manual_seed(3)
    tokenizer_dir = save_tokenizer(VideoTokenizer(family), tmp_path / "tokenizer")
    config = make_train_config(
        tmp_path / "family",
        tokenizer_checkpoint=str(tokenizer_dir),
        tokenizer_steps=0,
        dynamics_steps=2,
        finetune_steps=1,
    )
    exported = train_world_model(config)
    model = world_models.load(exported, device="cpu")
    assert model.config.family_tokenizer() == family
    # tokenizer_steps=0: the world model codes with the family checkpoint's weights unchanged
    for name, tensor in load_file(str(tokenizer_dir / "model.safetensors")).items():
        torch.testing.assert_close(_weights(exported)[f"tokenizer.video.{name}"], tensor)

    # Trained further from the export, with no tokenizer named, the model keeps its family one.
    further = make_train_config(
        tmp_path / "further",
        init_checkpoint=str(exported),
        tokenizer_steps=0,
        dynamics_steps=1,
        finetune_steps=0,
    )
    again = world_models.load(train_world_model(further), device="cpu")
    assert again.config.family_tokenizer() == family
    with pytest.raises(ValueError, match="not both"):
        make_train_config(tmp_path / "x", tokenizer_checkpoint="a", init_checkpoint="b")
    other = dataclasses.replace(family, width=16)
    named = dataclasses.replace(config.model, tokenizer=other.to_dict())
    with pytest.raises(ValueError, match="tokenizer_checkpoint"):
        train_world_model(dataclasses.replace(config, run_dir=str(tmp_path / "y"), model=named))
