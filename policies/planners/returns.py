"""What every model-based planner scores a sequence by: imagined rewards weighted by the
chance of not having ended yet, discounted, plus the worth of a plan still running; and, when
the planner is risk-averse, a term for the chance the plan ends at all."""

from __future__ import annotations

import torch

from policies.planners.config import PlannerConfig


def expected_returns(
    rewards: torch.Tensor, end_probabilities: torch.Tensor, config: PlannerConfig
) -> torch.Tensor:
    """rewards (P, H) and end probabilities (P, H) of each imagined step -> (P,): the sum of
    ``discount**t * P(not ended before t) * reward_t`` plus ``discount**H * P(still running)
    * terminal_value``, so a plan is charged for an end by the return it forfeits."""
    if rewards.shape != end_probabilities.shape or rewards.ndim != 2:
        raise ValueError(
            f"rewards and end probabilities must both be (P, H), got "
            f"{tuple(rewards.shape)} and {tuple(end_probabilities.shape)}"
        )
    horizon = rewards.shape[1]
    running = _survival(end_probabilities)
    before = torch.cat([torch.ones_like(running[:, :1]), running[:, :-1]], dim=1)
    discounts = config.discount ** torch.arange(horizon, dtype=rewards.dtype, device=rewards.device)
    total = (before * discounts * rewards).sum(dim=1)
    return total + running[:, -1] * config.discount**horizon * config.terminal_value


def crash_risks(end_probabilities: torch.Tensor) -> torch.Tensor:
    """End probabilities (P, H) of each imagined step -> (P,): the chance that each sequence
    ends (a crash) somewhere within its horizon."""
    return 1 - _survival(end_probabilities)[:, -1]


def _survival(end_probabilities: torch.Tensor) -> torch.Tensor:
    """End probabilities (P, H) -> (P, H): the chance each sequence is still running after
    each step, the one product both the expected return and the crash risk are made of."""
    return torch.cumprod(1 - end_probabilities, dim=1)


def plan_scores(
    rewards: torch.Tensor, end_probabilities: torch.Tensor, config: PlannerConfig
) -> torch.Tensor:
    """What a model-based planner ranks sequences (P, H) by: ``expected_returns`` minus
    ``config.risk_aversion * log(risk + config.risk_floor)``, where risk is the chance the
    sequence ends within its horizon (``crash_risks``)."""
    scores = expected_returns(rewards, end_probabilities, config)
    if config.risk_aversion == 0:
        return scores
    risks = crash_risks(end_probabilities)
    return scores - config.risk_aversion * torch.log(risks + config.risk_floor)
