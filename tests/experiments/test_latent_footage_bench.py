"""The latent-footage bench: each model driven by the demo planner on the MPC run's starts,
weighed against the oracle's returns there, and the BENCHMARKS section it feeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import experiments.bench.latent_footage as latent_footage
from experiments.bench import summarize


def test_the_oracle_share_needs_returns_of_the_same_starts() -> None:
    assert latent_footage.oracle_share([10.0, 20.0], [20.0, 20.0]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="same starts"):
        latent_footage.oracle_share([10.0], [20.0, 20.0])


def test_a_model_is_measured_on_both_sets_of_starts(tiny_latent_checkpoint: Path) -> None:
    row = latent_footage.measure_model(
        str(tiny_latent_checkpoint), [3, 4], [2.0, 2.0], [5], max_steps=2
    )
    mpc, fresh = row["mpc_starts"], row["fresh_starts"]
    assert len(mpc["returns"]) == 2 and len(fresh["returns"]) == 1
    # the stored returns are rounded to 3 decimals
    assert mpc["oracle_share"] == pytest.approx(mpc["mean_return"] / 2.0, abs=1e-3)
    assert len(row["end_auc_by_step"]) == len(row["reward_mae_by_step"]) > 0
    assert len(row["weights_sha256"]) == 64


def _model(share: float) -> dict[str, object]:
    return {
        "end_auc_by_step": [0.99, 0.8],
        "reward_mae_by_step": [0.05, 0.07],
        "mpc_starts": {
            "mean_return": 20.0,
            "returns": [20.0] * 4,
            "crash_rate": 0.25,
            "crashes": 1,
            "oracle_share": share,
        },
        "fresh_starts": {"mean_return": 21.0, "return_sem": 0.4, "crashes": 7},
    }


def test_the_section_names_the_best_model_on_the_mpc_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    assert "make latent-footage" in "\n".join(summarize._latent_footage_section())
    result = {
        "setting": "risk aversion 1, floor 0.01",
        "mpc_seeds": [1, 2, 3, 4],
        "fresh_seeds": [10, 19],
        "oracle_mean_return": 28.0,
        "committed": {
            "checkpoint": "driving_latent",
            "mpc_mean_return": 21.0,
            "mpc_oracle_share": 0.75,
            "fresh_mean_return": 22.0,
            "fresh_crashes": 7,
            "mpc_crashes": 2,
            "dyna_rounds": 8,
        },
        "machine": {"commit": "abc1234"},
        "models": {"small": _model(0.6), "large": _model(0.8)},
    }
    (tmp_path / "latent_footage.json").write_text(json.dumps(result))
    text = "\n".join(summarize._latent_footage_section())
    assert "| large | 0.990 / 0.800 | 0.050 / 0.070 | 20.00 (80%), 1 crashed |" in text
    assert "Best on the MPC starts: large, 80% of the oracle's return" in text
    assert "10 starts of `make planner-risk`" in text
    assert (
        "| the zoo's `driving_latent` at abc1234, after 8 Dyna rounds | – | – | "
        "21.00 (75%), 2 crashed | 22.00, 7 crashed |" in text
    )


def test_the_dyna_rounds_of_a_model_are_its_round_folders_of_extra_footage(
    tmp_path: Path,
) -> None:
    extra = ["data/footage/driving_dyna/round_1", "data/footage/driving_dyna/round_2", "other"]
    info = {"info": {"train_config": {"extra_footage_dirs": extra}}}
    (tmp_path / "config.json").write_text(json.dumps(info))
    assert latent_footage.dyna_rounds(str(tmp_path)) == 2
    (tmp_path / "config.json").write_text(json.dumps({"info": {"train_config": {}}}))
    assert latent_footage.dyna_rounds(str(tmp_path)) == 0
