"""The action-conditioned WFM backends (``ActionModel``): per-frame action features, the config's
checks, inverse-transform token draws from given uniforms, imagined
steps of both backends (shapes, the uniforms owning the randomness, temperature 0) and the
checkpoint round trip through ``world_models.load``.

The models are random and tiny: a width-8 tokenizer (64x64 frames -> 8 x 8 latents), a 32-wide
two-block diffusion or autoregressive backbone over clips of 5 latent frames (context 4), a
16-wide head; every weight is perturbed so no output is trivially zero.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import world_models
from tests.tiny_wfms import CONTINUOUS, DISCRETE, tiny_backbone
from wfm_sim.training.evaluate import step_uniforms
from world_models import CheckpointMismatchError
from world_models.action_model import (
    ActionModel,
    ActionModelConfig,
    action_features,
    is_action_model,
)
from world_models.autoregressive import (
    AutoregressiveConfig,
    AutoregressiveWorldModel,
    SamplingConfig,
    draw_tokens,
    sample,
)

N_ACTIONS = 5
FEATURES = N_ACTIONS + 1
BACKENDS = ("diffusion", "autoregressive")


def _backbone(backend: str, frame_cond_dim: int = FEATURES) -> dict:
    return tiny_backbone(backend, frame_cond_dim).to_dict()


def _config(backend: str, **overrides: object) -> ActionModelConfig:
    tokenizer = CONTINUOUS if backend == "diffusion" else DISCRETE
    sampler = {"steps": 2} if backend == "diffusion" else {"temperature": 1.0}
    fields: dict = {
        "backend": backend,
        "backbone": _backbone(backend),
        "tokenizer": tokenizer.to_dict(),
        "sampler": sampler,
        "n_actions": N_ACTIONS,
        "head_width": 16,
    }
    fields.update(overrides)
    return ActionModelConfig(**fields)  # type: ignore[arg-type]


def _random_model(config: ActionModelConfig, seed: int = 0) -> ActionModel:
    """An ActionModel with every weight perturbed (the zero-initialised layers too)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ActionModel(config)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if not name.startswith("tokenizer."):
                    parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


@pytest.fixture(scope="module", params=BACKENDS)
def model(request: pytest.FixtureRequest) -> ActionModel:
    return _random_model(_config(request.param))


def _frames(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (*shape, 64, 64, 3), dtype=np.uint8))


def _inputs(model: ActionModel, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A context of K real-frame latents (B, K, C, h, w) and actions (B, K), one padding."""
    k = model.config.context
    latents = model.tokenizer.encode(_frames((batch, k)))
    actions = torch.randint(0, N_ACTIONS, (batch, k), generator=torch.Generator().manual_seed(0))
    actions[:, 0] = N_ACTIONS
    return latents, actions


def _uniforms(model: ActionModel, batch: int, seed: int) -> torch.Tensor:
    uniforms = step_uniforms(model, batch, torch.Generator().manual_seed(seed))
    assert uniforms is not None, "a WFM backend always draws its frames"
    return uniforms


# --- action_features --------------------------------------------------------------------


def test_action_features_one_hot_each_frame_after_its_action() -> None:
    config = _config("diffusion")
    actions = torch.tensor([[0, 3, 4], [N_ACTIONS, 1, 2]])
    features = action_features(actions, config)
    assert features.shape == (2, 4, FEATURES)
    padding = torch.zeros(FEATURES)
    padding[N_ACTIONS] = 1.0
    torch.testing.assert_close(features[:, 0], padding.expand(2, -1))
    for j in range(1, 4):
        expected = torch.nn.functional.one_hot(actions[:, j - 1], FEATURES).float()
        torch.testing.assert_close(features[:, j], expected)
    torch.testing.assert_close(features[1, 1], padding)  # the padding index is padding


def test_action_features_scale_continuous_actions_and_flag_nan_rows() -> None:
    config = _config(
        "diffusion",
        backbone=_backbone("diffusion", frame_cond_dim=3),
        n_actions=0,
        action_dim=2,
        action_low=[-2.0, 0.0],
        action_high=[2.0, 4.0],
    )
    assert config.continuous_actions and config.action_features == 3
    nan = float("nan")
    actions = torch.tensor([[[-2.0, 0.0], [1.0, 3.0], [nan, nan]]])
    features = action_features(actions, config)
    expected = torch.tensor(
        [[[0.0, 0.0, 1.0], [-1.0, -1.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]]
    )
    torch.testing.assert_close(features, expected)


# --- ActionModelConfig ------------------------------------------------------------------


def test_config_refuses_an_unknown_backend() -> None:
    with pytest.raises(ValueError, match="backend"):
        _config("maskgit")


def test_config_refuses_a_backbone_not_taking_the_action_features() -> None:
    with pytest.raises(ValueError, match="frame_cond_dim"):
        _config("diffusion", backbone=_backbone("diffusion", frame_cond_dim=FEATURES + 1))
    with pytest.raises(ValueError, match="frame_cond_dim"):
        _config("autoregressive", backbone=_backbone("autoregressive", frame_cond_dim=0))


def test_config_from_dict_round_trips_and_refuses_unknown_keys() -> None:
    config = _config("autoregressive")
    assert ActionModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown action-model config keys"):
        ActionModelConfig.from_dict({**config.to_dict(), "horizon": 3})


@pytest.mark.parametrize("backend", BACKENDS)
def test_config_context_is_the_clip_length_minus_one(backend: str) -> None:
    config = _config(backend)
    assert config.context == config.backbone["frames"] - 1 == 4
    assert config.head_config().context == 4


# --- draw_tokens / sample with uniforms ---------------------------------------------------


def test_draw_tokens_takes_the_only_id_with_mass_for_any_uniform() -> None:
    logits = torch.full((5, 4), float("-inf"))
    logits[:, 2] = 0.0
    uniforms = torch.tensor([0.0, 1e-7, 0.5, 0.9, 1 - 1e-7])
    drawn = draw_tokens(logits, SamplingConfig(temperature=1.0), uniforms=uniforms)
    assert drawn.tolist() == [2] * 5


def test_draw_tokens_inverts_the_cumulative_distribution() -> None:
    logits = torch.tensor([[0.2, 0.3, 0.5]]).log().expand(3, -1)
    uniforms = torch.tensor([0.1, 0.3, 0.9])
    drawn = draw_tokens(logits, SamplingConfig(temperature=1.0), uniforms=uniforms)
    assert drawn.tolist() == [0, 1, 2]
    # evenly spread uniforms land on each id in proportion to its probability
    grid = (torch.arange(1000) + 0.5) / 1000
    spread = draw_tokens(logits[:1].expand(1000, -1), SamplingConfig(), uniforms=grid)
    assert torch.bincount(spread, minlength=3).tolist() == [200, 300, 500]


def test_draw_tokens_same_uniforms_give_the_same_ids() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 12, generator=generator)
    uniforms = torch.rand(64, generator=generator)
    sampling = SamplingConfig(temperature=1.0, top_k=6)
    first = draw_tokens(logits, sampling, uniforms=uniforms)
    again = draw_tokens(
        logits, sampling, generator=torch.Generator().manual_seed(9), uniforms=uniforms
    )
    assert torch.equal(first, again)
    top = logits.topk(6, dim=-1).indices
    assert (top == first[:, None]).any(-1).all(), "top-k keeps draws among the k most likely"
    assert not torch.equal(first, draw_tokens(logits, sampling, uniforms=1 - uniforms))


def test_draw_tokens_never_draws_an_id_without_probability() -> None:
    # Uniforms just below 1 (float64, as an env's numpy generator draws them) must still land
    # on an id top-k kept, not on the vocabulary's last id.
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, float("-inf")]])
    uniforms = torch.tensor([1 - 1e-9, 1 - 1e-9], dtype=torch.float64)
    drawn = draw_tokens(logits, SamplingConfig(temperature=1.0, top_k=2), uniforms=uniforms)
    assert drawn.tolist() == [1, 1]  # the last id each row can draw


def test_sample_refuses_uniforms_of_the_wrong_shape() -> None:
    config = AutoregressiveConfig(
        vocab_size=12, latent_size=2, frames=3, width=16, depth=1, heads=2
    )
    backbone = AutoregressiveWorldModel(config).eval()
    context = torch.zeros(2, 2, 2, 2, dtype=torch.long)
    right = sample(backbone, 2, SamplingConfig(), context=context, uniforms=torch.rand(2, 4))
    assert right.shape == (2, 3, 2, 2)
    with pytest.raises(ValueError, match="uniforms"):
        sample(backbone, 2, SamplingConfig(), context=context, uniforms=torch.rand(2, 12))


# --- ActionModel.imagine ------------------------------------------------------------------


@torch.no_grad()
def test_imagine_shapes(model: ActionModel) -> None:
    latents, actions = _inputs(model, batch=3)
    step = model.imagine(latents, actions, _uniforms(model, 3, seed=0))
    assert step.latent.shape == (3, *model.latent_shape)
    assert step.reward.shape == step.end_probability.shape == (3,)
    assert ((step.end_probability >= 0) & (step.end_probability <= 1)).all()
    c, h, w = model.latent_shape
    expected_draws = (c, h, w) if model.config.backend == "diffusion" else (h * w,)
    assert model.draw_shape == expected_draws


@torch.no_grad()
def test_imagine_draws_only_from_the_uniforms(model: ActionModel) -> None:
    latents, actions = _inputs(model)
    uniforms = _uniforms(model, 2, seed=0)
    first = model.imagine(latents, actions, uniforms)
    torch.manual_seed(123)  # the global generator must not matter
    again = model.imagine(latents, actions, uniforms.clone())
    for a, b in zip(dataclasses.astuple(first), dataclasses.astuple(again), strict=True):
        assert torch.equal(a, b)
    other = model.imagine(latents, actions, _uniforms(model, 2, seed=1))
    assert not torch.equal(first.latent, other.latent)


@torch.no_grad()
def test_imagine_at_temperature_zero_ignores_the_uniforms(model: ActionModel) -> None:
    latents, actions = _inputs(model)
    cold = model.imagine(latents, actions, _uniforms(model, 2, seed=0), temperature=0.0)
    colder = model.imagine(latents, actions, _uniforms(model, 2, seed=1), temperature=0.0)
    without = model.imagine(latents, actions, None)
    assert torch.equal(cold.latent, colder.latent)
    assert torch.equal(cold.latent, without.latent)


@torch.no_grad()
def test_imagine_refuses_uniforms_of_the_wrong_shape(model: ActionModel) -> None:
    latents, actions = _inputs(model)
    with pytest.raises(ValueError, match="uniforms"):
        model.imagine(latents, actions, torch.rand(2, 7))
    with pytest.raises(ValueError, match="uniforms"):
        model.imagine(latents, actions, _uniforms(model, 3, seed=0))


@torch.no_grad()
def test_imagine_reads_the_actions(model: ActionModel) -> None:
    latents, actions = _inputs(model)
    uniforms = _uniforms(model, 2, seed=0)
    first = model.imagine(latents, actions, uniforms)
    changed = actions.clone()
    changed[:, -1] = (changed[:, -1] + 1) % N_ACTIONS
    other = model.imagine(latents, changed, uniforms)
    assert not torch.equal(first.latent, other.latent)


# --- checkpoints ----------------------------------------------------------------------------


@torch.no_grad()
def test_save_load_round_trip(model: ActionModel, tmp_path: Path) -> None:
    starts = {
        "frames": _frames((2, model.config.context)),
        "actions": torch.ones(2, model.config.context - 1, dtype=torch.long),
    }
    folder = model.save(tmp_path / "checkpoint", extra_tensors=starts, info={"note": "test"})
    assert is_action_model(folder)
    loaded = world_models.load(folder)
    assert isinstance(loaded, ActionModel) and loaded.config == model.config
    latents, actions = _inputs(model)
    uniforms = _uniforms(model, 2, seed=0)
    saved_step = model.imagine(latents, actions, uniforms)
    loaded_step = loaded.imagine(latents, actions, uniforms)
    for a, b in zip(dataclasses.astuple(saved_step), dataclasses.astuple(loaded_step), strict=True):
        assert torch.equal(a, b)
    frames, start_actions = world_models.load_start_contexts(folder)
    assert torch.equal(frames, starts["frames"]) and torch.equal(start_actions, starts["actions"])


def test_load_world_model_and_another_config_are_refused(
    model: ActionModel, tmp_path: Path
) -> None:
    folder = model.save(tmp_path / "checkpoint")
    with pytest.raises(CheckpointMismatchError, match="ActionModel"):
        world_models.load_world_model(folder)
    other = dataclasses.replace(model.config, head_width=32)
    with pytest.raises(CheckpointMismatchError, match="head_width"):
        ActionModel.load(folder, expected=other)
    assert isinstance(ActionModel.load(folder, expected=model.config), ActionModel)


def test_a_maskgit_checkpoint_is_not_an_action_model(tiny_checkpoint: Path) -> None:
    assert not is_action_model(tiny_checkpoint)
    assert isinstance(world_models.load(tiny_checkpoint), world_models.WorldModel)
    assert isinstance(world_models.load_world_model(tiny_checkpoint), world_models.WorldModel)
