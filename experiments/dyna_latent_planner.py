"""Dyna for the latent planner: drive the real highway-env with MPC over the latent world
model, record those episodes as footage, fine-tune the model on the footage plus them, and
again, measuring the planner in the real env after every round.

    python -m experiments.dyna_latent_planner [rounds=4 episodes_per_round=64 ...]

The planner fails where its model is wrong, and the recorded footage (zoo policies and random
drivers) holds few of the states its own driving leads to; each round adds exactly those.
Every round's real episodes, checkpoint and evaluation stay on disk, so a killed run resumes
at the round it stopped in. Results: ``out_dir/metrics.json`` (each round's return, crash
rate and held-out model measures, against the oracle planner's return on the same starts)
and ``out_dir/dyna_latent_planner.png``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig

import world_models
from experiments.bench.common import machine_facts
from experiments.config import to_dataclass
from experiments.mpc_demo import MPCDemoConfig, driving_demo_planner, run_mpc_demo
from experiments.train_latent_world_model import describe_export, write_latent_model_card
from policies.planners import LatentModelPlanner, PlannerConfig, oracle_settings
from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.sources.recorder import RecorderConfig, record_footage
from wfm_sim.training.latent_world_model import (
    LatentTrainConfig,
    score_on_footage,
    train_latent_world_model,
)
from world_models.latent import LatentWorldModel


@dataclass
class DynaConfig:
    """The model to start from, how many rounds of how many real planner episodes (with an
    ``epsilon`` share of random actions, so the planner's near misses get tried too), the
    fine-tuning of each round (``finetune``: its footage, steps and batch mix; the checkpoint
    and extra footage are filled in per round), the planner budget (the MPC demo's), and the
    real starts every round is evaluated on (the MPC demo's 12-episode run, whose oracle
    return ``oracle_results`` holds)."""

    initial_checkpoint: str = "driving_latent"
    rounds: int = 4
    episodes_per_round: int = 64
    episodes_per_part: int = 16
    epsilon: float = 0.1
    collect_seed: int = 7
    """Round r records with recorder seed ``collect_seed + r`` (starts unlike the footage's
    and the evaluation's)."""
    finetune: LatentTrainConfig = field(
        default_factory=lambda: LatentTrainConfig(steps=1000, lr=3e-4)
    )
    planner: PlannerConfig = field(default_factory=lambda: driving_demo_planner(risk_aversion=0.0))
    eval_episodes: int = 12
    eval_seed: int = 20_000
    oracle_results: str | None = "experiments/results/mpc_latent/metrics.json"
    """An MPC demo's metrics.json whose oracle_planner drove the same starts with the same
    budget; None: no oracle line."""
    export_dir: str | None = None
    """Where the last round's model is also exported (e.g. the zoo's ``driving_latent``), in
    ``export_weights_dtype`` and measured as rounded, with a model card of the whole chain;
    None: not exported."""
    export_weights_dtype: str = "float16"
    footage_dir: str = "data/footage/driving_dyna"
    run_dir: str = "runs/dyna_latent_planner"
    out_dir: str = "experiments/results/dyna_latent_planner"
    threads: int = 2

    def __post_init__(self) -> None:
        if min(self.rounds, self.episodes_per_round, self.episodes_per_part) < 1:
            raise ValueError("rounds, episodes_per_round and episodes_per_part must be >= 1")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {self.epsilon}")
        if self.eval_episodes < 1:
            raise ValueError(f"eval_episodes must be >= 1, got {self.eval_episodes}")


class PlannerBehaviour:
    """A latent planner as a recorder behaviour: it re-plans from the episode's real frames
    each step, and with probability ``epsilon`` takes a random action instead."""

    def __init__(self, planner: LatentModelPlanner, epsilon: float) -> None:
        self.planner = planner
        self.epsilon = epsilon
        self._last_action: int | None = None

    def begin_episode(self) -> None:
        """Forget the last episode's frames."""
        self._last_action = None

    def __call__(self, frame: np.ndarray, info: dict[str, Any], rng: np.random.Generator) -> int:
        if self._last_action is None:
            self.planner.begin_episode([frame], [])
        else:
            self.planner.observe(frame, self._last_action)
        action = int(self.planner.act(frame, rng))
        if rng.random() < self.epsilon:
            action = int(rng.integers(self.planner.model.n_actions))
        self._last_action = action
        return action


def _oracle_return(config: DynaConfig, seeds: list[int]) -> float | None:
    """The oracle planner's mean return over ``seeds`` from ``config.oracle_results``, refused
    when that run drove other starts or its oracle planned otherwise (the model-only risk
    settings may differ: the oracle ranks by real returns)."""
    if config.oracle_results is None:
        return None
    stored = json.loads(Path(config.oracle_results).read_text())
    if stored["seeds"] != seeds or oracle_settings(stored["planner"]) != oracle_settings(
        vars(config.planner)
    ):
        raise ValueError(
            f"{config.oracle_results} drove seeds {stored['seeds']} with planner "
            f"{stored['planner']}, not seeds {seeds} with {vars(config.planner)}: rerun the "
            "MPC demo with these settings or set oracle_results=null"
        )
    return float(stored["results"]["oracle_planner"]["mean_return"])


def _collect(config: DynaConfig, round_index: int, checkpoint: str) -> Path:
    """Round ``round_index``'s real planner episodes (resumes a part-recorded round)."""
    model = LatentWorldModel.load(checkpoint, device="cpu")
    behaviour = PlannerBehaviour(LatentModelPlanner(model, config.planner), config.epsilon)
    recorder = RecorderConfig(
        out_dir=str(Path(config.footage_dir) / f"round_{round_index}"),
        episodes=config.episodes_per_round,
        episodes_per_part=config.episodes_per_part,
        seed=config.collect_seed + round_index,
    )
    return record_footage(recorder, [(f"latent_planner_round_{round_index - 1}", behaviour)])


def _round_train_config(
    config: DynaConfig, round_index: int, init: str, footage: list[Path]
) -> LatentTrainConfig:
    """Round ``round_index``'s fine-tuning: ``init`` on the footage (``finetune``'s
    ``footage_dir`` and ``more_footage_dirs``) plus every round's planner episodes so far at
    ``finetune.extra_footage_share`` of each batch, in its own run folder."""
    run_dir = Path(config.run_dir) / f"round_{round_index}"
    return dataclasses.replace(
        config.finetune,
        init_checkpoint=init,
        extra_footage_dirs=[str(f) for f in footage],
        run_dir=str(run_dir),
        export_dir=str(run_dir / "checkpoint"),
    )


def _finetune(config: DynaConfig, round_index: int, init: str, footage: list[Path]) -> Path:
    """Round ``round_index``'s checkpoint (kept when already exported)."""
    train_config = _round_train_config(config, round_index, init, footage)
    export_dir = Path(train_config.export_dir)
    if not (export_dir / "MODEL_CARD.md").exists():
        train_latent_world_model(train_config)
        write_latent_model_card(export_dir, train_config)
    return export_dir


def _evaluate(config: DynaConfig, round_index: int, checkpoint: str) -> dict[str, Any]:
    """The latent planner over ``checkpoint`` (and the MPC demo's baseline policy) on the
    evaluation starts; kept when this round was already evaluated with this checkpoint."""
    out = Path(config.out_dir) / f"round_{round_index}"
    done = out / "metrics.json"
    if done.exists():
        stored: dict[str, Any] = json.loads(done.read_text())
        if stored["latent_checkpoint"] == checkpoint:
            return stored
    demo = MPCDemoConfig(
        checkpoint=config.finetune.world_model,
        episodes=config.eval_episodes,
        seed=config.eval_seed,
        planner=config.planner,
        latent_checkpoint=checkpoint,
        run_pixel_planner=False,
        run_oracle=False,
        out_dir=str(out),
        threads=config.threads,
    )
    return run_mpc_demo(demo)


def _score_on_next_episodes(
    config: DynaConfig, round_index: int, checkpoint: str, footage: Path
) -> dict[str, Any]:
    """Round ``round_index``'s model measured on the next round's footage: the real episodes
    its own planner drove, which it was never trained on (kept when already measured)."""
    path = Path(config.out_dir) / f"round_{round_index}" / "next_episodes.json"
    if path.exists():
        stored: dict[str, Any] = json.loads(path.read_text())
        if stored["latent_checkpoint"] == checkpoint and stored["footage"] == str(footage):
            return stored
    scores = score_on_footage(checkpoint, [str(footage)], config.finetune)
    measured = {"latent_checkpoint": checkpoint, "footage": str(footage), **scores}
    write_json_atomic(path, measured)
    return measured


def _export_last_round(config: DynaConfig, last: LatentTrainConfig) -> Path:
    """The last round's model (its finished run resumed, nothing trained) exported to
    ``config.export_dir``, with a model card naming the chain that made it."""
    assert config.export_dir is not None
    export = dataclasses.replace(
        last, export_dir=config.export_dir, weights_dtype=config.export_weights_dtype
    )
    export_dir = train_latent_world_model(export)
    made_by = (
        f"Made by: `python -m experiments.dyna_latent_planner rounds={config.rounds} "
        f"initial_checkpoint={config.initial_checkpoint} export_dir={config.export_dir}` "
        f"(Dyna: {config.rounds} rounds of {config.episodes_per_round} real episodes driven by "
        "the planner over the model, each followed by fine-tuning on the footage plus them; "
        "`experiments/results/dyna_latent_planner/` holds every round's real return). "
        "The starting model: `make train-latent-world-model`."
    )
    return describe_export(export_dir, export, made_by)


def _round_row(round_index: int, checkpoint: str, evaluation: dict[str, Any]) -> dict[str, Any]:
    planner = evaluation["results"]["latent_planner"]
    folder = world_models.checkpoint_path(checkpoint)
    model_metrics = json.loads((folder / "metrics.json").read_text())
    info = json.loads((folder / "config.json").read_text())["info"]
    return {
        "round": round_index,
        "checkpoint": checkpoint,
        # round 0 is the starting model: whatever extra footage it saw, none of this run's
        # planner episodes
        "planner_frames": info.get("frames", {}).get("extra", 0) if round_index else 0,
        "mean_return": planner["mean_return"],
        "crash_rate": planner["crash_rate"],
        "returns": planner["returns"],
        "latency_ms_mean": planner["latency_ms_mean"],
        "end_auc_by_step": model_metrics["end_auc_by_step"],
        "reward_mae_by_step": model_metrics["reward_mae_by_step"],
        "next_episodes_end_auc_by_step": None,
    }


def plot_rounds(
    rows: list[dict[str, Any]], oracle: float | None, baseline: dict[str, Any], path: Path
) -> Path:
    """Return and crash rate of the latent planner after each round, beside the oracle's
    return and the baseline policy's."""
    rounds = [r["round"] for r in rows]
    fig = Figure(figsize=(6.0, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(rounds, [r["mean_return"] for r in rows], "o-", label="latent planner")
    if oracle is not None:
        top.axhline(oracle, color="k", ls="--", label="oracle planner (same budget)")
        top.axhline(0.9 * oracle, color="k", ls=":", label="90% of oracle (aim)")
    top.axhline(baseline["mean_return"], color="tab:green", ls="-.", label=baseline["name"])
    top.set_ylabel("mean real return")
    top.legend(fontsize=8, loc="lower right")
    bottom.plot(rounds, [r["crash_rate"] for r in rows], "o-", color="tab:red")
    bottom.set_ylabel("crash rate")
    bottom.set_xlabel("Dyna round (0 = the starting model)")
    bottom.set_xticks(rounds)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


def run_dyna(config: DynaConfig) -> dict[str, Any]:
    """All rounds (resuming what is on disk); writes and returns the summary."""
    seeds = [config.eval_seed + i for i in range(config.eval_episodes)]
    oracle = _oracle_return(config, seeds)
    checkpoint = config.initial_checkpoint
    first = _evaluate(config, 0, checkpoint)
    rows = [_round_row(0, checkpoint, first)]
    footage: list[Path] = []
    init = checkpoint
    for round_index in range(1, config.rounds + 1):
        footage.append(_collect(config, round_index, checkpoint))
        ahead = _score_on_next_episodes(config, round_index - 1, checkpoint, footage[-1])
        rows[-1]["next_episodes_end_auc_by_step"] = ahead["end_auc_by_step"]
        init, checkpoint = checkpoint, str(_finetune(config, round_index, checkpoint, footage))
        rows.append(_round_row(round_index, checkpoint, _evaluate(config, round_index, checkpoint)))
    if config.export_dir is not None:
        _export_last_round(config, _round_train_config(config, config.rounds, init, footage))
    baseline_name = MPCDemoConfig().baseline_policy
    baseline = {"name": baseline_name, **first["results"][baseline_name]}
    payload = {
        "benchmark": "dyna_latent_planner",
        "machine": machine_facts(),
        "config": dataclasses.asdict(config),
        "seeds": seeds,
        "oracle_mean_return": oracle,
        "baseline": baseline,
        "rounds": rows,
        "fraction_of_oracle_return": [r["mean_return"] / oracle if oracle else None for r in rows],
    }
    out = Path(config.out_dir)
    plot_rounds(rows, oracle, baseline, out / "dyna_latent_planner.png")
    write_json_atomic(out / "metrics.json", payload)
    return payload


ConfigStore.instance().store(name="dyna_latent_planner_schema", node=DynaConfig)


@hydra.main(version_base=None, config_path="conf", config_name="dyna_latent_planner")
def main(cfg: DictConfig) -> None:
    """Run the rounds and print each one's real return."""
    payload = run_dyna(to_dataclass(cfg, DynaConfig))
    oracle = payload["oracle_mean_return"]
    for row, share in zip(payload["rounds"], payload["fraction_of_oracle_return"], strict=True):
        of_oracle = f" ({share:.0%} of the oracle's {oracle:.2f})" if share is not None else ""
        print(
            f"round {row['round']}: return {row['mean_return']:.2f}{of_oracle}, crash rate "
            f"{row['crash_rate']:.2f}, {row['planner_frames']} planner frames trained on"
        )
    print(f"results in {cfg.out_dir}/metrics.json and dyna_latent_planner.png")


if __name__ == "__main__":
    main()
