"""Rank the policy zoo by its return in the world model and check it against the real simulator.

    python -m experiments.rank_policies                      # what `make demo` runs
    python -m experiments.rank_policies episodes=32 checkpoint=runs/my_model
    python -m experiments.rank_policies --config-name rank_policies_robot

Every policy drives N episodes in the real simulator (pixel observations) and N episodes in
the world-model env from matched starts: the real env is seeded and driven K-1 neutral steps
(IDLE; zero torque for the robot), and those K real frames are the world model's starting
context; both then run the policy for the rest of the real episode (30 steps for driving, 100
for the robot). The report compares mean returns and
the two rankings (Spearman, Kendall, Pearson, MMRV, regret@1, with bootstrap intervals), and
shows real and imagined rollouts side by side under the same actions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
import numpy as np
import torch
from hydra import compose, initialize
from omegaconf import DictConfig
from tqdm.auto import tqdm

from envs.vector import WFMVectorEnv
from experiments.config import to_dataclass
from experiments.report import PolicyResult, RolloutPair, write_ranking_report
from experiments.tasks import Task, get_task
from policies import Policy
from wfm_sim.evaluation import ranking_metrics


@dataclass
class RankConfig:
    """How many matched episodes per policy, which world model, and where the report goes."""

    task: str = "driving"
    checkpoint: str = "driving"
    backend: str = "maskgit"
    """The env's world model: ``maskgit`` (``checkpoint``), ``diffusion`` or
    ``autoregressive`` (a post-trained WFM, see ``envs.core.backend_checkpoint``)."""
    episodes: int = 16
    seed: int = 10_000
    out_dir: str = "experiments/results/ranking"
    gif_policies: list[str] = field(default_factory=lambda: ["dqn_15k", "heuristic"])
    warmup_steps: int = 3
    """Real neutral steps before hand-over: their frames are the world model's context."""
    termination: str = "sample"
    """How imagined episodes end: ``sample`` (as the env's users see them), ``threshold``, or
    ``never``: each WFM return is then the episode's expected return under the termination
    head (see ``run_wfm_episodes``), the same mean without the termination draws' noise."""
    temperature: float = 1.0
    """A discrete world model's token sampling temperature (0: its most likely tokens)."""
    end_reading: str = "drawn"
    """What the termination head reads (``WorldModel.imagine``): the drawn next frame, or
    ``expected``, a MaskGIT model's belief about it."""
    salient_priority: float | None = None
    """How far ahead of the road a MaskGIT round keeps car draws (``WorldModelConfig``); None
    keeps the checkpoint's. Post-trained WFM backends and continuous models take None."""
    wfm_samples: int = 1
    """Imagined episodes per matched start (each drawn with its own seed, see
    ``imagined_starts``); a policy's WFM return for a start is their mean. One real episode
    per start is exact, one imagined one is a single draw of the model's randomness."""
    device: str = "cpu"
    threads: int = 2
    n_bootstrap: int = 1000


def rank_config(name: str = "rank_policies", overrides: Sequence[str] = ()) -> RankConfig:
    """The settings of the ranking config ``name`` in ``experiments/conf`` (with Hydra
    ``overrides``), as the entry point would run them: for tools that score as a report
    does."""
    with initialize(version_base=None, config_path="conf"):
        return to_dataclass(compose(name, overrides=list(overrides)), RankConfig)


def wfm_env_kwargs(config: RankConfig) -> dict[str, Any]:
    """The world-model env arguments a ranking with ``config`` makes its envs with."""
    return {
        "checkpoint": config.checkpoint,
        "backend": config.backend,
        "termination": config.termination,
        "device": config.device,
        "temperature": config.temperature,
        "end_reading": config.end_reading,
        "salient_priority": config.salient_priority,
    }


@dataclass
class MatchedStart:
    """A real start shared by both envs: the real env after ``warm-up`` steps from ``seed``.

    frames: (K, H, W, 3) the real frames so far; actions: (K-1, ...) the warm-up actions.
    """

    seed: int
    frames: np.ndarray
    actions: list[Any]


def matched_starts(
    env: gym.Env, first_seed: int, count: int, warmup: Sequence[Any]
) -> list[MatchedStart]:
    """``count`` real starts from consecutive seeds, skipping seeds that end during warm-up."""
    starts: list[MatchedStart] = []
    seed = first_seed
    while len(starts) < count:
        frame, _ = env.reset(seed=seed)
        frames, ended = [frame], False
        for action in warmup:
            frame, _, terminated, truncated, _ = env.step(action)
            frames.append(frame)
            ended = ended or terminated or truncated
        if not ended:
            starts.append(MatchedStart(seed, np.stack(frames), list(warmup)))
        seed += 1
    return starts


def run_episode(
    env: gym.Env, policy: Policy, start: MatchedStart, real: bool, max_steps: int
) -> tuple[float, list[np.ndarray], list[Any]]:
    """``policy`` from ``start`` in ``env``: (return, frames, actions), at most ``max_steps``.

    The real env is re-seeded and replays the warm-up; the world model is started from the
    warm-up's frames. The policy draws from a generator seeded by the start, in both envs.
    """
    if real:
        frame, _ = env.reset(seed=start.seed)
        for action in start.actions:
            frame, *_ = env.step(action)
    else:
        options = {"start_frames": start.frames, "start_actions": start.actions}
        frame, _ = env.reset(seed=start.seed, options=options)
    rng = np.random.default_rng(start.seed)
    frames, total, done = [frame], 0.0, False
    actions: list[Any] = []
    while not done and len(actions) < max_steps:
        action = policy.act(frame, rng)
        frame, reward, terminated, truncated, _ = env.step(action)
        frames.append(frame)
        actions.append(action)
        total += float(reward)
        done = terminated or truncated
    return total, frames, actions


@dataclass(frozen=True)
class ImaginedEpisodes:
    """What ``run_wfm_episodes`` measured, one entry per member: ``returns``; ``ended``, the
    probability that the episode ended before its time limit (with ``termination="never"``
    one minus the chance that no step ended it, else 1 or 0 as it did); ``steps``, the
    policy steps taken in all; and step by step, (members, max_steps), the ``rewards`` and
    the termination head's ``end_probabilities`` (0 once a member has finished)."""

    returns: list[float]
    ended: list[float]
    steps: int
    rewards: np.ndarray
    end_probabilities: np.ndarray


def run_wfm_episodes(
    vector_env: WFMVectorEnv,
    policy: Policy,
    starts: Sequence[MatchedStart],
    max_steps: int,
    neutral: Any,
) -> ImaginedEpisodes:
    """``policy`` from every start at once, one member of ``vector_env`` per start (batched
    world-model inference). Member i is seeded and started as ``run_episode`` starts the
    single env, so both give the same episodes; finished members are sent the ``neutral``
    action, which they ignore.

    With a vector env that never terminates (``termination="never"``) a return is the
    episode's expected return under the termination head: step t's reward weighted by the
    probability that no earlier step ended it. Its expectation is the sampled return's (an
    episode's frames do not depend on the termination draws), without their noise."""
    options = {
        "start_frames": np.stack([s.frames for s in starts]),
        "start_actions": np.array([s.actions for s in starts]),
    }
    obs, _ = vector_env.reset(seed=[s.seed for s in starts], options=options)
    rngs = [np.random.default_rng(s.seed) for s in starts]
    totals = np.zeros(len(starts))
    still_running = np.ones(len(starts))  # the chance no earlier step ended the episode
    live = np.ones(len(starts), dtype=bool)
    ended = np.zeros(len(starts))
    step_rewards = np.zeros((len(starts), max_steps))
    step_ends = np.zeros((len(starts), max_steps))
    taken = 0
    for t in range(max_steps):
        if not live.any():
            break
        actions = np.array(
            [policy.act(obs[i], rngs[i]) if live[i] else neutral for i in range(len(starts))]
        )
        obs, rewards, terminated, truncated, info = vector_env.step(actions)
        totals[live] += (still_running * rewards)[live]
        step_rewards[live, t] = rewards[live]
        step_ends[live, t] = info["end_probability"][live]
        if vector_env.termination == "never":
            still_running *= 1.0 - info["end_probability"]
        taken += int(live.sum())
        ended[live & terminated] = 1.0
        live &= ~(terminated | truncated)
    if vector_env.termination == "never":
        ended = 1.0 - still_running
    return ImaginedEpisodes(totals.tolist(), ended.tolist(), taken, step_rewards, step_ends)


def task_vector_env(task: Task, num_envs: int, max_steps: int, **env_kwargs: Any) -> WFMVectorEnv:
    """One batched world-model env of ``num_envs`` members for ``task``: its registered env's
    arguments (but its checkpoint), overridden by ``env_kwargs``, episodes cut at
    ``max_steps``."""
    registered = gym.spec(task.wfm_env_id).kwargs
    spec_kwargs = {k: v for k, v in registered.items() if k != "checkpoint"}
    return WFMVectorEnv(
        num_envs=num_envs, max_episode_steps=max_steps, **{**spec_kwargs, **env_kwargs}
    )


def imagined_starts(starts: Sequence[MatchedStart], samples: int) -> list[MatchedStart]:
    """``samples`` copies of every start for the world model, sample-major: copy 0 keeps the
    start's seed (so one sample is the single-env episode), copy j > 0 takes a seed derived
    from (seed, j), which draws other frames and, for a stochastic policy, other actions."""
    if samples < 1:
        raise ValueError(f"wfm_samples must be at least 1, got {samples}")
    copies = []
    for j in range(samples):
        for start in starts:
            seed = (
                start.seed
                if j == 0
                else int(np.random.SeedSequence([start.seed, j]).generate_state(1)[0])
            )
            copies.append(MatchedStart(seed, start.frames, start.actions))
    return copies


def replay_actions(env: gym.Env, start: MatchedStart, actions: list[Any]) -> np.ndarray:
    """Imagined frames (T+1, H, W, 3) under fixed ``actions`` from ``start``."""
    options = {"start_frames": start.frames, "start_actions": start.actions}
    frame, _ = env.reset(seed=start.seed, options=options)
    frames = [frame]
    for action in actions:
        frame, *_ = env.step(action)
        frames.append(frame)
    return np.stack(frames)


def rank_policies(config: RankConfig, zoo: Sequence[Policy] | None = None) -> Path:
    """Evaluate every policy (default: the task's zoo) in both envs; return the report path."""
    torch.set_num_threads(config.threads)
    task = get_task(config.task)
    zoo = task.load_zoo() if zoo is None else zoo
    real_env = task.make_real_env()
    env_kwargs = wfm_env_kwargs(config)
    wfm_env = gym.make(task.wfm_env_id, **env_kwargs)
    warmup = [task.neutral_action] * config.warmup_steps
    starts = matched_starts(real_env, config.seed, config.episodes, warmup)
    max_steps = task.episode_steps - config.warmup_steps
    results, rollouts = [], []
    wfm_starts = imagined_starts(starts, config.wfm_samples)
    vector_env = task_vector_env(task, len(wfm_starts), max_steps, **env_kwargs)
    seconds = {"real": 0.0, "wfm": 0.0}
    steps = {"real": 0, "wfm": 0}
    bar = tqdm(total=len(zoo), desc="ranking policies (real + batched WFM)")
    for policy in zoo:
        real_returns = []
        for episode, start in enumerate(starts):
            started = time.perf_counter()
            real_return, real_frames, actions = run_episode(
                real_env, policy, start, real=True, max_steps=max_steps
            )
            seconds["real"] += time.perf_counter() - started
            steps["real"] += len(actions)
            real_returns.append(real_return)
            if episode == 0 and policy.name in config.gif_policies:
                imagined = replay_actions(wfm_env.unwrapped, start, actions)
                rollouts.append(RolloutPair(policy.name, np.stack(real_frames), imagined))
        started = time.perf_counter()
        imagined = run_wfm_episodes(vector_env, policy, wfm_starts, max_steps, task.neutral_action)
        seconds["wfm"] += time.perf_counter() - started
        steps["wfm"] += imagined.steps
        per_start = np.reshape(imagined.returns, (config.wfm_samples, len(starts))).mean(0)
        results.append(PolicyResult(policy.name, real_returns, per_start.tolist()))
        bar.update(1)
    bar.close()
    real_env.close()
    rng = np.random.default_rng(config.seed)
    metrics = ranking_metrics(
        {r.name: r.real_returns for r in results},
        {r.name: r.wfm_returns for r in results},
        rng,
        n_bootstrap=config.n_bootstrap,
    )
    extra = {
        "task": config.task,
        "checkpoint": config.checkpoint,
        "backend": config.backend,
        "episodes_per_policy": config.episodes,
        "seeds": [s.seed for s in starts],
        "warmup_steps": config.warmup_steps,
        "policy_steps_per_episode": max_steps,
        "termination": config.termination,
        "temperature": config.temperature,
        "end_reading": config.end_reading,
        "salient_priority": config.salient_priority,
        "evaluation_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "wfm_samples_per_start": config.wfm_samples,
        "wfm_batch": len(wfm_starts),
        "steps_per_second": {k: round(steps[k] / max(seconds[k], 1e-9), 1) for k in seconds},
    }
    return write_ranking_report(Path(config.out_dir), results, metrics, rollouts, rng, extra)


@hydra.main(version_base=None, config_path="conf", config_name="rank_policies")
def main(cfg: DictConfig) -> None:
    """Run the ranking and print where the report is."""
    report = rank_policies(to_dataclass(cfg, RankConfig))
    print(f"policy-ranking report: {report} (and {report.with_suffix('.html')})")


if __name__ == "__main__":
    main()
