"""Heads trained on whole imagined episodes: the bank holds the steps the env would imagine,
labelled with the real episode's rewards and crashes, and the stage trains only the heads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import world_models
from wfm_sim.data import read_episodes, split_episodes
from wfm_sim.training import TrainConfig, train_world_model
from wfm_sim.training.imagined_heads import (
    ImaginedTransitions,
    imagine_transitions,
    imagined_heads_loss,
    real_transitions,
    roc_auc,
)
from wfm_sim.training.world_model import training_episodes
from world_models.model import WEIGHTS_FILE


def test_bank_holds_every_imagined_step_with_its_real_labels(
    tiny_checkpoint: Path, tiny_footage: Path, tmp_path: Path
) -> None:
    model = world_models.load(tiny_checkpoint, device="cpu")
    k = model.config.context
    episodes = read_episodes(tiny_footage)
    bank = imagine_transitions(model, episodes, seed=3, batch_size=4)
    usable = [e for e in episodes if e.length >= k]
    assert len(bank) == sum(e.length - k + 1 for e in usable)
    assert int(bank.terminated.sum()) == sum(int(e.terminated[k - 1 :].sum()) for e in usable)
    assert bank.rewards.sum().item() == pytest.approx(
        sum(float(e.rewards[k - 1 :].sum()) for e in usable), rel=1e-5
    )
    assert bank.latents.shape[1:3] == (k + 1, model.config.latent_channels)
    # The first row of the shortest episode starts from its real frames, coded.
    shortest = min(usable, key=lambda e: e.length)
    coded = model.tokenizer.encode(torch.from_numpy(shortest.frames[:k]))
    first_rows = [i for i in range(len(bank)) if torch.equal(bank.latents[i, :k], coded)]
    assert first_rows, "no bank row starts from the shortest episode's real frames"
    np.testing.assert_array_equal(bank.actions[first_rows[0]].numpy(), shortest.actions[:k])

    again = imagine_transitions(model, episodes, seed=3, batch_size=4)
    other = imagine_transitions(model, episodes, seed=4, batch_size=4)
    assert torch.equal(again.latents, bank.latents), "the same seed must give the same bank"
    assert not torch.equal(other.latents, bank.latents), "the seed must change the draws"

    bank.save(tmp_path / "bank.safetensors")
    loaded = ImaginedTransitions.load(tmp_path / "bank.safetensors")
    assert torch.equal(loaded.latents, bank.latents) and torch.equal(loaded.actions, bank.actions)


def test_temperature_zero_draws_the_same_bank_whatever_the_seed(
    tiny_checkpoint: Path, tiny_footage: Path
) -> None:
    model = world_models.load(tiny_checkpoint, device="cpu")
    episodes = read_episodes(tiny_footage)
    first = imagine_transitions(model, episodes, seed=3, batch_size=4, temperature=0.0)
    second = imagine_transitions(model, episodes, seed=4, batch_size=4, temperature=0.0)
    assert torch.equal(first.latents, second.latents), "temperature 0 takes the likeliest tokens"
    sampled = imagine_transitions(model, episodes, seed=3, batch_size=4, temperature=1.0)
    assert not torch.equal(first.latents, sampled.latents)


def test_real_rows_code_every_step_from_the_real_frames(
    tiny_checkpoint: Path, tiny_footage: Path
) -> None:
    model = world_models.load(tiny_checkpoint, device="cpu")
    k = model.config.context
    episodes = read_episodes(tiny_footage)
    imagined = imagine_transitions(model, episodes, seed=0, batch_size=4)
    real = real_transitions(model, episodes)
    assert len(real) == len(imagined)
    assert torch.equal(real.terminated.sort().values, imagined.terminated.sort().values)
    # Episodes come in footage order: the first usable episode's last row ends on its last frame.
    episode = next(e for e in episodes if e.length >= k)
    coded = model.tokenizer.encode(torch.from_numpy(episode.frames))
    rows = episode.length - k + 1
    assert torch.equal(real.latents[0], coded[: k + 1])
    assert torch.equal(real.latents[rows - 1], coded[-(k + 1) :])
    np.testing.assert_array_equal(real.actions[rows - 1].numpy(), episode.actions[-k:])
    assert real.rewards[rows - 1].item() == pytest.approx(float(episode.rewards[-1]))
    assert bool(real.terminated[rows - 1]) == bool(episode.terminated[-1])


def test_nothing_to_imagine_is_refused(tiny_checkpoint: Path, tiny_footage: Path) -> None:
    model = world_models.load(tiny_checkpoint, device="cpu")
    short = read_episodes(tiny_footage)
    for episode in short:
        episode.actions = episode.actions[:0]
        episode.rewards = episode.rewards[:0]
        episode.terminated = episode.terminated[:0]
        episode.frames = episode.frames[:1]
    with pytest.raises(ValueError, match="no episode lasts"):
        imagine_transitions(model, short, seed=0)


def test_heads_loss_falls_when_fitting_the_bank(tiny_checkpoint: Path, tiny_footage: Path) -> None:
    model = world_models.load(tiny_checkpoint, device="cpu")
    bank = imagine_transitions(model, read_episodes(tiny_footage), seed=0)
    index = np.arange(len(bank))
    optimizer = torch.optim.Adam(model.heads.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = imagined_heads_loss(model, bank, index, end_pos_weight=5.0, end_loss_weight=0.5)
        first = first if first is not None else loss["loss"].item()
        optimizer.zero_grad()
        loss["loss"].backward()
        optimizer.step()
    assert loss["loss"].item() < 0.5 * first


def test_imagined_heads_stage_trains_only_the_heads_and_resumes(
    tmp_path: Path, tiny_checkpoint: Path, make_train_config: Callable[..., TrainConfig]
) -> None:
    config = make_train_config(
        tmp_path / "heads",
        init_checkpoint=str(tiny_checkpoint),
        tokenizer_steps=0,
        dynamics_steps=0,
        finetune_steps=0,
        imagined_head_steps=4,
        imagined_head_batch=8,
    )
    exported = train_world_model(config)
    bank = ImaginedTransitions.load(tmp_path / "heads" / "imagined_transitions.safetensors")
    train, _ = split_episodes(training_episodes(config), config.held_out_fraction, config.seed)
    k = world_models.load(tiny_checkpoint, device="cpu").config.context
    imagined_rows = sum(e.length - k + 1 for e in train if e.length >= k)
    assert len(bank) == 2 * imagined_rows, "every training step imagined, and with its real context"
    assert (tmp_path / "heads" / "imagined_heads_state.safetensors").exists()
    before = load_file(str(tiny_checkpoint / WEIGHTS_FILE))
    after = load_file(str(exported / WEIGHTS_FILE))
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith("heads.") for name in changed), sorted(changed)[:3]
    # A second run finds the stage done: the same weights come back.
    again = load_file(str(train_world_model(config) / WEIGHTS_FILE))
    for name, tensor in after.items():
        assert torch.equal(again[name], tensor), name


def test_auc_against_hand_computed_values() -> None:
    assert roc_auc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([True, True, False, False])) == 1.0
    assert roc_auc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([True, True, False, False])) == 0.0
    # one positive above one of two negatives, and a tie counting half
    assert roc_auc(np.array([0.5, 0.6, 0.4]), np.array([True, False, False])) == 0.5
    assert roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    assert np.isnan(roc_auc(np.array([0.5, 0.5]), np.array([True, True])))
