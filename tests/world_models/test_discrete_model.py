"""The discrete (FSQ-token) world model: tokens, sampled next frames, and their randomness."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import world_models
from wfm_sim.frames import coloured_patches
from world_models import WorldModel, WorldModelConfig
from world_models.dynamics import known_planes
from world_models.model import measure_code_salience, sample_tokens

CONFIG = WorldModelConfig(
    frame_size=32,
    latent_channels=3,
    fsq_levels=[5, 3, 3],
    tokenizer_width=8,
    context=3,
    dynamics_width=8,
    dynamics_blocks=1,
    dynamics_levels=3,
    head_width=8,
)
SIDE = CONFIG.latent_size


def _model(seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    return WorldModel(CONFIG).eval()


def _frames(*lead: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (*lead, CONFIG.frame_size, CONFIG.frame_size, 3)
    return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)


def _context(model: WorldModel, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(
        0, CONFIG.codebook_size, (batch, CONFIG.context, SIDE, SIDE), generator=generator
    )
    actions = torch.randint(0, CONFIG.n_actions + 1, (batch, CONFIG.context), generator=generator)
    return model.tokenizer.from_indices(tokens), actions


def _uniforms(batch: int, seed: int) -> torch.Tensor:
    shape = (batch, CONFIG.decode_rounds, 2, SIDE, SIDE)
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_config_needs_one_channel_per_fsq_level() -> None:
    with pytest.raises(ValueError, match="latent_channels == len"):
        WorldModelConfig(latent_channels=8, fsq_levels=[8, 5, 5, 5])
    assert CONFIG.discrete and CONFIG.codebook_size == 45
    assert not WorldModelConfig().discrete and WorldModelConfig().codebook_size == 0


@torch.no_grad()
def test_latents_are_tokens_that_round_trip() -> None:
    model = _model()
    latents = model.tokenizer.encode(_frames(2, 3))
    assert latents.shape == (2, 3, 3, SIDE, SIDE)
    tokens = model.tokenizer.to_indices(latents)
    assert tokens.shape == (2, 3, SIDE, SIDE) and tokens.dtype == torch.int64
    assert 0 <= int(tokens.min()) and int(tokens.max()) < CONFIG.codebook_size
    assert torch.equal(model.tokenizer.from_indices(tokens), latents)


@torch.no_grad()
def test_imagined_latents_are_tokens_drawn_by_the_callers_uniforms() -> None:
    model = _model()
    latents, actions = _context(model, 4, seed=1)
    drawn = model.imagine(latents, actions, _uniforms(4, seed=2))
    again = model.imagine(latents, actions, _uniforms(4, seed=2))
    other = model.imagine(latents, actions, _uniforms(4, seed=3))
    assert torch.equal(drawn.latent, again.latent)
    assert not torch.equal(drawn.latent, other.latent)
    tokens = model.tokenizer.to_indices(drawn.latent)
    assert torch.equal(model.tokenizer.from_indices(tokens), drawn.latent)

    # A member's draw depends on its own uniforms only, not on the rest of the batch.
    uniforms = _uniforms(4, seed=2)
    uniforms[1:] = _uniforms(3, seed=9)
    mixed = model.imagine(latents, actions, uniforms)
    assert torch.equal(mixed.latent[0], drawn.latent[0])


@torch.no_grad()
def test_one_round_draws_every_token_at_once_from_the_unconditioned_logits() -> None:
    model = _model(seed=7)
    latents, actions = _context(model, 3, seed=8)
    single = WorldModel(dataclasses.replace(CONFIG, decode_rounds=1)).eval()
    single.load_state_dict(model.state_dict())
    uniforms = _uniforms(3, seed=9)[:, :1]
    expected = sample_tokens(model.dynamics(latents, actions), uniforms[:, 0, 0])
    assert torch.equal(single.draw_next_tokens(latents, actions, uniforms), expected)


@torch.no_grad()
def test_later_rounds_see_the_tokens_fixed_before_them() -> None:
    model = _model(seed=10)
    latents, actions = _context(model, 2, seed=11)
    empty = model.dynamics(latents, actions)
    known = torch.zeros((2, SIDE, SIDE), dtype=torch.bool)
    known[:, :2] = True
    shown = known_planes(
        model.tokenizer.from_indices(torch.zeros_like(known, dtype=torch.long)), known
    )
    assert not torch.allclose(model.dynamics(latents, actions, shown), empty)
    # Without uniforms the drawing is deterministic and every position gets a token.
    tokens = model.draw_next_tokens(latents, actions)
    assert torch.equal(tokens, model.draw_next_tokens(latents, actions))
    assert tokens.shape == (2, SIDE, SIDE) and int(tokens.max()) < CONFIG.codebook_size
    with pytest.raises(ValueError, match="decode_rounds"):
        model.draw_next_tokens(latents, actions, _uniforms(2, seed=1)[:, :1])


def test_sampling_follows_the_distribution_and_argmax_without_uniforms() -> None:
    logits = torch.log(torch.tensor([0.1, 0.6, 0.3]))[None, :, None, None].expand(1, 3, 40, 50)
    uniforms = torch.rand((1, 40, 50), generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(sample_tokens(logits, uniforms).flatten(), minlength=3).float()
    assert torch.allclose(counts / counts.sum(), torch.tensor([0.1, 0.6, 0.3]), atol=0.03)
    assert (sample_tokens(logits, None) == 1).all()
    assert (sample_tokens(logits, uniforms, temperature=0.0) == 1).all()
    # A low temperature sharpens towards the most likely token.
    sharp = torch.bincount(sample_tokens(logits, uniforms, 0.2).flatten(), minlength=3).float()
    assert sharp[1] / sharp.sum() > 0.95
    with pytest.raises(ValueError, match="uniforms must be"):
        sample_tokens(logits, uniforms[:, :3])


@torch.no_grad()
def test_discrete_checkpoint_round_trip(tmp_path: Path) -> None:
    model = _model(seed=4)
    model.save(tmp_path / "checkpoint")
    loaded = WorldModel.load(tmp_path / "checkpoint", expected_config=CONFIG)
    latents, actions = _context(model, 2, seed=5)
    uniforms = _uniforms(2, seed=6)
    assert torch.equal(
        loaded.imagine(latents, actions, uniforms).latent,
        model.imagine(latents, actions, uniforms).latent,
    )


def test_continuous_tokenizer_has_no_tokens() -> None:
    model = WorldModel(
        WorldModelConfig(frame_size=32, tokenizer_width=8, dynamics_width=8, head_width=8)
    )
    with pytest.raises(ValueError, match="continuous"):
        model.tokenizer.to_indices(torch.zeros(1, 8, 8, 8))


def test_token_logits_from_features_equal_the_dynamics_logits() -> None:
    # drawing computes logits only at undecided positions, from token-last features
    model = _model()
    latents, actions = _context(model, 2)
    known = torch.rand(2, SIDE, SIDE, generator=torch.Generator().manual_seed(3)) < 0.5
    planes = known_planes(latents[:, -1], known)
    with torch.no_grad():
        logits = model.dynamics(latents, actions, planes).movedim(1, -1)
        features = model.dynamics.token_features(latents, actions, planes)
        torch.testing.assert_close(model.dynamics.token_logits(features[~known]), logits[~known])


def test_the_expected_end_reading_reads_the_belief_before_any_token_is_drawn() -> None:
    model = _model()
    latents, actions = _context(model, batch=4)
    uniforms = _uniforms(4, seed=1)
    drawn = model.imagine(latents, actions, uniforms, temperature=0.4)
    expected = model.imagine(latents, actions, uniforms, 0.4, end_reading="expected")
    # the frame and reward are the draw's either way; only the end probability differs
    assert torch.equal(expected.latent, drawn.latent)
    assert torch.equal(expected.reward, drawn.reward)
    b, _, c, h, w = latents.shape
    nothing_known = known_planes(latents.new_zeros((b, c, h, w)), torch.zeros((b, h, w)).bool())
    logits = model.dynamics.token_logits(
        model.dynamics.token_features(latents, actions, nothing_known)
    )
    ids = torch.arange(CONFIG.codebook_size).view(1, -1, 1)
    codebook = model.tokenizer.from_indices(ids)[0, :, :, 0].T
    belief = (torch.softmax(logits, dim=-1) @ codebook).permute(0, 3, 1, 2)
    _, end_logit = model.heads(latents, actions, belief)
    torch.testing.assert_close(expected.end_probability, torch.sigmoid(end_logit))
    assert not torch.allclose(expected.end_probability, drawn.end_probability)


def test_an_unknown_end_reading_is_refused() -> None:
    model = _model()
    latents, actions = _context(model, batch=1)
    with pytest.raises(ValueError, match="end_reading"):
        model.imagine(latents, actions, end_reading="soft")
    continuous = WorldModel(dataclasses.replace(CONFIG, fsq_levels=[], latent_channels=3))
    with pytest.raises(ValueError, match="discrete"):
        continuous.imagine(latents, actions, end_reading="expected")


def _grey_and_red(n: int) -> torch.Tensor:
    """n frames of grey road with a red block over their top-left quarter."""
    frames = torch.full((n, CONFIG.frame_size, CONFIG.frame_size, 3), 100, dtype=torch.uint8)
    frames[:, : CONFIG.frame_size // 2, : CONFIG.frame_size // 2] = torch.tensor(
        [220, 30, 30], dtype=torch.uint8
    )
    return frames


def _coded(model: WorldModel, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the tokens ``model`` codes ``frames`` as, the frames)."""
    return model.tokenizer.to_indices(model.tokenizer.encode(frames)), frames


@torch.no_grad()
def test_code_salience_is_each_tokens_share_of_coloured_patches() -> None:
    model = _model(seed=12)
    frames = torch.cat([_grey_and_red(2), _frames(2, seed=13)])
    salience = measure_code_salience([_coded(model, frames[:2]), _coded(model, frames[2:])], 45)
    # By hand: which token codes each patch, and whether that patch holds a coloured pixel.
    tokens = model.tokenizer.to_indices(model.tokenizer.encode(frames)).flatten()
    coloured = coloured_patches(frames, SIDE).flatten()
    for token in range(45):
        here = tokens == token
        expected = coloured[here].float().mean().item() if here.any() else 0.0
        assert salience[token].item() == pytest.approx(expected), token
    grey = torch.full((1, CONFIG.frame_size, CONFIG.frame_size, 3), 90, dtype=torch.uint8)
    assert not measure_code_salience([_coded(model, grey)], 45).any()
    with pytest.raises(ValueError, match="no frames"):
        measure_code_salience([], 45)


@torch.no_grad()
def test_salient_priority_keeps_the_first_rounds_car_draws() -> None:
    # Two rounds: the first keeps ceil(64 (1 - cos(pi/4))) = 19 of its draws, the second
    # draws the other positions again. With a salient token (salience 1) and priority 100,
    # every position whose first draw was that token keeps it; by confidence alone some lose it.
    rounds = dataclasses.replace(CONFIG, decode_rounds=2)
    model = WorldModel(rounds).eval()
    model.load_state_dict(_model(seed=14).state_dict())
    latents, actions = _context(model, 1, seed=15)
    uniforms = torch.rand((1, 2, 2, SIDE, SIDE), generator=torch.Generator().manual_seed(16))
    single = WorldModel(dataclasses.replace(CONFIG, decode_rounds=1)).eval()
    single.load_state_dict(model.state_dict())
    first = single.draw_next_tokens(latents, actions, uniforms[:, :1])
    by_confidence = model.draw_next_tokens(latents, actions, uniforms)
    counts = torch.bincount(first.flatten(), minlength=45)
    candidates = [
        t for t in range(45) if 1 <= counts[t] <= 19 and not (by_confidence[first == t] == t).all()
    ]
    assert candidates, "no token of the first round loses a position by confidence alone"
    car = candidates[0]
    model.code_salience[car] = 1.0
    world_models.set_drawing(model, salient_priority=100.0)
    kept = model.draw_next_tokens(latents, actions, uniforms)
    assert (kept[first == car] == car).all()


def test_salient_priority_needs_a_discrete_model_and_its_salience(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="salient_priority must be >= 0"):
        dataclasses.replace(CONFIG, salient_priority=-1.0)
    with pytest.raises(ValueError, match="discrete"):
        WorldModelConfig(salient_priority=1.0)
    model = _model(seed=17)
    with pytest.raises(ValueError, match="experiments.code_salience"):
        world_models.set_drawing(model, salient_priority=100.0)
    # Measured, the salience travels with the checkpoint and the priority can be asked for.
    model.code_salience.copy_(measure_code_salience([_coded(model, _grey_and_red(2))], 45))
    model.save(tmp_path / "checkpoint")
    loaded = WorldModel.load(tmp_path / "checkpoint", expected_config=CONFIG)
    assert torch.equal(loaded.code_salience, model.code_salience)
    assert world_models.set_drawing(loaded, salient_priority=100.0).config.salient_priority == 100
    # A checkpoint whose config asks for the priority but holds no salience is refused.
    bare = WorldModel(dataclasses.replace(CONFIG, salient_priority=100.0))
    bare.save(tmp_path / "bare")
    with pytest.raises(ValueError, match="lacks"):
        WorldModel.load(tmp_path / "bare")
