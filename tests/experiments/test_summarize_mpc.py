"""BENCHMARKS.md flags an MPC run whose latent planner planned over other weights than the
zoo's latent model of that name now holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments.bench import summarize
from wfm_sim.io import file_sha256

COMMITTED = Path(__file__).resolve().parents[2] / "experiments" / "results"
ZOO_WEIGHTS = summarize.ROOT / "world_models" / "zoo" / "driving_latent" / "model.safetensors"


def _run_with_digest(tmp_path: Path, digest: str | None) -> None:
    shutil.copytree(COMMITTED / "mpc_latent", tmp_path / "mpc_latent")
    path = tmp_path / "mpc_latent" / "metrics.json"
    stored = json.loads(path.read_text())
    stored["latent_checkpoint"] = "driving_latent"
    stored["latent_weights_sha256"] = digest
    path.write_text(json.dumps(stored))


@pytest.mark.parametrize(
    ("digest", "flagged"),
    [(file_sha256(ZOO_WEIGHTS), False), ("0" * 64, True), (None, False)],
    ids=["the zoo's weights", "other weights", "not recorded"],
)
def test_a_run_over_other_latent_weights_is_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digest: str | None, flagged: bool
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    _run_with_digest(tmp_path, digest)
    text = "\n".join(summarize._mpc_section("mpc_latent"))
    assert "| latent_planner |" in text
    assert ("planned over an earlier `driving_latent`" in text) is flagged
    if flagged:
        assert "000000000000" in text and file_sha256(ZOO_WEIGHTS)[:12] in text


@pytest.mark.parametrize(
    ("digest", "named"),
    [
        (file_sha256(ZOO_WEIGHTS), "`driving_latent`"),
        ("0" * 64, "`driving_latent` as committed at abc1234, since replaced"),
    ],
    ids=["the zoo's weights", "other weights"],
)
def test_a_run_over_other_latent_weights_names_the_commit_it_was_measured_at(
    digest: str, named: str
) -> None:
    run = {
        "latent_checkpoint": "driving_latent",
        "latent_weights_sha256": digest,
        "machine": {"commit": "abc1234"},
    }
    assert summarize._as_measured(run) == named


def test_a_crash_diagnosis_without_crashes_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    (tmp_path / "mpc_crashes_risk0").mkdir()
    summary = {"episodes": 36, "crashes": 0, "by_kind": {}}
    run = {
        "latent_checkpoint": "driving_latent",
        "planner": {"risk_aversion": 0.0},
        "seeds": [20000, 20035],
        "mean_return": 24.4,
        "summary": summary,
        "machine": {"commit": "abc1234"},
    }
    (tmp_path / "mpc_crashes_risk0" / "crashes.json").write_text(json.dumps(run))
    text = "\n".join(summarize._mpc_crashes_section("mpc_crashes_risk0"))
    assert "python -m experiments.mpc_crashes planner.risk_aversion=0 out_dir=" in text
    assert "without risk aversion) drives 36 real episodes" in text
    assert "none of them crashes" in text
    assert summarize._mpc_crashes_section("not_run") == []


def _setting(name: str, crashes: int, mean_return: float, sem: float = 0.3) -> dict[str, object]:
    return {"setting": name, "crashes": crashes, "mean_return": mean_return, "return_sem": sem}


def test_settings_that_crash_less_and_return_more_are_named_with_their_gain() -> None:
    base = _setting("terminal value 16", 30, 23.0)
    others = [
        _setting("a", 8, 24.0),  # +1.0, more than the two standard errors (0.6)
        _setting("b", 6, 23.5),  # +0.5, within them
        _setting("c", 40, 25.0),  # returns more but crashes more
        _setting("d", 0, 22.0),  # crashes less but returns less
    ]
    (line,) = summarize._safer_and_richer_lines(base, others)[1:]
    assert line.startswith("Fewer crashes and more return than terminal value 16: a (8 crashes")
    assert "b (6 crashes, 23.50, +0.50)" in line and "c (" not in line and "d (" not in line
    assert line.endswith("by more than the two standard errors: a.")
    assert summarize._safer_and_richer_lines(base, others[2:]) == []


def test_the_latent_model_section_counts_the_steps_of_every_run_in_its_chain(
    tmp_path: Path,
) -> None:
    metrics = {
        "reward_mae_by_step": [0.03, 0.07],
        "end_auc_by_step": [0.99, 0.85],
        "end_mean_probability": 0.046,
        "end_rate": 0.048,
        "end_brier": 0.027,
        "windows": 2048,
        "machine": {"commit": "abc1234"},
    }
    info = {
        "frames": {"train": 46122, "extra": 101862},
        "train_config": {"steps": 6000},
        "started_from": {"train_config": {"steps": 3000}, "started_from": None},
    }
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "config.json").write_text(json.dumps({"info": info}))
    first = summarize._latent_model_section(tmp_path)[0]
    assert "9,000 steps in 2 runs on 46,122 frames" in first
    assert "plus 101,862 frames of more recordings" in first


def _driving_run(speeds: dict[str, float | None]) -> dict:
    """A minimal driving MPC run whose controllers drove at the given mean speeds (None: not
    recorded, as in runs from before speeds were)."""
    results = {}
    for name, speed in speeds.items():
        row = {"mean_return": 20.0, "crash_rate": 0.0, "latency_ms_mean": 5.0}
        row["latency_ms_p95"] = 6.0
        if speed is not None:
            row |= {"mean_speed_mps": speed, "mean_right_lane_term": 0.75}
        results[name] = row
    planner = {"method": "cem", "horizon": 4, "population": 32, "elites": 6, "iterations": 2}
    return {
        "task": "driving",
        "seeds": [1, 2],
        "planner": planner,
        "results": results,
        "machine": {"commit": "abc1234"},
    }


@pytest.mark.parametrize(
    ("speeds", "shown"),
    [
        ({"latent_planner": 22.5, "oracle_planner": 28.25}, True),
        ({"latent_planner": 22.5, "oracle_planner": None}, False),
    ],
    ids=["every controller", "one without"],
)
def test_speed_columns_show_only_when_every_controller_recorded_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, speeds: dict, shown: bool
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    (tmp_path / "mpc").mkdir()
    (tmp_path / "mpc" / "metrics.json").write_text(json.dumps(_driving_run(speeds)))
    text = "\n".join(summarize._mpc_section("mpc"))
    assert ("| latent_planner | 20.00 | 0.00 | 22.5 m/s | 0.75 | 5.0 / 6.0 ms |" in text) is shown
    assert ("mean speed | right-lane term" in text) is shown
    assert ("| latent_planner | 20.00 | 0.00 | 5.0 / 6.0 ms |" in text) is not shown


def test_the_planner_risk_table_shows_each_settings_speed_when_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)

    def row(setting: str, mean: float, crashes: int, speed: float | None) -> dict:
        measured = {
            "setting": setting,
            "mean_return": mean,
            "return_sem": 0.5,
            "crashes": crashes,
            "mean_return_without_crash": mean + 1,
            "latency_ms_mean": 10.0,
            "latency_ms_p95": 12.0,
        }
        return measured | ({"mean_speed_mps": speed} if speed is not None else {})

    for speeds, shown in (((26.5, 22.25), True), ((26.5, None), False)):
        run = {
            "latent_checkpoint": "driving_latent",
            "episodes": 100,
            "seeds": [1, 100],
            "figure": "f.png",
            "machine": {"commit": "abc1234"},
            "settings": [
                row("terminal value 16", 23.0, 30, speeds[0]),
                row("risk aversion 1, floor 0.01", 22.8, 6, speeds[1]),
            ],
        }
        (tmp_path / "planner_risk.json").write_text(json.dumps(run))
        text = "\n".join(summarize._planner_risk_section())
        assert ("| 6 of 100 | 23.80 | 22.2 m/s | 10.0 / 12.0 ms |" in text) is shown
        assert ("| 6 of 100 | 23.80 | 10.0 / 12.0 ms |" in text) is not shown


@pytest.mark.parametrize("starts", [4, 12], ids=["too few starts", "enough starts"])
def test_the_share_of_the_oracle_shows_its_interval_on_enough_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starts: int
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    run = _driving_run({"latent_planner": None, "oracle_planner": None})
    run["seeds"] = list(range(starts))
    for name, returns in (("latent_planner", 18.0), ("oracle_planner", 24.0)):
        run["results"][name] |= {"mean_return": returns, "returns": [returns] * starts}
    run["latent_fraction_of_oracle_return"] = 0.75
    (tmp_path / "mpc").mkdir()
    (tmp_path / "mpc" / "metrics.json").write_text(json.dumps(run))
    text = "\n".join(summarize._mpc_section("mpc"))
    assert "Latent world-model planner: 75% of the oracle's return" in text
    shown = f"(95% interval over its {starts} starts, resampled in pairs: 75%–75%)" in text
    assert shown is (starts >= summarize.SHARE_INTERVAL_MIN_STARTS)
