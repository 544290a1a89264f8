"""Gymnasium environments backed by trained world models.

Importing this package registers them (Gymnasium 1.x loads no plugins, as with
``import highway_env``)::

    import gymnasium as gym
    import envs  # noqa: F401
    env = gym.make("WFM-Driving-v0")                       # the committed driving model
    env = gym.make("WFM-Driving-v0", checkpoint="path/")   # another checkpoint folder
    envs = gym.make_vec("WFM-Driving-v0", num_envs=64)     # one batched model, not 64 copies

``gym.make("envs:WFM-Driving-v0")`` imports the package itself.
"""

from __future__ import annotations

import gymnasium as gym

import wfm_sim  # noqa: F401  (headless rendering set before any simulator loads)

DRIVING_ID = "WFM-Driving-v0"
REAL_DRIVING_ID = "HighwayPixels-v0"


def register_envs() -> None:
    """Register the world-model and real-simulator envs; safe to call more than once."""
    if DRIVING_ID not in gym.registry:
        gym.register(
            id=DRIVING_ID,
            entry_point="envs.wfm_env:WFMEnv",
            vector_entry_point="envs.vector:WFMVectorEnv",
            max_episode_steps=30,
            kwargs={"checkpoint": "driving", "n_actions": 5, "frame_size": 64},
        )
    if REAL_DRIVING_ID not in gym.registry:
        gym.register(id=REAL_DRIVING_ID, entry_point="wfm_sim.sources.highway:make_driving_env")


register_envs()

__all__ = ["DRIVING_ID", "REAL_DRIVING_ID", "register_envs"]
