"""The latent world model: shapes, refusals of bad input, and a checkpoint that round-trips
and refuses another config or another kind of checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import world_models
from world_models import CheckpointMismatchError, WorldModelConfig
from world_models.latent import LatentWorldModel, LatentWorldModelConfig


@pytest.fixture
def config(tiny_model_config: WorldModelConfig) -> LatentWorldModelConfig:
    return LatentWorldModelConfig(tiny_model_config, state_dim=16, hidden=32, conv_width=8)


def test_states_steps_and_imagination_have_the_documented_shapes(
    config: LatentWorldModelConfig,
) -> None:
    model = LatentWorldModel(config).eval()
    k = config.source.context
    frames = torch.randint(0, 256, (3, k, 64, 64, 3), dtype=torch.uint8)
    states = model.encode_frames(frames)
    assert states.shape == (3, 16)
    following, reward, end_logit = model.step(states, torch.tensor([0, 1, 4]))
    assert following.shape == (3, 16) and reward.shape == (3,) and end_logit.shape == (3,)
    rewards, ends = model.imagine(states[0], torch.randint(0, 5, (7, 4)))
    assert rewards.shape == (7, 4) and ends.shape == (7, 4)
    assert bool(((ends > 0) & (ends < 1)).all())
    # one plan's imagination does not depend on the others scored beside it
    plans = torch.randint(0, 5, (5, 3))
    alone, _ = model.imagine(states[0], plans[:1])
    together, _ = model.imagine(states[0], plans)
    torch.testing.assert_close(alone[0], together[0])
    # one state per sequence steps each from its own
    own, _ = model.imagine(states, plans[:3])
    torch.testing.assert_close(own[1], model.imagine(states[1], plans[1:2])[0][0])


def test_bad_input_is_refused_by_name(config: LatentWorldModelConfig) -> None:
    model = LatentWorldModel(config)
    with pytest.raises(ValueError, match="latents must be"):
        model.encode_latents(torch.zeros(2, config.source.context + 1, 3, 16, 16))
    states = torch.zeros(2, 16)
    with pytest.raises(ValueError, match=r"lie in \[0, 5\)"):
        model.step(states, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="int64"):
        model.step(states, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="one state of 16"):
        model.imagine(states, torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\(P, H\)"):
        model.imagine(states[0], torch.zeros(3, dtype=torch.int64))
    vector = dataclasses.replace(
        config.source, action_dim=2, action_low=[-1.0, -1.0], action_high=[1.0, 1.0]
    )
    with pytest.raises(ValueError, match="discrete actions"):
        LatentWorldModelConfig(vector)


def test_checkpoint_round_trip_and_refusals(
    config: LatentWorldModelConfig, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    model = LatentWorldModel(config).eval()
    model.save(tmp_path / "latent", info={"note": "test"})
    loaded = LatentWorldModel.load(tmp_path / "latent", expected_config=config)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    wider = dataclasses.replace(config, hidden=64)
    with pytest.raises(CheckpointMismatchError, match="hidden"):
        LatentWorldModel.load(tmp_path / "latent", expected_config=wider)
    with pytest.raises(CheckpointMismatchError, match="latent_world_model"):
        LatentWorldModel.load(tiny_checkpoint)  # a pixel world model's folder
    with pytest.raises(CheckpointMismatchError, match="holds a 'latent_world_model/1'"):
        world_models.load(tmp_path / "latent")  # not a model an env can step
    with pytest.raises(FileNotFoundError, match="no world model named or at"):
        LatentWorldModel.load(tmp_path / "nowhere")


def test_half_precision_weights_load_as_float32(
    config: LatentWorldModelConfig, tmp_path: Path
) -> None:
    model = LatentWorldModel(config).eval()
    model.save(tmp_path / "half", weights_dtype=torch.float16)
    loaded = LatentWorldModel.load(tmp_path / "half")
    weight = model.dynamics[0][0].weight
    assert loaded.dynamics[0][0].weight.dtype == torch.float32
    torch.testing.assert_close(loaded.dynamics[0][0].weight, weight.half().float())
    full = tmp_path / "full"
    model.save(full)
    assert (full / "model.safetensors").stat().st_size > 1.8 * (
        tmp_path / "half" / "model.safetensors"
    ).stat().st_size
