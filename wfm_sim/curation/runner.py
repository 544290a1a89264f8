"""Run a curation stage as a function over batches: in-process by default, on Ray for a cluster.

A stage is a plain function ``rows -> rows`` (lists of dicts). ``run_stage`` cuts its input into
batches, runs the function on each through an executor and stores each batch's output as its own
Parquet file, named by a hash of the batch's input keys. A re-run skips every batch whose output
is on disk, so a killed stage resumes where it stopped: nothing lost, nothing done twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from wfm_sim.io import atomic_path

Rows = list[dict[str, Any]]
StageFn = Callable[[Rows], Rows]


class Executor(Protocol):
    """Maps a stage function over batches, yielding each batch's output in input order."""

    def map(self, fn: StageFn, batches: Sequence[Rows]) -> Iterator[Rows]: ...


class InProcessExecutor:
    """Runs batches one after another in this process (the default)."""

    def map(self, fn: StageFn, batches: Sequence[Rows]) -> Iterator[Rows]:
        """Yield ``fn(batch)`` for each batch, in order."""
        for batch in batches:
            yield fn(batch)


class RayExecutor:
    """Runs batches as Ray tasks: on a local Ray instance by default, or on the cluster at
    ``address``. The stage function must be picklable (a module-level function or a
    ``functools.partial`` of one)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError as error:
            raise ImportError(
                "the Ray executor needs Ray: pip install 'wfm_sim[ray]' (or run in-process)"
            ) from error
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=num_cpus, include_dashboard=False)

    def map(self, fn: StageFn, batches: Sequence[Rows]) -> Iterator[Rows]:
        """Submit every batch at once, then yield the outputs in input order as they finish."""
        remote = self._ray.remote(fn)
        futures = [remote.remote(batch) for batch in batches]
        for future in futures:
            yield self._ray.get(future)


def make_executor(name: str, address: str | None = None) -> Executor:
    """``"local"`` -> ``InProcessExecutor``; ``"ray"`` -> ``RayExecutor(address)``."""
    if name == "local":
        return InProcessExecutor()
    if name == "ray":
        return RayExecutor(address=address)
    raise ValueError(f"unknown executor {name!r}; use 'local' or 'ray'")


def batch_key(keys: Sequence[str]) -> str:
    """A short, stable name for a batch: a hash of its items' keys."""
    digest = hashlib.sha1("\n".join(keys).encode()).hexdigest()
    return digest[:16]


def run_stage(
    name: str,
    rows: Rows,
    fn: StageFn,
    work_dir: str | Path,
    *,
    key: str,
    batch_size: int,
    executor: Executor | None = None,
    progress: bool = True,
) -> Rows:
    """Run stage ``name`` over ``rows`` in batches of ``batch_size``; returns all output rows.

    ``key`` names the column that identifies an input row; batches are formed in sorted key
    order, so the same input always forms the same batches. Outputs live in
    ``work_dir/<name>/batch-<hash>.parquet``; batches with an output on disk are not run again.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    ordered = sorted(rows, key=lambda row: str(row[key]))
    batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    stage_dir = Path(work_dir) / name
    stage_dir.mkdir(parents=True, exist_ok=True)
    paths = [stage_dir / f"batch-{batch_key([str(r[key]) for r in b])}.parquet" for b in batches]
    todo = [i for i, path in enumerate(paths) if not path.exists()]
    bar = tqdm(total=len(batches), desc=name, unit="batch", disable=not progress)
    bar.update(len(batches) - len(todo))
    try:
        outputs = (executor or InProcessExecutor()).map(fn, [batches[i] for i in todo])
        for index, output in zip(todo, outputs, strict=True):
            with atomic_path(paths[index]) as tmp:
                pq.write_table(_table(output), tmp)
            bar.update(1)
    finally:
        bar.close()
    result: Rows = []
    for path in paths:
        result.extend(pq.read_table(path).to_pylist())
    return result


def _table(rows: Rows) -> pa.Table:
    """Rows as a table; an empty batch output is an empty table with no columns."""
    return pa.Table.from_pylist(rows) if rows else pa.table({})
