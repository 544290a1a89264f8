"""The planted-dedup bench's comparison with all-pairs brute force, on hand-made decisions."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.bench.dedup_planted import _against_all_pairs


def test_drops_are_scored_against_the_all_pairs_drops() -> None:
    keep = np.array([True, False, False, True, True])
    all_pairs_keep = np.array([True, False, True, False, False])
    scores = _against_all_pairs(keep, all_pairs_keep)
    # dropped {1, 2}; all pairs drop {1, 3, 4}: one in common
    assert scores["precision"] == pytest.approx(1 / 2)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["all_pairs_removed"] == 3
    same = _against_all_pairs(keep, keep)
    assert same["precision"] == same["recall"] == 1.0
