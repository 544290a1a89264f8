"""CEM against MPPI for the latent planner: the MPC demo's budget and crash weighting
(terminal value 16, risk aversion 1) with each search method, on ``make planner-risk``'s
fresh starts, each paired start by start against CEM (the demo's method).

Both methods sample the same population from a categorical per step and act on the best
sequence they scored; they differ in how the distribution is refitted between iterations:
CEM to its elites, MPPI to every sequence weighted by ``exp(score / temperature)``.

    python -m experiments.bench.planner_methods [--episodes 100] [--seed 30000]

The 12 starts of the latent MPC run, against an oracle that searches with MPPI too:
``python -m experiments.mpc_demo run_pixel_planner=false episodes=12 planner.method=mppi
out_dir=experiments/results/mpc_latent_mppi``.
"""

from __future__ import annotations

from typing import Any

import world_models
from experiments.bench.common import paired_gain, write_result
from experiments.bench.planner_risk import demo_budget, fresh_start_arguments, measure
from experiments.mpc_demo import driving_demo_planner

BASELINE = "CEM (the demo's)"

METHODS: dict[str, dict[str, Any]] = {
    BASELINE: {"method": "cem"},
    "MPPI, temperature 0.5": {"method": "mppi", "temperature": 0.5},
    "MPPI, temperature 2": {"method": "mppi", "temperature": 2.0},
}
"""Search methods by name: ``PlannerConfig`` fields over the demo's budget and crash
weighting. MPPI's temperature is in units of plan score (expected return plus the risk
term): 0.5 weighs little but the best few sequences, 2 spreads the weight wider."""


def method_settings() -> dict[str, dict[str, Any]]:
    """Each method with the demo planner's crash weighting (terminal value, risk aversion and
    floor), ready for ``planner_risk.measure``."""
    demo = driving_demo_planner()
    weighting = {
        "terminal_value": demo.terminal_value,
        "risk_aversion": demo.risk_aversion,
        "risk_floor": demo.risk_floor,
    }
    return {name: {**weighting, **fields} for name, fields in METHODS.items()}


def with_paired_gains(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with its gain over the ``BASELINE`` row on the same starts (none on that row)."""
    baseline = next(r for r in rows if r["setting"] == BASELINE)
    return [
        {
            **row,
            "gain_over_cem": None
            if row is baseline
            else paired_gain(row["returns"], baseline["returns"]),
        }
        for row in rows
    ]


def main() -> None:
    """Drive every method on the fresh starts; write experiments/results/planner_methods.json."""
    args, seeds = fresh_start_arguments(__doc__.splitlines()[0])
    rows = with_paired_gains(measure(args.latent_checkpoint, method_settings(), seeds))
    path = write_result(
        "planner_methods",
        {
            "latent_checkpoint": args.latent_checkpoint,
            "latent_weights_sha256": world_models.weights_sha256(args.latent_checkpoint),
            "budget": {k: v for k, v in demo_budget().items() if k != "method"},
            "seeds": [seeds[0], seeds[-1]],
            "episodes": args.episodes,
            "methods": rows,
        },
    )
    for r in rows:
        gain = r["gain_over_cem"]
        versus = "" if gain is None else f", {gain['mean']:+.2f} ± {gain['sem']:.2f} over CEM"
        print(
            f"{r['setting']:24s} return {r['mean_return']:.2f} ± {r['return_sem']:.2f}, "
            f"{r['crashes']} of {args.episodes} crash, {r['latency_ms_mean']:.1f} ms{versus}"
        )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
