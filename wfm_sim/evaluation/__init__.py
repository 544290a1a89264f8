"""Evaluation: how far a world model can stand in for the real simulator.

``ranking`` compares the order in which the real simulator and a world model rank policies.
"""

from wfm_sim.evaluation.ranking import (
    MetricWithCI,
    RankingMetrics,
    RankViolation,
    mean_with_ci,
    mmrv,
    rank_violations,
    ranking_metrics,
    regret_at_1,
    share_with_ci,
)

__all__ = [
    "MetricWithCI",
    "RankViolation",
    "RankingMetrics",
    "mean_with_ci",
    "mmrv",
    "rank_violations",
    "ranking_metrics",
    "regret_at_1",
    "share_with_ci",
]
