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
