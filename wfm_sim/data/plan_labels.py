"""Plan labels on disk: candidate plans a planner weighed at real decisions, each played on
a clone of the real simulator (``experiments.plan_labels`` makes them). They are what
footage cannot show a latent model: the real outcome of plans nobody drove, so a model can
be scored on them and trained on them (``wfm_sim.training.latent_world_model``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

PLAN_KEYS = ("state", "actions", "rewards", "ended", "valid", "outlasted")
"""Arrays of a labels part with one row per labelled plan: the decision it was a candidate
at (a row of ``contexts``), the plan, per step the real reward, whether the episode ended
there and whether the step was played (none after an end), and whether the episode ran on
past the plan (``PlayedPlan``). ``contexts`` holds the last K real frames (K, H, W, 3) of
each decision."""

LABELS_FORMAT = 2
"""Version of the parts' arrays (2: ``outlasted`` added); labels of another are refused."""


def part_paths(folder: str | Path) -> list[Path]:
    """The labels parts in ``folder``, in order."""
    return sorted(Path(folder).glob("part-*.safetensors"))


def read_plan_labels(folder: str | Path) -> dict[str, np.ndarray]:
    """Every part of a labels folder, with ``state`` indexing the joined ``contexts``."""
    parts = part_paths(folder)
    if not parts:
        raise FileNotFoundError(
            f"no plan labels in {folder}: run python -m experiments.plan_labels"
        )
    return join_parts(parts)


def join_parts(parts: list[Path]) -> dict[str, np.ndarray]:
    """The labels of ``parts`` (of one labels folder or several) as one set, ``state``
    renumbered to index the joined ``contexts``."""
    if not parts:
        raise ValueError("join_parts needs at least one plan-labels part")
    loaded, offset = [], 0
    for path in parts:
        arrays = load_file(str(path))
        missing = {"contexts", *PLAN_KEYS} - set(arrays)
        if missing:
            raise ValueError(
                f"{path} is not a plan-labels part of format {LABELS_FORMAT}: it lacks "
                f"{sorted(missing)}; delete {path.parent} and run python -m experiments.plan_labels"
            )
        arrays["state"] = arrays["state"] + offset
        offset += len(arrays["contexts"])
        loaded.append(arrays)
    labels = {k: np.concatenate([a[k] for a in loaded]) for k in ("contexts", *PLAN_KEYS)}
    for flag in ("ended", "valid", "outlasted"):
        labels[flag] = labels[flag].astype(bool)
    return labels
