"""Action post-training of the pre-trained WFMs: the post-trained model starts from every
pre-trained weight (its action projection at zero), a short run lowers the backbone's loss and
exports a loadable checkpoint with its start contexts and report, runs resume without redoing
steps and refuse another schedule, the held-out split follows a reference checkpoint, and
``WFM-Driving-v0`` runs on the export for both backends.

Everything is random and tiny: width-8 tokenizers (64x64 frames -> 8 x 8 latents, continuous
4-channel or FSQ (4, 3) = 12 ids), 32-wide two-block backbones over clips of 5 latent frames
(every weight perturbed, so the copies are not of zeros), the session's 6-episode footage.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from safetensors.torch import load_file
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
import envs.core
import wfm_sim.stage_loop as stage_loop
import wfm_sim.training.post_training as post_training
from experiments.synthetic import ClipRequest, WorldModelClipGenerator, WorldModelSynthesisConfig
from policies import load_driving_zoo
from tests.tiny_wfms import save_tiny_pretrained, tiny_post_train_config
from tests.training.torchrun import RELATIVE_GAP, hydra_overrides, relative_gap, run_torchrun
from wfm_sim.data import Episode, WindowSampler, read_episodes
from wfm_sim.training.diffusion import fit_latent_statistics
from wfm_sim.training.evaluate import open_loop_rollouts
from wfm_sim.training.post_training import PostTrainConfig, build_model, post_train
from wfm_sim.training.world_model import encode_episodes
from world_models import CheckpointMismatchError, load_start_contexts
from world_models.action_model import ActionModel, action_features
from world_models.autoregressive import (
    load_autoregressive,
)
from world_models.diffusion import DiffusionWorldModel, load_diffusion

BACKENDS = ("diffusion", "autoregressive")
ACTIONS = [1, 3, 0, 4, 2, 1]


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """backend -> (pre-trained checkpoint folder, tokenizer folder), random and perturbed."""
    return save_tiny_pretrained(tmp_path_factory.mktemp("pretrained"))


@pytest.fixture(scope="module", params=BACKENDS)
def run(
    request: pytest.FixtureRequest,
    pretrained: dict[str, tuple[Path, Path]],
    tiny_footage: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[PostTrainConfig, Path]:
    """(config, export folder) of one 30-step post-training run of each backend."""
    run_dir = tmp_path_factory.mktemp(f"post_train_{request.param}")
    config = tiny_post_train_config(request.param, pretrained, tiny_footage, run_dir)
    return config, post_train(config)


def _train_episodes(config: PostTrainConfig, export: Path) -> list[Episode]:
    held = set(json.loads((export / "training.json").read_text())["held_out_episode_ids"])
    return [e for e in read_episodes(config.footage_dir) if e.episode_id not in held]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


# --- build_model ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@torch.no_grad()
def test_pretrained_init_copies_every_backbone_weight(
    backend: str,
    pretrained: dict[str, tuple[Path, Path]],
    tiny_footage: Path,
    tmp_path: Path,
) -> None:
    config = tiny_post_train_config(backend, pretrained, tiny_footage, tmp_path)
    model = build_model(config).eval()
    loader = load_diffusion if backend == "diffusion" else load_autoregressive
    original = loader(pretrained[backend][0])
    state, saved = model.backbone.state_dict(), original.state_dict()
    assert {k for k in state if not k.startswith("frame_embed.")} == set(saved)
    for key, value in saved.items():
        assert torch.equal(state[key], value), key
    assert model.backbone.frame_embed is not None
    assert not model.backbone.frame_embed.weight.any()
    assert model.config.backbone["frame_cond_dim"] == 6 == model.config.action_features

    # the zero projection leaves the pre-trained model's outputs as they were
    generator = torch.Generator().manual_seed(0)
    actions = torch.randint(0, 6, (2, 4), generator=generator)
    cond = action_features(actions, model.config)
    if isinstance(original, DiffusionWorldModel):
        shape = (2, 5, *model.latent_shape)
        x = torch.randn(shape, generator=generator)
        sigma = torch.tensor([0.3, 3.0])
        expected = original(x, sigma)
        got = model.backbone(x, sigma, frame_cond=cond)
    else:
        tokens = torch.randint(0, 12, (2, original.config.sequence_length), generator=generator)
        expected = original(tokens)
        got = model.backbone(tokens, frame_cond=cond)
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scratch_init_has_fresh_backbone_weights(
    backend: str,
    pretrained: dict[str, tuple[Path, Path]],
    tiny_footage: Path,
    tmp_path: Path,
) -> None:
    config = tiny_post_train_config(backend, pretrained, tiny_footage, tmp_path, init="scratch")
    model = build_model(config)
    loader = load_diffusion if backend == "diffusion" else load_autoregressive
    saved = dict(loader(pretrained[backend][0]).named_parameters())
    fresh = dict(model.backbone.named_parameters())
    assert fresh.keys() - saved.keys() == {"frame_embed.weight", "frame_embed.bias"}
    same = [k for k, v in saved.items() if torch.equal(fresh[k], v)]
    assert not same, f"scratch init kept pre-trained weights {same}"
    assert model.backbone.config.to_dict() == {
        **loader(pretrained[backend][0]).config.to_dict(),
        "frame_cond_dim": 6,
    }
    again = build_model(config)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), f"a seed gives one init: {key}"


def test_config_refuses_an_unknown_backend_or_init() -> None:
    with pytest.raises(ValueError, match="backend"):
        PostTrainConfig(backend="maskgit")
    with pytest.raises(ValueError, match="init"):
        PostTrainConfig(init="finetuned")


# --- post_train ---------------------------------------------------------------------------


def test_export_loads_with_its_report_and_start_contexts(
    run: tuple[PostTrainConfig, Path],
) -> None:
    config, export = run
    assert export == Path(config.run_dir) / "checkpoint"
    model = ActionModel.load(export)
    assert model.config.backend == config.backend and model.config.n_actions == 5
    assert config.sampler.items() <= model.config.sampler.items()
    report = json.loads((export / "training.json").read_text())
    assert report["steps"] == 30
    episodes = read_episodes(config.footage_dir)
    held = report["held_out_episode_ids"]
    assert len(held) == 2 and set(held) < {e.episode_id for e in episodes}
    assert report["episodes"] == {"train": 4, "held_out": 2}
    assert report["train_config"]["backend"] == config.backend
    frames, actions = load_start_contexts(export)
    k = model.config.context
    assert frames.shape[1:] == (k, 64, 64, 3) and frames.dtype == torch.uint8
    assert actions.shape == (len(frames), k - 1)
    held_starts = [e.frames[:k] for e in episodes if e.episode_id in held and e.length >= k]
    np.testing.assert_array_equal(frames.numpy(), np.stack(held_starts))


def _fixed_batches(
    model: ActionModel, episodes: list[Episode], config: PostTrainConfig
) -> list[dict[str, torch.Tensor]]:
    """Four fixed batches of 32 windows with their noise draws, as the trainer draws them."""
    latents = encode_episodes(model, episodes, torch.device("cpu"))
    sampler = WindowSampler(latents, model.config.context, 1)
    return [
        post_training._draw_batch(
            model, sampler, 32, np.random.default_rng([99, s]), config, torch.device("cpu")
        )
        for s in range(4)
    ]


@torch.no_grad()
def _mean_backbone_loss(
    model: ActionModel, batches: list[dict[str, torch.Tensor]], config: PostTrainConfig
) -> float:
    """The trainer's backbone loss, averaged over ``batches``."""
    losses = []
    for batch in batches:
        total, count = post_training._backbone_loss(model.eval(), batch, config)
        losses.append(float(total / count))
    return float(np.mean(losses))


def test_a_short_run_lowers_the_backbone_loss(run: tuple[PostTrainConfig, Path]) -> None:
    config, export = run
    untrained = build_model(config)
    batches = _fixed_batches(untrained, _train_episodes(config, export), config)
    before = _mean_backbone_loss(untrained, batches, config)
    after = _mean_backbone_loss(ActionModel.load(export), batches, config)
    assert after < 0.9 * before, (before, after)


def test_a_killed_run_resumes_without_redoing_steps(
    run: tuple[PostTrainConfig, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finished, _ = run
    short = {"steps": 6, "batch": 4, "checkpoint_every": 2}
    whole = post_train(dataclasses.replace(finished, run_dir=str(tmp_path / "whole"), **short))
    config = dataclasses.replace(finished, run_dir=str(tmp_path / "killed"), **short)
    save = stage_loop.save_training_state

    def save_then_die(path: Path, *args: Any, **kwargs: Any) -> None:
        save(path, *args, **kwargs)
        if args[2] == 4:
            raise _Killed

    monkeypatch.setattr(stage_loop, "save_training_state", save_then_die)
    with pytest.raises(_Killed):
        post_train(config)
    assert not config.export_folder.exists()
    monkeypatch.setattr(stage_loop, "save_training_state", save)
    loss = post_training._backbone_loss
    steps: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        steps.append(1)
        return loss(*args, **kwargs)

    monkeypatch.setattr(post_training, "_backbone_loss", counted)
    resumed = post_train(config)
    assert len(steps) == 2, "only the steps after the saved state run"
    uninterrupted = _weights(whole)
    for key, value in _weights(resumed).items():
        torch.testing.assert_close(value, uninterrupted[key], atol=1e-6, rtol=0, msg=key)
    exported = _weights(resumed)
    assert post_train(config) == resumed  # a finished run exports again without training
    assert len(steps) == 2
    for key, value in _weights(resumed).items():
        assert torch.equal(value, exported[key]), key


@pytest.mark.parametrize("change", [{"steps": 40}, {"batch": 4}], ids=["steps", "batch"])
def test_a_rerun_under_another_schedule_is_refused(
    run: tuple[PostTrainConfig, Path], change: dict[str, int]
) -> None:
    config, _ = run
    with pytest.raises(ValueError, match="schedule"):
        post_train(dataclasses.replace(config, **change))


def test_a_scratch_diffusion_run_fits_the_latent_statistics(
    pretrained: dict[str, tuple[Path, Path]], tiny_footage: Path, tmp_path: Path
) -> None:
    config = tiny_post_train_config(
        "diffusion", pretrained, tiny_footage, tmp_path, init="scratch", steps=1, batch=2
    )
    export = post_train(config)
    model = ActionModel.load(export)
    assert json.loads((export / "config.json").read_text())["info"]["init"] == "scratch"
    latents = encode_episodes(model, _train_episodes(config, export), torch.device("cpu"))
    mean, sigma_data = fit_latent_statistics(
        torch.from_numpy(np.concatenate([e.frames for e in latents]))[:, None]
    )
    assert isinstance(model.backbone, DiffusionWorldModel)
    torch.testing.assert_close(model.backbone.latent_mean, mean)
    assert float(model.backbone.sigma_data) == pytest.approx(sigma_data)


def test_split_from_holds_out_the_reference_episodes(
    run: tuple[PostTrainConfig, Path], tmp_path: Path
) -> None:
    finished, reference = run
    config = dataclasses.replace(
        finished,
        run_dir=str(tmp_path / "run"),
        split_from=str(reference),
        held_out_fraction=0.5,  # ignored: the reference decides
        seed=5,
        steps=1,
        batch=2,
    )
    export = post_train(config)
    report = json.loads((export / "training.json").read_text())
    wanted = json.loads((reference / "training.json").read_text())["held_out_episode_ids"]
    assert sorted(report["held_out_episode_ids"]) == sorted(wanted)


def test_split_from_footage_lacking_the_held_out_episodes_is_refused(
    pretrained: dict[str, tuple[Path, Path]], tiny_footage: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "training.json").write_text(json.dumps({"held_out_episode_ids": [900, 901]}))
    config = tiny_post_train_config(
        "diffusion", pretrained, tiny_footage, tmp_path / "run", split_from=str(reference)
    )
    with pytest.raises(ValueError, match="make record"):
        post_train(config)


# --- the env ----------------------------------------------------------------------------------


def _make(folder: Path, backend: str, **kwargs: Any) -> gym.Env:
    return gym.make(
        envs.DRIVING_ID, checkpoint=str(folder), backend=backend, device="cpu", **kwargs
    )


def test_env_passes_the_gymnasium_and_sb3_checkers(run: tuple[PostTrainConfig, Path]) -> None:
    config, export = run
    env = _make(export, config.backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)
    assert not [str(w.message) for w in caught]
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert env.action_space == gym.spaces.Discrete(5)


def _rollout(env: gym.Env, seed: int) -> list[tuple[Any, ...]]:
    obs, _ = env.reset(seed=seed)
    out: list[tuple[Any, ...]] = [(obs,)]
    for action in ACTIONS:
        obs, reward, terminated, _, info = env.step(action)
        out.append((obs, reward, terminated, info["end_probability"]))
    return out


def _same(first: list[tuple[Any, ...]], second: list[tuple[Any, ...]]) -> bool:
    return all(
        all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        for a, b in zip(first, second, strict=True)
    )


def test_env_same_seed_and_actions_give_the_same_episode(
    run: tuple[PostTrainConfig, Path],
) -> None:
    config, export = run
    env = _make(export, config.backend)
    first = _rollout(env, seed=3)
    other = _rollout(env, seed=4)
    assert _same(first, _rollout(env, seed=3))
    assert _same(first, _rollout(_make(export, config.backend), seed=3))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first[1:], other[1:], strict=True)), (
        "another seed draws other frames"
    )


def test_vector_env_steps(run: tuple[PostTrainConfig, Path]) -> None:
    config, export = run
    venv = gym.make_vec(
        envs.DRIVING_ID, num_envs=2, checkpoint=str(export), backend=config.backend, device="cpu"
    )
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (2, 64, 64, 3) and obs.dtype == np.uint8
    obs, rewards, terminated, truncated, _ = venv.step(np.array([1, 3]))
    assert obs.shape == (2, 64, 64, 3)
    assert rewards.shape == terminated.shape == truncated.shape == (2,)
    venv.close()


def test_env_refuses_a_checkpoint_of_another_backend(run: tuple[PostTrainConfig, Path]) -> None:
    config, export = run
    other = next(b for b in BACKENDS if b != config.backend)
    for backend in (other, "maskgit"):
        with pytest.raises(CheckpointMismatchError, match=config.backend):
            _make(export, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_env_without_a_post_trained_backend_says_how_to_make_one(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(envs.core, "POST_TRAIN_DIR", tmp_path / "post_train")
    with pytest.raises(FileNotFoundError, match="make post-train"):
        gym.make(envs.DRIVING_ID, backend=backend, device="cpu")


def test_env_finds_the_post_trained_backend_of_the_default_task(
    run: tuple[PostTrainConfig, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, export = run
    monkeypatch.setattr(envs.core, "POST_TRAIN_DIR", tmp_path)
    folder = tmp_path / f"driving_{config.backend}" / "checkpoint"
    shutil.copytree(export, folder)
    assert envs.core.backend_checkpoint("driving", config.backend) == folder
    env = gym.make(envs.DRIVING_ID, backend=config.backend, device="cpu")
    assert isinstance(env.unwrapped.model, ActionModel)  # type: ignore[attr-defined]
    assert env.unwrapped.model.config.backend == config.backend  # type: ignore[attr-defined]


def test_env_refuses_an_unknown_backend(run: tuple[PostTrainConfig, Path]) -> None:
    _, export = run
    with pytest.raises(ValueError, match="backend"):
        _make(export, "video")


@pytest.mark.parametrize(
    "action",
    [7, -1, float("nan"), 1.5, "left", np.array([1, 2])],
    ids=["too-big", "negative", "nan", "fraction", "string", "shape-2"],
)
def test_env_refuses_bad_actions(run: tuple[PostTrainConfig, Path], action: Any) -> None:
    config, export = run
    env = _make(export, config.backend)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_torchrun_processes_train_the_weights_one_process_trains(
    backend: str, pretrained: dict[str, tuple[Path, Path]], tiny_footage: Path, tmp_path: Path
) -> None:
    """The Hydra entry point under torchrun (gloo, 2 x batch 4) against one process (batch 8):
    the same global batches and noise, the gradients averaged over the two halves."""
    short = {"steps": 4, "checkpoint_every": 2, "sampler": {}}
    single = post_train(
        tiny_post_train_config(backend, pretrained, tiny_footage, tmp_path / "single", **short)
    )
    config = tiny_post_train_config(
        backend, pretrained, tiny_footage, tmp_path / "parallel", **short
    )
    overrides = hydra_overrides(config)
    result = run_torchrun(
        "-m", "experiments.post_train", *overrides, f"hydra.run.dir={tmp_path / 'hydra'}"
    )
    report_path = config.export_folder / "training.json"
    if not report_path.exists():
        pytest.fail(f"the torchrun run failed:\n{result.stderr[-4000:]}")
    assert json.loads(report_path.read_text())["processes"] == 2
    init = build_model(config).state_dict()
    gap = relative_gap(_weights(single), _weights(config.export_folder), init)
    assert gap < RELATIVE_GAP, gap


def test_synthetic_clips_of_a_post_trained_backend_depend_on_their_seed(
    run: tuple[PostTrainConfig, Path],
) -> None:
    config, export = run
    synthesis = WorldModelSynthesisConfig(
        checkpoint=str(export), backend=config.backend, policies=["random"], max_steps=4
    )
    generator = WorldModelClipGenerator(synthesis, zoo=load_driving_zoo())
    requests = [ClipRequest(i, seed=100 + i) for i in range(3)]
    first, again = generator.generate(requests), generator.generate(requests)
    for clip, repeat in zip(first, again, strict=True):
        assert clip.frames.dtype == np.uint8 and clip.frames.shape[1:] == (64, 64, 3)
        assert 2 <= len(clip.frames) <= 5 and len(clip.actions) == len(clip.frames) - 1
        assert np.array_equal(clip.frames, repeat.frames)
        assert np.array_equal(clip.actions, repeat.actions)
    other = generator.generate([ClipRequest(0, seed=7)])[0]
    assert not np.array_equal(other.frames[1:2], first[0].frames[1:2])
    with pytest.raises(ValueError, match="backend must be one of"):
        WorldModelSynthesisConfig(backend="gan")


def test_rollouts_are_drawn_from_the_given_generator(run: tuple[PostTrainConfig, Path]) -> None:
    """Measurements draw frames as the env does: the same seed gives the same frames, another
    seed other frames, and no generator the model's most likely frames."""
    config, export = run
    model = ActionModel.load(export)
    episodes = read_episodes(config.footage_dir)
    latents = encode_episodes(model, episodes, torch.device("cpu"))

    def imagined(draws: torch.Generator | None) -> np.ndarray:
        return open_loop_rollouts(model, episodes, latents, 3, draws)[0]

    seeded = imagined(torch.Generator().manual_seed(1))
    assert len(seeded) > 0
    assert np.array_equal(seeded, imagined(torch.Generator().manual_seed(1)))
    assert not np.array_equal(seeded, imagined(torch.Generator().manual_seed(2)))
    assert np.array_equal(imagined(None), imagined(None))
    assert not np.array_equal(seeded, imagined(None))
