"""How well the latent model ranks the plans its planner weighs, against the real simulator:
drives real episodes with the latent planner and, at every decision, plays its best-rated
candidate plans and a few random ones on clones of the simulator, recording the real reward
and whether the episode ended at each step. Each model named is then scored on those
labelled candidates, state by state: does the plan it rates best crash while a safe one was
on the table, how well it ranks them by return and by crash risk.

Footage only shows the action that was taken, so held-out measures of the model say nothing
about the plans a planner picks but no one drove; this needs a simulator whose state can be
cloned (highway-env), as the oracle planner does.

    python -m experiments.plan_labels [episodes=96 models=[driving_latent,...]]
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from safetensors.numpy import save_file
from scipy import stats
from tqdm.auto import tqdm

import world_models
from experiments.bench.common import machine_facts
from experiments.config import to_dataclass
from experiments.mpc_demo import drive_episode, driving_demo_planner
from policies.planners import LatentModelPlanner, PlannerConfig
from policies.planners.oracle import PlayedPlan, clone_simulator, plan_returns, play_plan
from policies.planners.receding import Action
from policies.planners.returns import crash_risks, plan_scores
from wfm_sim.data.plan_labels import LABELS_FORMAT, PLAN_KEYS, read_plan_labels
from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.sources import make_driving_env
from world_models.latent import LatentWorldModel


@dataclass
class PlanLabelConfig:
    """The latent planner that drives (and its budget: the MPC demo's), the real episodes,
    how many of its best-rated candidates and how many random plans are labelled at each
    decision (``epsilon``: share of its actions replaced by random ones, so it meets its
    near misses), the models scored on the labels, where labels and results go."""

    latent_checkpoint: str = "driving_latent"
    episodes: int = 96
    episodes_per_part: int = 8
    seed: int = 9_000
    best_plans: int = 4
    random_plans: int = 4
    epsilon: float = 0.1
    planner: PlannerConfig = field(default_factory=lambda: driving_demo_planner(risk_aversion=0.0))
    models: list[str] = field(default_factory=lambda: ["driving_latent"])
    labels_dir: str = "data/plan_labels/driving"
    out_dir: str = "experiments/results/plan_labels"
    threads: int = 2

    def __post_init__(self) -> None:
        if min(self.episodes, self.episodes_per_part) < 1:
            raise ValueError("episodes and episodes_per_part must be >= 1")
        if self.best_plans < 1 or self.random_plans < 0:
            raise ValueError("need best_plans >= 1 and random_plans >= 0")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {self.epsilon}")
        if not self.models:
            raise ValueError("models must name at least one latent checkpoint to score")


class _NoObservation:
    """Stands in for a clone's observation type: labelling reads rewards and ends only."""

    def observe(self) -> None:
        return None


def play_on_clone(env: Any, plan: np.ndarray) -> PlayedPlan:
    """``plan`` (H,) played on a clone of the real env's state, as the oracle planner plays
    one (the clone computes no observations: labelling reads rewards and ends only)."""
    clone: Any = clone_simulator(env)
    clone.observation_type = _NoObservation()
    return play_plan(clone, plan)


def chosen_candidates(
    planner: LatentModelPlanner, best: int, random: int, rng: np.random.Generator
) -> np.ndarray:
    """The last decision's ``best`` highest-rated distinct candidates and ``random`` uniformly
    random plans (n, H) int64."""
    sequences = np.concatenate([s for s, _ in planner.last_candidates])
    scores = np.concatenate([v for _, v in planner.last_candidates])
    distinct, first = np.unique(sequences, axis=0, return_index=True)
    top = distinct[np.argsort(-scores[first], kind="stable")[:best]]
    drawn = rng.integers(planner.model.n_actions, size=(random, sequences.shape[1]))
    return np.concatenate([top, drawn]).astype(np.int64)


class _LabellingDriver:
    """The latent planner as ``drive_episode``'s actor: at every decision its candidates are
    played on clones of ``env`` and kept in ``decisions`` before it acts, and an ``epsilon``
    share of its actions is replaced by random ones (all drawn from the episode's generator)."""

    def __init__(self, env: Any, planner: LatentModelPlanner, config: PlanLabelConfig) -> None:
        self.env, self.planner, self.config = env, planner, config
        self.decisions: list[dict[str, np.ndarray]] = []

    def begin_episode(self, frames: list[np.ndarray], actions: list[Action]) -> None:
        """Start the planner from the episode's first frames."""
        self.planner.begin_episode(frames, actions)
        self.decisions = []

    def observe(self, frame: np.ndarray, action: Action) -> None:
        """Pass the frame the action led to on to the planner."""
        self.planner.observe(frame, action)

    def act(self, frame: np.ndarray, rng: np.random.Generator) -> int:
        """Plan, label the decision's candidates, then act (at random an ``epsilon`` share)."""
        action = int(self.planner.act(frame, rng))
        plans = chosen_candidates(
            self.planner, self.config.best_plans, self.config.random_plans, rng
        )
        played = [play_on_clone(self.env, plan) for plan in plans]
        self.decisions.append(
            {
                "contexts": self.planner.context_frames()[None],
                "actions": plans,
                "rewards": np.stack([p.rewards for p in played]).astype(np.float32),
                "ended": np.stack([p.ended for p in played]),
                "valid": np.stack([p.played for p in played]),
                "outlasted": np.array([p.outlasted for p in played]),
            }
        )
        if rng.random() < self.config.epsilon:
            action = int(rng.integers(self.planner.model.n_actions))
        return action


def _label_episode(
    env: Any, planner: LatentModelPlanner, config: PlanLabelConfig, seed: int
) -> list[dict[str, np.ndarray]]:
    """One real episode's labelled decisions, one dict of arrays per decision."""
    driver = _LabellingDriver(env, planner, config)
    drive_episode(env, driver, seed)
    return driver.decisions


def _part_path(folder: Path, part: int) -> Path:
    return folder / f"part-{part:05d}.safetensors"


def _keep_settings(folder: Path, config: PlanLabelConfig) -> None:
    """Record how the labels in ``folder`` are made, or refuse to add to labels made another
    way (another planner model, budget, seeds or candidate counts)."""
    settings = {
        "format": LABELS_FORMAT,
        "latent_weights_sha256": world_models.weights_sha256(config.latent_checkpoint),
        "seed": config.seed,
        "episodes_per_part": config.episodes_per_part,
        "best_plans": config.best_plans,
        "random_plans": config.random_plans,
        "epsilon": config.epsilon,
        "planner": vars(config.planner),
    }
    path = folder / "labels.json"
    if not path.exists():
        write_json_atomic(path, settings)
        return
    stored = json.loads(path.read_text())
    differ = sorted(k for k, v in settings.items() if stored.get(k) != v)
    if differ:
        raise ValueError(
            f"{folder} holds plan labels made with other {', '.join(differ)}: set another "
            "labels_dir, or delete that folder to label again"
        )


def collect_plan_labels(config: PlanLabelConfig) -> Path:
    """Label ``config.episodes`` real episodes into parts of ``episodes_per_part`` (parts on
    disk are kept, so a killed run resumes; labels made another way are refused); returns the
    labels folder."""
    folder = Path(config.labels_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _keep_settings(folder, config)
    n_parts = -(-config.episodes // config.episodes_per_part)
    todo = [p for p in range(n_parts) if not _part_path(folder, p).exists()]
    if not todo:
        return folder
    env = make_driving_env()
    planner = LatentModelPlanner(LatentWorldModel.load(config.latent_checkpoint), config.planner)
    bar = tqdm(total=config.episodes, desc="labelling plans")
    bar.update(config.episodes - sum(_part_size(config, p) for p in todo))
    for part in todo:
        first = part * config.episodes_per_part
        decisions = []
        for episode in range(first, first + _part_size(config, part)):
            decisions += _label_episode(env, planner, config, config.seed + episode)
            bar.update()
        arrays = {
            k: np.concatenate([d[k] for d in decisions]) for k in ("contexts", *PLAN_KEYS[1:])
        }
        arrays["state"] = np.concatenate(
            [np.full(len(d["actions"]), i, np.int64) for i, d in enumerate(decisions)]
        )
        for flag in ("ended", "valid", "outlasted"):
            arrays[flag] = arrays[flag].astype(np.uint8)
        with atomic_path(_part_path(folder, part)) as tmp:
            save_file(arrays, str(tmp), metadata={"part": str(part)})
    bar.close()
    env.close()
    return folder


def _part_size(config: PlanLabelConfig, part: int) -> int:
    return min(config.episodes_per_part, config.episodes - part * config.episodes_per_part)


def real_returns(labels: dict[str, np.ndarray], config: PlannerConfig) -> np.ndarray:
    """Each labelled plan's real return as the oracle planner scores a plan
    (``plan_returns``)."""
    return plan_returns(labels["rewards"], labels["valid"], labels["outlasted"], config)


def rank_candidates(
    states: np.ndarray,
    predicted: np.ndarray,
    crash_risk: np.ndarray,
    real: np.ndarray,
    crashed: np.ndarray,
) -> dict[str, Any]:
    """Per decision (rows sharing ``states``), the model's ranking of its candidates against
    the simulator's: ``predicted`` returns and ``crash_risk`` (the model's) beside ``real``
    returns and whether each plan ``crashed`` (the simulator's)."""
    rhos, aucs, regrets = [], [], []
    picks_crash, picks_crash_avoidable = 0, 0
    decisions = np.unique(states)
    for state in decisions:
        rows = np.flatnonzero(states == state)
        pick = rows[int(np.argmax(predicted[rows]))]
        regrets.append(float(real[rows].max() - real[pick]))
        picks_crash += bool(crashed[pick])
        picks_crash_avoidable += bool(crashed[pick] and not crashed[rows].all())
        if np.ptp(real[rows]) > 0 and np.ptp(predicted[rows]) > 0:
            rhos.append(float(stats.spearmanr(predicted[rows], real[rows]).statistic))
        hit, safe = crashed[rows], ~crashed[rows]
        if hit.any() and safe.any():
            above = (crash_risk[rows][hit][:, None] > crash_risk[rows][safe][None]).mean()
            ties = (crash_risk[rows][hit][:, None] == crash_risk[rows][safe][None]).mean()
            aucs.append(float(above + 0.5 * ties))
    n = len(decisions)
    return {
        "decisions": n,
        "plans": len(states),
        "return_spearman_mean": float(np.mean(rhos)) if rhos else None,
        "crash_auc_mean": float(np.mean(aucs)) if aucs else None,
        "decisions_with_crash_and_safe_plans": len(aucs),
        "pick_crashes": picks_crash / n,
        "pick_crashes_with_a_safe_plan_on_the_table": picks_crash_avoidable / n,
        "regret_mean": float(np.mean(regrets)),
    }


@torch.no_grad()
def score_model(
    model: LatentWorldModel, labels: dict[str, np.ndarray], config: PlannerConfig
) -> dict[str, Any]:
    """``rank_candidates`` of one latent model over every labelled decision."""
    model = model.float().eval()
    frames = torch.from_numpy(labels["contexts"])
    coded = torch.cat(
        [model.encode_frames(frames[i : i + 256]) for i in range(0, len(frames), 256)]
    )
    states = coded[torch.from_numpy(labels["state"])]
    rewards, ends = model.imagine(states, torch.from_numpy(labels["actions"]))
    predicted = plan_scores(rewards, ends, config).numpy()  # as the planner ranks them
    crash_risk = crash_risks(ends).numpy()
    crashed = labels["ended"].any(axis=1)
    return rank_candidates(
        labels["state"], predicted, crash_risk, real_returns(labels, config), crashed
    )


def run_plan_labels(config: PlanLabelConfig) -> dict[str, Any]:
    """Label (resuming), score every model, write metrics.json."""
    torch.set_num_threads(config.threads)
    folder = collect_plan_labels(config)
    labels = read_plan_labels(folder)
    scores = {
        name: {
            "weights_sha256": world_models.weights_sha256(name),
            **score_model(LatentWorldModel.load(name), labels, config.planner),
        }
        for name in config.models
    }
    crashed = labels["ended"].any(axis=1)
    payload = {
        "benchmark": "plan_labels",
        "machine": machine_facts(),
        "config": dataclasses.asdict(config),
        "latent_checkpoint": config.latent_checkpoint,
        "latent_weights_sha256": json.loads((folder / "labels.json").read_text())[
            "latent_weights_sha256"
        ],
        "labels": {
            "folder": str(folder),
            "decisions": len(labels["contexts"]),
            "plans": int(len(crashed)),
            "plans_crashing": float(crashed.mean()),
            "simulator_steps": int(labels["valid"].sum()),
        },
        "models": scores,
    }
    write_json_atomic(Path(config.out_dir) / "metrics.json", payload)
    return payload


ConfigStore.instance().store(name="plan_labels_schema", node=PlanLabelConfig)


@hydra.main(version_base=None, config_path="conf", config_name="plan_labels")
def main(cfg: DictConfig) -> None:
    """Label the plans, score the models and print each model's line."""
    payload = run_plan_labels(to_dataclass(cfg, PlanLabelConfig))
    print(
        f"{payload['labels']['decisions']} decisions, {payload['labels']['plans']} plans labelled"
    )
    for name, s in payload["models"].items():
        print(
            f"{name}: its pick crashes at {s['pick_crashes']:.0%} of decisions "
            f"({s['pick_crashes_with_a_safe_plan_on_the_table']:.0%} with a safe plan on the "
            f"table); crash AUC {s['crash_auc_mean']:.3f}, return Spearman "
            f"{s['return_spearman_mean']:.3f}, regret {s['regret_mean']:.2f}"
        )
    print(f"results: {Path(to_dataclass(cfg, PlanLabelConfig).out_dir) / 'metrics.json'}")


if __name__ == "__main__":
    main()
