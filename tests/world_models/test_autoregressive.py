"""The autoregressive world model: shapes, causality, cached decoding against full passes,
sampler determinism, the conditioning added for post-training (text, frame_cond) and the
checkpoint format."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from wfm_sim.tokenizer import VideoTokenizerConfig
from world_models.autoregressive import (
    AutoregressiveConfig,
    AutoregressiveWorldModel,
    SamplingConfig,
    draw_tokens,
    load_autoregressive,
    read_autoregressive_checkpoint,
    sample,
    with_frame_conditioning,
    with_text_conditioning,
)
from world_models.checkpoint_folder import CONFIG_FILE
from world_models.model import CheckpointMismatchError

CONFIG = AutoregressiveConfig(vocab_size=40, latent_size=4, frames=3, width=32, depth=2, heads=2)
N = CONFIG.tokens_per_frame
L = CONFIG.sequence_length
GRID = (CONFIG.frames, CONFIG.latent_size, CONFIG.latent_size)


def _randomise(model: AutoregressiveWorldModel, seed: int = 0) -> AutoregressiveWorldModel:
    """Every weight random (zero-initialised projections too), so each input can matter."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.15)
    return model.eval()


def _model(config: AutoregressiveConfig = CONFIG, seed: int = 0) -> AutoregressiveWorldModel:
    torch.manual_seed(seed)
    return _randomise(AutoregressiveWorldModel(config), seed)


def _conditioned(seed: int = 0) -> AutoregressiveWorldModel:
    """A model reading text (3 memory tokens) and a 2-d frame_cond, every weight random."""
    torch.manual_seed(seed)
    model = AutoregressiveWorldModel(dataclasses.replace(CONFIG, text_tokens=3, frame_cond_dim=2))
    return _randomise(model, seed)


def _tokens(batch: int, length: int = L, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, CONFIG.vocab_size, (batch, length), generator=generator)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _seed(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def model() -> AutoregressiveWorldModel:
    return _model()


@pytest.fixture(scope="module")
def conditioned() -> AutoregressiveWorldModel:
    return _conditioned()


def test_config_refuses_shapes_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="multiple of heads"):
        AutoregressiveConfig(width=30, heads=4)
    with pytest.raises(ValueError, match="vocab_size"):
        AutoregressiveConfig(vocab_size=0)
    with pytest.raises(ValueError, match="text_tokens"):
        AutoregressiveConfig(text_tokens=-1)
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=-0.5)
    assert AutoregressiveConfig().sequence_length == 5 * 64


def test_logits_cover_every_position_and_wrong_inputs_are_named(
    model: AutoregressiveWorldModel,
) -> None:
    tokens = _tokens(3)
    logits = model(tokens)
    assert logits.shape == (3, L, CONFIG.vocab_size) and logits.dtype == torch.float32
    assert model(tokens[:, :7]).shape == (3, 7, CONFIG.vocab_size)  # a prefix
    with pytest.raises(ValueError, match="tokens must be"):
        model(_tokens(3, L + 1))
    with pytest.raises(ValueError, match=r"ids in \[0, 40\)"):
        model(tokens + CONFIG.vocab_size)
    with pytest.raises(ValueError, match="takes no text"):
        model(tokens, _randn(3, 384))
    with pytest.raises(ValueError, match="takes no frame_cond"):
        model(tokens, frame_cond=torch.zeros(3, CONFIG.frames, 2))


@pytest.mark.parametrize("position", [0, 5, N, L - 2])
def test_logits_at_a_position_ignore_the_tokens_from_it_on(
    model: AutoregressiveWorldModel, position: int
) -> None:
    """logits[i] scores token i from tokens < i: changing tokens >= position leaves the
    logits up to position unchanged and moves the next one."""
    tokens = _tokens(2)
    changed = tokens.clone()
    changed[:, position:] = (changed[:, position:] + 1 + _tokens(2, L - position, 9)) % 40
    base, moved = model(tokens), model(changed)
    assert torch.allclose(base[:, : position + 1], moved[:, : position + 1], atol=1e-6)
    assert not torch.allclose(base[:, position + 1], moved[:, position + 1], atol=1e-3)


@pytest.mark.parametrize("frame", [0, 1])
def test_frame_cond_of_later_frames_leaves_earlier_frames_alone(
    conditioned: AutoregressiveWorldModel, frame: int
) -> None:
    """Frame t's tokens are predicted from frame_cond of frames <= t only."""
    tokens, text = _tokens(2), _randn(2, 384, seed=1)
    frame_cond = _randn(2, CONFIG.frames, 2, seed=2)
    later = frame_cond.clone()
    later[:, frame + 1 :] += 1.0
    base = conditioned(tokens, text, frame_cond=frame_cond)
    moved = conditioned(tokens, text, frame_cond=later)
    end = (frame + 1) * N
    assert torch.allclose(base[:, :end], moved[:, :end], atol=1e-6)
    assert not torch.allclose(base[:, end:], moved[:, end:], atol=1e-3)


def test_cached_decoding_gives_the_full_pass_logits(conditioned: AutoregressiveWorldModel) -> None:
    """A prefill of 10 positions, then one position at a time through the KV cache, gives the
    logits of one uncached pass over the whole clip (up to float summation order)."""
    tokens, text = _tokens(2), _randn(2, 384, seed=1)
    frame_cond = _randn(2, CONFIG.frames, 2, seed=2)
    full = conditioned(tokens, text, frame_cond=frame_cond)
    cache = conditioned.new_cache(2)
    memory = conditioned.text_memory(2, text)
    inputs = conditioned.shift_right(tokens)
    parts = [conditioned.extend(inputs[:, :10], cache, memory, frame_cond)]
    parts += [
        conditioned.extend(inputs[:, i : i + 1], cache, memory, frame_cond) for i in range(10, L)
    ]
    assert cache.length == L
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="outside a clip"):
        conditioned.extend(inputs[:, :1], cache, memory, frame_cond)


@pytest.mark.parametrize("guidance", [1.0, 2.5])
def test_cached_and_uncached_sampling_draw_the_same_tokens(
    conditioned: AutoregressiveWorldModel, guidance: float
) -> None:
    context = _tokens(3, N, seed=3).view(3, 1, *GRID[1:])
    text = _randn(3, 384, seed=1)
    frame_cond = _randn(3, CONFIG.frames, 2, seed=2)
    sampling = SamplingConfig(top_k=10, guidance=guidance)
    drawn = [
        sample(conditioned, 3, sampling, _seed(4), context, text, frame_cond, use_cache=cached)
        for cached in (True, False)
    ]
    assert torch.equal(drawn[0], drawn[1])


def test_sampler_is_deterministic_per_seed(model: AutoregressiveWorldModel) -> None:
    def draw(seed: int, sampling: SamplingConfig | None = None) -> torch.Tensor:
        return sample(model, 2, sampling or SamplingConfig(), _seed(seed))

    first = draw(0)
    assert first.shape == (2, *GRID) and first.dtype == torch.int64
    assert int(first.min()) >= 0 and int(first.max()) < CONFIG.vocab_size
    assert torch.equal(first, draw(0))
    assert not torch.equal(first, draw(1))
    greedy = SamplingConfig(temperature=0.0)
    assert torch.equal(draw(0, greedy), draw(1, greedy))  # greedy draws nothing at random
    assert torch.equal(draw(5, SamplingConfig(top_k=1)), draw(0, greedy))


def test_top_k_draws_only_among_the_k_most_likely() -> None:
    logits = _randn(500, 40, seed=1) * 3
    allowed = logits.topk(4, dim=-1).indices
    drawn = draw_tokens(logits, SamplingConfig(top_k=4), _seed(0))
    assert bool((allowed == drawn[:, None]).any(dim=1).all())
    free = draw_tokens(logits, SamplingConfig(), _seed(0))
    assert not bool((allowed == free[:, None]).any(dim=1).all())


def test_sampler_keeps_the_context_and_continues_from_it(model: AutoregressiveWorldModel) -> None:
    context = _tokens(2, 2 * N, seed=3).view(2, 2, *GRID[1:])
    out = sample(model, 2, SamplingConfig(temperature=0.0), context=context)
    assert torch.equal(out[:, :2], context)
    other = sample(model, 2, SamplingConfig(temperature=0.0), context=(context + 1) % 40)
    assert not torch.equal(out[:, 2:], other[:, 2:])  # the future reads it
    with pytest.raises(ValueError, match="context must be"):
        sample(model, 2, SamplingConfig(), context=_tokens(2, L).view(2, *GRID))


def test_added_cross_attention_keeps_the_pretrained_predictions(
    model: AutoregressiveWorldModel,
) -> None:
    expanded = with_text_conditioning(model, 3)
    assert expanded.config.text_tokens == 3
    tokens, text = _tokens(2), _randn(2, 384, seed=1)
    assert torch.equal(expanded(tokens, text), model(tokens))
    context = tokens.view(2, *GRID)[:, :1]
    greedy = SamplingConfig(temperature=0.0)
    assert torch.equal(
        sample(expanded, 2, greedy, context=context, text=text),
        sample(model, 2, greedy, context=context),
    )
    with torch.no_grad():
        for name, parameter in expanded.named_parameters():
            if name.endswith("cross.proj.weight"):
                parameter.normal_(0, 0.3)
    assert not torch.allclose(expanded(tokens, text), model(tokens), atol=1e-3)
    with pytest.raises(ValueError, match="already cross-attends"):
        with_text_conditioning(expanded, 3)


def test_dropped_text_is_the_learned_null_embedding(conditioned: AutoregressiveWorldModel) -> None:
    tokens, text = _tokens(3), _randn(3, 384, seed=1)
    unconditional = conditioned(tokens)
    mixed = conditioned(tokens, text, torch.tensor([True, False, True]))
    conditional = conditioned(tokens, text)
    assert torch.allclose(mixed[1], unconditional[1], atol=1e-6)
    assert torch.allclose(mixed[[0, 2]], conditional[[0, 2]], atol=1e-6)
    assert not torch.allclose(conditional, unconditional, atol=1e-3)
    with pytest.raises(ValueError, match="text must be"):
        conditioned(tokens, text[:, :100])


def test_guidance_zero_samples_the_unconditional_model(
    conditioned: AutoregressiveWorldModel,
) -> None:
    text = _randn(2, 384, seed=1)

    def run(guidance: float, with_text: bool = True) -> torch.Tensor:
        sampling = SamplingConfig(guidance=guidance)
        return sample(conditioned, 2, sampling, _seed(0), text=text if with_text else None)

    assert torch.equal(run(0.0), run(1.0, with_text=False))
    assert not torch.equal(run(4.0), run(1.0))


def test_frame_conditioning_is_added_without_changing_the_model(
    model: AutoregressiveWorldModel,
) -> None:
    expanded = with_frame_conditioning(model, 5)
    tokens, actions = _tokens(2), _randn(2, CONFIG.frames, 5, seed=3)
    assert torch.equal(expanded(tokens, frame_cond=actions), model(tokens))
    with torch.no_grad():
        expanded.frame_embed.weight.normal_(0, 0.5)  # type: ignore[union-attr]
    assert not torch.allclose(expanded(tokens, frame_cond=actions), model(tokens), atol=1e-3)
    with pytest.raises(ValueError, match="frame_cond must be"):
        expanded(tokens, frame_cond=actions[:, :, :4])


def test_checkpoint_round_trip_keeps_weights_and_tokenizer(
    tmp_path: Path, conditioned: AutoregressiveWorldModel
) -> None:
    tokenizer = VideoTokenizerConfig(kind="discrete", fsq_levels=(5, 4, 2))
    folder = conditioned.save(tmp_path / "ckpt", tokenizer, {"stage": "video2world"})
    loaded = load_autoregressive(folder, expected=conditioned.config)
    for key, value in conditioned.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    text = _randn(1, 384, seed=1)
    assert torch.equal(
        sample(conditioned, 1, SamplingConfig(), _seed(2), text=text),
        sample(loaded, 1, SamplingConfig(), _seed(2), text=text),
    )
    config, saved_tokenizer, info = read_autoregressive_checkpoint(folder)
    assert (config, saved_tokenizer, info) == (
        conditioned.config,
        tokenizer,
        {"stage": "video2world"},
    )


def test_checkpoint_of_another_config_is_refused(
    tmp_path: Path, model: AutoregressiveWorldModel
) -> None:
    folder = model.save(tmp_path / "ckpt")
    with pytest.raises(CheckpointMismatchError, match="depth"):
        load_autoregressive(folder, expected=dataclasses.replace(CONFIG, depth=3))
    with pytest.raises(CheckpointMismatchError, match="text_tokens"):
        load_autoregressive(folder, expected=dataclasses.replace(CONFIG, text_tokens=3))
    payload = json.loads((folder / CONFIG_FILE).read_text())
    payload["autoregressive"]["vocab_size"] = 64
    (folder / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(CheckpointMismatchError, match="do not fit"):
        load_autoregressive(folder)
    payload["format"] = "wfm_sim.diffusion/1"
    (folder / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(CheckpointMismatchError, match="format"):
        load_autoregressive(folder)
