"""Training the latent world model: it learns (the loss on a batch falls), exports a
checkpoint with held-out measures and a model card, resumes, and takes its tokenizer from
the source world model unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import world_models
from experiments.train_latent_world_model import write_latent_model_card
from wfm_sim.data.footage import read_episodes
from wfm_sim.data.windows import WindowSampler
from wfm_sim.training import latent_world_model as trainer
from wfm_sim.training.latent_world_model import LatentTrainConfig, latent_losses
from wfm_sim.training.world_model import encode_episodes
from world_models.latent import LatentWorldModel, LatentWorldModelConfig


def test_export_holds_the_source_tokenizer_measures_and_a_model_card(
    tiny_latent_checkpoint: Path,
    tiny_checkpoint: Path,
    make_latent_train_config: Callable[..., LatentTrainConfig],
) -> None:
    model = LatentWorldModel.load(tiny_latent_checkpoint)
    source = world_models.load_world_model(tiny_checkpoint)
    for name, tensor in source.tokenizer.state_dict().items():
        assert torch.equal(tensor, model.tokenizer.state_dict()[name]), name
    metrics = json.loads((tiny_latent_checkpoint / "metrics.json").read_text())
    assert len(metrics["reward_mae_by_step"]) == 3 and len(metrics["end_auc_by_step"]) == 3
    assert 0 < metrics["end_mean_probability"] < 1 and metrics["windows"] == 16
    config = make_latent_train_config(tiny_latent_checkpoint.parent)
    card = write_latent_model_card(tiny_latent_checkpoint, config).read_text()
    assert "python -m experiments.train_latent_world_model" in card
    assert "steps=4" in card and "reward_mae_by_step" in card


def test_footage_measured_on_is_scored_apart_and_never_trained_on(
    tmp_path: Path,
    tiny_footage: Path,
    make_latent_train_config: Callable[..., LatentTrainConfig],
) -> None:
    config = make_latent_train_config(tmp_path, eval_footage_dirs=[str(tiny_footage)])
    export = trainer.train_latent_world_model(config)
    metrics = json.loads((export / "metrics.json").read_text())
    scored = metrics["eval_footage"]
    assert scored["dirs"] == [str(tiny_footage)]
    windows = sum(e.length for e in read_episodes(tiny_footage))
    assert scored["windows"] == min(windows, config.held_out_windows)
    assert len(scored["end_auc_by_step"]) == config.horizon
    info = json.loads((export / "config.json").read_text())["info"]
    assert info["episodes"]["extra"] == 0  # measured on, not trained on


def test_more_footage_is_trained_on_and_named_on_the_card(
    tmp_path: Path,
    tiny_footage: Path,
    make_latent_train_config: Callable[..., LatentTrainConfig],
) -> None:
    config = make_latent_train_config(tmp_path, more_footage_dirs=[str(tiny_footage)])
    export = trainer.train_latent_world_model(config)
    info = json.loads((export / "config.json").read_text())["info"]
    episodes = read_episodes(tiny_footage)
    assert info["episodes"]["more"] == len(episodes) and info["episodes"]["extra"] == 0
    assert info["frames"]["more"] == sum(len(e.frames) for e in episodes)
    card = write_latent_model_card(export, config).read_text()
    assert f"plus {len(episodes)} episodes" in card and f"`{tiny_footage}`" in card
    assert "of each batch" not in card  # drawn alike with footage_dir, no share of its own


def test_a_model_trained_on_from_another_names_both_commands_on_its_card(
    tmp_path: Path,
    tiny_latent_checkpoint: Path,
    make_latent_train_config: Callable[..., LatentTrainConfig],
) -> None:
    config = make_latent_train_config(
        tmp_path / "on", init_checkpoint=str(tiny_latent_checkpoint), steps=2
    )
    export = trainer.train_latent_world_model(config)
    card = write_latent_model_card(export, config).read_text()
    first, second = (
        line.strip() for line in card.splitlines() if "experiments.train_latent_world_model" in line
    )
    assert "init_checkpoint" not in first and "steps=4" in first
    assert f"init_checkpoint={tiny_latent_checkpoint}" in second and "steps=2" in second


def test_a_killed_run_resumes_where_it_stopped(
    tmp_path: Path,
    make_latent_train_config: Callable[..., LatentTrainConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = {"n": 0}

    def dies_at_the_third_step(*args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed after the step-2 checkpoint
        return latent_losses(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(trainer, "latent_losses", dies_at_the_third_step)
    config = make_latent_train_config(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        trainer.train_latent_world_model(config)
    assert not (tmp_path / "checkpoint").exists()
    calls["n"] = -100  # the rerun trains
    trainer.train_latent_world_model(config)
    assert calls["n"] == -100 + 2  # steps 3 and 4 only
    assert (tmp_path / "checkpoint" / "model.safetensors").exists()
    with pytest.raises(ValueError, match="schedule"):
        trainer.train_latent_world_model(make_latent_train_config(tmp_path, steps=8))


def test_training_lowers_every_loss_on_a_batch(tiny_footage: Path, tiny_checkpoint: Path) -> None:
    torch.manual_seed(0)
    source = world_models.load_world_model(tiny_checkpoint)
    model = LatentWorldModel(LatentWorldModelConfig(source.config, 16, 32, 8))
    latents = encode_episodes(source, read_episodes(tiny_footage), torch.device("cpu"))
    batch = WindowSampler(latents, model.context, 3).sample(16, np.random.default_rng(0))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    before = {
        k: float(v.detach())
        for k, v in latent_losses(model, batch, 0.7, torch.device("cpu")).items()
    }
    for _ in range(60):
        terms = latent_losses(model, batch, 0.7, torch.device("cpu"))
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
    with torch.no_grad():
        after = latent_losses(model, batch, 0.7, torch.device("cpu"))
    assert float(after["reward"]) < 0.5 * before["reward"]
    assert float(after["end"]) < before["end"]


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="horizon_decay"):
        LatentTrainConfig(horizon_decay=0.0)
    with pytest.raises(ValueError, match=">= 1"):
        LatentTrainConfig(steps=0)


def _write_plan_labels(
    folder: Path, frames: np.ndarray, context: int, parts: int, horizon: int = 3
) -> None:
    """``parts`` labels parts of 2 decisions with 4 plans each, their contexts cut from
    ``frames`` and the plans' outcomes made up (every plan whose first action is 0 crashes
    at its second step)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    for part in range(parts):
        actions = rng.integers(0, 5, size=(8, horizon)).astype(np.int64)
        actions[::2, 0] = 0
        ended = np.zeros((8, horizon), np.uint8)
        ended[actions[:, 0] == 0, 1] = 1
        valid = np.ones((8, horizon), np.uint8)
        valid[ended[:, 1] == 1, 2:] = 0
        arrays = {
            "contexts": np.stack([frames[i : i + context] for i in (part, part + 3)]),
            "state": np.repeat(np.arange(2), 4).astype(np.int64),
            "actions": actions,
            "rewards": rng.random((8, horizon)).astype(np.float32),
            "ended": ended,
            "valid": valid,
            "outlasted": (1 - ended.max(axis=1)).astype(np.uint8),
        }
        save_file(arrays, str(folder / f"part-{part:05d}.safetensors"))


def test_plan_labels_are_trained_on_and_their_last_part_is_held_out(
    tmp_path: Path,
    tiny_footage: Path,
    tiny_checkpoint: Path,
    make_latent_train_config: Callable[..., LatentTrainConfig],
) -> None:
    context = world_models.load_world_model(tiny_checkpoint).config.context
    frames = read_episodes(tiny_footage)[0].frames
    _write_plan_labels(tmp_path / "labels", frames, context, parts=3)
    config = make_latent_train_config(tmp_path / "run", plan_labels_dirs=[str(tmp_path / "labels")])
    export = trainer.train_latent_world_model(config)
    held_out = json.loads((export / "metrics.json").read_text())["plan_labels_held_out"]
    assert held_out["plans"] == 8 and len(held_out["end_auc_by_step"]) == 3
    assert held_out["end_rate"] == pytest.approx(4 / 20)  # 4 crashes over 8 + 8 + 4 played steps
    info = json.loads((export / "config.json").read_text())["info"]
    assert info["plan_labels"] == {"train_plans": 16, "held_out_plans": 8}
    card = write_latent_model_card(export, config).read_text()
    assert "16 labelled plans" in card and "8 more held out" in card
    one_part = make_latent_train_config(
        tmp_path / "run1", plan_labels_dirs=[str(tmp_path / "labels")], plan_label_held_out_parts=3
    )
    with pytest.raises(ValueError, match="holds 3 plan-label parts"):
        trainer.train_latent_world_model(one_part)


def test_plan_label_losses_fall_when_trained_on(
    tmp_path: Path, tiny_footage: Path, tiny_checkpoint: Path
) -> None:
    torch.manual_seed(0)
    source = world_models.load_world_model(tiny_checkpoint)
    model = LatentWorldModel(LatentWorldModelConfig(source.config, 16, 32, 8))
    frames = read_episodes(tiny_footage)[0].frames
    _write_plan_labels(tmp_path / "labels", frames, model.context, parts=1)
    parts = sorted((tmp_path / "labels").glob("part-*"))
    labels = trainer.code_plan_labels(source, parts, torch.device("cpu"))
    assert labels.latents.shape[:2] == (2, model.context) and len(labels) == 8
    rows = torch.arange(8)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    with torch.no_grad():
        before = {
            k: float(v) for k, v in trainer.plan_label_losses(model, labels, rows, 0.7).items()
        }
    for _ in range(60):
        terms = trainer.plan_label_losses(model, labels, rows, 0.7)
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
    after = trainer.score_on_plan_labels(model, labels)
    with torch.no_grad():
        losses = trainer.plan_label_losses(model, labels, rows, 0.7)
    assert float(losses["plan_reward"]) < 0.5 * before["plan_reward"]
    assert float(losses["plan_end"]) < 0.5 * before["plan_end"]
    assert after["end_auc_by_step"][1] == 1.0  # the crashing plans are told apart


def test_imagination_scores_match_hand_computed_values() -> None:
    rewards = np.array([[0.5, 1.0], [0.2, 0.0]])
    real = np.array([[0.4, 0.0], [0.2, 0.5]])
    ends = np.array([[0.9, 0.5], [0.1, 0.5]])
    ended = np.array([[True, False], [False, False]])
    valid = np.array([[True, False], [True, True]])
    scores = trainer.score_imagination(rewards, ends, real, ended, valid)
    assert scores["reward_mae_by_step"] == [pytest.approx(0.05), pytest.approx(0.5)]
    assert scores["end_auc_by_step"][0] == 1.0 and np.isnan(scores["end_auc_by_step"][1])
    assert scores["end_rate"] == pytest.approx(1 / 3)
    assert scores["end_mean_probability"] == pytest.approx(1.5 / 3)
    assert scores["end_brier"] == pytest.approx((0.01 + 0.01 + 0.25) / 3)
