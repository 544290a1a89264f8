"""The MPC demo end to end: on a tiny driving checkpoint and on the committed robot model,
every controller drives real episodes, and results and the plan video are written."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hydra import compose, initialize

from experiments.config import to_dataclass
from experiments.mpc_demo import (
    MPCDemoConfig,
    _fractions,
    _kept_rows,
    run_mpc_demo,
    summarize_runs,
)
from policies.planners import PlannerConfig
from wfm_sim.io import file_sha256
from wfm_sim.video import read_video


def test_mpc_demo_writes_results_and_a_plan_video(tiny_checkpoint: Path, tmp_path: Path) -> None:
    config = MPCDemoConfig(
        checkpoint=str(tiny_checkpoint),
        episodes=1,
        planner=PlannerConfig(horizon=2, population=4, elites=2, iterations=1),
        decode_rounds=2,
        run_oracle=True,
        out_dir=str(tmp_path / "mpc"),
        threads=1,
    )
    payload = run_mpc_demo(config)
    stored = json.loads((tmp_path / "mpc" / "metrics.json").read_text())
    assert stored["decode_rounds"] == 2
    assert set(stored["results"]) == {"wfm_planner", "dqn_15k", "oracle_planner"}
    for result in stored["results"].values():
        assert 0 <= result["crash_rate"] <= 1 and result["latency_ms_mean"] > 0
    assert payload["wfm_fraction_of_oracle_return"] is not None
    video = read_video(payload["video"])
    # Each frame: the real frame plus the 2 imagined frames of the plan, 2 px apart.
    assert video.shape[1:] == (64, 64 * 3 + 2 * 2, 3)


def _latent_demo(checkpoint: Path, latent_checkpoint: Path, out_dir: Path) -> MPCDemoConfig:
    """3 steps of one episode: the latent planner, the zoo policy and the oracle."""
    return MPCDemoConfig(
        checkpoint=str(checkpoint),
        latent_checkpoint=str(latent_checkpoint),
        run_pixel_planner=False,
        episodes=1,
        max_steps=3,
        planner=PlannerConfig(horizon=2, population=4, elites=2, iterations=1),
        out_dir=str(out_dir),
        threads=1,
    )


def test_mpc_demo_plans_over_the_latent_world_model(
    tiny_checkpoint: Path, tiny_latent_checkpoint: Path, tmp_path: Path
) -> None:
    config = _latent_demo(tiny_checkpoint, tiny_latent_checkpoint, tmp_path / "mpc")
    payload = run_mpc_demo(config)
    stored = json.loads((tmp_path / "mpc" / "metrics.json").read_text())
    assert set(stored["results"]) == {"latent_planner", "dqn_15k", "oracle_planner"}
    assert stored["latent_checkpoint"] == str(tiny_latent_checkpoint)
    assert stored["latent_weights_sha256"] == file_sha256(
        tiny_latent_checkpoint / "model.safetensors"
    )
    oracle = stored["results"]["oracle_planner"]["mean_return"]
    latent = stored["results"]["latent_planner"]["mean_return"]
    assert stored["latent_fraction_of_oracle_return"] == pytest.approx(latent / oracle)
    assert "wfm_fraction_of_oracle_return" not in stored and payload["video"] is None
    for result in stored["results"].values():  # highway-env's speeds: 20 to 30 m/s targeted
        assert 10 < result["mean_speed_mps"] < 40 and 0 <= result["mean_right_lane_term"] <= 1
    video = read_video(payload["latent_video"])
    # One frame a decision: the real frame enlarged 3x above a 30-px band naming the plan.
    assert video.shape == (3, 64 * 3 + 30, 64 * 3, 3)


def test_a_new_latent_model_keeps_the_other_controllers_rows_of_an_earlier_run(
    tiny_checkpoint: Path, tiny_latent_checkpoint: Path, tmp_path: Path
) -> None:
    config = _latent_demo(tiny_checkpoint, tiny_latent_checkpoint, tmp_path / "first")
    first = run_mpc_demo(config)
    assert first["kept"] == {"from": None, "commit": None, "controllers": []}
    earlier = str(tmp_path / "first" / "metrics.json")
    again = run_mpc_demo(
        dataclasses.replace(config, keep_results_of=earlier, out_dir=str(tmp_path / "again"))
    )
    assert again["kept"]["controllers"] == ["dqn_15k", "oracle_planner"]
    assert again["kept"]["commit"] == first["machine"]["commit"]
    for name in ("dqn_15k", "oracle_planner"):  # latencies too: not driven again
        assert again["results"][name] == first["results"][name]
    assert again["latent_video"] is not None
    with pytest.raises(ValueError, match="seeds"):
        run_mpc_demo(dataclasses.replace(config, keep_results_of=earlier, seed=5))
    # the oracle ignores the model's risk terms, so other ones keep its row; a budget does not
    riskier = dataclasses.replace(config.planner, risk_aversion=0.5, risk_floor=0.03)
    assert run_mpc_demo(
        dataclasses.replace(
            config, planner=riskier, keep_results_of=earlier, out_dir=str(tmp_path / "risk")
        )
    )["kept"]["controllers"] == ["dqn_15k", "oracle_planner"]
    wider = dataclasses.replace(config.planner, population=config.planner.population + 1)
    with pytest.raises(ValueError, match="planner"):
        run_mpc_demo(dataclasses.replace(config, planner=wider, keep_results_of=earlier))


def test_latent_planner_is_refused_for_vector_actions() -> None:
    with pytest.raises(ValueError, match="driving only"):
        MPCDemoConfig(task="robot", checkpoint="robot", latent_checkpoint="driving_latent")


def test_robot_mpc_demo_drives_pusher_with_every_controller(tmp_path: Path) -> None:
    config = MPCDemoConfig(
        task="robot",
        checkpoint="robot",
        episodes=1,
        max_steps=3,
        baseline_policy="bc_best",
        floor_policy="still",
        planner=PlannerConfig(horizon=2, population=4, elites=2, iterations=1, init_std=0.2),
        out_dir=str(tmp_path / "mpc_robot"),
        threads=1,
    )
    payload = run_mpc_demo(config)
    stored = json.loads((tmp_path / "mpc_robot" / "metrics.json").read_text())
    assert stored["task"] == "robot" and stored["outcome"].startswith("success_rate")
    results = stored["results"]
    assert set(results) == {"wfm_planner", "bc_best", "still", "oracle_planner"}
    distances = [r["final_object_goal_distance_m"] for r in results.values()]
    for result in results.values():
        assert result["success_rate"] in (0.0, 1.0) and "crash_rate" not in result
        assert result["latency_ms_mean"] > 0 and len(result["returns"]) == 1
        assert result["mean_return"] < 0  # Pusher only charges: distances and torques
        assert "mean_speed_mps" not in result  # Pusher's info has no speed
    # One seed, one scene: in 3 steps (0.15 s) no controller moves the object far.
    assert 0.17 <= min(distances) and max(distances) - min(distances) < 0.05
    assert stored["wfm_fraction_of_oracle_return"] is None  # a ratio of negatives means nothing
    oracle, still = results["oracle_planner"]["mean_return"], results["still"]["mean_return"]
    if oracle > still:
        gain = (results["wfm_planner"]["mean_return"] - still) / (oracle - still)
        assert stored["wfm_fraction_of_oracle_gain_over_floor"] == pytest.approx(gain)
    else:  # no gain to share
        assert stored["wfm_fraction_of_oracle_gain_over_floor"] is None
    video = read_video(payload["video"])
    # One frame a step: the real frame and the 2 imagined frames of the plan, 2 px apart.
    assert video.shape == (3, 64, 64 * 3 + 2 * 2, 3)


def test_mpc_demo_configs_pick_the_task() -> None:
    with initialize(version_base=None, config_path="../../experiments/conf"):
        driving = to_dataclass(compose("mpc_demo"), MPCDemoConfig)
        robot = to_dataclass(compose("mpc_demo_robot", ["episodes=1"]), MPCDemoConfig)
    assert driving.task == "driving" and driving.planner.horizon == 4
    assert driving.latent_checkpoint == "driving_latent" and robot.latent_checkpoint is None
    assert driving.planner.terminal_value == 16.0 and robot.planner.terminal_value == 0.0
    assert driving.out_dir == "experiments/results/mpc" and driving.floor_policy is None
    assert robot.task == "robot" and robot.checkpoint == "robot" and robot.episodes == 1
    assert robot.baseline_policy == "bc_best" and robot.floor_policy == "still"
    assert robot.out_dir == "experiments/results/mpc_robot" and robot.planner.horizon == 10
    with pytest.raises(ValueError, match="unknown task"):
        MPCDemoConfig(task="flying")
    with pytest.raises(ValueError, match="decode_rounds"):
        MPCDemoConfig(decode_rounds=0)


def test_oracle_shares_are_defined_only_where_they_mean_something() -> None:
    def results(wfm: float, oracle: float, floor: float) -> dict:
        returns = {"wfm_planner": wfm, "oracle_planner": oracle, "still": floor}
        return {name: {"mean_return": value} for name, value in returns.items()}

    robot = _fractions(results(-45.0, -40.0, -50.0), "still")
    assert robot["wfm_fraction_of_oracle_gain_over_floor"] == pytest.approx(0.5)
    assert robot["wfm_fraction_of_oracle_return"] is None  # negative returns
    assert (
        _fractions(results(-45.0, -55.0, -50.0), "still")["wfm_fraction_of_oracle_gain_over_floor"]
        is None
    )  # the oracle did not beat the floor
    driving = _fractions(results(5.0, 20.0, 0.0), None)
    assert driving == {
        "wfm_fraction_of_oracle_return": pytest.approx(0.25),
        "wfm_fraction_of_oracle_gain_over_floor": None,
    }


def test_speed_and_lane_are_pooled_over_every_step_of_every_run() -> None:
    def run(speeds: list[float], lanes: list[float]) -> dict:
        return {
            "return": 1.0,
            "crashed": False,
            "latencies": [0.01],
            "speeds": speeds,
            "right_lane": lanes,
        }

    summary = summarize_runs([run([20.0, 30.0], [1.0, 0.5]), run([25.0], [0.0])], "driving")
    assert summary["mean_speed_mps"] == pytest.approx(25.0)  # (20 + 30 + 25) / 3 steps
    assert summary["mean_right_lane_term"] == pytest.approx(0.5)
    unknown = summarize_runs([run([20.0], [1.0]), run([], [])], "driving")
    assert "mean_speed_mps" not in unknown and "mean_right_lane_term" not in unknown


def test_other_risk_terms_keep_the_oracle_but_drive_the_world_model_planner_again(
    tmp_path: Path,
) -> None:
    settings = {
        "task": "driving",
        "checkpoint": "driving",
        "seeds": [1, 2],
        "max_steps": None,
        "decode_rounds": None,
        "temperature": 1.0,
    }
    rows = {name: {"mean_return": 1.0} for name in ("wfm_planner", "latent_planner", "dqn_15k")}
    earlier = tmp_path / "metrics.json"
    earlier.write_text(
        json.dumps(
            {
                **settings,
                "planner": vars(PlannerConfig(risk_aversion=1.0)),
                "results": {**rows, "oracle_planner": {"mean_return": 2.0}},
                "machine": {"commit": "abc"},
            }
        )
    )
    config = MPCDemoConfig(keep_results_of=str(earlier))
    same = _kept_rows(config, {**settings, "planner": vars(PlannerConfig(risk_aversion=1.0))})
    assert set(same["rows"]) == {"wfm_planner", "dqn_15k", "oracle_planner"}
    riskier = _kept_rows(config, {**settings, "planner": vars(PlannerConfig(risk_aversion=0.5))})
    assert set(riskier["rows"]) == {"dqn_15k", "oracle_planner"} and riskier["commit"] == "abc"
