"""The budget and search settings every planner shares, discrete or continuous."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MODEL_ONLY_FIELDS = ("risk_aversion", "risk_floor")
"""``PlannerConfig`` fields that only a model-based planner reads: the oracle planner ranks
plans by the simulator's real returns, which carry no model risk."""


def oracle_settings(planner: dict[str, Any]) -> dict[str, Any]:
    """A planner config as plain data (``vars(config)`` or a results file's ``planner``)
    without the fields the oracle planner ignores: two runs whose oracle settings match drove
    the same oracle."""
    return {key: value for key, value in planner.items() if key not in MODEL_ONLY_FIELDS}


@dataclass
class PlannerConfig:
    """A planner's budget: ``population`` sequences of ``horizon`` steps, ``iterations`` rounds.

    CEM refits each step's distribution to its ``elites`` best sequences; MPPI weights them by
    ``exp(return / temperature)`` (discrete: every sequence; continuous: the elites, as
    TD-MPC2). ``smoothing`` mixes the old distribution in.
    Discrete actions: a categorical per step, ``min_probability`` keeping every action
    possible. Continuous actions (a box): a Gaussian per step whose std starts at
    ``init_std`` and never falls below ``min_std`` (both fractions of the box's half-width);
    with ``warm_start`` each decision starts from the previous plan's mean shifted one step
    (discrete plans always start uniform). Returns are discounted by ``discount``; a
    sequence still running after its ``horizon`` steps is credited ``terminal_value`` (the
    worth of the rest of the episode, discounted as step ``horizon``), so that a short plan
    weighs an end (a crash) by the return it forfeits and not only by the few steps it sees.
    When ``population`` covers every discrete sequence (n_actions ** horizon), each is scored
    once instead of searched.
    A model-based planner adds ``risk_aversion * -log(risk + risk_floor)`` to a sequence's
    expected return, ``risk`` being the model's chance that the sequence ends (a crash) within
    its horizon (``plan_scores``): a hedge against a model that rates crashes too unlikely,
    which tells small risks apart (0.01 from 0.03) as much as large ones; risks well below
    ``risk_floor`` count alike. 0 ranks by the expected return alone.
    """

    method: str = "cem"
    horizon: int = 5
    population: int = 64
    elites: int = 8
    iterations: int = 3
    temperature: float = 0.5
    smoothing: float = 0.1
    min_probability: float = 0.01
    discount: float = 0.95
    init_std: float = 0.25
    min_std: float = 0.05
    warm_start: bool = True
    terminal_value: float = 0.0
    risk_aversion: float = 0.0
    risk_floor: float = 0.01

    def __post_init__(self) -> None:
        if self.method not in ("cem", "mppi"):
            raise ValueError(f"planner method must be 'cem' or 'mppi', got {self.method!r}")
        if min(self.horizon, self.population, self.elites, self.iterations) < 1:
            raise ValueError("horizon, population, elites and iterations must all be >= 1")
        if self.elites > self.population:
            raise ValueError(f"elites ({self.elites}) cannot exceed population ({self.population})")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing must lie in [0, 1), got {self.smoothing}")
        if not np.isfinite(self.terminal_value):
            raise ValueError(f"terminal_value must be finite, got {self.terminal_value}")
        if not (np.isfinite(self.risk_aversion) and self.risk_aversion >= 0):
            raise ValueError(f"risk_aversion must be finite and >= 0, got {self.risk_aversion}")
        if not 0.0 < self.risk_floor <= 1.0:
            raise ValueError(f"risk_floor must lie in (0, 1], got {self.risk_floor}")
        if not 0.0 < self.min_std <= self.init_std:
            raise ValueError(
                f"need 0 < min_std <= init_std (fractions of the box's half-width); got "
                f"min_std={self.min_std}, init_std={self.init_std}"
            )
