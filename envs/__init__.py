"""Gymnasium environments backed by trained world models.

Importing this package registers them (Gymnasium 1.x loads no plugins, as with
``import highway_env``)::

    import gymnasium as gym
    import envs  # noqa: F401
    env = gym.make("WFM-Driving-v0")                       # the committed driving model
    env = gym.make("WFM-Driving-v0", checkpoint="path/")   # another checkpoint folder
    env = gym.make("WFM-Driving-v0", backend="diffusion")  # a post-trained diffusion WFM
    envs = gym.make_vec("WFM-Driving-v0", num_envs=64)     # one batched model, not 64 copies

``gym.make("envs:WFM-Driving-v0")`` imports the package itself.
"""

from __future__ import annotations

import gymnasium as gym

import wfm_sim  # noqa: F401  (headless rendering set before any simulator loads)

DRIVING_ID = "WFM-Driving-v0"
ROBOT_ID = "WFM-Robot-v0"
REAL_DRIVING_ID = "HighwayPixels-v0"
REAL_ROBOT_ID = "PusherPixels-v0"

_WORLD_MODEL_ENVS: dict[str, tuple[int, dict[str, object]]] = {
    DRIVING_ID: (30, {"checkpoint": "driving", "n_actions": 5, "frame_size": 64}),
    ROBOT_ID: (100, {"checkpoint": "robot", "action_dim": 7, "frame_size": 64}),
}
"""Each world-model env: (max_episode_steps, the kwargs pinning its checkpoint and spaces)."""


def register_envs() -> None:
    """Register the world-model and real-simulator envs; safe to call more than once."""
    for env_id, (max_steps, kwargs) in _WORLD_MODEL_ENVS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="envs.wfm_env:WFMEnv",
                vector_entry_point="envs.vector:WFMVectorEnv",
                max_episode_steps=max_steps,
                kwargs=kwargs,
            )
    if REAL_DRIVING_ID not in gym.registry:
        gym.register(id=REAL_DRIVING_ID, entry_point="wfm_sim.sources.highway:make_driving_env")
    if REAL_ROBOT_ID not in gym.registry:
        gym.register(id=REAL_ROBOT_ID, entry_point="wfm_sim.sources.pusher:make_robot_env")


register_envs()

__all__ = ["DRIVING_ID", "REAL_DRIVING_ID", "REAL_ROBOT_ID", "ROBOT_ID", "register_envs"]
