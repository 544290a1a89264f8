"""The plan-label training bench: paired gains against the zoo model on the same starts, the
held-out labels it ranks on, and the BENCHMARKS section it feeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import experiments.bench.plan_label_training as plan_label_training
from experiments.bench import summarize


def test_held_out_labels_need_a_part_besides_the_trained_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "part-00000.safetensors").write_bytes(b"")
    monkeypatch.setattr(plan_label_training, "LABEL_DIRS", (str(folder),))
    with pytest.raises(FileNotFoundError, match="no held-out part"):
        plan_label_training.held_out_labels()


def _labels(regret: float) -> dict[str, float]:
    return {
        "pick_crashes_with_a_safe_plan_on_the_table": 0.1,
        "crash_auc_mean": 0.9,
        "regret_mean": regret,
    }


def test_the_section_pairs_each_model_against_the_zoo_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summarize, "RESULTS_DIR", tmp_path)
    assert "make plan-label-training" in "\n".join(summarize._plan_label_training_section())
    model = {
        "mpc_starts": {"mean_return": 24.0, "oracle_share": 0.86, "crashes": 2},
        "fresh_starts": {"mean_return": 24.1, "return_sem": 0.4, "crashes": 7},
        "fresh_gain_over_committed": {"mean": 0.42, "sem": 0.5, "better": 60, "worse": 39},
        "held_out_labels": _labels(1.2),
    }
    result = {
        "setting": "risk aversion 1, floor 0.01",
        "mpc_seeds": [1, 2, 3, 4],
        "fresh_seeds": [10, 109],
        "oracle_mean_return": 28.0,
        "committed": {
            "checkpoint": "driving_latent",
            "mpc_mean_return": 24.2,
            "mpc_oracle_share": 0.87,
            "mpc_crashes": 0,
            "fresh_mean_return": 23.7,
            "fresh_crashes": 6,
            "held_out_labels": _labels(1.5),
        },
        "machine": {"commit": "abc1234"},
        "models": {"with labels": model},
    }
    (tmp_path / "plan_label_training.json").write_text(json.dumps(result))
    text = "\n".join(summarize._plan_label_training_section())
    assert (
        "| with labels | 10% | 0.900 | 1.20 | 24.00 (86%), 2 crashed | 24.10 ± 0.40, 7 crashed "
        "| +0.42 ± 0.50 (60 / 39) |" in text
    )
    assert (
        "| the zoo's `driving_latent` at abc1234 | 10% | 0.900 | 1.50 | 24.20 (87%), 0 crashed "
        "| 23.70, 6 crashed | – |" in text
    )
    assert "100 fresh starts of `make planner-risk`" in text
    assert "No model gains more than two standard errors" in text
    model["fresh_gain_over_committed"]["sem"] = 0.2
    (tmp_path / "plan_label_training.json").write_text(json.dumps(result))
    text = "\n".join(summarize._plan_label_training_section())
    assert "more than two standard errors: with labels." in text
