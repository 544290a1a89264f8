"""The batched world-model env as a stable-baselines3 ``VecEnv``, so SB3 algorithms train on
one batched model (``WFMVectorEnv``) instead of N single envs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvStepReturn

from envs.vector import WFMVectorEnv


class WFMVecEnvSB3(VecEnv):
    """SB3's ``VecEnv`` over a ``WFMVectorEnv`` in same-step autoreset mode: a finished member
    returns its new start frame, with the last frame in ``info["terminal_observation"]`` and
    ``info["TimeLimit.truncated"]`` set when the time limit (not the termination head) ended it.

    ``seed`` is the first member's seed; member i gets ``seed + i``.
    """

    def __init__(self, num_envs: int = 8, seed: int | None = None, **kwargs: Any) -> None:
        self.venv = WFMVectorEnv(num_envs=num_envs, autoreset_mode="same_step", **kwargs)
        super().__init__(
            num_envs, self.venv.single_observation_space, self.venv.single_action_space
        )
        self._seed = seed
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        """Restart every member (seeded on the first reset after ``seed``)."""
        obs, _ = self.venv.reset(seed=self._seed)
        self._seed = None
        return obs

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        """Seed the next reset: member i gets ``seed + i``."""
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def step_async(self, actions: np.ndarray) -> None:
        shape = (self.num_envs, *(self.action_space.shape or ()))
        self._actions = np.asarray(actions).reshape(shape)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async must come first"
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for member in np.flatnonzero(dones):
            infos[member] = {
                "terminal_observation": info["final_obs"][member],
                "TimeLimit.truncated": bool(truncated[member] and not terminated[member]),
            }
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.venv, attr_name)] * len(list(self._get_indices(indices)))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        raise NotImplementedError(
            "WFMVecEnvSB3 has one batched model, not per-env objects to call methods on"
        )

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))
