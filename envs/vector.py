"""``WFMVectorEnv``: N imagined episodes of one world model, stepped by one batched forward pass.

``gym.make_vec("WFM-Driving-v0", num_envs=N)`` builds it through the spec's
``vector_entry_point``, so N envs cost one model and one batched call per step instead of N
copies. Member i behaves as ``gym.make("WFM-Driving-v0")`` reset with seed ``seed + i``: the
same start contexts, the same termination draws, the same time limit.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.core import (
    WorldModelCore,
    action_space_of,
    load_env_model,
    padding_action_tensor,
)
from envs.wfm_env import (
    ActionSpace,
    check_termination_rule,
    decide_termination,
    validate_action,
    validate_start,
)
from world_models import token_uniforms


class WFMVectorEnv(VectorEnv):
    """A batch of ``num_envs`` world-model episodes (the vector form of ``WFMEnv``).

    Observations ``(num_envs, H, W, 3) uint8``; actions ``(num_envs,)`` ints in
    ``Discrete(n_actions)`` or ``(num_envs, A)`` floats in the model's box; rewards from the
    reward head; ``terminated`` from the termination head (sampled per member, thresholded, or
    never: see ``decide_termination``); ``truncated`` after ``max_episode_steps``.
    Finished members restart on the next ``step`` (Gymnasium's ``NEXT_STEP`` autoreset: that
    step's action is ignored and it returns the new start frame with reward 0), or with
    ``autoreset_mode="same_step"`` in the step that ends them: it returns the new start frame
    and puts the last one in ``info["final_obs"]`` (what SB3's vector envs do). Arguments are
    ``WFMEnv``'s plus ``num_envs``, ``max_episode_steps`` and ``autoreset_mode``.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 8,
        checkpoint: str = "driving",
        n_actions: int | None = None,
        frame_size: int = 64,
        termination: str = "sample",
        device: str = "auto",
        max_episode_steps: int = 30,
        render_mode: str | None = None,
        autoreset_mode: str = "next_step",
        action_dim: int | None = None,
        temperature: float = 1.0,
        backend: str = "maskgit",
        decode_rounds: int | None = None,
        end_reading: str = "drawn",
        salient_priority: float | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be at least 1, got {max_episode_steps}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array'")
        check_termination_rule(termination)
        if autoreset_mode not in ("next_step", "same_step"):
            raise ValueError(
                f"autoreset_mode must be 'next_step' or 'same_step', got {autoreset_mode!r}"
            )
        mode = AutoresetMode.SAME_STEP if autoreset_mode == "same_step" else AutoresetMode.NEXT_STEP
        self.metadata = {**self.metadata, "autoreset_mode": mode}
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
        self.num_envs = num_envs
        self.core = WorldModelCore(
            self.model, batch_size=num_envs, temperature=temperature, end_reading=end_reading
        )
        self.termination = termination
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.single_observation_space = gym.spaces.Box(
            0, 255, (frame_size, frame_size, 3), np.uint8
        )
        self.single_action_space: ActionSpace = action_space_of(self.model.config)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self._frames: np.ndarray | None = None
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Restart every member from a real context drawn by its own generator, or from the
        given ones.

        ``seed``: an int seeds member i with ``seed + i``; a list gives one seed per member.
        ``options={"start_frames": (N, n, H, W, 3) uint8, "start_actions": (N, n-1)}`` starts
        member i where a real episode is (as ``WFMEnv``'s options do for one env).
        """
        seeds = self._member_seeds(seed)
        for member, member_seed in enumerate(seeds):
            if member_seed is not None:
                self._rngs[member] = seeding.np_random(member_seed)[0]
        members = np.arange(self.num_envs)
        if options:
            starts = self._restart_from(options)
        else:
            starts = self._restart(members)
        self._needs_reset[:] = False
        assert self._frames is not None
        return self._frames.copy(), {
            "start_index": starts,
            "_start_index": np.ones_like(starts, bool),
        }

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every member one imagined frame (restarting those that ended last step)."""
        if self._frames is None:
            raise RuntimeError("call reset() before step()")
        raw = np.asarray(actions)
        expected = (self.num_envs, *(self.single_action_space.shape or ()))
        if raw.shape != expected:
            raise ValueError(f"actions must have shape {expected}, one per env, got {raw.shape}")
        stepping = ~self._needs_reset
        # restarting members ignore their action: they get the padding one
        checked = padding_action_tensor(self.model.config, (self.num_envs,), "cpu")
        for member in np.flatnonzero(stepping):
            checked[member] = torch.as_tensor(
                np.asarray(validate_action(raw[member], self.single_action_space))
            )
        uniforms = token_uniforms(
            self.model, [rng if stepping[i] else None for i, rng in enumerate(self._rngs)]
        )
        frames, rewards, end_probs = self.core.step(checked, uniforms)
        frames_np = frames.cpu().numpy()
        rewards_np = rewards.float().cpu().numpy().astype(np.float64)
        probs_np = end_probs.float().cpu().numpy().astype(np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        for member in np.flatnonzero(stepping):
            terminated[member] = decide_termination(
                float(probs_np[member]), self.termination, self._rngs[member]
            )
        self._elapsed[stepping] += 1
        truncated[stepping] = self._elapsed[stepping] >= self.max_episode_steps
        assert self._frames is not None
        self._frames[stepping] = frames_np[stepping]
        restarting = np.flatnonzero(self._needs_reset)
        starts = np.full(self.num_envs, -1, dtype=np.int64)
        if len(restarting):
            starts[restarting] = self._restart(restarting)
            rewards_np[restarting] = 0.0
        self._needs_reset = terminated | truncated
        final: dict[str, Any] = {}
        if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP and self._needs_reset.any():
            ended = np.flatnonzero(self._needs_reset)
            final_obs = np.empty(self.num_envs, dtype=object)
            for member in ended:
                final_obs[member] = self._frames[member].copy()
            final = {"final_obs": final_obs, "_final_obs": self._needs_reset.copy()}
            starts[ended] = self._restart(ended)
            self._needs_reset[:] = False
        info = {
            **final,
            "reward_model": np.where(stepping, rewards_np, 0.0),
            "_reward_model": stepping.copy(),
            "end_probability": np.where(stepping, probs_np, 0.0),
            "_end_probability": stepping.copy(),
            "start_index": starts,
            "_start_index": starts >= 0,
        }
        return self._frames.copy(), rewards_np, terminated, truncated, info

    def render(self) -> tuple[np.ndarray, ...] | None:
        """The members' current frames, one (H, W, 3) uint8 array each."""
        if self.render_mode != "rgb_array" or self._frames is None:
            return None
        return tuple(frame.copy() for frame in self._frames)

    def _member_seeds(self, seed: int | list[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, int):
            return [seed + member for member in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise ValueError(f"got {len(seed)} seeds for {self.num_envs} envs")
        return list(seed)

    def _restart_from(self, options: dict[str, Any]) -> np.ndarray:
        unknown = set(options) - {"start_frames", "start_actions"}
        if unknown or "start_frames" not in options:
            raise ValueError(
                f"reset options are start_frames and start_actions; got {sorted(options)}"
            )
        frames_in, actions_in = options["start_frames"], options.get("start_actions")
        if len(frames_in) != self.num_envs or (
            actions_in is not None and len(actions_in) != self.num_envs
        ):
            raise ValueError(
                f"start_frames and start_actions need one entry per env ({self.num_envs})"
            )
        checked = [
            validate_start(
                frames_in[m],
                [] if actions_in is None else actions_in[m],
                self.single_observation_space.shape,
                self.model.config.context,
                self.single_action_space,
            )
            for m in range(self.num_envs)
        ]
        frames = torch.from_numpy(np.stack([f for f, _ in checked]))
        actions = torch.from_numpy(np.stack([a for _, a in checked]))
        self._start(np.arange(self.num_envs), frames, actions)
        return np.full(self.num_envs, -1, dtype=np.int64)

    def _restart(self, members: np.ndarray) -> np.ndarray:
        """Restart ``members`` from real contexts, each drawn by the member's generator."""
        starts = np.array(
            [int(self._rngs[m].integers(len(self.start_frames))) for m in members], dtype=np.int64
        )
        index = torch.from_numpy(starts)
        self._start(members, self.start_frames[index], self.start_actions[index])
        return starts

    def _start(self, members: np.ndarray, frames: torch.Tensor, actions: torch.Tensor) -> None:
        """Start ``members`` from contexts: frames (M, n, H, W, 3) uint8, actions (M, n-1)."""
        self.core.reset(frames, actions, members=torch.from_numpy(members))
        if self._frames is None:
            size = self.model.config.frame_size
            self._frames = np.zeros((self.num_envs, size, size, 3), dtype=np.uint8)
        self._frames[members] = frames[:, -1].numpy()
        self._elapsed[members] = 0
