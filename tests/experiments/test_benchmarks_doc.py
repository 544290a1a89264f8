"""BENCHMARKS.md is what the committed results say: regenerating it changes nothing, so no
figure in it has drifted from the result JSON a bench wrote."""

from __future__ import annotations

import difflib
from pathlib import Path

from experiments.bench import summarize

ROOT = Path(__file__).resolve().parents[2]


def test_benchmarks_md_is_regenerated_from_the_committed_results() -> None:
    committed = (ROOT / "BENCHMARKS.md").read_text().splitlines()
    regenerated = summarize.render().splitlines()
    drift = list(difflib.unified_diff(committed, regenerated, "committed", "regenerated", n=0))
    assert not drift, (
        "BENCHMARKS.md is stale; run `python -m experiments.bench.summarize`:\n"
        + "\n".join(drift[:20])
    )
