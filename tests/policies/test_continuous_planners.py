"""Continuous planners: Gaussian CEM and MPPI find the known optimum of toy models, warm starts
carry the plan over, the MuJoCo oracle scores on an exact clone that leaves the real env alone,
and the world-model planner imagines vector-action sequences in one batch."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import world_models
from envs.core import WorldModelCore
from policies.planners import (
    MujocoClone,
    OraclePlanner,
    PlannerConfig,
    RecedingHorizon,
    WorldModelPlanner,
    plan_continuous,
)
from wfm_sim.sources.pusher import make_robot_env

LOW, HIGH = np.full(2, -2.0), np.full(2, 2.0)
TARGET = np.array([[0.5, -1.0], [1.5, 0.0], [-0.7, 3.0], [0.0, -1.2]])
"""A quadratic's peak; (2, 1) lies outside the box, so the best plan there is the bound 2.0."""


def _quadratic(sequences: np.ndarray) -> np.ndarray:
    return -((sequences - TARGET[None]) ** 2).sum(axis=(1, 2))


GOAL = np.array([2.5, -1.5])
POINT_LOW, POINT_HIGH = np.full(2, -1.0), np.full(2, 1.0)
POINT_OPTIMUM = np.array([[1.0, -1.0], [1.0, -0.5], [0.5, 0.0], [0.0, 0.0]])
"""A point moved by velocities in [-1, 1]^2 from ``start``: reward -|position - GOAL| after each
step. The reachable set after t steps from the origin is a square of half-width t, and the
projections of GOAL on them, (1, -1), (2, -1.5), (2.5, -1.5), ..., are one step apart, so this
is the unique optimum, with return -(|(1.5, -0.5)| + 0.5) = -2.081."""
POINT_BEST_RETURN = -(np.hypot(1.5, 0.5) + 0.5)


def _point_mass(start: np.ndarray):
    def score(sequences: np.ndarray) -> np.ndarray:
        positions = start + np.cumsum(sequences.astype(np.float64), axis=1)
        return -np.linalg.norm(positions - GOAL, axis=2).sum(axis=1)

    return score


def _config(method: str, **overrides: object) -> PlannerConfig:
    values: dict = dict(
        method=method, horizon=4, population=256, elites=16, iterations=15, init_std=1.0
    )
    return PlannerConfig(**{**values, **overrides})


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_continuous_planners_find_the_peak_of_a_quadratic(method: str) -> None:
    action, plan, best = plan_continuous(
        _quadratic, LOW, HIGH, _config(method), np.random.default_rng(0)
    )
    optimum = np.clip(TARGET, LOW, HIGH)
    assert plan.shape == best.shape == (4, 2) and plan.dtype == np.float32
    np.testing.assert_allclose(plan, optimum, atol=0.05)
    np.testing.assert_allclose(best, optimum, atol=0.15)
    np.testing.assert_array_equal(action, plan[0])
    assert (plan >= LOW).all() and (plan <= HIGH).all()


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_continuous_planners_steer_a_point_mass_along_the_known_best_path(method: str) -> None:
    score = _point_mass(np.zeros(2))
    config = _config(method)
    action, plan, _ = plan_continuous(
        score, POINT_LOW, POINT_HIGH, config, np.random.default_rng(1)
    )
    assert score(plan[None])[0] == pytest.approx(POINT_BEST_RETURN, abs=0.06)
    np.testing.assert_allclose(plan, POINT_OPTIMUM, atol=0.15)
    np.testing.assert_allclose(action, [1.0, -1.0], atol=0.1)  # into the corner, full speed


def test_warm_start_shifts_the_plan_and_pays_off_with_a_tiny_budget() -> None:
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    search = RecedingHorizon(space, _config("cem"))
    action, plan = search.plan(_point_mass(np.zeros(2)), np.random.default_rng(2))
    assert search.warm_mean is not None
    np.testing.assert_array_equal(search.warm_mean[:-1], plan[1:])
    np.testing.assert_array_equal(search.warm_mean[-1], [0.0, 0.0])  # the box's centre

    # From where the first action leads, one round of 8 samples: the warm start (its mean is
    # always a candidate) is already near the optimum; a cold start is not.
    next_score = _point_mass(np.asarray(action, np.float64))
    tiny = _config("cem", population=8, elites=2, iterations=1)
    rng_warm, rng_cold = np.random.default_rng(3), np.random.default_rng(3)
    _, _, warm = plan_continuous(
        next_score, POINT_LOW, POINT_HIGH, tiny, rng_warm, search.warm_mean
    )
    _, _, cold = plan_continuous(next_score, POINT_LOW, POINT_HIGH, tiny, rng_cold)
    best_from_there = -0.5  # (2, -1.5) then the goal: the rest of the optimum
    assert next_score(warm[None])[0] == pytest.approx(best_from_there, abs=0.1)
    assert next_score(warm[None])[0] > next_score(cold[None])[0] + 0.5

    search.reset()
    assert search.warm_mean is None
    without = RecedingHorizon(space, _config("cem", warm_start=False))
    without.plan(_point_mass(np.zeros(2)), np.random.default_rng(2))
    assert without.warm_mean is None


def test_bad_continuous_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="min_std <= init_std"):
        PlannerConfig(init_std=0.1, min_std=0.2)
    with pytest.raises(ValueError, match="low < high"):
        plan_continuous(_quadratic, HIGH, LOW, _config("cem"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="initial_mean"):
        plan_continuous(
            _quadratic, LOW, HIGH, _config("cem"), np.random.default_rng(0), np.zeros((3, 2))
        )
    with pytest.raises(ValueError, match="1-d Box"):
        RecedingHorizon(gym.spaces.Box(0, 1, (2, 2)), _config("cem"))


def _physics(env: gym.Env) -> list[np.ndarray]:
    data = env.unwrapped.data  # type: ignore[attr-defined]
    return [data.qpos.copy(), data.qvel.copy(), np.array([data.time]), data.xpos.copy()]


def test_mujoco_oracle_scores_the_true_return_and_leaves_the_real_env_alone() -> None:
    env = make_robot_env()
    env.reset(seed=4)
    for _ in range(3):  # a moving arm, so velocities and warm starts are not trivial
        env.step(np.full(7, 0.8, np.float32))
    before = _physics(env)
    oracle = OraclePlanner(env, PlannerConfig(horizon=4, population=6, elites=2, iterations=1))
    sequences = np.random.default_rng(0).uniform(-2, 2, (2, 4, 7)).astype(np.float32)
    scores = oracle.score(sequences)
    for now, then in zip(_physics(env), before, strict=True):
        np.testing.assert_array_equal(now, then)

    action = oracle.act(np.zeros((64, 64, 3), np.uint8), np.random.default_rng(0))
    assert action.shape == (7,) and action.dtype == np.float32 and np.abs(action).max() <= 2
    for now, then in zip(_physics(env), before, strict=True):
        np.testing.assert_array_equal(now, then)

    real = 0.0
    for t, step_action in enumerate(sequences[1]):
        _, reward, *_ = env.step(step_action)
        real += 0.95**t * reward
    assert scores[1] == real  # the clone's physics is the real one, bit for bit
    clone = MujocoClone(env)
    assert clone.synced() is not env.unwrapped


@pytest.fixture
def robot_context() -> tuple[np.ndarray, np.ndarray]:
    """A real start context of the committed robot model: K frames and the K-1 torques."""
    frames, actions = world_models.load_start_contexts(world_models.checkpoint_path("robot"))
    return frames[0].numpy(), actions[0].numpy()


@pytest.fixture
def robot_planner(robot_context: tuple[np.ndarray, np.ndarray]) -> WorldModelPlanner:
    """The committed robot world model's planner, begun from ``robot_context``."""
    torch.set_num_threads(1)
    model = world_models.load("robot", device="cpu")
    planner = WorldModelPlanner(
        model, PlannerConfig(horizon=3, population=8, elites=2, iterations=2)
    )
    planner.begin_episode(list(robot_context[0]), list(robot_context[1]))
    return planner


def test_world_model_planner_scores_vector_actions_in_one_batch(
    robot_planner: WorldModelPlanner, robot_context: tuple[np.ndarray, np.ndarray]
) -> None:
    rng = np.random.default_rng(5)
    sequences = rng.uniform(-2, 2, (3, 3, 7)).astype(np.float32)
    sequences[2] = sequences[0]
    scores = robot_planner.score(sequences)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert scores[0] == pytest.approx(scores[2], abs=1e-5), "same sequence, same score"
    alone = robot_planner.score(sequences[1:2])[0]
    assert alone == pytest.approx(scores[1], abs=1e-4), "batching leaves each score as it is"

    # The score is the discounted learned reward, weighted by the chance of not having ended.
    frames, actions = robot_context
    assert len(frames) == robot_planner.model.config.context  # the whole context is used
    core = WorldModelCore(robot_planner.model, batch_size=1)
    core.reset(torch.from_numpy(frames)[None], torch.from_numpy(actions)[None])
    expected, alive = 0.0, 1.0
    for t in range(3):
        step = core.advance(torch.from_numpy(sequences[1, t])[None])
        expected += alive * 0.95**t * float(step.reward[0])
        alive *= 1 - float(step.end_probability[0])
    assert scores[1] == pytest.approx(expected, abs=1e-4)

    with pytest.raises(ValueError, match=r"\(P, H, A\)"):
        robot_planner.score(np.zeros((2, 3), np.int64))


def test_world_model_planner_acts_and_imagines_its_plan(
    robot_planner: WorldModelPlanner, robot_context: tuple[np.ndarray, np.ndarray]
) -> None:
    frame = robot_context[0][-1]
    action = robot_planner.act(frame, np.random.default_rng(0))
    assert action.shape == (7,) and np.abs(action).max() <= 2.0
    assert robot_planner.last_plan is not None and robot_planner.last_plan.shape == (3, 7)
    assert robot_planner.last_latency > 0
    frames = robot_planner.imagine(robot_planner.last_plan)
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8

    # After one real step the context slides: the new frame and torque enter it.
    plan_before = robot_planner.score(robot_planner.last_plan[None])
    robot_planner.observe(frames[0], action)
    assert robot_planner.score(robot_planner.last_plan[None]) != pytest.approx(plan_before)
