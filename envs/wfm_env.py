"""``WFMEnv``: a trained world model wrapped as a Gymnasium environment."""

from __future__ import annotations

import numbers
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import world_models
from envs.core import WorldModelCore
from wfm_sim.devices import resolve_device
from world_models import CheckpointMismatchError, load_start_contexts


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


class WFMEnv(gym.Env[np.ndarray, np.int64]):
    """A world model trained on simulator footage, played as an environment.

    ## Observation space
    | | |
    |---|---|
    | type | `Box(0, 255, (64, 64, 3), uint8)`: the imagined RGB frame |

    ## Action space
    `Discrete(n_actions)`, the real simulator's; for driving, highway-env's DiscreteMetaAction:
    | index | 0 | 1 | 2 | 3 | 4 |
    |---|---|---|---|---|---|
    | action | LANE_LEFT | IDLE | LANE_RIGHT | FASTER | SLOWER |

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
    | terminated | the termination head's crash probability, sampled (`termination="sample"`) or above 0.5 (`"threshold"`) |
    | truncated | after `max_episode_steps` (30 for WFM-Driving-v0), by `TimeLimit` |

    ## Arguments
    | name | default | meaning |
    |---|---|---|
    | checkpoint | `"driving"` | a zoo name or a checkpoint folder |
    | n_actions | 5 | the action count the checkpoint must have (refused otherwise) |
    | frame_size | 64 | the frame side the checkpoint must have (refused otherwise) |
    | termination | `"sample"` | `"sample"` or `"threshold"` |
    | device | `"auto"` | `"cpu"`, `"cuda"` or `"auto"` |
    | render_mode | `None` | `"rgb_array"` returns the imagined frame |

    ## Info
    `reward_model` and `end_probability`: the heads' raw outputs for the step.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(
        self,
        checkpoint: str = "driving",
        n_actions: int = 5,
        frame_size: int = 64,
        termination: str = "sample",
        device: str = "auto",
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array'")
        if termination not in ("sample", "threshold"):
            raise ValueError(f"termination must be 'sample' or 'threshold', got {termination!r}")
        folder = world_models.checkpoint_path(checkpoint)
        config = world_models.read_config(folder)
        if (config.n_actions, config.frame_size) != (n_actions, frame_size):
            raise CheckpointMismatchError(
                f"checkpoint {folder} has {config.n_actions} actions and {config.frame_size}px "
                f"frames; this env needs {n_actions} actions and {frame_size}px frames"
            )
        self.model = world_models.WorldModel.load(folder, device=resolve_device(device))
        self.start_frames, self.start_actions = load_start_contexts(folder)
        self.core = WorldModelCore(self.model, batch_size=1)
        self.termination = termination
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, (frame_size, frame_size, 3), np.uint8)
        self.action_space: gym.spaces.Discrete = gym.spaces.Discrete(n_actions)
        self._frame: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "start_frames" in options:
            frames, actions = self._validated_start(options)
            start_index = -1
        else:
            start_index = int(self.np_random.integers(len(self.start_frames)))
            frames = self.start_frames[start_index].numpy()
            actions = self.start_actions[start_index].numpy()
        self.core.reset(torch.from_numpy(frames)[None], torch.from_numpy(actions)[None])
        self._frame = frames[-1].copy()
        return self._frame.copy(), {"start_index": start_index}

    def _validated_start(self, options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        frames = np.ascontiguousarray(options["start_frames"])
        shape = self.observation_space.shape
        context = self.model.config.context
        if frames.ndim != 4 or frames.shape[1:] != shape or frames.dtype != np.uint8:
            raise ValueError(
                f"start_frames must be (n, *{shape}) uint8, got {frames.shape} {frames.dtype}"
            )
        if not 1 <= len(frames) <= context:
            raise ValueError(f"start_frames must hold 1..{context} frames, got {len(frames)}")
        raw_actions = options.get("start_actions", [])
        if len(raw_actions) != len(frames) - 1:
            raise ValueError(
                f"start_actions must hold {len(frames) - 1} actions (one per transition between "
                f"start_frames), got {len(raw_actions)}"
            )
        actions = np.array(
            [validate_discrete_action(a, self.action_space) for a in raw_actions], dtype=np.int64
        )
        return frames, actions

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._frame is None:
            raise RuntimeError("call reset() before step()")
        index = validate_discrete_action(action, self.action_space)
        frames, rewards, end_probs = self.core.step(torch.tensor([index]))
        end_probability = float(end_probs[0])
        if self.termination == "sample":
            terminated = bool(self.np_random.random() < end_probability)
        else:
            terminated = end_probability > 0.5
        reward = float(rewards[0])
        self._frame = frames[0].cpu().numpy()
        info = {"reward_model": reward, "end_probability": end_probability}
        return self._frame.copy(), reward, terminated, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._frame is None:
            return None
        return self._frame.copy()
