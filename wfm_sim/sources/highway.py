"""The real driving simulator: highway-env's ``highway-fast-v0`` seen through RGB pixels.

The observation is the rendered top-down frame around the ego car, so that the same pixel
policies run in the real simulator and in a world model trained on its footage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import highway_env
import numpy as np

gym.register_envs(highway_env)

ACTION_NAMES: tuple[str, ...] = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
"""highway-env's DiscreteMetaAction, in its order."""


@dataclass
class DrivingSimConfig:
    """Rendering and traffic settings of the real driving simulator.

    The defaults are highway-fast-v0 (3 lanes, 20 vehicles, 30 one-second steps) rendered
    at 64x64 with the ego car a quarter of the way in from the left, so it sees ~32 m ahead.
    """

    env_id: str = "highway-fast-v0"
    frame_size: int = 64
    scaling: float = 1.5
    centering_x: float = 0.25
    lanes_count: int = 3
    vehicles_count: int = 20
    duration: int = 30
    extra: dict[str, Any] = field(default_factory=dict)

    def highway_config(self) -> dict[str, Any]:
        """The dict handed to highway-env's ``config`` argument."""
        return {
            "screen_width": self.frame_size,
            "screen_height": self.frame_size,
            "scaling": self.scaling,
            "centering_position": [self.centering_x, 0.5],
            "offscreen_rendering": True,
            "lanes_count": self.lanes_count,
            "vehicles_count": self.vehicles_count,
            "duration": self.duration,
            **self.extra,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, stored beside footage and checkpoints."""
        return dataclasses.asdict(self)


class PixelObservation(gym.ObservationWrapper):
    """Replace highway-env's observation with its rendered RGB frame, (H, W, 3) uint8.

    ``info`` gains the ego car's ground truth (speed, lane, position, crashed) for recording.
    """

    def __init__(self, env: gym.Env, frame_size: int) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0, 255, (frame_size, frame_size, 3), np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        frame = self.env.render()
        assert frame is not None, "highway-env returned no frame; render_mode must be rgb_array"
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = super().reset(**kwargs)
        return obs, {**info, **self.ego_state()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, float(reward), terminated, truncated, {**info, **self.ego_state()}

    def ego_state(self) -> dict[str, Any]:
        """Ground truth of the ego car at the current frame."""
        vehicle = self.env.unwrapped.vehicle  # type: ignore[attr-defined]
        return {
            "speed": float(vehicle.speed),
            "lane": int(vehicle.lane_index[2]),
            "x": float(vehicle.position[0]),
            "y": float(vehicle.position[1]),
            "crashed": bool(vehicle.crashed),
        }


def make_driving_env(config: DrivingSimConfig | None = None) -> gym.Env:
    """The real highway simulator with (H, W, 3) uint8 frames as observations."""
    config = config or DrivingSimConfig()
    env = gym.make(config.env_id, render_mode="rgb_array", config=config.highway_config())
    return PixelObservation(env, config.frame_size)
