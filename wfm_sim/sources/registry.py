"""The simulators footage can be recorded from, by name: how to build each and what it records.

Driving and robotics differ here by data (an env factory, its config type and its ground-truth
columns), not by copies of the recorder, so every later stage reads both kinds of footage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import pyarrow as pa

from wfm_sim.sources.pusher import ROBOT_GROUND_TRUTH


@dataclass(frozen=True)
class Source:
    """A simulator as the recorder sees it.

    ``make_env(sim)`` builds the pixel-observation env from a dict of the source's config
    fields; ``ground_truth`` names the per-frame ``info`` keys recorded as columns, with their
    Parquet types.
    """

    name: str
    make_env: Callable[[dict[str, Any]], gym.Env]
    ground_truth: tuple[tuple[str, pa.DataType], ...]


def _config_of(config_type: type, sim: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(sim) - known)
    if unknown:
        raise ValueError(f"unknown {config_type.__name__} fields {unknown}; known: {sorted(known)}")
    return config_type(**sim)


def _make_highway(sim: dict[str, Any]) -> gym.Env:
    from wfm_sim.sources.highway import DrivingSimConfig, make_driving_env

    return make_driving_env(_config_of(DrivingSimConfig, sim))


def _make_pusher(sim: dict[str, Any]) -> gym.Env:
    from wfm_sim.sources.pusher import RobotSimConfig, make_robot_env

    return make_robot_env(_config_of(RobotSimConfig, sim))


SOURCES: dict[str, Source] = {
    "highway": Source(
        "highway-env",
        _make_highway,
        (
            ("crashed", pa.bool_()),
            ("speed", pa.float32()),
            ("lane", pa.int8()),
            ("x", pa.float32()),
            ("y", pa.float32()),
        ),
    ),
    "pusher": Source(
        "mujoco-pusher",
        _make_pusher,
        tuple((name, pa.float32()) for name in ROBOT_GROUND_TRUTH),
    ),
}
"""Recordable simulators: ``highway`` (highway-fast driving) and ``pusher`` (MuJoCo Pusher)."""


def get_source(name: str) -> Source:
    """The source called ``name``, or a ``ValueError`` listing the known ones."""
    if name not in SOURCES:
        raise ValueError(f"unknown footage source {name!r}; known: {sorted(SOURCES)}")
    return SOURCES[name]
