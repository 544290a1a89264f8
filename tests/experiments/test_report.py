"""The ranking report: every file written, policies in real-return order, GIFs side by side."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from experiments.report import (
    GIF_GAP_PX,
    GIF_SCALE,
    ROLLOUT_CAPTION,
    PolicyResult,
    RolloutPair,
    write_ranking_report,
)
from wfm_sim.evaluation import ranking_metrics

T, H, W = 6, 16, 12

# Listed neither alphabetically nor by return: the report must sort by mean real return.
RESULTS = [
    PolicyResult("idle", real_returns=[1.0, 2.0, 1.5], wfm_returns=[3.0, 2.5]),
    PolicyResult("expert", real_returns=[9.0, 10.0, 11.0], wfm_returns=[8.0, 9.0]),
    PolicyResult("random", real_returns=[4.0, 6.0, 5.0], wfm_returns=[2.0, 2.5]),
]


def _frames(rng: np.random.Generator) -> np.ndarray:
    """(T, H, W, 3) uint8 noise, every frame different so the GIF keeps all of them."""
    return rng.integers(0, 256, size=(T, H, W, 3), dtype=np.uint8)


@pytest.fixture
def report(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    metrics = ranking_metrics(
        {r.name: r.real_returns for r in RESULTS},
        {r.name: r.wfm_returns for r in RESULTS},
        rng,
        n_bootstrap=100,
    )
    rollouts = [RolloutPair("expert", _frames(rng), _frames(rng))]
    return write_ranking_report(
        tmp_path / "report",
        RESULTS,
        metrics,
        rollouts,
        rng,
        extra={"seed": 0, "termination": "never", "seeds": list(range(16))},
    )


def test_writes_every_file(report: Path) -> None:
    out = report.parent
    assert report == out / "report.md"
    for name in ("report.md", "report.html", "scatter.png", "metrics.json", "rollout_expert.gif"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob("*.tmp")), "atomic writes left temporary files behind"
    assert iio.imread(out / "scatter.png").ndim == 3


def test_markdown_lists_policies_by_real_return(report: Path) -> None:
    text = report.read_text()
    first_column = [
        line.split("|")[1].strip() for line in text.splitlines() if line.startswith("|")
    ]
    policy_rows = [cell for cell in first_column if cell in {r.name for r in RESULTS}]
    assert policy_rows == ["expert", "random", "idle"]
    # The world model swaps "random" (real 5.0, model 2.25) and "idle" (real 1.5, model 2.75).
    expert_row = next(line for line in text.splitlines() if line.startswith("| expert "))
    assert expert_row.split("|")[4:7] == [" 1 ", " 1 ", " 3 / 2 "]
    assert "MMRV" in text and "![" in text and ROLLOUT_CAPTION in text


def test_html_has_the_same_content(report: Path) -> None:
    page = (report.parent / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.index("expert") < page.index("random") < page.index("idle")
    assert 'src="scatter.png"' in page and 'src="rollout_expert.gif"' in page


def test_gif_shows_real_and_imagined_side_by_side(report: Path) -> None:
    frames = iio.imread(report.parent / "rollout_expert.gif", index=None)
    assert frames.shape[:3] == (T, GIF_SCALE * H, 2 * GIF_SCALE * W + GIF_GAP_PX)
    gap = frames[:, :, GIF_SCALE * W : GIF_SCALE * W + GIF_GAP_PX, :3]
    assert (gap == 255).all()


def test_metrics_json(report: Path) -> None:
    payload = json.loads((report.parent / "metrics.json").read_text())
    assert set(payload["metrics"]) == {"spearman", "kendall", "pearson", "mmrv", "regret_at_1"}
    assert payload["metrics"]["spearman"]["value"] == pytest.approx(0.5)
    assert payload["policies"]["random"]["real"]["value"] == pytest.approx(5.0)
    assert payload["policies"]["random"]["rank_wfm"] == 3
    assert payload["extra"] == {"seed": 0, "termination": "never", "seeds": list(range(16))}


def test_rejects_mismatched_rollout_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    metrics = ranking_metrics(
        {r.name: r.real_returns for r in RESULTS},
        {r.name: r.wfm_returns for r in RESULTS},
        rng,
        n_bootstrap=10,
    )
    short = RolloutPair("expert", _frames(rng), _frames(rng)[:-1])
    with pytest.raises(ValueError, match="same non-empty shape"):
        write_ranking_report(tmp_path, RESULTS, metrics, [short], rng)


def test_run_settings_are_listed_with_long_lists_shortened(report: Path) -> None:
    text = report.read_text()
    assert "## Run settings" in text
    assert '| termination | "never" |' in text
    assert "| seeds | [0, 1, 2, … (16 values)] |" in text
    assert "Run settings" in (report.parent / "report.html").read_text()
