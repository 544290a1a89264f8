"""Driving policies that act on pixels, ``(64, 64, 3) uint8`` frames, and the zoo of them.

Every policy runs unchanged in the real simulator and in a world-model env producing frames
of the same format; the zoo spans good to bad drivers so world models can be judged by how
well they rank it.
"""

from typing import Any

from policies.base import (
    NUM_ACTIONS,
    ConstantPolicy,
    EpsilonGreedy,
    Policy,
    RandomPolicy,
    episode_returns,
)
from policies.dqn import DQNPixelPolicy, PixelQNetwork, SmallCNN, SmallCNNConfig
from policies.heuristic import HeuristicConfig, LaneKeepingHeuristic

__all__ = [
    "DRIVING_ZOO_DIR",
    "NUM_ACTIONS",
    "ConstantPolicy",
    "DQNPixelPolicy",
    "EpsilonGreedy",
    "HeuristicConfig",
    "LaneKeepingHeuristic",
    "PixelQNetwork",
    "Policy",
    "RandomPolicy",
    "SmallCNN",
    "SmallCNNConfig",
    "episode_returns",
    "load_driving_zoo",
]


def __getattr__(name: str) -> Any:
    """Import ``policies.zoo`` on first use, so ``python -m policies.zoo`` runs it only once."""
    if name in ("DRIVING_ZOO_DIR", "load_driving_zoo"):
        from policies import zoo

        return getattr(zoo, name)
    raise AttributeError(f"module 'policies' has no attribute {name!r}")
