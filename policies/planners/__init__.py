"""Model-predictive control: CEM and MPPI as pure functions of (score function, action space,
budget, generator), over per-step categorical distributions (discrete actions, ``plan``) or
per-step Gaussians in a box (continuous actions, ``plan_continuous``).

A score function maps action sequences, ``(P, H)`` int64 or ``(P, H, A)`` float32, to their
returns ``(P,)``; it is where the model lives (the world model's batched imagination, a cloned
simulator, or a toy model in tests). ``WorldModelPlanner`` and ``OraclePlanner`` wrap the
search as zoo-style policies that re-plan every step (receding horizon, ``RecedingHorizon``);
``LatentModelPlanner`` does the same over the latent world model (``world_models.latent``),
which imagines no pixels and scores a population in milliseconds.
"""

from policies.planners.config import PlannerConfig, oracle_settings
from policies.planners.continuous import plan_continuous
from policies.planners.discrete import ScoreFn, plan
from policies.planners.latent import LatentModelPlanner
from policies.planners.oracle import (
    MujocoClone,
    OraclePlanner,
    PlayedPlan,
    clone_simulator,
    plan_returns,
    play_plan,
)
from policies.planners.receding import Action, RecedingHorizon
from policies.planners.returns import crash_risks, expected_returns, plan_scores
from policies.planners.world_model import WorldModelPlanner

__all__ = [
    "Action",
    "LatentModelPlanner",
    "MujocoClone",
    "OraclePlanner",
    "PlayedPlan",
    "PlannerConfig",
    "RecedingHorizon",
    "ScoreFn",
    "WorldModelPlanner",
    "clone_simulator",
    "crash_risks",
    "expected_returns",
    "oracle_settings",
    "plan",
    "plan_continuous",
    "plan_scores",
    "plan_returns",
    "play_plan",
]
