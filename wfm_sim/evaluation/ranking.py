"""Policy-ranking agreement between the real simulator and a world model.

A world model is useful for policy evaluation when it ranks policies the way the real simulator
does, even if its returns are biased. Given each policy's per-episode returns in both, this module
measures that agreement and bootstraps a confidence interval for every metric.

For policies ``i = 1..n`` with mean real return ``R_i`` and mean world-model return ``W_i``, both
are normalised by the *real* returns' range, ``r_i = (R_i - min R) / (max R - min R)`` and
``w_i = (W_i - min R) / (max R - min R)``, so violations are measured in units of the real spread.

==========  =====================================================================  ========
metric      definition                                                             perfect
==========  =====================================================================  ========
spearman    Spearman rho of (W, R), ``scipy.stats.spearmanr``                      1
kendall     Kendall tau-b of (W, R), ``scipy.stats.kendalltau``                    1
pearson     Pearson r of (w, r), ``scipy.stats.pearsonr``                          1
mmrv        mean over i of max ``|r_i - r_j|`` over j with                         0
            ``(W_i > W_j) != (R_i > R_j)`` (SIMPLER's mean maximum rank violation)
regret@1    ``max r - r[argmax W]``: real loss from deploying the model's favourite  0
==========  =====================================================================  ========

Confidence intervals are percentile bootstraps over episodes: each policy's real and world-model
episodes are resampled independently, with replacement, and every metric is recomputed on the
resampled means. A draw where a correlation is undefined (a constant resample) is NaN and skipped.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

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


@dataclass(frozen=True)
class MetricWithCI:
    """A point estimate with its bootstrap confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class RankingMetrics:
    """How well world-model returns rank policies compared with the real simulator's."""

    spearman: MetricWithCI
    kendall: MetricWithCI
    pearson: MetricWithCI
    mmrv: MetricWithCI
    regret_at_1: MetricWithCI

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{"spearman": {"value": ..., "low": ..., "high": ...}, ...}`` for JSON reports."""
        return {name: dict(metric) for name, metric in asdict(self).items()}


def mmrv(real: np.ndarray, wfm: np.ndarray) -> float:
    """Mean maximum rank violation of ``wfm`` against ``real``; 0 is perfect.

    ``real`` and ``wfm`` are mean returns per policy, shape ``(n,)``, in the same policy order.
    """
    real, wfm = _check_means(real, wfm)
    return _mmrv(real, wfm)


@dataclass(frozen=True)
class RankViolation:
    """A policy's largest rank violation: the policy the world model orders it wrongly against
    (None when it orders it rightly against all) and their real returns' gap in units of the
    real returns' range (0 then). The MMRV is the mean gap over the policies, so these say
    which policies make it."""

    policy: str
    against: str | None
    gap: float


def rank_violations(real: Mapping[str, float], wfm: Mapping[str, float]) -> list[RankViolation]:
    """Each policy's largest rank violation, largest gap first; ``real`` and ``wfm`` map the
    same policy names to their mean returns (the real ones not all equal)."""
    if set(real) != set(wfm):
        raise ValueError(
            f"real and world-model means must name the same policies, got {sorted(real)} "
            f"and {sorted(wfm)}"
        )
    names = sorted(real)
    real_means, wfm_means = _check_means(
        np.array([real[n] for n in names]), np.array([wfm[n] for n in names])
    )
    gaps = _violation_gaps(real_means, wfm_means)
    violations = [
        RankViolation(name, names[int(row.argmax())] if row.max() > 0 else None, float(row.max()))
        for name, row in zip(names, gaps, strict=True)
    ]
    return sorted(violations, key=lambda v: (-v.gap, v.policy))


def regret_at_1(real: np.ndarray, wfm: np.ndarray) -> float:
    """Normalised real return lost by picking the world model's top policy; 0 is perfect.

    ``real`` and ``wfm`` are mean returns per policy, shape ``(n,)``. Ties for the world model's
    top spot go to the first policy in order, as ``np.argmax`` does.
    """
    real, wfm = _check_means(real, wfm)
    return _regret_at_1(real, wfm)


def ranking_metrics(
    real_returns: Mapping[str, Sequence[float]],
    wfm_returns: Mapping[str, Sequence[float]],
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> RankingMetrics:
    """All ranking metrics, each with a bootstrap confidence interval over episodes.

    ``real_returns`` and ``wfm_returns`` map each policy name to its per-episode returns; the two
    mappings must name the same policies (episode counts may differ). ``rng`` supplies every
    random draw, so a fixed seed gives the same intervals. If every world-model mean is equal,
    the correlations are undefined: their values are NaN and scipy warns.
    """
    _check_bootstrap_args(n_bootstrap, confidence)
    names = _check_policy_names(real_returns, wfm_returns)
    real_episodes = [_as_episode_array(real_returns[n], f"real returns of {n!r}") for n in names]
    wfm_episodes = [
        _as_episode_array(wfm_returns[n], f"world-model returns of {n!r}") for n in names
    ]

    real_means = np.array([episodes.mean() for episodes in real_episodes])
    wfm_means = np.array([episodes.mean() for episodes in wfm_episodes])
    real_means, wfm_means = _check_means(real_means, wfm_means)
    point = _all_metrics(real_means, wfm_means)

    real_draws = _bootstrap_means(real_episodes, rng, n_bootstrap)  # (n_bootstrap, n)
    wfm_draws = _bootstrap_means(wfm_episodes, rng, n_bootstrap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        draws = np.array(
            [_all_metrics(real, wfm) for real, wfm in zip(real_draws, wfm_draws, strict=True)]
        )  # (n_bootstrap, n_metrics)

    with_ci = [_with_ci(value, draws[:, k], confidence) for k, value in enumerate(point)]
    return RankingMetrics(*with_ci)


def mean_with_ci(
    values: Sequence[float],
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> MetricWithCI:
    """Mean of ``values`` (e.g. one policy's episode returns) with a bootstrap confidence interval."""
    _check_bootstrap_args(n_bootstrap, confidence)
    episodes = _as_episode_array(values, "values")
    draws = _bootstrap_means([episodes], rng, n_bootstrap)[:, 0]
    return _with_ci(float(episodes.mean()), draws, confidence)


def share_with_ci(
    values: Sequence[float],
    baseline: Sequence[float],
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> MetricWithCI:
    """Mean of ``values`` as a share of the mean of ``baseline`` (e.g. a planner's returns
    against an oracle's on the same starts) with a bootstrap confidence interval that resamples
    the pairs together, so a reader sees how far a share on a dozen starts could move."""
    _check_bootstrap_args(n_bootstrap, confidence)
    planned = _as_episode_array(values, "values")
    reference = _as_episode_array(baseline, "baseline")
    if len(planned) != len(reference) or len(planned) < 2:
        raise ValueError(
            f"{len(planned)} values against {len(reference)} of the baseline: pair them on the "
            "same starts, at least 2"
        )
    pairs = rng.integers(0, len(planned), size=(n_bootstrap, len(planned)))
    reference_means = reference[pairs].mean(axis=1)
    if reference.mean() <= 0 or np.any(reference_means <= 0):
        raise ValueError("the baseline's mean must be positive for a share of it")
    draws = planned[pairs].mean(axis=1) / reference_means
    return _with_ci(float(planned.mean() / reference.mean()), draws, confidence)


# The metric functions below assume validated means. A bootstrap draw can still make every real
# mean equal; such a draw has no ranking to compare against, so all its metrics are NaN.


def _all_metrics(real: np.ndarray, wfm: np.ndarray) -> tuple[float, float, float, float, float]:
    """Metrics in ``RankingMetrics`` field order for one set of per-policy means, shape ``(n,)``."""
    if real.max() == real.min():
        return (float("nan"),) * 5
    r, w = _normalised(real, real), _normalised(wfm, real)
    return (
        float(stats.spearmanr(w, r).statistic),
        float(stats.kendalltau(w, r).statistic),
        float(stats.pearsonr(w, r).statistic),
        _mmrv(real, wfm),
        _regret_at_1(real, wfm),
    )


def _normalised(values: np.ndarray, real: np.ndarray) -> np.ndarray:
    """``values`` in units of the real means' range (non-zero), so the real means span [0, 1]."""
    return (values - real.min()) / (real.max() - real.min())


def _violation_gaps(real: np.ndarray, wfm: np.ndarray) -> np.ndarray:
    """(n, n): the normalised real gap ``|r_i - r_j|`` of each pair the world model orders
    otherwise than the real simulator, 0 for the others."""
    r = _normalised(real, real)
    violated = (wfm[:, None] > wfm[None, :]) != (real[:, None] > real[None, :])
    return np.where(violated, np.abs(r[:, None] - r[None, :]), 0.0)


def _mmrv(real: np.ndarray, wfm: np.ndarray) -> float:
    return float(_violation_gaps(real, wfm).max(axis=1).mean())


def _regret_at_1(real: np.ndarray, wfm: np.ndarray) -> float:
    r = _normalised(real, real)
    return float(r.max() - r[np.argmax(wfm)])


def _bootstrap_means(
    episodes: Sequence[np.ndarray], rng: np.random.Generator, n_bootstrap: int
) -> np.ndarray:
    """Means of resampled episodes, shape ``(n_bootstrap, len(episodes))``."""
    columns = []
    for values in episodes:
        idx = rng.integers(0, len(values), size=(n_bootstrap, len(values)))
        columns.append(values[idx].mean(axis=1))
    return np.stack(columns, axis=1)


def _with_ci(value: float, draws: np.ndarray, confidence: float) -> MetricWithCI:
    """Percentile interval of ``draws``, ignoring NaN draws (NaN if every draw is NaN)."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    if np.isnan(draws).all():
        return MetricWithCI(value=float(value), low=float("nan"), high=float("nan"))
    low, high = np.nanpercentile(draws, [tail, 100.0 - tail])
    return MetricWithCI(value=float(value), low=float(low), high=float(high))


def _check_bootstrap_args(n_bootstrap: int, confidence: float) -> None:
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence}")


def _check_policy_names(
    real_returns: Mapping[str, Sequence[float]], wfm_returns: Mapping[str, Sequence[float]]
) -> list[str]:
    """Policy names in ``real_returns`` order, after checking both mappings name the same ones."""
    real_names, wfm_names = set(real_returns), set(wfm_returns)
    if real_names != wfm_names:
        raise ValueError(
            "real and world-model returns must name the same policies; "
            f"only in real: {sorted(real_names - wfm_names)}, "
            f"only in world model: {sorted(wfm_names - real_names)}"
        )
    if len(real_names) < 2:
        raise ValueError(
            f"ranking needs at least 2 policies, got {len(real_names)}: {sorted(real_names)}"
        )
    return list(real_returns)


def _as_episode_array(values: Sequence[float], what: str) -> np.ndarray:
    """``values`` as a 1-D float array, rejecting empty or non-finite episode returns."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{what} must be a flat list of episode returns, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{what} has no episodes; evaluate at least one episode per policy")
    if not np.isfinite(array).all():
        bad = [float(v) for v in array[~np.isfinite(array)]]
        raise ValueError(f"{what} contains non-finite returns {bad}; drop or fix those episodes")
    return array


def _check_means(real: np.ndarray, wfm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate per-policy mean returns, shape ``(n,)`` each, and return them as float arrays."""
    real, wfm = np.asarray(real, dtype=float), np.asarray(wfm, dtype=float)
    if real.ndim != 1 or real.shape != wfm.shape:
        raise ValueError(
            "real and world-model means must be 1-D arrays with one entry per policy, "
            f"got shapes {real.shape} and {wfm.shape}"
        )
    if real.size < 2:
        raise ValueError(f"ranking needs at least 2 policies, got {real.size}")
    if not (np.isfinite(real).all() and np.isfinite(wfm).all()):
        raise ValueError(f"mean returns must be finite, got real={real} and world model={wfm}")
    if real.max() == real.min():
        raise ValueError(
            f"all real mean returns are equal ({real[0]}), so there is no ranking to compare "
            "against; evaluate policies whose real returns differ"
        )
    return real, wfm
