"""Where does the world model's policy ranking go wrong? The same matched episodes as the
ranking report, scored three ways with the world model's heads, each ranked against the real
returns:

- **teacher-forced**: at every real step the model sees the last K *real* frames and the real
  action, and its reward and termination heads score that one step; only the heads (and
  one-step prediction) can be wrong.
- **open-loop**: the model imagines the whole episode from the real start under the *real*
  action sequence; adds the dynamics' drift over many steps.
- **closed-loop** (what the ranking report measures): the policy acts on the imagined frames;
  adds the policy's reaction to imagined frames.

Teacher-forced and open-loop scores stop where the real episode stopped, so they know the
real episode's length; the **length-only** score (the number of real steps) shows how much of
their agreement that alone explains. **Action agreement** measures the policy's reaction
directly, with no such leak: along the open-loop rollout, how often the policy picks the same
action on the imagined frame as on the real frame of the same step (same random draws); its
ceiling, **reconstruction agreement**, is the same on the tokenizer's reconstruction of the
real frame.

**Car pixels kept** (driving) asks whether the imagined world keeps its traffic: along the
same real action sequences, imagined at each token temperature of ``--temperatures`` (the
report's 0.4 first), the other cars' pixels in the imagined frames over those in the real
frames of the same steps.
A model that lets cars fade away imagines fewer crashes than the real road holds.
**Crashes caught** asks it directly: over the real episodes that ended in a crash, the mean
probability that the episode imagined under the same actions has ended (termination head) by
one step after the real crash.

**Recalibrating the termination head** asks whether a monotone fix of its probabilities
could close the gap: every imagined step's end probability with its logit stretched by a
slope around a centre (``recalibrated_end_probabilities``), over a grid of both, the
closed-loop returns re-weighted by each. The best on these very starts is an optimistic
bound on what any such recalibration, fitted elsewhere, could reach.

**Ends before the time limit** compares how often episodes end early (for driving: crash)
in the real env and in closed-loop imagination, where the imagined figure is the termination
head's probability that the episode ended: a head that tells the policies apart gives the
crash-prone ones far more ends than the careful ones, as the real road does.

Returns are expected returns under the termination head: step t's reward weighted by the
probability that no earlier step ended the episode, so they are deterministic. Every score
uses the ranking report's settings (its Hydra config: token temperature, what the
termination head reads, imagined episodes per start), so the closed-loop scores are the
report's; open-loop and teacher-forced steps take the model's most likely frames.

    python -m experiments.bench.ranking_diagnosis [--task driving] [--episodes 16]
        [--temperatures 0.4 1.0]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from tqdm.auto import tqdm

import world_models
from envs.core import WorldModelCore
from experiments.bench.common import write_result
from experiments.rank_policies import (
    ImaginedEpisodes,
    MatchedStart,
    RankConfig,
    imagined_starts,
    matched_starts,
    rank_config,
    run_episode,
    run_wfm_episodes,
    task_vector_env,
)
from experiments.tasks import Task, get_task
from policies import Policy
from policies.planners import PlannerConfig, expected_returns
from wfm_sim.evaluation import mmrv, ranking_metrics
from world_models import WorldModel


def _action_tensor(actions: Any, model: WorldModel) -> torch.Tensor:
    dtype = torch.float32 if model.config.continuous_actions else torch.long
    return torch.as_tensor(np.asarray(actions), dtype=dtype)


RECALIBRATION_SLOPES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
RECALIBRATION_CENTRES = tuple(float(c) for c in np.arange(-6.0, 0.01, 0.25))
"""The grid of ``recalibration_bound``: logit slopes (1: unchanged) and the logits they
stretch around (from a 0.25% to a 50% end probability)."""

_UNDISCOUNTED = PlannerConfig(discount=1.0, terminal_value=0.0)


def recalibrated_end_probabilities(
    end_probabilities: np.ndarray, slope: float, centre: float
) -> np.ndarray:
    """End probabilities with their logits stretched by ``slope`` around the logit ``centre``:
    a monotone recalibration that leaves ``centre`` in place (``slope`` 1: unchanged)."""
    p = np.clip(end_probabilities, 1e-6, 1 - 1e-6)
    logits = np.log(p / (1 - p))
    return 1.0 / (1.0 + np.exp(-(slope * (logits - centre) + centre)))


def recalibration_bound(
    real: dict[str, list[float]], closed: dict[str, ImaginedEpisodes]
) -> dict[str, Any]:
    """The closed-loop ranking with the termination head unchanged and under the grid's best
    recalibration (least MMRV, then highest Spearman ρ), chosen on the same episodes: an
    optimistic bound on any recalibration. ``closed`` holds each policy's imagined episodes
    with termination ``never``, so their returns are re-weighted exactly."""
    names = list(real)
    real_means = np.array([np.mean(real[n]) for n in names])

    def ranking(slope: float, centre: float) -> dict[str, float]:
        imagined = np.array(
            [
                expected_returns(
                    torch.from_numpy(closed[n].rewards),
                    torch.from_numpy(
                        recalibrated_end_probabilities(closed[n].end_probabilities, slope, centre)
                    ),
                    _UNDISCOUNTED,
                )
                .mean()
                .item()
                for n in names
            ]
        )
        return {
            "slope": slope,
            "centre": centre,
            "mmrv": mmrv(real_means, imagined),
            "spearman": float(stats.spearmanr(real_means, imagined)[0]),
        }

    tried = [ranking(a, c) for a in RECALIBRATION_SLOPES for c in RECALIBRATION_CENTRES]
    best = min(tried, key=lambda r: (r["mmrv"], -r["spearman"]))
    return {
        "unchanged": ranking(1.0, 0.0),
        "best": best,
        "recalibrations_tried": len(tried),
    }


def report_settings(task: Task) -> RankConfig:
    """The ranking report's settings for ``task`` (``rank_policies[_<task>].yaml``): the
    diagnosis scores with the same temperature, end reading and imagined draws."""
    return rank_config("rank_policies" if task.name == "driving" else f"rank_policies_{task.name}")


def real_contexts(
    model: WorldModel, start: MatchedStart, frames: np.ndarray, actions: list[Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The real context before each of a real episode's T steps: frames (T, K, H, W, 3) uint8
    and the actions between them (T, K-1), to reset a ``WorldModelCore`` of batch T with.

    frames: (T+1, H, W, 3) the real frames after the warm-up; actions: the T real actions.
    """
    k = model.config.context
    if len(start.frames) < k:
        raise ValueError(f"the warm-up must give a full context of {k} frames")
    all_frames = np.concatenate([start.frames, frames[1:]])
    all_actions = [*start.actions, *actions]
    first = len(start.frames) - 1  # index of the frame the policy first acted on
    steps = range(first, first + len(actions))
    return (
        torch.as_tensor(np.stack([all_frames[now - k + 1 : now + 1] for now in steps])),
        _action_tensor(
            np.stack([np.asarray(all_actions[now - k + 1 : now]) for now in steps]), model
        ),
    )


@torch.no_grad()
def teacher_forced_return(
    model: WorldModel,
    start: MatchedStart,
    frames: np.ndarray,
    actions: list[Any],
    end_reading: str = "drawn",
) -> float:
    """Expected learned return of a real episode scored step by step on real contexts.

    frames: (T+1, H, W, 3) the real frames after the warm-up; actions: the T real actions.
    """
    core = WorldModelCore(model, batch_size=len(actions), end_reading=end_reading)
    core.reset(*real_contexts(model, start, frames, actions))
    imagined = core.advance(_action_tensor(actions, model))
    rewards = imagined.reward.cpu().numpy()
    survive = np.cumprod(1.0 - imagined.end_probability.cpu().numpy())
    alive_before = np.concatenate([[1.0], survive[:-1]])
    return float((rewards * alive_before).sum())


def _core_at_starts(
    model: WorldModel, starts: list[MatchedStart], temperature: float, end_reading: str
) -> WorldModelCore:
    """One imagined trajectory per matched start, each reset to its real warm-up context."""
    core = WorldModelCore(
        model, batch_size=len(starts), temperature=temperature, end_reading=end_reading
    )
    core.reset(
        torch.as_tensor(np.stack([s.frames for s in starts])),
        _action_tensor(np.stack([np.asarray(s.actions) for s in starts]), model),
    )
    return core


def _same_action(a: Any, b: Any) -> float:
    """1 for the same discrete action; for vectors, 1 when every entry is within 0.1."""
    return float(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=0.1))


@torch.no_grad()
def open_loop_returns(
    model: WorldModel,
    starts: list[MatchedStart],
    episodes: list[tuple[list[np.ndarray], list[Any]]],
    policy: Policy,
    end_reading: str = "drawn",
) -> tuple[list[float], float]:
    """Expected learned return of each real (frames, actions) episode, imagined from its real
    start under its real actions (the model's most likely frames); and the policy's action
    agreement on imagined against real frames along the way."""
    core = _core_at_starts(model, starts, temperature=1.0, end_reading=end_reading)
    actions = [a for _, a in episodes]
    longest = max(len(a) for a in actions)
    totals = np.zeros(len(starts))
    alive = np.ones(len(starts))
    agreements: list[float] = []
    frames = core.model.tokenizer.decode(core.latents[:, -1])
    for t in range(longest):
        acting = np.array([t < len(a) for a in actions])
        for i in np.flatnonzero(acting):
            real_frame = episodes[i][0][t]
            draws = [np.random.default_rng([starts[i].seed, t]) for _ in range(2)]
            on_real = policy.act(real_frame, draws[0])
            on_imagined = policy.act(frames[i].cpu().numpy(), draws[1])
            agreements.append(_same_action(on_real, on_imagined))
        step_actions = [a[t] if t < len(a) else actions[0][0] for a in actions]
        imagined = core.advance(_action_tensor(step_actions, model))
        frames = core.model.tokenizer.decode(imagined.latent)
        rewards = imagined.reward.cpu().numpy()
        totals += np.where(acting, alive * rewards, 0.0)
        alive = np.where(acting, alive * (1.0 - imagined.end_probability.cpu().numpy()), alive)
    return totals.tolist(), float(np.mean(agreements))


@torch.no_grad()
def reconstruction_agreement(
    model: WorldModel,
    starts: list[MatchedStart],
    episodes: list[tuple[list[np.ndarray], list[Any]]],
    policy: Policy,
) -> float:
    """How often the policy picks the same action on the tokenizer's reconstruction of a real
    frame as on the frame itself (same random draws): the ceiling the imagined frames' action
    agreement can reach, since imagination shows only what the tokenizer can draw."""
    agreements: list[float] = []
    for start, (frames, actions) in zip(starts, episodes, strict=True):
        real = np.stack(frames[: len(actions)])
        coded = model.tokenizer.decode(model.tokenizer.encode(torch.from_numpy(real))).numpy()
        for t in range(len(actions)):
            draws = [np.random.default_rng([start.seed, t]) for _ in range(2)]
            agreements.append(
                _same_action(policy.act(real[t], draws[0]), policy.act(coded[t], draws[1]))
            )
    return float(np.mean(agreements))


def other_car_pixels(frames: np.ndarray) -> np.ndarray:
    """Pixels per frame (…,) of the cars other than the ego in driving frames (…, H, W, 3)
    uint8: strongly coloured (channel spread above 40) but not the ego's green. Looser than
    the heuristic policy's colour masks, so a decoded car's softer colours still count."""
    f = frames.astype(np.int16)
    spread = f.max(axis=-1) - f.min(axis=-1)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    green = (g > r + 20) & (g > b + 20)
    return ((spread > 40) & ~green).sum(axis=(-1, -2))


@dataclass(frozen=True)
class AlongRealActions:
    """What the world model imagines under real episodes' action sequences, against the real
    episodes: ``cars_kept``, the other cars' pixels of the imagined frames over those of the
    real frames of the same steps; ``cars_kept_one_step``, the same with every next frame
    drawn from the real frames before it, so that what is lost in one step is told from what
    is lost as the imagined frames drift; ``crashes_caught``, over the real episodes that ended
    in a crash, the mean probability (termination head) that the imagined episode has ended by
    one step after the real crash (None when none crashed)."""

    cars_kept: float
    cars_kept_one_step: float
    crashes_caught: float | None


@torch.no_grad()
def along_real_actions(
    model: WorldModel,
    starts: list[MatchedStart],
    episodes: list[tuple[list[np.ndarray], list[Any]]],
    crashed: list[bool],
    temperature: float,
    end_reading: str = "drawn",
) -> AlongRealActions:
    """Each real episode imagined from its start under its real actions (drawn at
    ``temperature``, member i from a generator seeded by its start), scored against it;
    ``crashed[i]``: whether real episode i ended in a crash at its last step."""
    core = _core_at_starts(model, starts, temperature, end_reading)
    rngs = [np.random.default_rng(s.seed) for s in starts]
    actions = [a for _, a in episodes]
    lengths = np.array([len(a) for a in actions])
    imagined_total = real_total = 0
    survive = np.ones(len(starts))
    survive_at_crash = np.ones(len(starts))
    for t in range(lengths.max() + 1):
        acting = t < lengths
        step_actions = [a[min(t, len(a) - 1)] for a in actions]  # one past a crash: its last
        frames, _, end_probability = core.step(
            _action_tensor(step_actions, model), world_models.token_uniforms(model, rngs)
        )
        survive *= 1.0 - end_probability.cpu().numpy()
        survive_at_crash = np.where(t == lengths, survive, survive_at_crash)
        imagined = other_car_pixels(frames.cpu().numpy())
        for i in np.flatnonzero(acting):
            imagined_total += int(imagined[i])
            real_total += int(other_car_pixels(episodes[i][0][t + 1]))
    ended = 1.0 - survive_at_crash[np.asarray(crashed, dtype=bool)]
    return AlongRealActions(
        cars_kept=imagined_total / max(real_total, 1),
        cars_kept_one_step=one_step_cars_kept(model, starts, episodes, temperature),
        crashes_caught=float(ended.mean()) if len(ended) else None,
    )


@torch.no_grad()
def one_step_cars_kept(
    model: WorldModel,
    starts: list[MatchedStart],
    episodes: list[tuple[list[np.ndarray], list[Any]]],
    temperature: float,
) -> float:
    """The other cars' pixels of every real step's next frame drawn (at ``temperature``) from
    the real frames before it, over those of the real next frames. Step t of start i draws
    from a generator seeded by (seed, t), its first step by the seed alone, as
    ``along_real_actions`` draws it."""
    frames_before: list[torch.Tensor] = []
    actions_before: list[torch.Tensor] = []
    step_actions: list[torch.Tensor] = []
    rngs: list[np.random.Generator | None] = []
    real_pixels = 0
    for start, (frames, actions) in zip(starts, episodes, strict=True):
        context, context_actions = real_contexts(model, start, np.stack(frames), actions)
        frames_before.append(context)
        actions_before.append(context_actions)
        step_actions.append(_action_tensor(actions, model))
        rngs += [
            np.random.default_rng([start.seed, t] if t else start.seed) for t in range(len(actions))
        ]
        real_pixels += int(other_car_pixels(np.stack(frames[1 : len(actions) + 1])).sum())
    core = WorldModelCore(model, batch_size=len(rngs), temperature=temperature)
    core.reset(torch.cat(frames_before), torch.cat(actions_before))
    drawn, _, _ = core.step(torch.cat(step_actions), world_models.token_uniforms(model, rngs))
    return int(other_car_pixels(drawn.cpu().numpy()).sum()) / max(real_pixels, 1)


def _along_fields(by_temperature: dict[str, AlongRealActions]) -> dict[str, Any]:
    return {
        "car_pixels_kept": {t: a.cars_kept for t, a in by_temperature.items()},
        "car_pixels_kept_one_step": {t: a.cars_kept_one_step for t, a in by_temperature.items()},
        "crashes_caught": {t: a.crashes_caught for t, a in by_temperature.items()},
    }


def diagnose(
    task: Task,
    checkpoint: str,
    episodes: int,
    seed: int,
    warmup: int,
    temperatures: list[float],
    settings: RankConfig,
) -> dict:
    """Real, closed-loop, open-loop and teacher-forced returns per policy, and their ranking
    metrics; the world model scores with the report's ``settings``."""
    model = world_models.set_drawing(
        world_models.load(checkpoint).eval(), salient_priority=settings.salient_priority
    )
    reading = settings.end_reading
    real_env = task.make_real_env()
    starts = matched_starts(real_env, seed, episodes, [task.neutral_action] * warmup)
    max_steps = task.episode_steps - warmup
    copies = imagined_starts(starts, settings.wfm_samples)
    vector_env = task_vector_env(
        task,
        len(copies),
        max_steps,
        checkpoint=checkpoint,
        termination="never",
        temperature=settings.temperature,
        end_reading=reading,
        salient_priority=settings.salient_priority,
        device="cpu",
    )
    zoo: list[Policy] = list(task.load_zoo())
    real: dict[str, list[float]] = {}
    closed: dict[str, list[float]] = {}
    imagined_episodes: dict[str, ImaginedEpisodes] = {}
    teacher: dict[str, list[float]] = {}
    open_loop: dict[str, list[float]] = {}
    length: dict[str, list[float]] = {}
    end_rate: dict[str, dict[str, float]] = {}
    agreement: dict[str, float] = {}
    ceiling: dict[str, float] = {}
    along: dict[str, dict[str, AlongRealActions]] = {}
    for policy in tqdm(zoo, desc="real episodes, scored by the world model"):
        runs = [run_episode(real_env, policy, s, real=True, max_steps=max_steps) for s in starts]
        real_episodes = [(f, a) for _, f, a in runs]
        real[policy.name] = [r for r, _, _ in runs]
        imagined = run_wfm_episodes(vector_env, policy, copies, max_steps, task.neutral_action)
        imagined_episodes[policy.name] = imagined
        shape = (settings.wfm_samples, len(starts))
        closed[policy.name] = np.reshape(imagined.returns, shape).mean(0).tolist()
        # the real envs truncate only at their duration: an earlier end is a crash (driving)
        ended_early = [len(a) < max_steps for _, a in real_episodes]
        end_rate[policy.name] = {
            "real": float(np.mean(ended_early)),
            "imagined": float(np.mean(imagined.ended)),
        }
        teacher[policy.name] = [
            teacher_forced_return(model, s, np.stack(f), a, reading)
            for s, (_, f, a) in zip(starts, runs, strict=True)
        ]
        length[policy.name] = [float(len(a)) for _, _, a in runs]
        open_loop[policy.name], agreement[policy.name] = open_loop_returns(
            model, starts, real_episodes, policy, reading
        )
        ceiling[policy.name] = reconstruction_agreement(model, starts, real_episodes, policy)
        if task.name == "driving":
            along[policy.name] = {
                f"{t:g}": along_real_actions(model, starts, real_episodes, ended_early, t, reading)
                for t in temperatures
            }
    real_env.close()

    def metrics(scored: dict[str, list[float]]) -> dict[str, Any]:
        rng = np.random.default_rng(seed)
        return ranking_metrics(real, scored, rng, n_bootstrap=500).to_dict()

    return {
        "task": task.name,
        "checkpoint": checkpoint,
        "episodes_per_policy": episodes,
        "warmup_steps": warmup,
        "temperature": settings.temperature,
        "end_reading": reading,
        "salient_priority": settings.salient_priority,
        "wfm_samples_per_start": settings.wfm_samples,
        "mean_returns": {
            name: {
                "real": float(np.mean(real[name])),
                "closed_loop": float(np.mean(closed[name])),
                "teacher_forced": float(np.mean(teacher[name])),
                "open_loop": float(np.mean(open_loop[name])),
                "real_steps": float(np.mean(length[name])),
                "ends_before_time_limit": end_rate[name],
                "action_agreement": agreement[name],
                "reconstruction_agreement": ceiling[name],
                **(_along_fields(along[name]) if name in along else {}),
            }
            for name in real
        },
        "metrics": {
            "closed_loop": metrics(closed),
            "teacher_forced": metrics(teacher),
            "open_loop": metrics(open_loop),
            "length_only": metrics(length),
        },
        "end_recalibration": recalibration_bound(real, imagined_episodes),
    }


def main() -> None:
    """Measure and write experiments/results/ranking_diagnosis[_<task>].json (or --name)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="driving")
    parser.add_argument("--checkpoint", default="", help="default: the task's committed model")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        default=[0.4, 1.0],
        help="token temperatures to measure car pixels at (the report's, 0.4, first)",
    )
    parser.add_argument(
        "--name",
        default="",
        help="result file name (default: ranking_diagnosis, or ranking_diagnosis_<task>)",
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    task = get_task(args.task)
    result = diagnose(
        task,
        args.checkpoint or task.checkpoint,
        args.episodes,
        args.seed,
        args.warmup,
        args.temperatures,
        report_settings(task),
    )
    default_name = "ranking_diagnosis"
    if task.name != "driving":
        default_name = f"ranking_diagnosis_{task.name}"
    print(write_result(args.name or default_name, result))
    for kind, m in result["metrics"].items():
        print(f"{kind}: Spearman {m['spearman']['value']:.3f}, MMRV {m['mmrv']['value']:.3f}")
    bound = result["end_recalibration"]
    print(
        f"termination head recalibrated, best of {bound['recalibrations_tried']} on these "
        f"starts: Spearman {bound['best']['spearman']:.3f}, MMRV {bound['best']['mmrv']:.3f} "
        f"(slope {bound['best']['slope']:g}, centre {bound['best']['centre']:g})"
    )
    for name, m in result["mean_returns"].items():
        ends = m["ends_before_time_limit"]
        print(
            f"{name}: ends before the time limit {ends['real']:.2f} real, "
            f"{ends['imagined']:.2f} imagined; action agreement {m['action_agreement']:.2f} "
            f"(on tokenizer reconstructions {m['reconstruction_agreement']:.2f})"
            + "".join(
                f", car pixels kept at {t} {kept:.2f}"
                for t, kept in m.get("car_pixels_kept", {}).items()
            )
            + "".join(
                f", crashes caught at {t} {caught:.2f}"
                for t, caught in m.get("crashes_caught", {}).items()
                if caught is not None
            )
        )


if __name__ == "__main__":
    main()
