"""How much of the policy ranking is the world model's dice? The ranking report's matched
starts, each imagined several times with different seeds: the ranking metrics of every single
imagined draw (what one report run measures) and of their mean per start (a lower-noise
estimate of what the model really predicts).

    python -m experiments.bench.ranking_noise [--samples 4] [--termination never]
        [--checkpoint driving] [--temperature 1.0] [--decode-rounds N] [--episodes 16]
        [--end-reading drawn] [--salient-priority P] [--name ranking_noise]

With ``--termination never`` every imagined return is an expected return under the
termination head (see ``experiments.rank_policies.run_wfm_episodes``), so the spread left is
the frames' draws and the policies' own randomness.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from experiments.bench.common import write_result
from experiments.rank_policies import (
    RankConfig,
    imagined_starts,
    matched_starts,
    run_episode,
    run_wfm_episodes,
    task_vector_env,
)
from experiments.tasks import get_task
from wfm_sim.evaluation import ranking_metrics


def measure(
    checkpoint: str,
    samples: int,
    termination: str,
    episodes: int,
    seed: int,
    warmup: int,
    temperature: float = 1.0,
    decode_rounds: int | None = None,
    end_reading: str = "drawn",
    salient_priority: float | None = None,
) -> dict[str, Any]:
    """Real returns and ``samples`` imagined returns per matched start for every zoo policy
    (frames drawn at token ``temperature``, in ``decode_rounds`` MaskGIT rounds and with
    ``salient_priority`` when given, else the checkpoint's; the termination head reading as
    ``end_reading`` says); the ranking metrics per imagined draw and of the per-start means."""
    task = get_task("driving")
    real_env = task.make_real_env()
    starts = matched_starts(real_env, seed, episodes, [task.neutral_action] * warmup)
    max_steps = task.episode_steps - warmup
    copies = imagined_starts(starts, samples)
    vector_env = task_vector_env(
        task,
        len(copies),
        max_steps,
        checkpoint=checkpoint,
        termination=termination,
        temperature=temperature,
        decode_rounds=decode_rounds,
        end_reading=end_reading,
        salient_priority=salient_priority,
        device="cpu",
    )
    real: dict[str, list[float]] = {}
    imagined: dict[str, np.ndarray] = {}
    seconds = {"real": 0.0, "wfm": 0.0}
    for policy in tqdm(task.load_zoo(), desc="real and imagined episodes"):
        began = time.perf_counter()
        real[policy.name] = [
            run_episode(real_env, policy, s, real=True, max_steps=max_steps)[0] for s in starts
        ]
        seconds["real"] += time.perf_counter() - began
        began = time.perf_counter()
        returns = run_wfm_episodes(
            vector_env, policy, copies, max_steps, task.neutral_action
        ).returns
        seconds["wfm"] += time.perf_counter() - began
        imagined[policy.name] = np.reshape(returns, (samples, len(starts)))
    real_env.close()

    def metrics(scored: dict[str, np.ndarray]) -> dict[str, Any]:
        rng = np.random.default_rng(seed)
        scores = {name: values.tolist() for name, values in scored.items()}
        return ranking_metrics(real, scores, rng, n_bootstrap=500).to_dict()

    single = [metrics({n: v[j] for n, v in imagined.items()}) for j in range(samples)]
    spread = {
        name: {
            "per_draw": [m[name]["value"] for m in single],
            "min": min(m[name]["value"] for m in single),
            "max": max(m[name]["value"] for m in single),
        }
        for name in ("spearman", "kendall", "mmrv", "regret_at_1")
    }
    return {
        "checkpoint": checkpoint,
        "termination": termination,
        "temperature": temperature,
        "decode_rounds": decode_rounds,
        "end_reading": end_reading,
        "salient_priority": salient_priority,
        "samples_per_start": samples,
        "episodes_per_policy": len(starts),
        "seeds": [s.seed for s in starts],
        "single_draw": spread,
        "mean_of_draws": metrics({n: v.mean(0) for n, v in imagined.items()}),
        "mean_returns": {
            name: {
                "real": float(np.mean(real[name])),
                "imagined": float(imagined[name].mean()),
                "imagined_per_draw": imagined[name].mean(1).tolist(),
            }
            for name in real
        },
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


def main() -> None:
    """Measure and write experiments/results/<name>.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="driving")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--termination", default="never")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=RankConfig.seed)
    parser.add_argument("--warmup", type=int, default=RankConfig.warmup_steps)
    parser.add_argument(
        "--decode-rounds", type=int, default=None, help="MaskGIT rounds (default: checkpoint's)"
    )
    parser.add_argument(
        "--end-reading",
        default="drawn",
        help="what the termination head reads: drawn, or expected (the report's)",
    )
    parser.add_argument(
        "--salient-priority",
        type=float,
        default=None,
        help="how far ahead of the road car draws are kept (default: the checkpoint's, 0)",
    )
    parser.add_argument("--name", default="ranking_noise")
    args = parser.parse_args()
    torch.set_num_threads(2)
    payload = measure(
        args.checkpoint,
        args.samples,
        args.termination,
        args.episodes,
        args.seed,
        args.warmup,
        args.temperature,
        args.decode_rounds,
        args.end_reading,
        args.salient_priority,
    )
    print(write_result(args.name, payload))
    for name in ("spearman", "mmrv"):
        draws = payload["single_draw"][name]
        print(
            f"{name}: single draws {draws['min']:.3f}..{draws['max']:.3f}, mean of "
            f"{args.samples} draws {payload['mean_of_draws'][name]['value']:.3f}"
        )


if __name__ == "__main__":
    main()
