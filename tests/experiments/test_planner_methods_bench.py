"""The CEM-against-MPPI bench: every method drives the same starts with the demo's crash
weighting, paired against CEM, and its BENCHMARKS section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import experiments.bench.planner_methods as planner_methods
from experiments.bench import summarize
from experiments.bench.common import paired_gain
from experiments.bench.planner_risk import measure
from experiments.mpc_demo import driving_demo_planner


def test_a_paired_gain_matches_hand_computed_values() -> None:
    gain = paired_gain([3.0, 1.0, 2.0], [1.0, 1.0, 3.0])
    assert gain["mean"] == pytest.approx(1 / 3)
    assert gain["sem"] == pytest.approx((7 / 3) ** 0.5 / 3**0.5)  # differences 2, 0, -1
    assert (gain["better"], gain["worse"]) == (1, 1)
    with pytest.raises(ValueError, match="same starts"):
        paired_gain([1.0, 2.0], [1.0, 2.0, 3.0])


def test_each_method_keeps_the_demos_crash_weighting() -> None:
    demo = driving_demo_planner()
    settings = planner_methods.method_settings()
    assert planner_methods.BASELINE in settings
    assert {s["method"] for s in settings.values()} == {"cem", "mppi"}
    for fields in settings.values():
        assert fields["terminal_value"] == demo.terminal_value
        assert fields["risk_aversion"] == demo.risk_aversion > 0


def test_every_method_drives_the_same_starts_paired_against_cem(
    tiny_latent_checkpoint: Path,
) -> None:
    rows = planner_methods.with_paired_gains(
        measure(str(tiny_latent_checkpoint), planner_methods.method_settings(), [3, 4], 2)
    )
    assert [r["setting"] for r in rows] == list(planner_methods.METHODS)
    methods = {r["setting"]: r["planner"]["method"] for r in rows}
    assert methods[planner_methods.BASELINE] == "cem"
    assert sorted(methods.values()) == ["cem", "mppi", "mppi"]
    for row in rows:
        assert len(row["returns"]) == 2 and row["latency_ms_mean"] > 0
        if row["setting"] == planner_methods.BASELINE:
            assert row["gain_over_cem"] is None
        else:
            gain = row["gain_over_cem"]
            baseline = rows[0]["returns"]
            expected = sum(a - b for a, b in zip(row["returns"], baseline, strict=True)) / 2
            assert gain["mean"] == pytest.approx(expected)


def _row(setting: str, returns: list[float], gain: dict | None) -> dict:
    return {
        "setting": setting,
        "returns": returns,
        "mean_return": sum(returns) / len(returns),
        "return_sem": 0.5,
        "crashes": 1,
        "mean_speed_mps": 24.0,
        "latency_ms_mean": 11.0,
        "latency_ms_p95": 15.0,
        "gain_over_cem": gain,
    }


@pytest.mark.parametrize(("gain_mean", "clear"), [(0.5, False), (2.0, True)])
def test_the_section_tables_each_method_and_says_whether_one_beats_cem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gain_mean: float, clear: bool
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    assert summarize._planner_methods_section()[0].startswith("Not measured yet")
    gain = {"mean": gain_mean, "sem": 0.4, "better": 60, "worse": 40}
    run = {
        "latent_checkpoint": "driving_latent",
        "episodes": 2,
        "seeds": [30000, 30001],
        "methods": [
            _row(planner_methods.BASELINE, [20.0, 22.0], None),
            _row("MPPI, temperature 0.5", [21.0, 23.0], gain),
        ],
        "machine": {"commit": "abc1234"},
    }
    (tmp_path / "planner_methods.json").write_text(json.dumps(run))
    text = "\n".join(summarize._planner_methods_section())
    assert "| MPPI, temperature 0.5 | 22.00 ± 0.50 | 1 of 2 | 24.0 m/s |" in text
    assert f"{gain_mean:+.2f} ± 0.40 (60 / 40)" in text
    assert ("Gaining more than two standard errors over CEM: MPPI" in text) is clear
    assert ("No MPPI setting gains more" in text) is not clear


def test_an_mppi_run_names_its_temperature() -> None:
    assert summarize._method_words({"method": "mppi", "temperature": 0.5}) == (
        "MPPI (temperature 0.5)"
    )
    assert summarize._method_words({"method": "cem", "temperature": 0.5}) == "CEM"


def _mpc_run(method: str, seeds: list[int], oracle: float, latent: float) -> dict:
    return {
        "seeds": seeds,
        "planner": {"method": method},
        "results": {
            "oracle_planner": {"mean_return": oracle},
            "latent_planner": {"mean_return": latent},
        },
    }


def test_an_mppi_run_is_weighed_against_the_cem_oracle_of_the_same_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    for folder, run in (
        ("cem", _mpc_run("cem", [1, 2], 25.0, 22.0)),
        ("mppi", _mpc_run("mppi", [1, 2], 24.0, 20.0)),
        ("mppi_elsewhere", _mpc_run("mppi", [7, 8], 24.0, 20.0)),
    ):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "metrics.json").write_text(json.dumps(run))
    line = "\n".join(summarize._against_the_cem_oracle("mppi", "cem"))
    assert "CEM oracle returns 25.00 and the MPPI one 24.00" in line
    assert "with MPPI gets 80% of the CEM oracle's return" in line
    assert summarize._against_the_cem_oracle("mppi_elsewhere", "cem") == []
    assert summarize._against_the_cem_oracle("mppi", "missing") == []
