"""The camera-control benchmark's windows and frozen camera path."""

from __future__ import annotations

import numpy as np

from experiments.bench.camera_control import film_strip, frozen_camera, gain_by_sweep, windows
from wfm_sim.data import Episode


def _episode(length: int) -> Episode:
    actions = np.zeros((length, 10), np.float32)
    actions[:, -3] = np.arange(length)  # azimuth grows a degree a step
    frames = np.arange(length + 1, dtype=np.uint8)[:, None, None, None] * np.ones(
        (1, 2, 2, 3), np.uint8
    )
    return Episode(7, frames, actions, np.arange(length, dtype=np.float32), np.zeros(length, bool))


def test_windows_start_every_stride_keep_frames_aligned_and_drop_short_tails() -> None:
    parts = windows(_episode(50), length=19, stride=20)
    assert [int(w.frames[0, 0, 0, 0]) for w in parts] == [0, 20]  # 40 + 19 > 50: dropped
    for part in parts:
        assert part.length == 19 and len(part.frames) == 20
        start = int(part.frames[0, 0, 0, 0])
        np.testing.assert_array_equal(part.actions[:, -3], np.arange(start, start + 19))
        np.testing.assert_array_equal(part.rewards, np.arange(start, start + 19))


def test_frozen_camera_keeps_torques_and_holds_the_context_pose() -> None:
    episode = _episode(12)
    episode.actions[:, 0] = 1.5
    frozen = frozen_camera(episode, context=4)
    assert (frozen.actions[:, -3] == 2.0).all()  # the pose named by the action into frame 3
    np.testing.assert_array_equal(frozen.actions[:, :-3], episode.actions[:, :-3])
    np.testing.assert_array_equal(episode.actions[:, -3], np.arange(12))  # input untouched


def test_film_strip_puts_films_in_rows_and_every_nth_frame_from_the_first_in_columns() -> None:
    films = [np.full((6, 2, 3, 3), row, np.uint8) for row in (10, 20)]
    films[0][3] = 99  # the fourth frame: picked with every=3, after the first
    films[0][1] = 55  # the second: skipped
    image = film_strip(films, every=3, zoom=2)
    assert image.shape == (2 * 2 * 2, 2 * 3 * 2, 3)  # 2 rows x frames 0 and 3, zoomed twice
    assert (image[:4, :6] == 10).all() and (image[:4, 6:] == 99).all()
    assert not (image == 55).any()
    assert (image[4:] == 20).all()


def test_gain_by_sweep_splits_windows_at_the_median_sweep() -> None:
    gain = np.array([1.0, 3.0, 0.0, 2.0])
    sweep = np.array([10.0, 40.0, 5.0, 30.0])  # median 20: windows 1 and 3 are the wider half
    assert gain_by_sweep(gain, sweep) == {"wider_half": 2.5, "narrower_half": 0.5}
    assert np.isnan(gain_by_sweep(np.ones(3), np.full(3, 7.0))["narrower_half"])
