"""How the latent planner trades crashes for speed: the planner over ``driving_latent`` (the
MPC demo's budget) drives the same real episodes under several ways of weighing a crash: the
terminal value a plan still running is credited, and risk aversion (``plan_scores``: a term
in ``-log(risk + floor)`` beside the expected return). For each, the mean return, the crash
rate, the return of the episodes that did not crash and the decision latency, with a plot of
return against crash rate.

    python -m experiments.bench.planner_risk [--episodes 100] [--seed 30000]
        [--latent-checkpoint driving_latent]

The seeds default to starts that neither the MPC demo (20000...), the crash diagnosis, the
plan labels (9000...) nor the footage use.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm.auto import tqdm

import world_models
from experiments.bench.common import RESULTS_DIR, write_result
from experiments.mpc_demo import drive_episode, driving_demo_planner, summarize_runs
from policies.planners import LatentModelPlanner, PlannerConfig
from wfm_sim.sources import make_driving_env
from world_models.latent import LatentWorldModel

BUDGET_KEYS = ("method", "horizon", "population", "elites", "iterations")
"""The ``PlannerConfig`` fields of a search budget, which every setting shares."""


def demo_budget() -> dict[str, Any]:
    """The MPC demo's search budget (its planner's, whose other fields are left to the
    settings)."""
    planner = driving_demo_planner()
    return {key: getattr(planner, key) for key in BUDGET_KEYS}


SETTINGS: dict[str, dict[str, float]] = {
    "terminal value 16": {"terminal_value": 16.0},
    "terminal value 32": {"terminal_value": 32.0},
    "terminal value 64": {"terminal_value": 64.0},
    "terminal value 128": {"terminal_value": 128.0},
    "risk aversion 0.5, floor 0.01": {"terminal_value": 16.0, "risk_aversion": 0.5},
    "risk aversion 1, floor 0.01": {"terminal_value": 16.0, "risk_aversion": 1.0},
    "risk aversion 2, floor 0.03": {
        "terminal_value": 16.0,
        "risk_aversion": 2.0,
        "risk_floor": 0.03,
    },
    "risk aversion 1, floor 0.001": {
        "terminal_value": 16.0,
        "risk_aversion": 1.0,
        "risk_floor": 0.001,
    },
}
"""Ways of weighing a crash, by name: ``PlannerConfig`` fields over the budget."""


def measure(
    latent_checkpoint: str,
    settings: dict[str, dict[str, Any]],
    seeds: list[int],
    max_steps: int | None = None,
) -> list[dict[str, Any]]:
    """Drive every seed with the latent planner under each setting (``PlannerConfig`` fields
    over the demo's budget, which they may change: ``method``); one row per setting."""
    env = make_driving_env()
    model = LatentWorldModel.load(latent_checkpoint)
    budget, rows = demo_budget(), []
    for name, values in tqdm(settings.items(), desc="planner settings"):
        planner = LatentModelPlanner(model, PlannerConfig(**{**budget, **values}))
        runs = [drive_episode(env, planner, seed, max_steps) for seed in seeds]
        returns = np.array([r["return"] for r in runs])
        crashed = np.array([r["crashed"] for r in runs])
        rows.append(
            {
                "setting": name,
                "planner": values,
                **summarize_runs(runs, "driving"),
                "return_sem": float(returns.std(ddof=1) / np.sqrt(len(returns)))
                if len(returns) > 1
                else None,
                "crashes": int(crashed.sum()),
                "mean_return_without_crash": float(returns[~crashed].mean())
                if (~crashed).any()
                else None,
            }
        )
    env.close()
    return rows


def plot_tradeoff(rows: list[dict[str, Any]], path: Path) -> Path:
    """Mean return (± its standard error) against crash rate, one point per setting: terminal
    values joined by a line, risk-averse settings as diamonds."""
    figure = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for marker, kind in (("o", "terminal value"), ("D", "risk aversion")):
        chosen = [r for r in rows if r["setting"].startswith(kind)]
        if not chosen:
            continue
        ax.errorbar(
            [100 * r["crash_rate"] for r in chosen],
            [r["mean_return"] for r in chosen],
            yerr=[r["return_sem"] or 0.0 for r in chosen],
            fmt=marker + ("-" if kind == "terminal value" else ""),
            capsize=3,
            label=kind,
        )
        for r in chosen:
            ax.annotate(
                r["setting"].removeprefix(kind).strip(" ,"),
                (100 * r["crash_rate"], r["mean_return"]),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=7,
            )
    ax.set_xlabel("episodes that crash (%)")
    ax.set_ylabel("mean real return")
    ax.set_title("latent planner: crashes against return, by how it weighs a crash")
    ax.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def fresh_start_arguments(description: str) -> tuple[argparse.Namespace, list[int]]:
    """The command line of a bench that drives the latent planner on fresh starts (episodes,
    first seed, latent checkpoint, torch threads, which it sets) and the starts' seeds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=30_000)
    parser.add_argument("--latent-checkpoint", default="driving_latent")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.episodes < 2:
        parser.error("--episodes must be at least 2 (standard errors need two starts)")
    torch.set_num_threads(args.threads)
    return args, [args.seed + i for i in range(args.episodes)]


def main() -> None:
    """Measure every setting and write experiments/results/planner_risk.json and its plot."""
    args, seeds = fresh_start_arguments(__doc__.splitlines()[0])
    rows = measure(args.latent_checkpoint, SETTINGS, seeds)
    figure = plot_tradeoff(rows, RESULTS_DIR / "planner_risk.png")
    path = write_result(
        "planner_risk",
        {
            "latent_checkpoint": args.latent_checkpoint,
            "latent_weights_sha256": world_models.weights_sha256(args.latent_checkpoint),
            "budget": demo_budget(),
            "seeds": [seeds[0], seeds[-1]],
            "episodes": args.episodes,
            "settings": rows,
            "figure": str(figure.relative_to(RESULTS_DIR.parent.parent)),
        },
    )
    for r in rows:
        print(
            f"{r['setting']:32s} return {r['mean_return']:.2f} ± {r['return_sem']:.2f}, "
            f"{r['crashes']} of {args.episodes} crash, {r['latency_ms_mean']:.1f} ms"
        )
    print(f"results: {path}  figure: {figure}")


if __name__ == "__main__":
    main()
