"""Where the latent planner crashes, and whether it could have seen it coming: drives the MPC
demo's real episodes with the planner over the latent world model and, for every crash, reads
highway-env's ground truth (which car it hit, where that car was each step before, whether
it was inside the 64x64 view) beside the model's own crash probability for the plan it chose.

A crash whose car was in view for steps before it, and that the model rated unlikely, is a
model error (more data, an ensemble); one whose car came into view only just before is a
limit of what the camera shows.

    python -m experiments.mpc_crashes [episodes=36 seed=20000 latent_checkpoint=...]
"""

from __future__ import annotations

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
from experiments.mpc_demo import drive_episode, driving_demo_planner
from policies.planners import LatentModelPlanner, PlannerConfig, crash_risks
from policies.planners.receding import Action
from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.sources import ACTION_NAMES, DrivingSimConfig, make_driving_env
from world_models.latent import LatentWorldModel

LANE_CHANGES = (ACTION_NAMES.index("LANE_LEFT"), ACTION_NAMES.index("LANE_RIGHT"))
SAME_LANE_M = 2.0
"""Lateral offsets below half a lane's width (4 m) count as the same lane."""


@dataclass
class CrashDiagnosisConfig:
    """The latent model and planner budget (as the MPC demo's), which real episodes, how many
    frames before each crash the figure shows, where results go."""

    latent_checkpoint: str = "driving_latent"
    episodes: int = 36
    seed: int = 20_000
    planner: PlannerConfig = field(default_factory=driving_demo_planner)
    frames_before: int = 4
    out_dir: str = "experiments/results/mpc_crashes"
    threads: int = 2

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.frames_before < 1:
            raise ValueError(f"frames_before must be >= 1, got {self.frames_before}")


@dataclass(frozen=True)
class View:
    """The part of the road a frame shows, in metres from the ego car (ahead, behind, to
    either side), from the simulator's frame size, scaling and centring."""

    ahead: float
    behind: float
    side: float

    @classmethod
    def of(cls, sim: DrivingSimConfig) -> View:
        """The view of frames rendered with ``sim``."""
        metres = sim.frame_size / sim.scaling
        return cls((1 - sim.centering_x) * metres, sim.centering_x * metres, metres / 2)

    def shows(self, dx: float, dy: float) -> bool:
        """Whether a car ``dx`` m ahead (negative: behind) and ``dy`` m aside is in the frame."""
        return -self.behind <= dx <= self.ahead and abs(dy) <= self.side


def _offsets(env: Any) -> dict[int, tuple[float, float]]:
    """Every other car's (ahead, aside) offset in metres from the ego car, by identity."""
    road = env.unwrapped.road
    ego = env.unwrapped.vehicle
    return {
        id(v): (float(v.position[0] - ego.position[0]), float(v.position[1] - ego.position[1]))
        for v in road.vehicles
        if v is not ego
    }


def _crash_partner(env: Any) -> int | None:
    """The identity of the car the ego car collided with (highway-env marks both crashed)."""
    ego = env.unwrapped.vehicle
    hit = [v for v in env.unwrapped.road.vehicles if v is not ego and v.crashed]
    if not hit:
        return None
    closest = min(hit, key=lambda v: float(np.linalg.norm(v.position - ego.position)))
    return id(closest)


def crash_kind(dx: float, dy: float) -> str:
    """How a crash happened, from where the other car was the step before: in the ego car's
    lane ahead of it or behind it, or in another lane (the ego car or it changed lanes)."""
    if abs(dy) >= SAME_LANE_M:
        return "car in the next lane"
    return "ran into the car ahead" if dx > 0 else "hit from behind"


def steps_in_view_before(offsets: list[tuple[float, float] | None], view: View) -> int:
    """How many consecutive steps right before the crash the other car was in the frame
    (``offsets``: its offset at each step before the crash, oldest first; None: not on the
    road then)."""
    count = 0
    for offset in reversed(offsets):
        if offset is None or not view.shows(*offset):
            break
        count += 1
    return count


def _drive(
    env: Any, planner: LatentModelPlanner, seed: int, view: View, frames_before: int
) -> dict[str, Any]:
    """One real episode; at a crash, the diagnosis and the frames before it."""
    frames: list[np.ndarray] = []
    actions: list[int] = []
    risks: list[float] = []
    offsets: list[dict[int, tuple[float, float]]] = []

    def record(frame: np.ndarray, action: Action) -> None:
        assert planner.last_plan is not None
        ends = planner.end_probabilities(planner.last_plan)
        risks.append(float(crash_risks(torch.from_numpy(ends)[None])[0]))
        offsets.append(_offsets(env))
        actions.append(int(action))
        frames.append(frame)

    run = drive_episode(env, planner, seed, on_step=record)
    frames.append(run["last_frame"])
    episode: dict[str, Any] = {"seed": seed, "return": run["return"], "steps": len(actions)}
    partner = _crash_partner(env) if run["crashed"] else None
    episode["crashed"] = run["crashed"]
    if not episode["crashed"]:
        return episode
    path = [o.get(partner) if partner is not None else None for o in offsets]
    last = path[-1]
    episode["crash"] = {
        "seed": seed,
        "step": len(actions),
        "kind": crash_kind(*last) if last is not None else "unknown",
        "offset_step_before_m": [round(v, 2) for v in last] if last is not None else None,
        "steps_in_view_before": steps_in_view_before(path, view),
        "lane_change_in_last_2_actions": any(a in LANE_CHANGES for a in actions[-2:]),
        "actions_before": [ACTION_NAMES[a] for a in actions[-frames_before:]],
        "plan_crash_probability_before": [round(r, 4) for r in risks[-frames_before:]],
    }
    episode["frames_before"] = frames[-frames_before - 1 :]
    return episode


def summarize_crashes(crashes: list[dict[str, Any]], episodes: int) -> dict[str, Any]:
    """Counts by kind, how long the other car was in view, and how likely the model rated a
    crash within its chosen plan one and two steps before; ``foreseeable_missed``: crashes
    whose car was in view for at least 2 steps and that the model rated below 0.5 two steps
    before (a model error, not a limit of the view)."""
    kinds: dict[str, int] = {}
    for crash in crashes:
        kinds[crash["kind"]] = kinds.get(crash["kind"], 0) + 1

    def risk(crash: dict[str, Any], back: int) -> float | None:
        risks = crash["plan_crash_probability_before"]
        return risks[-back] if len(risks) >= back else None

    one = [r for c in crashes if (r := risk(c, 1)) is not None]
    two = [r for c in crashes if (r := risk(c, 2)) is not None]
    missed = [
        c
        for c in crashes
        if c["steps_in_view_before"] >= 2 and (r := risk(c, 2)) is not None and r < 0.5
    ]
    return {
        "episodes": episodes,
        "crashes": len(crashes),
        "by_kind": kinds,
        "lane_change_in_last_2_actions": sum(c["lane_change_in_last_2_actions"] for c in crashes),
        "steps_in_view_before_median": (
            float(np.median([c["steps_in_view_before"] for c in crashes])) if crashes else None
        ),
        "plan_crash_probability_1_step_before_median": float(np.median(one)) if one else None,
        "plan_crash_probability_2_steps_before_median": float(np.median(two)) if two else None,
        "foreseeable_missed": len(missed),
    }


def plot_crashes(episodes: list[dict[str, Any]], path: Path, scale: int = 2) -> Path | None:
    """One row per crash: the frames before it and the crash frame, each under the action
    taken there and the model's crash probability for the plan it chose. None when nothing
    crashed, and then no figure is left at ``path``: an earlier run's frames must not pass
    for this run's."""
    rows = []
    for episode in episodes:
        if "crash" not in episode:
            continue
        crash, frames = episode["crash"], episode["frames_before"]
        labels = [
            f"{a.removeprefix('LANE_')} p={p:.2f}"
            for a, p in zip(
                crash["actions_before"], crash["plan_crash_probability_before"], strict=True
            )
        ]
        labels = [""] * (len(frames) - 1 - len(labels)) + labels + ["crash"]
        tiles = []
        for frame, label in zip(frames, labels, strict=True):
            big = Image.fromarray(np.repeat(np.repeat(frame, scale, 0), scale, 1))
            tile = Image.new("RGB", (big.width + 4, big.height + 14), (255, 255, 255))
            tile.paste(big, (2, 14))
            ImageDraw.Draw(tile).text((2, 1), label, fill=(0, 0, 0))
            tiles.append(np.asarray(tile))
        title = Image.new("RGB", (120, tiles[0].shape[0]), (255, 255, 255))
        ImageDraw.Draw(title).multiline_text(
            (2, 14),
            f"seed {crash['seed']}\nstep {crash['step']}\n{crash['kind']}\n"
            f"in view {crash['steps_in_view_before']} steps",
            fill=(0, 0, 0),
        )
        rows.append(np.concatenate([np.asarray(title), *tiles], axis=1))
    if not rows:
        path.unlink(missing_ok=True)
        return None
    widest = max(r.shape[1] for r in rows)
    sheet = np.concatenate(
        [np.pad(r, ((0, 0), (0, widest - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    )
    with atomic_path(path) as tmp:
        Image.fromarray(sheet).save(tmp, format="png")
    return path


def run_crash_diagnosis(config: CrashDiagnosisConfig) -> dict[str, Any]:
    """Drive the episodes, diagnose every crash; writes crashes.json and crashes.png."""
    torch.set_num_threads(config.threads)
    sim = DrivingSimConfig()
    env = make_driving_env(sim)
    model = LatentWorldModel.load(config.latent_checkpoint, device="cpu")
    digest = world_models.weights_sha256(config.latent_checkpoint)
    planner = LatentModelPlanner(model, config.planner)
    view = View.of(sim)
    seeds = [config.seed + i for i in range(config.episodes)]
    episodes = [
        _drive(env, planner, seed, view, config.frames_before)
        for seed in tqdm(seeds, desc="latent planner")
    ]
    env.close()
    out = Path(config.out_dir)
    figure = plot_crashes(episodes, out / "crashes.png")
    crashes = [e["crash"] for e in episodes if "crash" in e]
    payload = {
        "benchmark": "mpc_crashes",
        "machine": machine_facts(),
        "latent_checkpoint": config.latent_checkpoint,
        "latent_weights_sha256": digest,
        "planner": vars(config.planner),
        "seeds": seeds,
        "view_m": vars(view),
        "mean_return": float(np.mean([e["return"] for e in episodes])),
        "returns": [round(e["return"], 3) for e in episodes],
        "summary": summarize_crashes(crashes, len(episodes)),
        "crashes": crashes,
        "figure": str(figure) if figure else None,
    }
    write_json_atomic(out / "crashes.json", payload)
    return payload


ConfigStore.instance().store(name="mpc_crashes_schema", node=CrashDiagnosisConfig)


@hydra.main(version_base=None, config_path="conf", config_name="mpc_crashes")
def main(cfg: DictConfig) -> None:
    """Diagnose the crashes and print the summary."""
    payload = run_crash_diagnosis(to_dataclass(cfg, CrashDiagnosisConfig))
    s = payload["summary"]
    print(f"mean return {payload['mean_return']:.2f}; {s['crashes']} of {s['episodes']} crash")
    for kind, count in s["by_kind"].items():
        print(f"  {count} {kind}")
    if s["crashes"]:
        print(
            f"  the other car in view a median {s['steps_in_view_before_median']:g} steps "
            "before; the model's crash probability for the chosen plan, median: "
            f"{s['plan_crash_probability_2_steps_before_median']:.3f} 2 steps before, "
            f"{s['plan_crash_probability_1_step_before_median']:.3f} 1 step before; "
            f"foreseeable but missed: {s['foreseeable_missed']}"
        )
    print(f"results: {Path(cfg.out_dir) / 'crashes.json'}  figure: {payload['figure']}")


if __name__ == "__main__":
    main()
