"""Simulator sources: real environments and the recorder that turns them into footage."""

from wfm_sim.sources.highway import (
    ACTION_NAMES,
    DrivingSimConfig,
    make_driving_env,
)

__all__ = ["ACTION_NAMES", "DrivingSimConfig", "make_driving_env"]
