"""``WFMEnv``: a trained world model wrapped as a Gymnasium environment."""

from __future__ import annotations

import numbers
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.core import WorldModelCore, action_space_of, load_env_model
from world_models import token_uniforms

ActionSpace = gym.spaces.Discrete | gym.spaces.Box


def validate_discrete_action(action: Any, space: gym.spaces.Discrete) -> int:
    """Return ``action`` as an int, or raise ``ValueError`` naming what is wrong with it."""
    value = np.asarray(action)
    if value.shape != ():
        raise ValueError(f"action must be a single integer, got {action!r} of shape {value.shape}")
    if value.dtype == np.bool_:
        raise ValueError(f"action {action!r} is a boolean; expected an int in {space}")
    if np.issubdtype(value.dtype, np.floating):
        if not np.isfinite(value):
            raise ValueError(f"action {action!r} is not a number; expected an int in {space}")
        if float(value) != int(value):
            raise ValueError(f"action {action!r} is not an integer; expected an int in {space}")
    elif not (np.issubdtype(value.dtype, np.integer) or isinstance(action, numbers.Integral)):
        raise ValueError(f"action {action!r} of type {type(action).__name__} is not an integer")
    index = int(value)
    if not space.contains(index):
        raise ValueError(f"action {index} is outside {space}")
    return index


def validate_box_action(action: Any, space: gym.spaces.Box) -> np.ndarray:
    """Return ``action`` as a float32 vector, or raise ``ValueError`` naming what is wrong with
    it (shape, a NaN or infinity, a component outside the box)."""
    try:
        value = np.asarray(action, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"action {action!r} is not a vector of numbers: {error}") from None
    if value.shape != space.shape:
        raise ValueError(f"action must have shape {space.shape}, got {value.shape}")
    if not np.isfinite(value).all():
        raise ValueError(f"action {value.tolist()} holds NaN or infinity")
    outside = np.flatnonzero((value < space.low) | (value > space.high))
    if len(outside):
        raise ValueError(
            f"action components {outside.tolist()} = {value[outside].tolist()} lie outside "
            f"[{space.low[outside].tolist()}, {space.high[outside].tolist()}]"
        )
    return value


def validate_action(action: Any, space: ActionSpace) -> int | np.ndarray:
    """``action`` checked against ``space``: an int for ``Discrete``, a float32 vector for
    ``Box``; a ``ValueError`` naming the problem otherwise."""
    if isinstance(space, gym.spaces.Box):
        return validate_box_action(action, space)
    return validate_discrete_action(action, space)


def validate_start(
    frames: Any,
    actions: Any,
    frame_shape: tuple[int, ...] | None,
    context: int,
    space: ActionSpace,
) -> tuple[np.ndarray, np.ndarray]:
    """A real start context as (frames (n, H, W, 3) uint8, actions (n-1,) int64 or
    (n-1, A) float32), or a ``ValueError`` naming what is wrong with it (shape, dtype, length,
    an action)."""
    frames = np.ascontiguousarray(frames)
    if frames.ndim != 4 or frames.shape[1:] != frame_shape or frames.dtype != np.uint8:
        raise ValueError(
            f"start_frames must be (n, *{frame_shape}) uint8, got {frames.shape} {frames.dtype}"
        )
    if not 1 <= len(frames) <= context:
        raise ValueError(f"start_frames must hold 1..{context} frames, got {len(frames)}")
    if len(actions) != len(frames) - 1:
        raise ValueError(
            f"start_actions must hold {len(frames) - 1} actions (one per transition between "
            f"start_frames), got {len(actions)}"
        )
    checked = [validate_action(a, space) for a in actions]
    if isinstance(space, gym.spaces.Box):
        return frames, np.array(checked, dtype=np.float32).reshape(len(checked), *space.shape)
    return frames, np.array(checked, dtype=np.int64)


TERMINATION_RULES = ("sample", "threshold", "never")


def decide_termination(end_probability: float, rule: str, rng: np.random.Generator) -> bool:
    """End the episode with the head's probability (``"sample"``, one draw from ``rng``), when
    it exceeds one half (``"threshold"``, no draw), or not at all (``"never"``: the episode
    runs to its time limit and ``info["end_probability"]`` carries the hazard, for callers
    that weight each reward by the chance the episode is still running, an expected return
    without the noise of the termination draws)."""
    if rule == "sample":
        return bool(rng.random() < end_probability)
    if rule == "never":
        return False
    return end_probability > 0.5


def check_termination_rule(rule: str) -> None:
    """Refuse a termination rule other than those of ``TERMINATION_RULES``."""
    if rule not in TERMINATION_RULES:
        raise ValueError(f"termination must be one of {TERMINATION_RULES}, got {rule!r}")


class WFMEnv(gym.Env[np.ndarray, Any]):
    """A world model trained on simulator footage, played as an environment.

    ## Observation space
    | | |
    |---|---|
    | type | `Box(0, 255, (64, 64, 3), uint8)`: the imagined RGB frame |

    ## Action space
    The real simulator's, as the checkpoint was trained on. For driving, `Discrete(5)`,
    highway-env's DiscreteMetaAction:
    | index | 0 | 1 | 2 | 3 | 4 |
    |---|---|---|---|---|---|
    | action | LANE_LEFT | IDLE | LANE_RIGHT | FASTER | SLOWER |

    For the robot (WFM-Robot-v0), `Box(-2, 2, (7,), float32)`: Pusher's joint torques. A
    camera-conditioned robot model takes 10 floats: the torques, then the camera pose
    (azimuth, elevation in degrees, distance in metres) the next frame is rendered from.

    ## Reward
    The learned reward head's estimate of the simulator's per-step reward (driving: in [0, 1]).

    ## Starting state
    A real context from held-out footage, an episode's first K frames and the actions between
    them, drawn with `np_random` (so fixed per seed); or the n <= K real frames passed as
    `options={"start_frames": (n, H, W, 3) uint8, "start_actions": n-1 ints}`, to start where a
    real episode is. The observation is the context's last frame.

    ## Episode end
    | | |
    |---|---|
    | terminated | the termination head's crash probability, sampled (`termination="sample"`), above 0.5 (`"threshold"`), or never (`"never"`: read `info["end_probability"]`) |
    | truncated | after `max_episode_steps` (30 for WFM-Driving-v0), by `TimeLimit` |

    ## Arguments
    | name | default | meaning |
    |---|---|---|
    | checkpoint | `"driving"` | a zoo name or a checkpoint folder |
    | n_actions | `None` | the discrete action count the checkpoint must have (refused otherwise) |
    | action_dim | `None` | the action vector size the checkpoint must have (refused otherwise) |
    | frame_size | 64 | the frame side the checkpoint must have (refused otherwise) |
    | termination | `"sample"` | `"sample"`, `"threshold"` or `"never"` |
    | device | `"auto"` | `"cpu"`, `"cuda"` or `"auto"` |
    | temperature | 1.0 | how freely the next frame is drawn: token temperature, or the diffusion noise scale (0: the most likely frame) |
    | backend | `"maskgit"` | `"maskgit"` (the committed model), `"diffusion"` or `"autoregressive"`: a pre-trained WFM post-trained on actions (`make post-train`; see `envs.core.backend_checkpoint`) |
    | decode_rounds | `None` | MaskGIT rounds a frame is drawn in (None: the checkpoint's, 8 for the driving model); more keep more of an uncertain car and cost time |
    | end_reading | `"drawn"` | what the termination head reads: the drawn next frame, or `"expected"` the MaskGIT model's belief about it (its token probabilities before any is drawn), which keeps the crashes a draw leaves out |
    | salient_priority | `None` | how far ahead of the surer road a MaskGIT round keeps the draws of car tokens (None: the checkpoint's, 0 for the driving model; 100 keeps them first, so an uncertain car is not lost to the road) |
    | render_mode | `None` | `"rgb_array"` returns the imagined frame |

    ## Info
    `reward_model` and `end_probability`: the heads' raw outputs for the step.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(
        self,
        checkpoint: str = "driving",
        n_actions: int | None = None,
        frame_size: int = 64,
        termination: str = "sample",
        device: str = "auto",
        render_mode: str | None = None,
        action_dim: int | None = None,
        temperature: float = 1.0,
        backend: str = "maskgit",
        decode_rounds: int | None = None,
        end_reading: str = "drawn",
        salient_priority: float | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array'")
        check_termination_rule(termination)
        self.model, self.start_frames, self.start_actions = load_env_model(
            checkpoint,
            frame_size,
            device,
            n_actions=n_actions,
            action_dim=action_dim,
            backend=backend,
            decode_rounds=decode_rounds,
            salient_priority=salient_priority,
        )
        self.core = WorldModelCore(
            self.model, batch_size=1, temperature=temperature, end_reading=end_reading
        )
        self.termination = termination
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, (frame_size, frame_size, 3), np.uint8)
        self.action_space: ActionSpace = action_space_of(self.model.config)
        self._frame: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "start_frames" in options:
            frames, actions = validate_start(
                options["start_frames"],
                options.get("start_actions", []),
                self.observation_space.shape,
                self.model.config.context,
                self.action_space,
            )
            start_index = -1
        else:
            start_index = int(self.np_random.integers(len(self.start_frames)))
            frames = self.start_frames[start_index].numpy()
            actions = self.start_actions[start_index].numpy()
        self.core.reset(torch.from_numpy(frames)[None], torch.from_numpy(actions)[None])
        self._frame = frames[-1].copy()
        return self._frame.copy(), {"start_index": start_index}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._frame is None:
            raise RuntimeError("call reset() before step()")
        checked = validate_action(action, self.action_space)
        uniforms = token_uniforms(self.model, [self.np_random])
        frames, rewards, end_probs = self.core.step(
            torch.as_tensor(np.asarray(checked))[None], uniforms
        )
        end_probability = float(end_probs[0])
        terminated = decide_termination(end_probability, self.termination, self.np_random)
        reward = float(rewards[0])
        self._frame = frames[0].cpu().numpy()
        info = {"reward_model": reward, "end_probability": end_probability}
        return self._frame.copy(), reward, terminated, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._frame is None:
            return None
        return self._frame.copy()
