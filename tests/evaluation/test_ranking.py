"""Ranking metrics checked against values worked out by hand in the comments."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

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


def _one_episode_each(means: list[float]) -> dict[str, list[float]]:
    """Per-policy returns whose means are ``means``; one episode each, so bootstraps are exact."""
    return {f"p{i}": [m] for i, m in enumerate(means)}


def _rank_values(metrics: RankingMetrics) -> dict[str, float]:
    return {name: metric["value"] for name, metric in metrics.to_dict().items()}


# --- Hand-computed examples -------------------------------------------------------------------


def test_one_swapped_pair() -> None:
    # R = [1, 2, 3, 4], W = [1, 3, 2, 4]: policies 1 and 2 swapped.
    # r = (R - 1) / 3 = [0, 1/3, 2/3, 1].
    # MMRV: only the pair (1, 2) disagrees, |r_1 - r_2| = 1/3, so the per-policy maxima are
    #   [0, 1/3, 1/3, 0] and MMRV = (2/3) / 4 = 1/6.
    # regret@1: argmax W = policy 3 with r = 1 = max r, so 0.
    # Spearman: rank differences d = [0, 1, 1, 0], rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    # Kendall: 6 pairs, 5 concordant, 1 discordant, tau = (5 - 1) / 6 = 2/3.
    # Pearson: centred R = [-1.5, -.5, .5, 1.5], centred W = [-1.5, .5, -.5, 1.5];
    #   sum of products = 2.25 - .25 - .25 + 2.25 = 4, each sum of squares = 5, r = 0.8.
    real, wfm = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])
    assert mmrv(real, wfm) == pytest.approx(1 / 6)
    assert regret_at_1(real, wfm) == pytest.approx(0.0)

    metrics = ranking_metrics(
        _one_episode_each(list(real)),
        _one_episode_each(list(wfm)),
        np.random.default_rng(0),
        n_bootstrap=50,
    )
    assert _rank_values(metrics) == pytest.approx(
        {"spearman": 0.8, "kendall": 2 / 3, "pearson": 0.8, "mmrv": 1 / 6, "regret_at_1": 0.0}
    )


def test_wrong_favourite_costs_regret_and_violations_weigh_by_real_gap() -> None:
    # R = [0, 10, 4, 6], W = [1, 2, 9, 3]; r = R / 10 = [0, 1, .4, .6].
    # regret@1: the world model favours policy 2 (W = 9), r_2 = .4, so 1 - .4 = .6.
    # Disagreeing pairs: (1, 2): R 10 > 4 but W 2 < 9, gap .6
    #                    (1, 3): R 10 > 6 but W 2 < 3, gap .4
    #                    (2, 3): R 4 < 6 but W 9 > 3, gap .2
    # Per-policy maxima: [0, .6, .6, .4], MMRV = 1.6 / 4 = .4.
    real, wfm = np.array([0.0, 10.0, 4.0, 6.0]), np.array([1.0, 2.0, 9.0, 3.0])
    assert regret_at_1(real, wfm) == pytest.approx(0.6)
    assert mmrv(real, wfm) == pytest.approx(0.4)


def test_mmrv_tie_in_world_model_counts_from_the_better_policy_only() -> None:
    # R = [1, 2, 3], W = [5, 5, 6]; r = [0, .5, 1].
    # i = 1, j = 0: (W_1 > W_0) = False != (R_1 > R_0) = True, gap .5.
    # i = 0, j = 1: (W_0 > W_1) = False == (R_0 > R_1) = False, no violation.
    # Per-policy maxima: [0, .5, 0], MMRV = .5 / 3 = 1/6 (SIMPLER's definition).
    assert mmrv(np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 6.0])) == pytest.approx(1 / 6)


def test_perfect_agreement() -> None:
    real = _one_episode_each([3.0, 1.0, 4.0, 1.5, 9.0])
    metrics = ranking_metrics(real, real, np.random.default_rng(0), n_bootstrap=50)
    assert _rank_values(metrics) == pytest.approx(
        {"spearman": 1.0, "kendall": 1.0, "pearson": 1.0, "mmrv": 0.0, "regret_at_1": 0.0}
    )


def test_reversed_order() -> None:
    # R = [1, 2, 3, 4], W = [4, 3, 2, 1]; r = [0, 1/3, 2/3, 1]. Every pair disagrees, so each
    # policy's maximum gap is to the farthest one: [1, 2/3, 2/3, 1], MMRV = (10/3) / 4 = 5/6.
    # The world model favours policy 0 (r = 0): regret@1 = 1.
    metrics = ranking_metrics(
        _one_episode_each([1.0, 2.0, 3.0, 4.0]),
        _one_episode_each([4.0, 3.0, 2.0, 1.0]),
        np.random.default_rng(0),
        n_bootstrap=50,
    )
    assert _rank_values(metrics) == pytest.approx(
        {"spearman": -1.0, "kendall": -1.0, "pearson": -1.0, "mmrv": 5 / 6, "regret_at_1": 1.0}
    )


def test_affine_rescaling_of_world_model_changes_nothing() -> None:
    rng = np.random.default_rng(1)
    real_centres = {"a": 0.0, "b": 3.0, "c": 1.0, "d": 7.0, "e": 5.0}
    wfm_centres = {"a": 1.0, "b": 2.0, "c": 0.0, "d": 8.0, "e": 6.0}
    real = {name: list(rng.normal(mu, 1.0, size=6)) for name, mu in real_centres.items()}
    wfm = {name: list(rng.normal(mu, 1.0, size=4)) for name, mu in wfm_centres.items()}
    scaled = {name: [10 * v + 3 for v in values] for name, values in wfm.items()}

    plain = ranking_metrics(real, wfm, np.random.default_rng(7), n_bootstrap=200)
    rescaled = ranking_metrics(real, scaled, np.random.default_rng(7), n_bootstrap=200)
    for name, metric in plain.to_dict().items():
        assert rescaled.to_dict()[name] == pytest.approx(metric), name


# --- Bootstrap confidence intervals -----------------------------------------------------------


def _well_separated(rng: np.random.Generator) -> tuple[dict[str, list[float]], ...]:
    centres = {"slow": 0.0, "ok": 10.0, "good": 20.0, "best": 30.0}
    real = {n: list(c + rng.normal(0, 1, size=8)) for n, c in centres.items()}
    wfm = {n: list(c + 2 + rng.normal(0, 1, size=8)) for n, c in centres.items()}
    return real, wfm


def test_bootstrap_interval_contains_point_estimate_when_well_separated() -> None:
    real, wfm = _well_separated(np.random.default_rng(3))
    metrics = ranking_metrics(real, wfm, np.random.default_rng(0), n_bootstrap=300)
    for name, metric in metrics.to_dict().items():
        assert metric["low"] <= metric["value"] <= metric["high"], name
    # Ten return units apart with unit noise, no resample can reorder the policies.
    assert metrics.spearman == MetricWithCI(1.0, 1.0, 1.0)
    assert metrics.mmrv == MetricWithCI(0.0, 0.0, 0.0)


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    real, wfm = _well_separated(np.random.default_rng(3))
    wfm["ok"], wfm["good"] = wfm["good"], wfm["ok"]  # a swap, so intervals have width
    first = ranking_metrics(real, wfm, np.random.default_rng(42), n_bootstrap=200)
    second = ranking_metrics(real, wfm, np.random.default_rng(42), n_bootstrap=200)
    assert first == second


def test_mean_with_ci() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    ci = mean_with_ci(values, np.random.default_rng(0), n_bootstrap=500)
    assert ci.value == pytest.approx(4.0)
    assert 1.0 <= ci.low < ci.value < ci.high <= 10.0
    assert mean_with_ci(values, np.random.default_rng(0), n_bootstrap=500) == ci
    assert mean_with_ci(values, np.random.default_rng(1), n_bootstrap=500) != ci
    narrow = mean_with_ci(values, np.random.default_rng(0), n_bootstrap=500, confidence=0.5)
    assert ci.low <= narrow.low <= narrow.high <= ci.high


def test_constant_resamples_do_not_crash_or_warn() -> None:
    # Real "a" = [0, 1] resamples to [1, 1] a quarter of the time, tying it with "b" (range 0);
    # world-model "b" = [1, 2] resamples to [1, 1], tying it with "a" (constant input).
    real = {"a": [0.0, 1.0], "b": [1.0]}
    wfm = {"a": [1.0], "b": [1.0, 2.0]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = ranking_metrics(real, wfm, np.random.default_rng(0), n_bootstrap=200)
    for name, metric in metrics.to_dict().items():
        assert np.isfinite([metric["value"], metric["low"], metric["high"]]).all(), name


# --- Bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("real", "wfm", "message"),
    [
        ({"a": [1.0]}, {"a": [1.0]}, "at least 2 policies"),
        ({"a": [1.0], "b": [2.0]}, {"a": [1.0], "c": [2.0]}, "same policies"),
        ({"a": [1.0], "b": []}, {"a": [1.0], "b": [2.0]}, "real returns of 'b' has no episodes"),
        ({"a": [1.0], "b": [2.0]}, {"a": [], "b": [2.0]}, "world-model returns of 'a' has no"),
        ({"a": [1.0], "b": [np.nan]}, {"a": [1.0], "b": [2.0]}, "non-finite"),
        ({"a": [1.0], "b": [2.0]}, {"a": [np.inf], "b": [2.0]}, "non-finite"),
        ({"a": [1.0, 3.0], "b": [2.0]}, {"a": [1.0], "b": [2.0]}, "real mean returns are equal"),
    ],
)
def test_ranking_metrics_rejects_bad_input(
    real: dict[str, list[float]], wfm: dict[str, list[float]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ranking_metrics(real, wfm, np.random.default_rng(0), n_bootstrap=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_bootstrap": 0}, "n_bootstrap"), ({"confidence": 1.5}, "confidence")],
)
def test_bootstrap_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ranking_metrics(
            {"a": [1.0], "b": [2.0]}, {"a": [1.0], "b": [2.0]}, np.random.default_rng(0), **kwargs
        )
    with pytest.raises(ValueError, match=message):
        mean_with_ci([1.0, 2.0], np.random.default_rng(0), **kwargs)
    with pytest.raises(ValueError, match=message):
        share_with_ci([1.0, 2.0], [2.0, 3.0], np.random.default_rng(0), **kwargs)


def test_mean_level_functions_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="one entry per policy"):
        mmrv(np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="at least 2 policies"):
        regret_at_1(np.array([1.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite"):
        mmrv(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="real mean returns are equal"):
        regret_at_1(np.array([2.0, 2.0]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="no episodes"):
        mean_with_ci([], np.random.default_rng(0))


def test_share_with_ci_matches_hand_computed_values() -> None:
    rng = np.random.default_rng(0)
    half = share_with_ci([10.0, 20.0, 30.0], [20.0, 40.0, 60.0], rng)
    assert (half.value, half.low, half.high) == pytest.approx((0.5, 0.5, 0.5))
    share = share_with_ci([20.0, 26.0, 22.0, 28.0], [29.0, 29.0, 14.0, 29.0], rng)
    assert share.value == pytest.approx(96 / 101)  # means 24 and 25.25
    assert share.low < share.value < share.high
    assert share.low >= 20 / 29 and share.high <= 28 / 14  # no resample can leave these bounds
    with pytest.raises(ValueError, match="same starts"):
        share_with_ci([1.0, 2.0], [1.0, 2.0, 3.0], rng)
    with pytest.raises(ValueError, match="positive"):
        share_with_ci([1.0, 2.0], [-1.0, -2.0], rng)
    with pytest.raises(ValueError, match="non-finite"):
        share_with_ci([1.0, np.nan], [1.0, 2.0], rng)


def test_rank_violations_name_who_makes_the_mmrv() -> None:
    # R = [1, 2, 3], W reversed; r = [0, 1/2, 1]. a's and c's farthest wrongly ordered partner
    # is each other (gap 1); b's are a and c (gap 1/2; the first name is kept). MMRV = 5/6.
    real, wfm = {"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 3.0, "b": 2.0, "c": 1.0}
    assert rank_violations(real, wfm) == [
        RankViolation("a", "c", 1.0),
        RankViolation("c", "a", 1.0),
        RankViolation("b", "a", 0.5),
    ]
    # Only b and c swapped: a is ordered rightly against both.
    swapped = rank_violations(real, {"a": 1.0, "b": 3.0, "c": 2.0})
    assert swapped == [
        RankViolation("b", "c", 0.5),
        RankViolation("c", "b", 0.5),
        RankViolation("a", None, 0.0),
    ]


def test_rank_violations_average_to_the_mmrv() -> None:
    rng = np.random.default_rng(3)
    real, wfm = rng.normal(size=9), rng.normal(size=9)
    names = [f"p{i}" for i in range(9)]
    violations = rank_violations(
        dict(zip(names, real, strict=True)), dict(zip(names, wfm, strict=True))
    )
    assert np.mean([v.gap for v in violations]) == pytest.approx(mmrv(real, wfm))


def test_rank_violations_refuse_other_policies() -> None:
    with pytest.raises(ValueError, match="same policies"):
        rank_violations({"a": 1.0, "b": 2.0}, {"a": 1.0, "c": 2.0})
