"""The crash diagnosis: the view's extent, how a crash is classed, how long the other car was
in view, the summary, and real highway-env episodes driven to a crash end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize

from experiments.config import to_dataclass
from experiments.mpc_crashes import (
    CrashDiagnosisConfig,
    View,
    _drive,
    crash_kind,
    plot_crashes,
    run_crash_diagnosis,
    steps_in_view_before,
    summarize_crashes,
)
from wfm_sim.sources import ACTION_NAMES, DrivingSimConfig, make_driving_env

FASTER = ACTION_NAMES.index("FASTER")


def test_the_view_is_the_rendered_road_around_the_ego_car() -> None:
    view = View.of(DrivingSimConfig())
    assert view == View(ahead=32.0, behind=64 / 1.5 / 4, side=64 / 1.5 / 2)
    assert view.shows(31.0, 4.0) and view.shows(-10.0, -20.0)
    assert not view.shows(33.0, 0.0) and not view.shows(-11.0, 0.0)
    assert not view.shows(5.0, 22.0)


@pytest.mark.parametrize(
    ("dx", "dy", "kind"),
    [
        (6.0, 0.3, "ran into the car ahead"),
        (-5.0, -1.0, "hit from behind"),
        (2.0, 3.9, "car in the next lane"),
    ],
)
def test_a_crash_is_classed_by_where_the_other_car_was(dx: float, dy: float, kind: str) -> None:
    assert crash_kind(dx, dy) == kind


def test_steps_in_view_count_back_from_the_crash_until_the_car_was_out_of_view() -> None:
    view = View(ahead=32.0, behind=10.0, side=20.0)
    assert steps_in_view_before([(50.0, 0.0), (30.0, 0.0), (20.0, 0.0), (8.0, 0.0)], view) == 3
    assert steps_in_view_before([(20.0, 0.0), None, (8.0, 0.0)], view) == 1
    assert steps_in_view_before([(40.0, 0.0)], view) == 0


def test_the_summary_counts_kinds_and_crashes_the_model_missed() -> None:
    crashes = [
        {
            "kind": "car in the next lane",
            "steps_in_view_before": 3,
            "lane_change_in_last_2_actions": True,
            "plan_crash_probability_before": [0.0, 0.1, 0.2, 0.9],
        },
        {
            "kind": "ran into the car ahead",
            "steps_in_view_before": 1,
            "lane_change_in_last_2_actions": False,
            "plan_crash_probability_before": [0.0, 0.7],
        },
    ]
    summary = summarize_crashes(crashes, episodes=5)
    assert summary["crashes"] == 2 and summary["episodes"] == 5
    assert summary["by_kind"] == {"car in the next lane": 1, "ran into the car ahead": 1}
    assert summary["lane_change_in_last_2_actions"] == 1
    assert summary["plan_crash_probability_1_step_before_median"] == pytest.approx(0.8)
    assert summary["plan_crash_probability_2_steps_before_median"] == pytest.approx(0.1)
    assert summary["foreseeable_missed"] == 1  # the second car was in view only 1 step
    assert summarize_crashes([], episodes=3)["steps_in_view_before_median"] is None


class _AlwaysFaster:
    """A stand-in for the latent planner that always speeds up and rates every plan 0.25."""

    last_plan = np.full(4, FASTER)

    def begin_episode(self, frames: list[np.ndarray], actions: list[int]) -> None:
        pass

    def observe(self, frame: np.ndarray, action: int) -> None:
        pass

    def act(self, frame: np.ndarray, rng: np.random.Generator) -> int:
        return FASTER

    def end_probabilities(self, plan: np.ndarray) -> np.ndarray:
        return np.full(len(plan), 1 - 0.75**0.25)


def test_a_real_crash_is_diagnosed_from_the_simulator_and_drawn(tmp_path: Path) -> None:
    env = make_driving_env()
    view = View.of(DrivingSimConfig())
    episodes = [_drive(env, _AlwaysFaster(), seed, view, 3) for seed in range(6)]  # type: ignore[arg-type]
    env.close()
    crashed = [e for e in episodes if e["crashed"]]
    assert crashed, "always speeding up crashed in none of 6 highway-env episodes"
    crash = crashed[0]["crash"]
    assert crash["kind"] in ("ran into the car ahead", "hit from behind", "car in the next lane")
    assert crash["actions_before"] == ["FASTER"] * 3
    assert crash["plan_crash_probability_before"] == [pytest.approx(0.25, abs=1e-4)] * 3
    assert crash["lane_change_in_last_2_actions"] is False
    dx, dy = crash["offset_step_before_m"]  # one 1 s step before touching: close by
    assert abs(dx) < 40.0 and abs(dy) < 8.0
    assert len(crashed[0]["frames_before"]) == 4
    figure = plot_crashes(episodes, tmp_path / "crashes.png")
    assert figure is not None and figure.stat().st_size > 0
    assert plot_crashes([e for e in episodes if not e["crashed"]], tmp_path / "none.png") is None


def test_the_entry_point_writes_results_over_a_latent_checkpoint(
    tiny_latent_checkpoint: Path, tmp_path: Path
) -> None:
    config = CrashDiagnosisConfig(
        latent_checkpoint=str(tiny_latent_checkpoint), episodes=1, out_dir=str(tmp_path)
    )
    (tmp_path / "crashes.png").write_bytes(b"an earlier run's figure")
    payload = run_crash_diagnosis(config)
    stored = json.loads((tmp_path / "crashes.json").read_text())
    figure = tmp_path / "crashes.png"  # this run's crashes, or none: never the earlier run's
    assert figure.exists() == (stored["figure"] is not None)
    assert not figure.exists() or figure.read_bytes() != b"an earlier run's figure"
    assert stored["summary"] == payload["summary"] and stored["summary"]["episodes"] == 1
    assert len(stored["latent_weights_sha256"]) == 64
    assert stored["summary"]["crashes"] == len(stored["crashes"])


def test_the_config_file_matches_the_schema() -> None:
    with initialize(version_base=None, config_path="../../experiments/conf"):
        cfg = compose(config_name="mpc_crashes")
    config = to_dataclass(cfg, CrashDiagnosisConfig)
    assert config.planner.horizon == 4 and config.planner.terminal_value == 16.0
    with pytest.raises(ValueError, match="episodes"):
        CrashDiagnosisConfig(episodes=0)
