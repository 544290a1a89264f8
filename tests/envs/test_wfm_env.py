"""WFM-Driving-v0 on a tiny trained checkpoint: the Gymnasium contract, seeds, starts, bad input."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils import seeding
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.wfm_env import WFMEnv
from wfm_sim.data import PAD_ACTION, read_episodes
from world_models import CheckpointMismatchError, WorldModel, WorldModelConfig, token_uniforms

ACTIONS = [1, 3, 0, 4, 2, 1, 1, 3]


@pytest.fixture(scope="module")
def env(tiny_checkpoint: Path) -> WFMEnv:
    return WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu")


def _rollout(env: gym.Env, seed: int) -> dict[str, list[Any]]:
    obs, _ = env.reset(seed=seed)
    out: dict[str, list[Any]] = {"obs": [obs], "reward": [], "terminated": [], "probability": []}
    for action in ACTIONS:
        obs, reward, terminated, _, info = env.step(action)
        out["obs"].append(obs)
        out["reward"].append(reward)
        out["terminated"].append(terminated)
        out["probability"].append(info["end_probability"])
    return out


def test_gymnasium_env_checker_passes_without_warnings(tiny_checkpoint: Path) -> None:
    env = gym.make(envs.DRIVING_ID, checkpoint=str(tiny_checkpoint), device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(env.unwrapped)
    assert not [str(w.message) for w in caught]


def test_sb3_env_checker_passes_without_warnings(env: WFMEnv) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env, warn=True)
    assert not [str(w.message) for w in caught]


def test_make_adds_a_30_step_time_limit(tiny_checkpoint: Path) -> None:
    env = gym.make(
        "WFM-Driving-v0", checkpoint=str(tiny_checkpoint), termination="threshold", device="cpu"
    )
    assert isinstance(env.unwrapped, WFMEnv) and env.spec is not None
    assert env.spec.max_episode_steps == 30
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    # Stepping on regardless of `terminated`: TimeLimit truncates at step 30 and not before.
    truncated = [env.step(1)[3] for _ in range(30)]
    assert truncated == [False] * 29 + [True]
    env.reset(seed=0)
    assert not env.step(1)[3], "reset restarts the step count"


def test_never_terminating_env_reports_the_hazard_it_would_have_drawn(
    tiny_checkpoint: Path,
) -> None:
    sampled = WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu", termination="sample")
    never = WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu", termination="never")
    sampled.reset(seed=5)
    never.reset(seed=5)
    first_sampled = sampled.step(2)
    first_never = never.step(2)
    # same start and same first draw of the frame: the same hazard, reported but not acted on
    assert first_never[4]["end_probability"] == first_sampled[4]["end_probability"]
    assert first_never[4]["end_probability"] > 0
    assert not any(never.step(2)[2] for _ in range(40))


def test_the_expected_end_reading_changes_only_the_hazard(tiny_checkpoint: Path) -> None:
    drawn = WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu", termination="never")
    expected = WFMEnv(
        checkpoint=str(tiny_checkpoint), device="cpu", termination="never", end_reading="expected"
    )
    drawn.reset(seed=5)
    expected.reset(seed=5)
    step_drawn, step_expected = drawn.step(2), expected.step(2)
    assert np.array_equal(step_drawn[0], step_expected[0])
    assert step_drawn[1] == step_expected[1]
    assert step_drawn[4]["end_probability"] != step_expected[4]["end_probability"]
    with pytest.raises(ValueError, match="end_reading must be one of"):
        WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu", end_reading="soft")


def test_unknown_termination_rule_is_refused(tiny_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="termination must be one of"):
        WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu", termination="sometimes")


def test_same_seed_and_actions_give_the_same_episode(env: WFMEnv, tiny_checkpoint: Path) -> None:
    first = _rollout(env, seed=3)
    _rollout(env, seed=11)  # leftover state from another episode must not matter
    second = _rollout(env, seed=3)
    fresh = _rollout(WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu"), seed=3)
    for other in (second, fresh):
        for a, b in zip(first["obs"], other["obs"], strict=True):
            np.testing.assert_array_equal(a, b)
        assert first["reward"] == other["reward"]
        assert first["terminated"] == other["terminated"]
        assert first["probability"] == other["probability"]


def test_seeds_draw_different_start_frames(env: WFMEnv) -> None:
    starts = {}
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        starts[info["start_index"]] = obs
        # the observation is the last frame of the stored real context
        np.testing.assert_array_equal(obs, env.start_frames[info["start_index"]][-1].numpy())
    assert len(starts) == len(env.start_frames) == 2
    assert not np.array_equal(starts[0], starts[1])


def _first_token_draws(env: WFMEnv) -> torch.Tensor | None:
    """The uniforms the env seeded 0 draws its first imagined tokens with (a reset with start
    options draws nothing before them)."""
    return token_uniforms(env.model, [seeding.np_random(0)[0]])


@torch.no_grad()
def test_reset_from_a_given_frame(env: WFMEnv, tiny_footage: Path) -> None:
    frame = read_episodes(tiny_footage)[0].frames[5]  # a mid-episode frame, not a stored start
    obs, info = env.reset(seed=0, options={"start_frames": frame[None]})
    np.testing.assert_array_equal(obs, frame)
    assert info["start_index"] == -1
    next_obs, reward, *_ = env.step(3)

    # The same as imagining one step from a context of that frame alone, with padding actions.
    model = env.model
    context = model.tokenizer.encode(torch.from_numpy(frame)[None])[:, None]
    context = context.expand(-1, model.config.context, -1, -1, -1)
    actions = torch.full((1, model.config.context), PAD_ACTION)
    actions[:, -1] = 3
    step = model.imagine(context, actions, _first_token_draws(env))
    np.testing.assert_array_equal(next_obs, model.tokenizer.decode(step.latent)[0].numpy())
    assert reward == pytest.approx(float(step.reward[0]))


@pytest.mark.parametrize(
    "action",
    [7, -1, float("nan"), 1.5, "left", np.array([1, 2])],
    ids=["too-big", "negative", "nan", "fraction", "string", "shape-2"],
)
def test_bad_actions_are_refused(env: WFMEnv, action: Any) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)


@pytest.mark.parametrize("action", [2, np.int64(2), np.array(2), 2.0], ids=repr)
def test_integer_like_actions_are_accepted(env: WFMEnv, action: Any) -> None:
    env.reset(seed=0)
    reference = env.step(2)[0]
    env.reset(seed=0)
    np.testing.assert_array_equal(env.step(action)[0], reference)


def test_step_before_reset(tiny_checkpoint: Path) -> None:
    with pytest.raises(RuntimeError, match="reset"):
        WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu").step(1)


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((32, 32, 3), np.uint8),
        np.zeros((64, 64, 3), np.float32),
        np.zeros((64, 64, 4), np.uint8),
        np.zeros((1, 64, 64, 3), np.uint8),
    ],
    ids=["small", "float", "rgba", "batched"],
)
def test_bad_start_frames_are_refused(env: WFMEnv, frame: np.ndarray) -> None:
    with pytest.raises(ValueError, match="start_frames"):
        env.reset(options={"start_frames": frame[None]})


@torch.no_grad()
def test_reset_from_a_real_context(env: WFMEnv, tiny_footage: Path) -> None:
    episode = read_episodes(tiny_footage)[0]
    k = env.model.config.context
    frames, actions = episode.frames[3 : 3 + k], episode.actions[3 : 3 + k - 1]
    obs, _ = env.reset(seed=0, options={"start_frames": frames, "start_actions": actions})
    np.testing.assert_array_equal(obs, frames[-1])
    next_obs, *_ = env.step(2)
    # the same as imagining from that window of real frames with its real actions
    model = env.model
    latents = model.tokenizer.encode(torch.from_numpy(frames))[None]
    window_actions = torch.tensor([[*actions, 2]])
    imagined = model.imagine(latents, window_actions, _first_token_draws(env))
    expected = model.tokenizer.decode(imagined.latent)[0]
    np.testing.assert_array_equal(next_obs, expected.numpy())


@pytest.mark.parametrize(
    ("n_frames", "actions"),
    [(1, [1]), (2, []), (2, [9]), (2, [float("nan")]), (9, [1] * 8)],
    ids=["extra-action", "missing-action", "action-out-of-space", "nan-action", "too-many"],
)
def test_bad_start_contexts_are_refused(
    env: WFMEnv, tiny_footage: Path, n_frames: int, actions: list
) -> None:
    frames = np.repeat(read_episodes(tiny_footage)[0].frames[:1], n_frames, axis=0)
    with pytest.raises(ValueError, match="start_frames|start_actions|action"):
        env.reset(options={"start_frames": frames, "start_actions": actions})


def test_checkpoint_with_other_action_count_is_refused(tmp_path: Path) -> None:
    config = WorldModelConfig(
        tokenizer_width=8, dynamics_width=8, head_width=8, dynamics_blocks=1, n_actions=3
    )
    WorldModel(config).save(tmp_path)
    with pytest.raises(CheckpointMismatchError, match="3 discrete actions"):
        gym.make("WFM-Driving-v0", checkpoint=str(tmp_path))


def test_register_envs_twice_is_safe() -> None:
    spec = gym.spec(envs.DRIVING_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-registering would warn "Overriding environment"
        envs.register_envs()
        envs.register_envs()
    assert gym.spec(envs.DRIVING_ID) is spec
    assert gym.spec(envs.REAL_DRIVING_ID).entry_point == "wfm_sim.sources.highway:make_driving_env"


def test_real_highway_env_gives_rendered_frames() -> None:
    env = gym.make(envs.REAL_DRIVING_ID)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
        assert obs.std() > 20, "a blank frame: is SDL_VIDEODRIVER=dummy?"
        next_obs, *_ = env.step(3)
        assert next_obs.shape == (64, 64, 3) and next_obs.dtype == np.uint8
        assert next_obs.std() > 20
    finally:
        env.close()


def test_decode_rounds_is_a_drawing_option_of_the_env(tiny_checkpoint: Path) -> None:
    stored = WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu").model.config
    env = WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu", decode_rounds=1)
    assert env.model.config.decode_rounds == 1
    assert env.model.config == dataclasses.replace(stored, decode_rounds=1), "weights' config"
    env.reset(seed=0)
    assert env.step(1)[0].shape == (64, 64, 3)
    venv = gym.make_vec(
        envs.DRIVING_ID, num_envs=2, checkpoint=str(tiny_checkpoint), device="cpu", decode_rounds=3
    )
    assert venv.unwrapped.model.config.decode_rounds == 3
    with pytest.raises(ValueError, match="decode_rounds must be >= 1"):
        WFMEnv(checkpoint=str(tiny_checkpoint), device="cpu", decode_rounds=0)
