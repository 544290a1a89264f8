"""The MPC demo on a tiny checkpoint: every controller drives real episodes, results and the
plan video are written."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.mpc_demo import MPCDemoConfig, run_mpc_demo
from policies.planners import PlannerConfig
from wfm_sim.video import read_video


def test_mpc_demo_writes_results_and_a_plan_video(tiny_checkpoint: Path, tmp_path: Path) -> None:
    config = MPCDemoConfig(
        checkpoint=str(tiny_checkpoint),
        episodes=1,
        planner=PlannerConfig(horizon=2, population=4, elites=2, iterations=1),
        run_oracle=True,
        out_dir=str(tmp_path / "mpc"),
        threads=1,
    )
    payload = run_mpc_demo(config)
    stored = json.loads((tmp_path / "mpc" / "metrics.json").read_text())
    assert set(stored["results"]) == {"wfm_planner", "dqn_15k", "oracle_planner"}
    for result in stored["results"].values():
        assert 0 <= result["crash_rate"] <= 1 and result["latency_ms_mean"] > 0
    assert payload["wfm_fraction_of_oracle_return"] is not None
    video = read_video(payload["video"])
    # Each frame: the real frame plus the 2 imagined frames of the plan, 2 px apart.
    assert video.shape[1:] == (64, 64 * 3 + 2 * 2, 3)
