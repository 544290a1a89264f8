"""Planners: CEM and MPPI find the known optimum of toy models; the world-model and oracle
planners score sequences the way their models say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import world_models
from envs.core import WorldModelCore
from policies.planners import (
    LatentModelPlanner,
    OraclePlanner,
    PlannerConfig,
    WorldModelPlanner,
    clone_simulator,
    expected_returns,
    plan,
    plan_returns,
    plan_scores,
    play_plan,
)
from policies.planners.discrete import all_sequences
from wfm_sim.sources import make_driving_env
from world_models import WorldModelConfig
from world_models.latent import LatentWorldModel, LatentWorldModelConfig

TARGET = np.array([3, 0, 4, 4, 1, 2])


def _match_target(sequences: np.ndarray) -> np.ndarray:
    """Reward 1 per step whose action equals TARGET's: the optimum is TARGET, return 6."""
    return (sequences == TARGET[None, : sequences.shape[1]]).sum(axis=1).astype(float)


def _chain(sequences: np.ndarray) -> np.ndarray:
    """A corridor: action 3 moves right (+1), 4 left (-1), others stay; reward = position at
    each step, and stepping past position 3 falls off (the episode ends, no more reward)."""
    position = np.zeros(len(sequences))
    alive = np.ones(len(sequences))
    total = np.zeros(len(sequences))
    for t in range(sequences.shape[1]):
        position += (sequences[:, t] == 3).astype(float) - (sequences[:, t] == 4)
        alive *= position <= 3
        total += alive * position
    return total


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_planners_find_the_known_optimum(method: str) -> None:
    config = PlannerConfig(
        method=method, horizon=6, population=256, elites=16, iterations=6, temperature=0.2
    )
    first, best, probs = plan(_match_target, 5, config, np.random.default_rng(0))
    np.testing.assert_array_equal(best, TARGET)
    assert first == TARGET[0]
    assert (probs.argmax(axis=1) == TARGET).all()


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_planners_stop_at_the_cliff(method: str) -> None:
    config = PlannerConfig(method=method, horizon=6, population=256, elites=16, iterations=6)
    _, best, _ = plan(_chain, 5, config, np.random.default_rng(1))
    # Optimum: right three times, then stay at 3: 1 + 2 + 3 + 3 + 3 + 3 = 15.
    assert _chain(best[None])[0] == 15


def test_a_population_covering_every_sequence_scores_each_once() -> None:
    sequences = all_sequences(3, 2)
    assert sequences.tolist() == [[a, b] for a in range(3) for b in range(3)]
    calls: list[int] = []

    def cliff(candidates: np.ndarray) -> np.ndarray:
        calls.append(len(candidates))
        return _chain(candidates)

    config = PlannerConfig(horizon=4, population=5**4, elites=1, iterations=5)
    first, best, probs = plan(cliff, 5, config, np.random.default_rng(0))
    assert calls == [625], "every sequence scored once, no further iterations"
    assert _chain(best[None])[0] == 1 + 2 + 3 + 3 and first == 3
    np.testing.assert_array_equal(probs.argmax(axis=1), best)


def test_terminal_value_makes_a_short_plan_avoid_an_end() -> None:
    # One step: action 0 pays 1 and ends the episode, any other pays 0.5 and goes on, worth
    # the terminal value after it.
    for value, expected in ((0.0, 0), (10.0, 1)):
        config = PlannerConfig(horizon=1, population=5, elites=1, terminal_value=value)
        survives = 0.5 + 0.95 * value
        first, _, _ = plan(
            lambda c, s=survives: np.where(c[:, 0] == 0, 1.0, s),
            5,
            config,
            np.random.default_rng(0),
        )
        assert first == expected
    with pytest.raises(ValueError, match="terminal_value"):
        PlannerConfig(terminal_value=float("nan"))


def test_bad_budgets_are_refused() -> None:
    with pytest.raises(ValueError, match="'cem' or 'mppi'"):
        PlannerConfig(method="random-shooting")
    with pytest.raises(ValueError, match="elites"):
        PlannerConfig(population=4, elites=8)
    with pytest.raises(ValueError, match="shape"):
        plan(
            lambda s: np.zeros(3),
            5,
            PlannerConfig(population=8, elites=2),
            np.random.default_rng(0),
        )


def test_world_model_planner_scores_with_the_heads(tiny_checkpoint: Path) -> None:
    model = world_models.load(tiny_checkpoint, device="cpu")
    frames, actions = world_models.load_start_contexts(tiny_checkpoint)
    planner = WorldModelPlanner(
        model, PlannerConfig(horizon=3, population=8, elites=2, iterations=2)
    )
    planner.begin_episode(list(frames[0].numpy()), actions[0].tolist())
    sequences = np.array([[1, 1, 1], [3, 3, 3], [1, 1, 1]])
    scores = planner.score(sequences)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert scores[0] == pytest.approx(scores[2], abs=1e-5), "same sequence, same score"
    action = planner.act(frames[0, -1].numpy(), np.random.default_rng(0))
    assert 0 <= action < 5 and planner.last_plan is not None and planner.last_latency > 0

    # A terminal value is credited by the chance of still running after the horizon.
    survival = WorldModelPlanner(
        model, PlannerConfig(horizon=3, population=8, elites=2, terminal_value=1.0)
    )
    survival.begin_episode(list(frames[0].numpy()), actions[0].tolist())
    core = WorldModelCore(model, batch_size=1)
    core.reset(frames[:1], actions[:1])
    alive = 1.0
    for action_index in sequences[1]:
        alive *= 1 - float(core.advance(torch.tensor([action_index])).end_probability[0])
    credited = survival.score(sequences[1:2])[0] - planner.score(sequences[1:2])[0]
    assert credited == pytest.approx(0.95**3 * alive, abs=1e-5)


def test_oracle_credits_the_terminal_value_only_to_sequences_that_do_not_end() -> None:
    env = make_driving_env()
    env.reset(seed=3)
    budget = {"horizon": 2, "population": 4, "elites": 1, "iterations": 1}
    plain = OraclePlanner(env, PlannerConfig(**budget))
    valued = OraclePlanner(env, PlannerConfig(**budget, terminal_value=10.0))
    gap = valued.score(np.array([[1, 1]]))[0] - plain.score(np.array([[1, 1]]))[0]
    assert gap == pytest.approx(0.95**2 * 10.0)
    for _ in range(40):  # drive into the traffic until the next step ends the episode
        clone = clone_simulator(env)
        _, _, terminated, truncated, _ = clone.step(3)
        if terminated or truncated:
            break
        env.step(3)
    else:
        pytest.fail("no crash within 40 faster steps from seed 3: pick a seed that crashes")
    assert valued.score(np.array([[3, 3]]))[0] == pytest.approx(plain.score(np.array([[3, 3]]))[0])


class _TimeLimitedSim:
    """Pays 1 a step and hits its time limit after ``limit`` steps."""

    def __init__(self, limit: int) -> None:
        self.limit, self.steps = limit, 0

    def step(self, action: int) -> tuple[None, float, bool, bool, dict[str, object]]:
        self.steps += 1
        return None, 1.0, False, self.steps >= self.limit, {}


def test_a_plan_cut_by_the_time_limit_at_its_last_step_earns_no_terminal_value() -> None:
    config = PlannerConfig(horizon=2, discount=0.5, terminal_value=8.0)
    cut, running = (
        play_plan(_TimeLimitedSim(2), np.array([1, 1])),
        play_plan(_TimeLimitedSim(3), np.array([1, 1])),
    )
    assert cut.played.all() and not cut.outlasted and running.outlasted
    returns = plan_returns(
        np.stack([cut.rewards, running.rewards]),
        np.stack([cut.played, running.played]),
        np.array([cut.outlasted, running.outlasted]),
        config,
    )
    np.testing.assert_allclose(returns, [1.5, 1.5 + 0.25 * 8])


def test_oracle_scores_are_the_real_returns_and_leave_the_env_alone() -> None:
    env = make_driving_env()
    env.reset(seed=3)
    before = env.unwrapped.vehicle.position.copy()
    oracle = OraclePlanner(
        env,
        PlannerConfig(horizon=2, population=4, elites=1, iterations=1),
    )
    sequence = np.array([[3, 3]])
    score = oracle.score(sequence)[0]
    np.testing.assert_array_equal(env.unwrapped.vehicle.position, before)
    real = 0.0
    for t, action in enumerate(sequence[0]):
        _, reward, *_ = env.step(int(action))
        real += 0.95**t * reward
    assert score == pytest.approx(real, abs=1e-6)
    assert clone_simulator(env) is not env.unwrapped


def test_expected_returns_against_hand_computed_values() -> None:
    config = PlannerConfig(discount=0.5, terminal_value=10.0)
    rewards = torch.tensor([[1.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    ends = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 1.0]])
    # row 0: 1 + 0.5 + 0.25 * 10; row 1: 1 + 0.5 * 0.5 * 1 + 0.5 * 0.25 * 10;
    # row 2: 2 + 0.5 * 0 + 0 (ended at step 2: no terminal value)
    expected = torch.tensor([4.0, 2.5, 2.0])
    torch.testing.assert_close(expected_returns(rewards, ends, config), expected)
    with pytest.raises(ValueError, match=r"\(P, H\)"):
        expected_returns(rewards, ends[:, :1], config)


def test_a_risk_averse_score_adds_a_log_term_in_the_chance_the_plan_ends() -> None:
    rewards = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    ends = torch.tensor([[0.0, 0.0], [0.5, 0.5]])  # risk 0 and 1 - 0.5 * 0.5 = 0.75
    neutral = PlannerConfig(discount=0.5, terminal_value=10.0)
    torch.testing.assert_close(
        plan_scores(rewards, ends, neutral), expected_returns(rewards, ends, neutral)
    )
    averse = PlannerConfig(discount=0.5, terminal_value=10.0, risk_aversion=2.0, risk_floor=0.25)
    bonus = -2.0 * torch.log(torch.tensor([0.25, 1.0]))  # log(0 + 0.25), log(0.75 + 0.25)
    torch.testing.assert_close(
        plan_scores(rewards, ends, averse), expected_returns(rewards, ends, neutral) + bonus
    )
    with pytest.raises(ValueError, match="risk_aversion"):
        PlannerConfig(risk_aversion=-1.0)
    with pytest.raises(ValueError, match="risk_floor"):
        PlannerConfig(risk_floor=0.0)


class _KnownLatentModel(LatentWorldModel):
    """A latent model whose step is known: reward 1 for FASTER (3), 0.5 for IDLE (1), 0
    otherwise; LANE_LEFT (0) ends the episode for sure; nothing else ends it."""

    def step(
        self, states: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        reward = (actions == 3).float() + 0.5 * (actions == 1).float()
        end_logit = torch.where(actions == 0, 50.0, -50.0)
        return states, reward, end_logit


def _started_known_planner(
    model_config: WorldModelConfig, config: PlannerConfig
) -> tuple[LatentModelPlanner, np.ndarray]:
    """A latent planner over ``_KnownLatentModel``, begun on a black frame (returned too)."""
    model = _KnownLatentModel(LatentWorldModelConfig(model_config, 8, 16, 4))
    planner = LatentModelPlanner(model, config)
    frame = np.zeros((64, 64, 3), dtype=np.uint8)
    planner.begin_episode([frame], [])
    return planner, frame


def test_latent_planner_finds_the_known_optimum(tiny_model_config: WorldModelConfig) -> None:
    exhaustive = PlannerConfig(horizon=3, population=125, elites=5, iterations=1)
    planner, frame = _started_known_planner(tiny_model_config, exhaustive)
    assert planner.act(frame, np.random.default_rng(0)) == 3
    assert planner.last_plan is not None and planner.last_plan.tolist() == [3, 3, 3]
    assert planner.last_latency > 0
    searched = LatentModelPlanner(
        planner.model, PlannerConfig(horizon=3, population=32, iterations=4)
    )
    searched.begin_episode([frame], [])
    searched.observe(frame, 3)
    assert searched.act(frame, np.random.default_rng(1)) == 3
    scores = searched.score(np.array([[3, 3, 3], [0, 3, 3], [1, 1, 1]]))
    assert scores[0] > scores[2] > scores[1]
    with pytest.raises(ValueError, match=r"\(P, H\)"):
        searched.score(np.array([3, 3, 3]))


def test_latent_planner_reports_each_step_end_probability_of_a_plan(
    tiny_model_config: WorldModelConfig,
) -> None:
    config = PlannerConfig(horizon=3, population=125, elites=5)
    planner, frame = _started_known_planner(tiny_model_config, config)
    np.testing.assert_allclose(planner.end_probabilities(np.array([3, 0, 1])), [0, 1, 0], atol=1e-6)
    planner.act(frame, np.random.default_rng(0))
    assert planner.last_plan is not None
    np.testing.assert_allclose(planner.end_probabilities(planner.last_plan), [0, 0, 0], atol=1e-6)


def test_latent_planner_keeps_the_candidates_of_its_last_decision(
    tiny_model_config: WorldModelConfig,
) -> None:
    config = PlannerConfig(horizon=3, population=16, iterations=2)
    planner, frame = _started_known_planner(tiny_model_config, config)
    with pytest.raises(ValueError, match="act first"):
        _ = planner.last_plan_score
    planner.act(frame, np.random.default_rng(0))
    assert [s.shape for s, _ in planner.last_candidates] == [(16, 3), (16, 3)]
    scored = np.concatenate([v for _, v in planner.last_candidates])
    assert planner.last_plan is not None
    assert planner.last_plan_score == pytest.approx(scored.max())
    assert planner.last_plan_score == pytest.approx(
        float(planner.score(planner.last_plan[None])[0])
    )
    planner.act(frame, np.random.default_rng(1))  # a new decision forgets the old candidates
    assert len(planner.last_candidates) == 2
    np.testing.assert_array_equal(
        planner.context_frames(), np.stack([frame] * planner.model.context)
    )
