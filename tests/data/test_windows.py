"""Training windows and splits, checked on hand-made episodes whose frames are their indices."""

from __future__ import annotations

import numpy as np
import pytest

from wfm_sim.data import PAD_ACTION, Episode, WindowSampler, draw_favouring, split_episodes


def _episode(episode_id: int, length: int, crashed: bool) -> Episode:
    """Frame t is the integer 100 * episode_id + t; action t is t % 5; reward t is t + 0.5."""
    steps = np.arange(length)
    return Episode(
        episode_id=episode_id,
        frames=(100 * episode_id + np.arange(length + 1))[:, None],
        actions=steps % 5,
        rewards=(steps + 0.5).astype(np.float32),
        terminated=(steps == length - 1) & crashed,
    )


def test_window_shapes_and_dtypes() -> None:
    sampler = WindowSampler([_episode(0, 4, True), _episode(1, 6, False)], context=3, horizon=2)
    assert len(sampler) == 4 + 6
    batch = sampler.batch([0, 5, 9])
    assert batch.frames.shape == (3, 3 + 2, 1)
    assert batch.actions.shape == (3, 3 + 2 - 1) and batch.actions.dtype == np.int64
    for column in (batch.rewards, batch.terminated, batch.valid):
        assert column.shape == (3, 2)
    assert batch.rewards.dtype == np.float32
    assert batch.terminated.dtype == bool and batch.valid.dtype == bool


def test_context_before_the_start_repeats_frame_zero_with_pad_actions() -> None:
    sampler = WindowSampler([_episode(2, 4, True)], context=3, horizon=2)
    first = sampler.batch([0])  # anchored at t = 0: frames -2 .. 2
    np.testing.assert_array_equal(first.frames[0, :, 0], [200, 200, 200, 201, 202])
    np.testing.assert_array_equal(first.actions[0], [PAD_ACTION, PAD_ACTION, 0, 1])
    np.testing.assert_array_equal(first.rewards[0], [0.5, 1.5])
    second = sampler.batch([1])  # t = 1: frames -1 .. 3
    np.testing.assert_array_equal(second.frames[0, :, 0], [200, 200, 201, 202, 203])
    np.testing.assert_array_equal(second.actions[0], [PAD_ACTION, 0, 1, 2])


def test_steps_past_the_end_are_invalid_and_only_the_last_transition_terminates() -> None:
    sampler = WindowSampler([_episode(0, 4, True)], context=2, horizon=3)
    last = sampler.batch([3])  # t = 3 is the final transition: steps 3, 4, 5
    np.testing.assert_array_equal(last.frames[0, :3, 0], [2, 3, 4])
    np.testing.assert_array_equal(last.valid[0], [True, False, False])
    np.testing.assert_array_equal(last.terminated[0], [True, False, False])
    np.testing.assert_array_equal(last.rewards[0], [3.5, 0.0, 0.0])

    every = sampler.batch(np.arange(len(sampler)))
    t, j = np.meshgrid(np.arange(4), np.arange(3), indexing="ij")
    np.testing.assert_array_equal(every.valid, t + j < 4)
    np.testing.assert_array_equal(every.terminated, t + j == 3)


def test_an_episode_that_was_not_ended_by_a_crash_never_terminates() -> None:
    sampler = WindowSampler([_episode(0, 5, False)], context=2, horizon=3)
    assert not sampler.batch(np.arange(len(sampler))).terminated.any()


def test_windows_never_mix_episodes() -> None:
    episodes = [_episode(1, 3, True), _episode(2, 2, False), _episode(3, 4, True)]
    sampler = WindowSampler(episodes, context=3, horizon=3)
    frames = sampler.batch(np.arange(len(sampler))).frames[..., 0]
    assert (frames // 100 == frames[:, :1] // 100).all()


def test_sampling_is_fixed_by_the_generator() -> None:
    sampler = WindowSampler([_episode(0, 4, True), _episode(1, 6, False)], context=2, horizon=2)
    a = sampler.sample(16, np.random.default_rng(7))
    b = sampler.sample(16, np.random.default_rng(7))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.actions, b.actions)


@pytest.mark.parametrize(("context", "horizon"), [(0, 1), (1, 0)])
def test_sampler_refuses_empty_context_or_horizon(context: int, horizon: int) -> None:
    with pytest.raises(ValueError, match="context and horizon"):
        WindowSampler([_episode(0, 3, True)], context=context, horizon=horizon)


def test_sampler_refuses_episodes_without_transitions() -> None:
    with pytest.raises(ValueError, match="no transitions"):
        WindowSampler([_episode(0, 0, False)], context=2, horizon=1)


def test_ending_anchors_are_the_last_steps_of_crashed_episodes_only() -> None:
    sampler = WindowSampler(
        [_episode(0, 4, True), _episode(1, 6, False), _episode(2, 5, True)], context=2, horizon=2
    )
    ending = sampler.ending_anchors(2)
    # episode 0 holds windows 0-3, episode 1 (no crash) 4-9, episode 2 10-14
    np.testing.assert_array_equal(ending, [2, 3, 13, 14])
    assert sampler.batch(ending).terminated.any(axis=1).all()  # each window holds the crash
    with pytest.raises(ValueError, match="steps must be >= 1"):
        sampler.ending_anchors(0)


def test_draw_favouring_nothing_draws_as_a_uniform_draw_does() -> None:
    index, weights = draw_favouring(np.random.default_rng(3), 50, 20, np.array([1, 2]), 0.0)
    np.testing.assert_array_equal(index, np.random.default_rng(3).integers(0, 20, size=50))
    np.testing.assert_array_equal(weights, np.ones(50))


def test_draw_favouring_over_represents_the_favoured_and_weights_them_back() -> None:
    favoured = np.arange(10)
    index, weights = draw_favouring(np.random.default_rng(0), 200_000, 1000, favoured, 0.25)
    in_favoured = np.isin(index, favoured)
    assert in_favoured.mean() == pytest.approx(0.25 + 0.75 * 0.01, abs=0.005)
    # weighted, the favoured windows count as often as a uniform draw holds them (1%)
    assert (weights * in_favoured).sum() / len(index) == pytest.approx(0.01, abs=0.001)
    assert weights.mean() == pytest.approx(1.0, abs=0.01)
    assert weights[in_favoured].max() < 1.0 < weights[~in_favoured].min()


def test_draw_favouring_refuses_a_share_outside_zero_one_or_nothing_to_favour() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"share must be in \[0, 1\)"):
        draw_favouring(rng, 4, 10, np.array([1]), 1.0)
    with pytest.raises(ValueError, match="no favoured windows"):
        draw_favouring(rng, 4, 10, np.array([], dtype=np.int64), 0.5)


def test_split_is_by_whole_episode_disjoint_and_deterministic() -> None:
    episodes = [_episode(i, 3, i % 2 == 0) for i in range(10)]
    train, held_out = split_episodes(episodes, held_out_fraction=0.3, seed=0)
    train_ids = [e.episode_id for e in train]
    held_ids = [e.episode_id for e in held_out]
    assert len(held_ids) == 3 and not set(train_ids) & set(held_ids)
    assert sorted(train_ids + held_ids) == list(range(10))
    assert all(e is episodes[e.episode_id] for e in train + held_out), "episodes kept whole"

    again = split_episodes(episodes, held_out_fraction=0.3, seed=0)[1]
    assert [e.episode_id for e in again] == held_ids
    others = {
        tuple(e.episode_id for e in split_episodes(episodes, 0.3, seed)[1]) for seed in range(1, 6)
    }
    assert others - {tuple(held_ids)}, "other seeds should hold out other episodes"


def test_split_holds_out_at_least_one_episode() -> None:
    episodes = [_episode(i, 2, False) for i in range(3)]
    assert len(split_episodes(episodes, held_out_fraction=0.01, seed=0)[1]) == 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_fractions_outside_zero_one(fraction: float) -> None:
    episodes = [_episode(i, 2, False) for i in range(4)]
    with pytest.raises(ValueError, match="held_out_fraction"):
        split_episodes(episodes, held_out_fraction=fraction, seed=0)


def test_split_rejects_too_few_episodes() -> None:
    with pytest.raises(ValueError, match="too few"):
        split_episodes([_episode(0, 2, False)], held_out_fraction=0.5, seed=0)
