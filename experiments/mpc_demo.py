"""MPC in a real simulator: a planner over the world model's imagination against an oracle
planner with the same budget that plans on clones of the real simulator, and the best zoo
policy. Return, an outcome rate (driving: crash rate; robot: success rate, the object within
``success_distance`` of the goal at the episode's end) and decision latency, plus a video of
the real episode beside the plan the world model imagined at each step.

    python -m experiments.mpc_demo [episodes=4 planner.method=mppi planner.population=64 ...]
    python -m experiments.mpc_demo --config-name mpc_demo_robot [episodes=N ...]
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

import world_models
from experiments.bench.common import machine_facts
from experiments.config import to_dataclass
from experiments.tasks import get_task
from policies.planners import (
    LatentModelPlanner,
    OraclePlanner,
    PlannerConfig,
    WorldModelPlanner,
    oracle_settings,
)
from policies.planners.receding import Action
from wfm_sim.io import write_json_atomic
from wfm_sim.sources import ACTION_NAMES
from wfm_sim.video import write_mp4
from world_models.latent import LatentWorldModel

OUTCOMES: dict[str, str] = {
    "driving": "crash_rate: share of episodes in which the ego vehicle crashed",
    "robot": "success_rate: share of episodes whose final object-goal distance is below "
    "success_distance (m)",
}
"""Per task, the outcome rate reported beside the return, named and defined."""


def driving_demo_planner(**changes: Any) -> PlannerConfig:
    """The driving MPC demo's planner (``experiments/conf/planner/driving_demo.yaml``), which
    the crash diagnosis, the plan labels and Dyna plan with too, so that their oracle returns
    and crashes compare; ``changes`` replace fields (Dyna and the plan labels rank by the
    expected return alone: ``risk_aversion=0.0``)."""
    planner = PlannerConfig(
        method="cem",
        horizon=4,
        population=32,
        elites=6,
        iterations=2,
        terminal_value=16.0,
        risk_aversion=1.0,
        risk_floor=0.01,
    )
    return dataclasses.replace(planner, **changes)


@dataclass
class MPCDemoConfig:
    """Which task and model, how many real episodes (``max_steps``: cut each one short, for
    smoke runs), the shared planner budget (and how finely the world model draws frames), the
    zoo policies compared (the best one, and optionally a floor such as a still arm that the
    oracle's gain is measured from), where results go."""

    task: str = "driving"
    checkpoint: str = "driving"
    episodes: int = 4
    seed: int = 20_000
    max_steps: int | None = None
    baseline_policy: str = "dqn_15k"
    floor_policy: str | None = None
    planner: PlannerConfig = field(default_factory=driving_demo_planner)
    latent_checkpoint: str | None = None
    """A latent world model (``world_models.latent``, e.g. ``world_models/zoo/driving_latent``)
    to plan over too, as ``latent_planner`` with the same budget; None: not run."""
    run_pixel_planner: bool = True
    """Run the planner over the pixel world model (``wfm_planner``, seconds a decision)."""
    decode_rounds: int | None = None
    """Rounds in which the world-model planner draws each imagined frame (a MaskGIT model's
    ``decode_rounds``; fewer is faster and coarser); None keeps the checkpoint's."""
    temperature: float = 1.0
    """Token temperature of the world-model planner's imagined frames (below 1: sharper)."""
    run_oracle: bool = True
    keep_results_of: str | None = None
    """An earlier run's metrics.json on the same task, starts, world model and planner: its
    rows of every controller but the latent planner (the oracle, the zoo policies, the
    world-model planner, none of which reads the latent model) are kept instead of driven
    again, so a new latent model, or new risk settings of the planner (then the world-model
    planner drives again: it reads them), are measured in minutes. The payload's ``kept``
    names them and the commit they were driven at. None: every controller drives."""
    success_distance: float = 0.1
    video_fps: int = 2
    out_dir: str = "experiments/results/mpc"
    threads: int = 2

    def __post_init__(self) -> None:
        if self.task not in OUTCOMES:
            raise ValueError(f"unknown task {self.task!r}; known: {sorted(OUTCOMES)}")
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(
                f"max_steps must be >= 1 or null (whole episodes), got {self.max_steps}"
            )
        if self.latent_checkpoint and self.task != "driving":
            raise ValueError(
                f"latent_checkpoint plans over discrete actions: driving only, not {self.task!r}"
            )
        if self.decode_rounds is not None and self.decode_rounds < 1:
            raise ValueError(f"decode_rounds must be >= 1 or null, got {self.decode_rounds}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.success_distance <= 0:
            raise ValueError(f"success_distance must be > 0 metres, got {self.success_distance}")


StepHook = Callable[[np.ndarray, Action], None]
"""Called at each decision with the frame the actor saw and the action it chose, before the
action is taken: to record the plan, the simulator's state or a video panel."""


def drive_episode(
    env: Any,
    actor: Any,
    seed: int,
    max_steps: int | None = None,
    on_step: StepHook | None = None,
) -> dict[str, Any]:
    """One real episode driven by ``actor`` (at most ``max_steps`` steps), calling ``on_step``
    at each decision; returns its return, whether it crashed, its last frame and ``info``, the
    decision latencies and, where the env's ``info`` tells them (highway-env), the ego car's
    speed and right-lane reward term at each step (where a return is won or lost). An actor
    with ``begin_episode`` (a planner) is started from the first frame, and one with
    ``observe`` is shown each frame its action led to."""
    frame, info = env.reset(seed=seed)
    begin_episode = getattr(actor, "begin_episode", None)
    observe = getattr(actor, "observe", None)
    if begin_episode is not None:
        begin_episode([frame], [])
    rng = np.random.default_rng(seed)
    total, latencies, done, crashed, steps = 0.0, [], False, False, 0
    speeds: list[float] = []
    right_lane: list[float] = []
    while not done:
        started = time.perf_counter()
        action = actor.act(frame, rng)
        latencies.append(time.perf_counter() - started)
        if on_step is not None:
            on_step(frame, action)
        frame, reward, terminated, truncated, info = env.step(action)
        if observe is not None:
            observe(frame, action)
        total += float(reward)
        crashed = crashed or bool(info.get("crashed", False))
        if "speed" in info:
            speeds.append(float(info["speed"]))
        if "right_lane_reward" in info.get("rewards", {}):
            right_lane.append(float(info["rewards"]["right_lane_reward"]))
        steps += 1
        done = terminated or truncated or steps == max_steps
    return {
        "return": total,
        "crashed": crashed,
        "last_frame": frame,
        "final_info": info,
        "latencies": latencies,
        "speeds": speeds,
        "right_lane": right_lane,
    }


def _panel_recorder(actor: Any, video: list[np.ndarray]) -> StepHook | None:
    """A step hook appending a model-based planner's plan panel to ``video``; None for an
    actor that imagines nothing."""
    if isinstance(actor, WorldModelPlanner):
        return lambda frame, action: video.append(_plan_panel(actor, frame))
    if isinstance(actor, LatentModelPlanner):
        return lambda frame, action: video.append(_latent_plan_panel(actor, frame))
    return None


def _plan_panel(planner: WorldModelPlanner, frame: np.ndarray) -> np.ndarray:
    """The real frame beside the world model's imagined frames of the chosen plan."""
    assert planner.last_plan is not None
    panels = [frame, *planner.imagine(planner.last_plan)]
    gap = np.full((frame.shape[0], 2, 3), 255, dtype=np.uint8)
    return np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)


def _latent_plan_panel(
    planner: LatentModelPlanner, frame: np.ndarray, scale: int = 3
) -> np.ndarray:
    """The real frame, enlarged, above the plan the latent planner chose (it imagines no
    pixels): the plan's actions and its expected return."""
    assert planner.last_plan is not None
    plan = [ACTION_NAMES[a].removeprefix("LANE_") for a in planner.last_plan.tolist()]
    expected = planner.last_plan_score
    big = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
    band = Image.new("RGB", (big.shape[1], 30), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    draw.text((2, 2), "plan: " + " ".join(plan), fill=(0, 0, 0))
    draw.text((2, 16), f"expected return {expected:.1f}", fill=(0, 0, 0))
    return np.concatenate([big, np.asarray(band)], axis=0)


def _object_goal_distance(info: dict[str, Any]) -> float:
    """Pusher's object-goal distance in the table plane (m), from the recorded ground truth."""
    return float(np.hypot(info["object_x"] - info["goal_x"], info["object_y"] - info["goal_y"]))


def summarize_runs(
    runs: list[dict[str, Any]], task: str, success_distance: float | None = None
) -> dict[str, Any]:
    """The mean return, each return, the crash rate (driving) or the success rate within
    ``success_distance`` metres and the final object-goal distance (robot), the decision
    latency (mean and p95, ms) of ``drive_episode`` runs and, where every run recorded them,
    the mean speed (m/s) and right-lane reward term over all their steps."""
    returns = np.array([r["return"] for r in runs])
    latencies = np.concatenate([r["latencies"] for r in runs]) * 1000
    summary: dict[str, Any] = {
        "mean_return": float(returns.mean()),
        "returns": returns.round(3).tolist(),
    }
    if task == "robot":
        if success_distance is None:
            raise ValueError("a robot run's summary needs the success distance")
        distances = np.array([_object_goal_distance(r["final_info"]) for r in runs])
        summary["success_rate"] = float(np.mean(distances < success_distance))
        summary["final_object_goal_distance_m"] = float(distances.mean())
    else:
        summary["crash_rate"] = float(np.mean([r["crashed"] for r in runs]))
    summary["latency_ms_mean"] = float(latencies.mean())
    summary["latency_ms_p95"] = float(np.percentile(latencies, 95))
    for key, name in (("speeds", "mean_speed_mps"), ("right_lane", "mean_right_lane_term")):
        if all(r.get(key) for r in runs):
            summary[name] = float(np.mean(np.concatenate([r[key] for r in runs])))
    return summary


def _fractions(results: dict[str, Any], floor_policy: str | None) -> dict[str, float | None]:
    """Each model-based planner's return as a share of the oracle's (when the oracle's return
    is positive, as driving's) and, with a floor policy that the oracle beats, its share of
    the oracle's gain over the floor ((planner - floor) / (oracle - floor): 1 matches the
    oracle, 0 the floor; meaningful for negative rewards such as Pusher's). None where
    undefined; keys ``wfm_...`` for the pixel world model's planner, ``latent_...`` for the
    latent one's, present when that planner ran."""
    oracle = results.get("oracle_planner", {}).get("mean_return")
    floor = results[floor_policy]["mean_return"] if floor_policy else None
    fractions: dict[str, float | None] = {}
    for prefix, name in (("wfm", "wfm_planner"), ("latent", "latent_planner")):
        if name not in results:
            continue
        planned = results[name]["mean_return"]
        gain = None
        if oracle is not None and floor is not None and oracle > floor:
            gain = (planned - floor) / (oracle - floor)
        fractions[f"{prefix}_fraction_of_oracle_return"] = (
            planned / oracle if oracle and oracle > 0 else None
        )
        fractions[f"{prefix}_fraction_of_oracle_gain_over_floor"] = gain
    return fractions


def _kept_rows(config: MPCDemoConfig, settings: dict[str, Any]) -> dict[str, Any]:
    """The rows of ``config.keep_results_of`` that this run keeps (all but the latent
    planner's), refused when that run drove other ``settings`` (task, starts, world model,
    planner budget and how it draws frames) than this one. A planner that differs only in what
    the oracle ignores (``oracle_settings``: the model's risk terms) keeps the oracle's and the
    policies' rows, not the world-model planner's."""
    if config.keep_results_of is None:
        return {"rows": {}, "from": None, "commit": None, "video": None}
    stored = json.loads(Path(config.keep_results_of).read_text())
    stored_planner = vars(PlannerConfig(**stored["planner"]))
    differing = [k for k in settings if k != "planner" and stored.get(k) != settings[k]]
    if oracle_settings(stored_planner) != oracle_settings(settings["planner"]):
        differing.append("planner")
    if differing:
        raise ValueError(
            f"{config.keep_results_of} was driven with other {', '.join(differing)} than this "
            "run: its rows cannot be kept; drop keep_results_of"
        )
    rows = {k: v for k, v in stored["results"].items() if k != "latent_planner"}
    if stored_planner != settings["planner"]:  # only fields the oracle ignores differ
        rows.pop("wfm_planner", None)  # the world-model planner reads them: drive it again
    return {
        "rows": rows,
        "from": config.keep_results_of,
        "commit": stored["machine"]["commit"],
        "video": stored.get("video"),
    }


def run_mpc_demo(config: MPCDemoConfig) -> dict[str, Any]:
    """Drive ``config.episodes`` real episodes with each controller; write results and a
    video of each model-based planner's first episode."""
    torch.set_num_threads(config.threads)
    task = get_task(config.task)
    out = Path(config.out_dir)
    env = task.make_real_env()
    model = world_models.set_drawing(
        world_models.load(config.checkpoint, device="cpu"), config.decode_rounds
    )
    seeds = [config.seed + i for i in range(config.episodes)]
    wfm_planner = WorldModelPlanner(model, config.planner, temperature=config.temperature)
    zoo = {p.name: p for p in task.load_zoo()}
    wanted = [config.baseline_policy, *([config.floor_policy] if config.floor_policy else [])]
    missing = [name for name in wanted if name not in zoo]
    if missing:
        raise ValueError(f"policies {missing} are not in the {task.name} zoo: {sorted(zoo)}")
    controllers: list[tuple[str, Any]] = []
    latent_digest = None
    if config.run_pixel_planner:
        controllers.append(("wfm_planner", wfm_planner))
    if config.latent_checkpoint:
        latent = LatentWorldModel.load(config.latent_checkpoint, device="cpu")
        latent_digest = world_models.weights_sha256(config.latent_checkpoint)
        controllers.append(("latent_planner", LatentModelPlanner(latent, config.planner)))
    controllers += [(name, zoo[name]) for name in wanted]
    if config.run_oracle:
        controllers.append(("oracle_planner", OraclePlanner(env, config.planner)))
    settings = {
        "task": config.task,
        "checkpoint": config.checkpoint,
        "seeds": seeds,
        "max_steps": config.max_steps,
        "planner": vars(config.planner),
        "decode_rounds": config.decode_rounds,
        "temperature": config.temperature,
    }
    kept = _kept_rows(config, settings)
    videos: dict[str, list[np.ndarray]] = {"wfm_planner": [], "latent_planner": []}
    results: dict[str, Any] = {}
    for name, actor in controllers:
        if name in kept["rows"]:
            results[name] = kept["rows"][name]
            continue
        runs = [
            drive_episode(
                env,
                actor,
                seed,
                max_steps=config.max_steps,
                on_step=_panel_recorder(actor, videos[name]) if i == 0 and name in videos else None,
            )
            for i, seed in enumerate(tqdm(seeds, desc=name))
        ]
        results[name] = summarize_runs(runs, config.task, config.success_distance)
    env.close()
    written = {}
    for name, frames in videos.items():
        if frames:
            written[name] = str(out / f"{name}_episode0.mp4")
            write_mp4(written[name], np.stack(frames), fps=config.video_fps)
    payload = {
        "benchmark": "mpc",
        "machine": machine_facts(),
        **settings,
        "outcome": OUTCOMES[config.task],
        "success_distance_m": config.success_distance if config.task == "robot" else None,
        "floor_policy": config.floor_policy,
        "results": results,
        **_fractions(results, config.floor_policy),
        "latent_checkpoint": config.latent_checkpoint,
        "latent_weights_sha256": latent_digest,
        "kept": {
            "from": kept["from"],
            "commit": kept["commit"],
            "controllers": sorted(set(kept["rows"]) & set(results)),
        },
        "video": written.get("wfm_planner")
        or (kept["video"] if "wfm_planner" in kept["rows"] and config.run_pixel_planner else None),
        "latent_video": written.get("latent_planner"),
    }
    write_json_atomic(out / "metrics.json", payload)
    return payload


ConfigStore.instance().store(name="mpc_demo_schema", node=MPCDemoConfig)


@hydra.main(version_base=None, config_path="conf", config_name="mpc_demo")
def main(cfg: DictConfig) -> None:
    """Run the comparison and print where the results and the video are."""
    payload = run_mpc_demo(to_dataclass(cfg, MPCDemoConfig))
    rate = payload["outcome"].split(":")[0]
    for name, r in payload["results"].items():
        print(
            f"{name:16s} return {r['mean_return']:7.2f}  {rate.replace('_', ' ')} "
            f"{r[rate]:.2f}  decision {r['latency_ms_mean']:7.1f} ms "
            f"(p95 {r['latency_ms_p95']:.1f})"
        )
    videos = [v for v in (payload["video"], payload["latent_video"]) if v]
    print(f"results in {cfg.out_dir}/metrics.json; videos {', '.join(videos) or 'none'}")


if __name__ == "__main__":
    main()
