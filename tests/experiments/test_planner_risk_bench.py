"""The planner-risk bench: one row per way of weighing a crash, on the same real starts."""

from __future__ import annotations

from pathlib import Path

import pytest

import experiments.bench.planner_risk as planner_risk


def test_each_setting_drives_the_same_starts_and_is_plotted(
    tiny_latent_checkpoint: Path, tmp_path: Path
) -> None:
    settings = {
        "terminal value 16": {"terminal_value": 16.0},
        "risk aversion 1, floor 0.01": {"terminal_value": 16.0, "risk_aversion": 1.0},
    }
    rows = planner_risk.measure(str(tiny_latent_checkpoint), settings, [3, 4], max_steps=3)
    assert [r["setting"] for r in rows] == list(settings)
    for row in rows:
        assert 0 <= row["crashes"] <= 2 and row["crash_rate"] == row["crashes"] / 2
        assert 0 < row["mean_return"] <= 3  # highway rewards lie in [0, 1] a step
        assert row["return_sem"] is not None and row["return_sem"] >= 0
        assert row["latency_ms_p95"] > 0
        if row["crashes"] == 0:
            assert row["mean_return_without_crash"] == pytest.approx(row["mean_return"])
    figure = planner_risk.plot_tradeoff(rows, tmp_path / "tradeoff.png")
    assert figure.stat().st_size > 1000
