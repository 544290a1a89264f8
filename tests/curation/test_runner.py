"""The stage runner: batches are stored as they finish, a killed stage resumes, Ray gives the same."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import pytest

from wfm_sim.curation.runner import InProcessExecutor, Rows, make_executor, run_stage


def _square(batch: Rows, calls: list[str] | None = None, fail_on: str | None = None) -> Rows:
    out = []
    for row in batch:
        if row["id"] == fail_on:
            raise RuntimeError("killed")
        if calls is not None:
            calls.append(row["id"])
        out.append({"id": row["id"], "square": row["x"] ** 2})
    return out


def _rows(n: int) -> Rows:
    return [{"id": f"c{i:03d}", "x": i} for i in range(n)]


def test_outputs_cover_every_row_in_key_order(tmp_path: Path) -> None:
    rows = list(reversed(_rows(10)))
    out = run_stage("sq", rows, _square, tmp_path, key="id", batch_size=3, progress=False)
    assert [r["id"] for r in out] == [f"c{i:03d}" for i in range(10)]
    assert [r["square"] for r in out] == [i * i for i in range(10)]
    assert len(list((tmp_path / "sq").glob("batch-*.parquet"))) == 4


def test_a_killed_stage_resumes_without_redoing_finished_batches(tmp_path: Path) -> None:
    calls: list[str] = []

    def run(**square_kwargs: object) -> Rows:
        fn = functools.partial(_square, calls=calls, **square_kwargs)
        return run_stage("sq", _rows(10), fn, tmp_path, key="id", batch_size=3, progress=False)

    with pytest.raises(RuntimeError, match="killed"):
        run(fail_on="c007")
    assert calls == [f"c{i:03d}" for i in range(7)]  # batches 0 and 1 stored, batch 2 lost
    assert not list((tmp_path / "sq").glob(".*tmp*")), "no half-written batch is left"

    calls.clear()
    out = run()
    assert calls == ["c006", "c007", "c008", "c009"]
    assert [r["square"] for r in out] == [i * i for i in range(10)]

    calls.clear()
    run()
    assert calls == [], "a finished stage does nothing on a re-run"


def test_empty_batch_outputs_and_bad_arguments(tmp_path: Path) -> None:
    out = run_stage(
        "none", _rows(4), lambda batch: [], tmp_path, key="id", batch_size=2, progress=False
    )
    assert out == []
    with pytest.raises(ValueError, match="batch_size"):
        run_stage("x", _rows(2), _square, tmp_path, key="id", batch_size=0, progress=False)
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("spark")
    assert isinstance(make_executor("local"), InProcessExecutor)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_ray_executor_gives_the_in_process_result(tmp_path: Path) -> None:
    import ray

    executor = make_executor("ray")
    try:
        on_ray = run_stage(
            "sq",
            _rows(7),
            _square,
            tmp_path / "ray",
            key="id",
            batch_size=2,
            executor=executor,
            progress=False,
        )
    finally:
        ray.shutdown()
    local = run_stage(
        "sq", _rows(7), _square, tmp_path / "local", key="id", batch_size=2, progress=False
    )
    assert on_ray == local
