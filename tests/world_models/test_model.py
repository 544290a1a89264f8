"""The world model: shapes, causality, and a checkpoint format that refuses what does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import world_models
from world_models import (
    CheckpointMismatchError,
    WorldModel,
    WorldModelConfig,
    load_start_contexts,
    read_config,
)
from world_models.model import CONFIG_FILE

# 32 px frames -> 8x8 latents of 4 channels; widths of 8 keep GroupNorm(8, width) valid.
CONFIG = WorldModelConfig(
    frame_size=32,
    latent_channels=4,
    tokenizer_width=8,
    context=3,
    dynamics_width=8,
    dynamics_blocks=1,
    head_width=8,
)
LATENT = (CONFIG.latent_channels, CONFIG.latent_size, CONFIG.latent_size)


def _model(config: WorldModelConfig = CONFIG, seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    return WorldModel(config).eval()


def _frames(*lead: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (*lead, CONFIG.frame_size, CONFIG.frame_size, 3)
    return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)


def _context(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    latents = torch.rand((batch, CONFIG.context, *LATENT), generator=generator) * 2 - 1
    actions = torch.randint(0, CONFIG.n_actions + 1, (batch, CONFIG.context), generator=generator)
    return latents, actions


@pytest.fixture(scope="module")
def model() -> WorldModel:
    return _model()


@pytest.fixture
def saved(tmp_path: Path, model: WorldModel) -> Path:
    folder = tmp_path / "checkpoint"
    model.save(
        folder,
        extra_tensors={"frames": _frames(2, seed=1)[:, None], "actions": torch.zeros(2, 0).long()},
    )
    return folder


@torch.no_grad()
def test_shapes_and_ranges(model: WorldModel) -> None:
    latents = model.tokenizer.encode(_frames(2, 3))
    assert latents.shape == (2, 3, *LATENT) and latents.dtype == torch.float32
    assert latents.abs().max() <= 1.0
    frames = model.tokenizer.decode(latents)
    assert frames.shape == (2, 3, 32, 32, 3) and frames.dtype == torch.uint8
    assert model.tokenizer.decode_float(latents).shape == (2, 3, 3, 32, 32)

    step = model.imagine(*_context(5))
    assert step.latent.shape == (5, *LATENT) and step.latent.abs().max() <= 1.0
    assert step.reward.shape == (5,) and step.end_probability.shape == (5,)
    assert ((step.end_probability >= 0) & (step.end_probability <= 1)).all()


@torch.no_grad()
def test_tokenizer_code_of_frame_t_ignores_later_frames(model: WorldModel) -> None:
    clip = _frames(1, 5, seed=2)
    codes = model.tokenizer.encode(clip)
    for t in range(4):
        changed = clip.clone()
        changed[:, t + 1 :] = _frames(1, 4 - t, seed=3 + t)
        new_codes = model.tokenizer.encode(changed)
        assert torch.equal(new_codes[:, : t + 1], codes[:, : t + 1]), f"code {t} saw the future"
        assert not torch.equal(new_codes[:, t + 1 :], codes[:, t + 1 :])


@torch.no_grad()
def test_prediction_depends_on_its_context_only(model: WorldModel) -> None:
    latents, actions = _context(2, seed=4)
    step = model.imagine(latents, actions)
    again = model.imagine(latents.clone(), actions.clone())
    assert torch.equal(step.latent, again.latent) and torch.equal(step.reward, again.reward)

    # Another trajectory in the batch changes nothing for the first (no batch statistics).
    other_latents, other_actions = _context(2, seed=5)
    mixed = model.imagine(
        torch.cat([latents[:1], other_latents[1:]]), torch.cat([actions[:1], other_actions[1:]])
    )
    assert torch.equal(mixed.latent[0], step.latent[0])
    assert torch.equal(mixed.reward[0], step.reward[0])
    assert torch.equal(mixed.end_probability[0], step.end_probability[0])

    # ... while every slot of the context does matter: the oldest latent and the last action.
    older = latents.clone()
    older[:, 0] = -older[:, 0]
    assert not torch.allclose(model.imagine(older, actions).latent, step.latent)
    other_action = actions.clone()
    other_action[:, -1] = (other_action[:, -1] + 1) % (CONFIG.n_actions + 1)
    assert not torch.allclose(model.imagine(latents, other_action).latent, step.latent)


@torch.no_grad()
def test_checkpoint_round_trip(saved: Path, model: WorldModel) -> None:
    loaded = WorldModel.load(saved, expected_config=CONFIG)
    assert loaded.config == CONFIG and not loaded.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    frames = _frames(3, seed=6)
    assert torch.equal(loaded.tokenizer.encode(frames), model.tokenizer.encode(frames))
    context = _context(3, seed=7)
    assert torch.equal(loaded.imagine(*context).latent, model.imagine(*context).latent)
    frames, actions = load_start_contexts(saved)
    assert torch.equal(frames, _frames(2, seed=1)[:, None]) and actions.shape == (2, 0)
    assert read_config(saved) == CONFIG
    assert world_models.load(saved).config == CONFIG


def test_expected_config_mismatch_names_the_key(saved: Path) -> None:
    wider = WorldModelConfig(**{**CONFIG.to_dict(), "dynamics_width": 16})
    with pytest.raises(CheckpointMismatchError, match="dynamics_width"):
        WorldModel.load(saved, expected_config=wider)


def test_weights_that_do_not_fit_config_json(saved: Path) -> None:
    payload = json.loads((saved / CONFIG_FILE).read_text())
    payload["world_model"]["head_width"] = 16
    (saved / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(CheckpointMismatchError, match="does not match its config.json"):
        WorldModel.load(saved)


def test_missing_config_json(saved: Path) -> None:
    (saved / CONFIG_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        WorldModel.load(saved)


def test_other_format_version_is_refused(saved: Path) -> None:
    payload = json.loads((saved / CONFIG_FILE).read_text())
    payload["format_version"] = 2
    (saved / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(CheckpointMismatchError, match="format_version 2"):
        WorldModel.load(saved)


def test_unknown_config_key_is_refused(saved: Path) -> None:
    payload = json.loads((saved / CONFIG_FILE).read_text())
    payload["world_model"]["attention_heads"] = 4
    (saved / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="attention_heads"):
        WorldModel.load(saved)


def test_checkpoint_without_start_frames(tmp_path: Path, model: WorldModel) -> None:
    model.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="start contexts"):
        load_start_contexts(tmp_path)


def test_unknown_zoo_name_lists_the_zoo() -> None:
    with pytest.raises(FileNotFoundError, match="the zoo has"):
        world_models.load("no-such-world-model-7f3a")


@pytest.mark.parametrize(
    "frames",
    [
        torch.zeros(2, 32, 32, 3),  # float
        torch.zeros(2, 32, 32, 4, dtype=torch.uint8),  # RGBA
        torch.zeros(2, 3, 32, 32, dtype=torch.uint8),  # channels first
    ],
    ids=["float", "four-channels", "channels-first"],
)
def test_encode_refuses_frames_that_are_not_hw3_uint8(
    model: WorldModel, frames: torch.Tensor
) -> None:
    with pytest.raises(ValueError, match="uint8"):
        model.tokenizer.encode(frames)


@pytest.mark.parametrize(("key", "value"), [("frame_size", 30), ("context", 0)])
def test_config_refuses_impossible_shapes(key: str, value: int) -> None:
    with pytest.raises(ValueError, match=key):
        WorldModelConfig(**{key: value})
