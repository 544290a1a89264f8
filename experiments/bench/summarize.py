"""Render BENCHMARKS.md from experiments/results/*.json, so the document never drifts from
the measurements.

    python -m experiments.bench.summarize
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

import world_models
from experiments.bench.common import RESULTS_DIR
from experiments.bench.plan_label_training import MODELS as PLAN_LABEL_MODELS
from experiments.bench.rl_constant_actions import acts_like
from experiments.train_rl import RLConfig, steps_to_threshold
from wfm_sim.evaluation import rank_violations, share_with_ci
from wfm_sim.io import atomic_path
from wfm_sim.training.latent_world_model import training_chain

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / name
    return json.loads(path.read_text()) if path.exists() else None


def _not_measured(command: str, note: str = "") -> list[str]:
    """A section's one line while its results are missing: the command that measures them
    (and, in parentheses, ``note``)."""
    return [f"Not measured yet: run `{command}`" + (f" ({note})" if note else "") + "."]


def _machine(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    return (
        f"_{m.get('cpus')} CPUs, torch {m.get('torch')} ({m.get('torch_threads')} threads), "
        f"CUDA {'yes' if m.get('cuda') else 'no'}; commit {m.get('commit')}, {m.get('date')}._"
    )


def _ranking_section(
    folder: str = "ranking", command: str = "python -m experiments.rank_policies"
) -> list[str]:
    result = _load(f"{folder}/metrics.json")
    if result is None:
        return _not_measured(command)
    aims = {"spearman": ("≥ 0.9", lambda v: v >= 0.9), "mmrv": ("≤ 0.05", lambda v: v <= 0.05)}
    perfect = {"spearman": 1, "kendall": 1, "pearson": 1, "mmrv": 0, "regret_at_1": 0}
    lines = [
        f"{len(result['policies'])} policies × {result['extra']['episodes_per_policy']} matched "
        f"episodes (`{command}`, report in `experiments/results/{folder}/report.md`).",
        "",
        "| metric | value | 95% bootstrap CI | perfect | aim | met |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in result["metrics"].items():
        aim, met = aims.get(name, ("", None))
        verdict = "" if met is None else ("yes" if met(m["value"]) else "**no**")
        lines.append(
            f"| {name} | {m['value']:.3f} | [{m['low']:.3f}, {m['high']:.3f}] | "
            f"{perfect.get(name, '')} | {aim} | {verdict} |"
        )
    lines += ["", _mmrv_makers(result["policies"])]
    seconds = result["extra"]["evaluation_seconds"]
    batch = result["extra"].get("wfm_batch")
    how = f" (one `WFMVectorEnv` of {batch} envs per policy)" if batch else ""
    speed = result["extra"]["steps_per_second"]
    lines += [
        "",
        f"Evaluation time: real env {seconds['real']} s ({speed['real']} steps/s), world model "
        f"{seconds['wfm']} s{how} ({speed['wfm']} steps/s).",
    ]
    return lines


def _mmrv_makers(policies: dict[str, Any]) -> str:
    """Which policies make a ranking's MMRV: each one's largest rank violation, from the
    report's per-policy means."""
    violations = rank_violations(
        {name: p["real"]["value"] for name, p in policies.items()},
        {name: p["wfm"]["value"] for name, p in policies.items()},
    )
    made = [f"`{v.policy}` {v.gap:.3f} (against `{v.against}`)" for v in violations if v.gap > 0]
    if not made:
        return "No rank violation: the world model orders every pair of policies as the real env."
    return (
        "What makes the MMRV (each policy's largest rank violation: the real return gap to the "
        "policy the world model orders it wrongly against, in units of the real returns' range; "
        f"the MMRV is their mean over the {len(policies)} policies): "
        + "; ".join(made)
        + ("; the others 0." if len(made) < len(policies) else ".")
    )


def _wide_ranking_section() -> list[str]:
    """The spine's ranking on 64 matched starts (``make rank-wide``), the report's 16 among
    them: how far the report's agreement is its few starts' luck."""
    report, wide = _load("ranking/metrics.json"), _load("ranking64/metrics.json")
    command = "make rank-wide"
    if report is None or wide is None:
        return _not_measured(command)
    first = report["extra"]["seeds"]
    if wide["extra"]["seeds"][: len(first)] != first:
        raise ValueError("ranking64's first starts must be the report's: rerun make rank-wide")
    for setting in ("end_reading", "salient_priority"):
        settings = [run["extra"].get(setting) for run in (report, wide)]
        if settings[0] != settings[1]:
            raise ValueError(
                f"the report ran with {setting} {settings[0]}, ranking64 with {settings[1]}: "
                "rerun make rank-wide"
            )
    value = {
        name: (report["metrics"][name]["value"], wide["metrics"][name]["value"])
        for name in ("spearman", "mmrv")
    }
    return [
        f"The same ranking on {wide['extra']['episodes_per_policy']} matched starts, the "
        f"report's {len(first)} first (`{command}`): Spearman ρ {value['spearman'][0]:.3f} "
        f"and MMRV {value['mmrv'][0]:.3f} on the report's starts, "
        f"{value['spearman'][1]:.3f} and {value['mmrv'][1]:.3f} on all of them. More "
        "starts measure each policy's real return more tightly, so these are the "
        "figures to judge the world model by.",
        "",
        *_ranking_section("ranking64", command),
    ]


def _salient_section() -> list[str]:
    """The ranking with car draws kept first (``salient_priority``) beside the report's
    drawing, on the report's 16 starts and on 64: what keeping an uncertain car changes."""
    command = "python -m experiments.rank_policies salient_priority=100"
    runs = {
        "the report's (by confidence)": ("ranking", "ranking64"),
        "car draws first (salient priority 100)": ("ranking_salient", "ranking64_salient"),
    }
    loaded = {
        label: (_load(f"{few}/metrics.json"), _load(f"{many}/metrics.json"))
        for label, (few, many) in runs.items()
    }
    if any(r is None for pair in loaded.values() for r in pair):
        return _not_measured(f"{command} out_dir=experiments/results/ranking_salient")
    seeds = {label: [r["extra"]["seeds"] for r in pair] for label, pair in loaded.items()}
    if len({str(s) for s in seeds.values()}) != 1:
        raise ValueError("the salient rankings must use the report's and rank-wide's starts")
    lines = [
        f"Car draws kept first (`{command} out_dir=experiments/results/ranking_salient`, and "
        "the same with `episodes=64 out_dir=experiments/results/ranking64_salient`): each "
        "MaskGIT round keeps the draws of tokens that show cars (each token's salience, its "
        "share of patches holding a car, `python -m experiments.code_salience`) before surer "
        "ones, so a car whose next position is uncertain is not lost to the road. The starts, "
        "draws and heads are the report's.",
        "",
        "| drawing | 16 starts: Spearman ρ / MMRV | 64 starts: Spearman ρ / MMRV | 64 starts: "
        "Pearson r | 64 starts: `always_faster` imagined (real) |",
        "|---|---|---|---|---|",
    ]
    for label, (few, many) in loaded.items():
        m16, m64 = few["metrics"], many["metrics"]
        fast = many["policies"]["always_faster"]
        lines.append(
            f"| {label} | {m16['spearman']['value']:.3f} / {m16['mmrv']['value']:.3f} | "
            f"{m64['spearman']['value']:.3f} / {m64['mmrv']['value']:.3f} | "
            f"{m64['pearson']['value']:.3f} | {fast['wfm']['value']:.2f} "
            f"({fast['real']['value']:.2f}) |"
        )
    salient = loaded["car draws first (salient priority 100)"][1]
    return [*lines, "", "On 64 starts with car draws first. " + _mmrv_makers(salient["policies"])]


def _diagnosis_section(name: str = "ranking_diagnosis") -> list[str]:
    r = _load(f"{name}.json")
    if r is None:
        return _not_measured("python -m experiments.bench.ranking_diagnosis")
    command = "python -m experiments.bench.ranking_diagnosis"
    lines = [
        f"Where the ranking goes wrong (`{command}`, the report's matched starts and settings: "
        f"{r['episodes_per_policy']} episodes per policy, token temperature "
        f"{r['temperature']:g}{_salient(r)}, the end head reading the {r['end_reading']} next "
        f"frame, {r['wfm_samples_per_start']} imagined episodes per start). Closed-loop: the "
        "ranking "
        "above, where the policy acts on imagined frames. Open-loop: the model imagines each "
        "episode under the real actions (its most likely frames). Teacher-forced: the heads "
        "score each real step from real frames. Teacher-forced and open-loop stop where the "
        "real episode stopped, so the length-only row (real steps as the score) is their "
        "floor. Ends early: the share of real episodes that crash before the time limit, and "
        "the termination head's probability that the closed-loop imagined episode has ended "
        "by then. Action agreement: how often a policy picks the same action on the imagined "
        "frame as on the real one (same random draws); on reconstructions: the same on the "
        "tokenizer's reconstruction of the real frame, the ceiling of the former.",
        "",
        "| scored by | Spearman ρ | MMRV |",
        "|---|---|---|",
    ]
    rows = [
        ("world model, closed-loop (the ranking)", r["metrics"]["closed_loop"]),
        ("world model, open-loop under real actions", r["metrics"]["open_loop"]),
        ("world model heads, teacher-forced on real frames", r["metrics"]["teacher_forced"]),
        ("real episode length alone", r["metrics"]["length_only"]),
    ]
    for label, m in rows:
        lines.append(f"| {label} | {m['spearman']['value']:.3f} | {m['mmrv']['value']:.3f} |")
    lines += ["", _recalibration_sentence(r["end_recalibration"])]
    kept = [m.get("car_pixels_kept", {}) for m in r["mean_returns"].values()]
    temperatures = list(kept[0]) if kept and all(k.keys() == kept[0].keys() for k in kept) else []
    measured_crashes = all("crashes_caught" in m for m in r["mean_returns"].values())
    caught = temperatures if measured_crashes else []
    measured_one_step = all("car_pixels_kept_one_step" in m for m in r["mean_returns"].values())
    one_step = temperatures if measured_one_step else []
    if temperatures:
        lines += [
            "",
            "Car pixels kept: along the same real action sequences, imagined at each token "
            f"temperature (the report draws at {r['temperature']:g}), the other cars' pixels in "
            "the imagined frames over those in the real frames of the same steps; below 1 the "
            "imagined road empties, and fewer cars mean fewer imagined crashes. One step from "
            "real frames: the same with every next frame drawn from the real frames before it "
            "(what is lost in one step, not as the imagined frames drift). Crashes caught: "
            "over the real episodes that ended in a crash, the mean probability that the "
            "episode imagined under the same actions has ended by one step after the real "
            "crash (1: every crash imagined).",
        ]
    lines += [
        "",
        "| policy | real return | closed-loop | open-loop | teacher-forced | ends early: real "
        "| ends early: imagined | action agreement | on reconstructions |"
        + "".join(f" car pixels kept at {t} |" for t in temperatures)
        + "".join(f" one step from real frames at {t} |" for t in one_step)
        + "".join(f" crashes caught at {t} |" for t in caught),
        "|---|---|---|---|---|---|---|---|---|"
        + "---|" * (len(temperatures) + len(one_step) + len(caught)),
    ]
    for policy, m in sorted(r["mean_returns"].items(), key=lambda kv: -kv[1]["real"]):
        ends = m["ends_before_time_limit"]
        lines.append(
            f"| {policy} | {m['real']:.2f} | {m['closed_loop']:.2f} | {m['open_loop']:.2f} | "
            f"{m['teacher_forced']:.2f} | {ends['real']:.2f} | {ends['imagined']:.2f} | "
            f"{m['action_agreement']:.2f} | {m['reconstruction_agreement']:.2f} |"
            + "".join(f" {m['car_pixels_kept'][t]:.2f} |" for t in temperatures)
            + "".join(f" {m['car_pixels_kept_one_step'][t]:.2f} |" for t in one_step)
            + "".join(f" {_share(m['crashes_caught'][t])} |" for t in caught)
        )
    return [*lines, "", _machine(r), *_tried_models_cars_kept(r)]


def _crash_frames_section() -> list[str]:
    """Whether the driving world model can show a crash (crash_frames.json)."""
    command = "python -m experiments.bench.crash_frames --footage data/footage/salience"
    r = _load("crash_frames.json")
    if r is None:
        return _not_measured(command, "after recording the model card's salience footage")
    drawn = ", ".join(f"{v:.0%} at {t}" for t, v in r["kept_one_step"].items())
    ends = sorted(set(r["end_probability"].values()))
    end_text = (
        f"{ends[0]:.2f} at every temperature"
        if len(ends) == 1
        else ", ".join(f"{v:.2f} at {t}" for t, v in r["end_probability"].items())
    )
    verdict = (
        " The tokenizer cannot code a crashed car's red, so no imagined frame shows a crash."
        if r["kept_by_tokenizer"] < 0.05
        else ""
    )
    return [
        f"Crash frames (`{command}`): highway-env paints both cars of a collision red in the "
        f"frame that ends the episode. Over the {r['crash_frames']} crash frames of "
        f"`{r['footage']}` ({r['crashed_car_pixels']:,} red pixels), the tokenizer's "
        f"reconstruction keeps {r['kept_by_tokenizer']:.0%} of that red and the world model's "
        f"one-step draw from the real frames before the crash {drawn}.{verdict} Its "
        f"termination head, reading the {r['end_reading']} next frame, gives those steps a mean "
        f"end probability of {end_text}.",
        "",
        _machine(r),
    ]


def _recalibration_sentence(bound: dict[str, Any]) -> str:
    """What the best recalibration of the termination head does to the closed-loop ranking."""
    best, unchanged = bound["best"], bound["unchanged"]
    return (
        "Recalibrating the termination head: each imagined step's end probability with its "
        "logit stretched by a slope around a centre, the closed-loop returns re-weighted. The "
        f"best of {bound['recalibrations_tried']} (slope {best['slope']:g}, centre "
        f"{best['centre']:g}), chosen on these very episodes, so an optimistic bound on any "
        f"recalibration, ranks at Spearman ρ {best['spearman']:.3f} / MMRV {best['mmrv']:.3f}, "
        f"against {unchanged['spearman']:.3f} / {unchanged['mmrv']:.3f} unchanged."
    )


def _salient(run: dict[str, Any]) -> str:
    """ ", car draws first (salient priority P)" for a run drawn with one, else nothing."""
    priority = run.get("salient_priority")
    return f", car draws first (salient priority {priority:g})" if priority else ""


def _end_reading(run: dict[str, Any]) -> str:
    """What a measured run's termination head read; runs from before results recorded it all
    read the drawn frame, the only reading then."""
    return str(run.get("end_reading", "drawn"))


def _return_or_dash(value: float | None) -> str:
    """A return to two decimals, or '-' where a run has none (too short to finish an
    episode)."""
    return "-" if value is None else f"{value:.2f}"


def _share(value: float | None) -> str:
    """A share to two decimals, or a dash where there is none (no crash to catch)."""
    return "–" if value is None else f"{value:.2f}"


def _tried_models_cars_kept(committed: dict[str, Any]) -> list[str]:
    """Car pixels kept at the report's temperature by the driving models that were tried and
    measured with ``ranking_diagnosis --checkpoint ... --name ranking_diagnosis_<run>``."""
    tried = [
        json.loads(p.read_text()) for p in sorted(RESULTS_DIR.glob("ranking_diagnosis_*.json"))
    ]
    tried = [r for r in tried if r["task"] == "driving"]
    if not tried:
        return []
    policies = sorted(
        committed["mean_returns"], key=lambda p: -committed["mean_returns"][p]["real"]
    )

    def kept(r: dict[str, Any], policy: str) -> str:
        measured = r["mean_returns"].get(policy, {})
        cars = _share(measured.get("car_pixels_kept", {}).get("0.4"))
        if "crashes_caught" not in measured:
            return cars
        return f"{cars} / {_share(measured['crashes_caught'].get('0.4'))}"

    lines = [
        "",
        "Car pixels kept at temperature 0.4 by models tried and not adopted (same starts and "
        "action sequences; the committed model's column as above), and where measured, after a "
        "slash, crashes caught at 0.4 with the end head reading the frame each header names:",
        "",
        f"| policy | committed ({_end_reading(committed)} end) |"
        + "".join(f" `{r['checkpoint']}` ({_end_reading(r)} end) |" for r in tried),
        "|---|---|" + "---|" * len(tried),
    ]
    for policy in policies:
        lines.append(
            f"| {policy} | {kept(committed, policy)} |"
            + "".join(f" {kept(r, policy)} |" for r in tried)
        )
    lines.append(
        "| open-loop Spearman ρ / MMRV | "
        + " | ".join(
            f"{r['metrics']['open_loop']['spearman']['value']:.3f} / "
            f"{r['metrics']['open_loop']['mmrv']['value']:.3f}"
            for r in [committed, *tried]
        )
        + " |"
    )
    return lines


def _noise_section() -> list[str]:
    """How much of the ranking is the world model's randomness (``ranking_noise`` results:
    the committed checkpoint, and any tried variant, temperature or set of starts written
    under another name)."""
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS_DIR.glob("ranking_noise*.json"))]
    if not runs:
        return _not_measured("python -m experiments.bench.ranking_noise")
    first = runs[0]
    report = _load("ranking/metrics.json")
    report_starts = (
        f"Starts from seed {report['extra']['seeds'][0]} are the ranking report's; other first "
        "seeds are fresh starts."
        if report
        else ""
    )
    lines = [
        "How much of that is the world model's dice (`python -m experiments.bench.ranking_noise`"
        f"): {first['episodes_per_policy']} matched starts, each imagined "
        f"{first['samples_per_start']} times with different seeds. A single draw is what one "
        "report run measures; the mean of the draws per start is a lower-noise estimate of what "
        "the model predicts (termination `never`: expected returns under the termination head). "
        + report_starts,
        "",
        "| run | checkpoint at commit | temperature | end head reads | first seed | single draws: "
        "Spearman ρ | single draws: MMRV | mean of draws: Spearman ρ [95% CI] | mean of draws: "
        "MMRV | WFM time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        single, mean = r["single_draw"], r["mean_of_draws"]
        lines.append(
            f"| {_noise_run_label(r)} | `{r['checkpoint']}` at {r['machine'].get('commit', '?')} | "
            f"{r.get('temperature', 1.0):g}"
            + (f", {r['decode_rounds']} rounds" if r.get("decode_rounds") else "")
            + _salient(r)
            + f" | {_end_reading(r)} frame | {r['seeds'][0]} | "
            f"{single['spearman']['min']:.3f}–{single['spearman']['max']:.3f} | "
            f"{single['mmrv']['min']:.3f}–{single['mmrv']['max']:.3f} | "
            f"{mean['spearman']['value']:.3f} [{mean['spearman']['low']:.2f}, "
            f"{mean['spearman']['high']:.2f}] | {mean['mmrv']['value']:.3f} | "
            f"{r['seconds']['wfm']} s |"
        )
    same_starts = [r for r in runs if r["seeds"] == first["seeds"]]
    lines += [
        "",
        "| policy | real return | "
        + " | ".join(f"imagined ({_noise_run_label(r)})" for r in same_starts)
        + " |",
        "|---|---|" + "---|" * len(same_starts),
    ]
    results = [r["mean_returns"] for r in same_starts]
    for policy, m in sorted(results[0].items(), key=lambda kv: -kv[1]["real"]):
        cells = " | ".join(f"{r[policy]['imagined']:.2f}" for r in results)
        lines.append(f"| {policy} | {m['real']:.2f} | {cells} |")
    return [*lines, "", _machine(first)]


def _noise_run_label(run: dict[str, Any]) -> str:
    """A noise run's result name without the common prefix ("default" for the run written
    under the plain name)."""
    label = str(run["benchmark"]).removeprefix("ranking_noise").lstrip("_")
    return f"`{label}`" if label else "default"


def _quality_section(
    name: str = "world_model_quality",
    command: str = "python -m experiments.bench.world_model_quality",
    reward_range: str = "in [0, 1]",
) -> list[str]:
    r = _load(f"{name}.json")
    if r is None:
        return _not_measured(command)
    ends = (
        f"termination head accuracy {r['end_accuracy']:.3f}, recall {r['end_recall']:.3f}, "
        f"precision {r['end_precision']:.3f}; calibration: mean predicted end probability "
        f"{r['end_mean_probability']:.3f} against a true end rate of {r['end_rate']:.3f} "
        f"(Brier {r['end_brier']:.3f})."
        if r["end_rate"] > 0
        else f"no episode ends before its time limit; mean predicted end probability "
        f"{r['end_mean_probability']:.4f}."
    )
    return [
        f"Held-out footage, {r['transitions']} transitions, {r['rollout_episodes']} episodes "
        f"of ≥ 16 steps (`{command}`).",
        "",
        "| PSNR (dB) | world model | copy last frame |",
        "|---|---|---|",
        f"| next frame | {r['next_frame_psnr']:.2f} | {r['next_frame_psnr_copy_last']:.2f} |",
        f"| 16-step rollout, mean over steps | {r['rollout16_psnr_mean']:.2f} | "
        f"{r['rollout16_psnr_mean_copy_last']:.2f} |",
        f"| 16-step rollout, step 16 | {r['rollout16_psnr_last']:.2f} | "
        f"{r['rollout16_psnr_last_copy_last']:.2f} |",
        f"| tokenizer reconstruction (ceiling) | {r['tokenizer_psnr']:.2f} | |",
        "",
        f"Reward head MAE {r['reward_mae']:.3f} (per-step reward {reward_range}); {ends}",
        "",
        _machine(r),
    ]


FAMILY_CHECKPOINT = "runs/world_model/driving_family/checkpoint"
"""The driving world model trained on the tokenizer family's dv_1x4x4 (not committed)."""


def _family_model_section() -> list[str]:
    """Held-out quality and ranking of the driving model that codes frames with the family's
    dv_1x4x4 tokenizer; empty until ``world_model_quality_family.json`` exists."""
    if _load("world_model_quality_family.json") is None:
        return []
    quality = (
        "python -m experiments.bench.world_model_quality "
        f"--checkpoint {FAMILY_CHECKPOINT} --name world_model_quality_family"
    )
    ranking = (
        f"python -m experiments.rank_policies checkpoint={FAMILY_CHECKPOINT} "
        "out_dir=experiments/results/ranking_family"
    )
    return [
        "## Driving world model on the tokenizer family's dv_1x4x4 (not committed)",
        "",
        "The same footage, split and dynamics as the committed model, with frames coded by "
        "`runs/tokenizer/dv_1x4x4` (trained on the curated shards) instead of the model's own "
        "frame tokenizer; the training run writes its commands and its imagined-crash AUC into "
        "the checkpoint's `MODEL_CARD.md`.",
        "",
        *_quality_section("world_model_quality_family", quality),
        "",
        *_ranking_section("ranking_family", ranking),
        "",
    ]


def _speed_section() -> list[str]:
    r = _load("env_speed.json")
    if r is None:
        return _not_measured("python -m experiments.bench.env_speed")
    s = r["steps_per_second"]
    return [
        "Steps per second, one run on one machine (`python -m experiments.bench.env_speed`).",
        "",
        "| env | steps/s | vs real |",
        "|---|---|---|",
        f"| real highway-fast-v0, rendering 64×64 frames | {s['real_highway_fast_rendered']} | 1× |",
        f"| WFM-Driving-v0 (`gym.make`, batch 1) | {s['wfm_batch1_gym']} | "
        f"{r['speedup_vs_real']['batch1']}× |",
        f"| world-model core, batch 64 | {s['wfm_batch64_core']} | "
        f"{r['speedup_vs_real']['batch64']}× |",
        "",
        _machine(r),
    ]


_RL_RUNS = {
    "wfm_ppo": "PPO in the world model (learned reward)",
    "wfm_dqn": "DQN in the world model (learned reward)",
    "real_ppo": "PPO in the real {sim}, from scratch",
    "real_ppo_from_wfm_policy": "PPO in the real env, from the world-model PPO policy",
    "real_ppo_from_wfm_encoder": "PPO in the real env, on the world model's frozen encoder",
}


def _rl_section(
    folder: str = "rl",
    config_name: str = "train_rl",
    real_sim: str = "highway-env",
    constant_actions: bool = True,
) -> list[str]:
    """The RL runs in ``folder`` (trained in ``real_sim`` and in its world model), and with
    ``constant_actions`` which of them act like one constant action on the evaluation starts
    (measured for driving only)."""
    runs = {name: _load(f"{folder}/{name}.json") for name in _RL_RUNS}
    command = f"python -m experiments.train_rl --config-name {config_name}"
    if not any(runs.values()):
        return _not_measured(f"{command} env=wfm", "and `env=real`")
    figures = f"`experiments/results/{folder}/learning_curves.png`" + (
        " and `policy_init.png`" if (RESULTS_DIR / folder / "policy_init.png").exists() else ""
    )
    lines = [
        "SB3 on 64×64 frames, the same number of env steps in each, then evaluated zero-shot in "
        f"the real {real_sim}, deterministic (`{command} env=wfm|real "
        "algorithm=ppo|dqn init=scratch|wfm_policy|wfm_encoder`; curves in "
        f"{figures}). Real "
        "interactions count the world model's footage for every run that uses it. Aim: ≥ 90% "
        "of the real-trained return with ≤ 10% of its real interactions.",
        "",
        "| run | env steps | real interactions used | real steps to training return "
        "≥ threshold | wall-clock | real return (mean) |",
        "|---|---|---|---|---|---|",
    ]
    threshold = next(
        (r["return_threshold"] for r in runs.values() if r and "return_threshold" in r),
        RLConfig.return_threshold,
    )
    for name, r in runs.items():
        if r is None:
            continue
        reached = "–"
        if r["env"] == "real":
            steps = steps_to_threshold(r["curve"], threshold)
            reached = f"{steps:,} (≥ {threshold:g})" if steps else "not reached"
        lines.append(
            f"| {_RL_RUNS[name].format(sim=real_sim)} | {r['total_steps']:,} | {r['real_interactions']:,} | "
            f"{reached} | {r['train_seconds']} s | "
            f"{r['real_return_mean']:.2f} over {len(r['real_returns'])} episodes |"
        )
    real = runs["real_ppo"]
    for name in ("wfm_ppo", "wfm_dqn"):
        run = runs[name]
        if run and real and real["real_return_mean"] > 0:
            share = run["real_return_mean"] / real["real_return_mean"]
            used = run["real_interactions"] / real["real_interactions"]
            lines += [
                "",
                f"{_RL_RUNS[name].format(sim=real_sim)}: {100 * share:.0f}% of the real-trained return, with "
                f"{100 * used:.0f}% of its real interactions (the world model's footage).",
            ]
        elif run and real:
            used = run["real_interactions"] / real["real_interactions"]
            lines += [
                "",
                f"{_RL_RUNS[name].format(sim=real_sim)}: real return {run['real_return_mean']:.2f} against "
                f"{real['real_return_mean']:.2f} for the real-trained run (returns are "
                f"negative, so no percentage), with {100 * used:.0f}% of its real interactions.",
            ]
    if constant_actions:
        labels = {_RL_RUNS[name].format(sim=real_sim): run for name, run in runs.items()}
        lines += _constant_action_lines(labels)
    first = next(r for r in runs.values() if r is not None)
    return [*lines, "", _machine(first)]


def _acted_like(run: Mapping[str, Any], constant: Mapping[str, Any]) -> str | None:
    """The constant action whose return an RL run's equals on every one of the constant-action
    bench's starts (``acts_like``), or None; None too for a run evaluated on other starts."""
    seed = run.get("config", {}).get("eval_seed", constant["eval_seed"])
    if seed != constant["eval_seed"]:
        return None
    return acts_like(run["real_returns"], constant["returns"])


def _constant_action_lines(runs: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """The constant actions' returns on the RL evaluation starts, and which runs return
    exactly what one of them does there (they act like it on those starts)."""
    constant = _load("rl_constant_actions.json")
    if constant is None:
        return []
    means = ", ".join(
        f"{name} {mean:.2f}"
        for name, mean in sorted(constant["mean_returns"].items(), key=lambda kv: -kv[1])
    )
    alike: dict[str, list[str]] = {}
    for label, run in runs.items():
        action = None if run is None else _acted_like(run, constant)
        if action is not None:
            alike.setdefault(action, []).append(label)
    lines = [
        "",
        f"Each constant action on the same {constant['episodes']} real starts "
        f"(`python -m experiments.bench.rl_constant_actions`): {means}.",
    ]
    for action, labels in alike.items():
        lines[-1] += (
            f" Returning exactly what constant {action} does on every start, so acting like it "
            f"there: {'; '.join(labels)}."
        )
    return lines


def _rl_seed_runs() -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """(PPO in the real env, PPO in the world model) for each PPO seed that has both: seed 0
    is ``_rl_section``'s pair, the others ``rl_seeds/seed_<s>/``'s."""
    folders = {0: "rl"} | {
        int(folder.name.removeprefix("seed_")): f"rl_seeds/{folder.name}"
        for folder in (RESULTS_DIR / "rl_seeds").glob("seed_*")
    }
    runs = {}
    for seed, folder in sorted(folders.items()):
        real, wfm = _load(f"{folder}/real_ppo.json"), _load(f"{folder}/wfm_ppo.json")
        if real is not None and wfm is not None:
            runs[seed] = (real, wfm)
    return runs


def _return_cell(run: Mapping[str, Any], constant: Mapping[str, Any] | None) -> str:
    """A run's mean real return, and the constant action whose return it equals on every
    evaluation start, if any (as ``_constant_action_lines`` names them)."""
    cell = f"{run['real_return_mean']:.2f}"
    action = None if constant is None else _acted_like(run, constant)
    return cell if action is None else f"{cell} (like {action})"


def _rl_seeds_section() -> list[str]:
    """PPO in the real env and in the committed world model, the same runs with each PPO
    seed: how much of ``_rl_section``'s comparison is the seed's."""
    runs = _rl_seed_runs()
    if len(runs) < 2:
        return _not_measured("make rl", "its PPO seeds 1 and 2 write experiments/results/rl_seeds/")
    constant = _load("rl_constant_actions.json")
    lines = [
        "The two PPO runs above (seed 0) with other PPO seeds, all else the same (`python -m "
        "experiments.train_rl env=real|wfm seed=S out_dir=experiments/results/rl_seeds/seed_S`, "
        "run by `make rl`; curves in `experiments/results/rl_seeds/seed_S/learning_curves.png`). "
        "In brackets, the constant action whose return a run's equals on every evaluation start.",
        "",
        "| PPO seed | PPO in the real highway-env | PPO in the world model | of the real-trained "
        "return | wall-clock (real / world model) | commit (real / world model) |",
        "|---|---|---|---|---|---|",
    ]
    for seed, (real, wfm) in runs.items():
        share = wfm["real_return_mean"] / real["real_return_mean"]
        lines.append(
            f"| {seed} | {_return_cell(real, constant)} | {_return_cell(wfm, constant)} | "
            f"{100 * share:.0f}% | {real['train_seconds']} s / {wfm['train_seconds']} s | "
            f"{real['machine']['commit']} / {wfm['machine']['commit']} |"
        )
    real_mean = float(np.mean([real["real_return_mean"] for real, _ in runs.values()]))
    wfm_mean = float(np.mean([wfm["real_return_mean"] for _, wfm in runs.values()]))
    return [
        *lines,
        "",
        f"Mean over the {len(runs)} seeds: {real_mean:.2f} in the real env, {wfm_mean:.2f} in "
        f"the world model ({100 * wfm_mean / real_mean:.0f}%). Wall-clocks come from different "
        "days' runs and vary with the machine's load.",
        "",
        _machine(max((run for pair in runs.values() for run in pair), key=_measured_on)),
    ]


def _measured_on(run: Mapping[str, Any]) -> str:
    """When a result was measured (its machine line's date), for picking the newest."""
    return str(run["machine"].get("date", ""))


def _rl_small_footage_section() -> list[str]:
    """PPO in a world model trained on a tenth of the real run's interactions, against the
    real-trained run of ``_rl_section``."""
    small, real = _load("rl_small_footage/wfm_ppo.json"), _load("rl/real_ppo.json")
    if small is None or real is None:
        return _not_measured("make rl-small-footage", "and `make rl` for the real run")
    used = small["real_interactions"] / real["real_interactions"]
    share = small["real_return_mean"] / real["real_return_mean"]
    return [
        "The same PPO run in a world model trained from scratch on the first 110 footage "
        f"episodes alone ({small['real_interactions']:,} frames, starts included; `make "
        "rl-small-footage`: tokenizer 1,500, dynamics 3,000 and unrolled fine-tune 400 steps, "
        "then dynamics 1,000 and fine-tune 200 more with 30% of each batch from windows that "
        "hold a crash, and 500 steps of the heads on its own imagined episodes), evaluated "
        "zero-shot in the real highway-env on the same starts:",
        "",
        "| run | env steps | real interactions used | wall-clock | real return (mean) |",
        "|---|---|---|---|---|",
        f"| PPO in the small-footage world model | {small['total_steps']:,} | "
        f"{small['real_interactions']:,} ({100 * used:.1f}% of the real run's) | "
        f"{small['train_seconds']} s | {small['real_return_mean']:.2f} over "
        f"{len(small['real_returns'])} episodes |",
        f"| PPO in the real highway-env, from scratch | {real['total_steps']:,} | "
        f"{real['real_interactions']:,} | {real['train_seconds']} s | "
        f"{real['real_return_mean']:.2f} over {len(real['real_returns'])} episodes |",
        "",
        f"{100 * share:.0f}% of the real-trained return with {100 * used:.1f}% of its real "
        "interactions (aim: ≥ 90% with ≤ 10%). Not counted on either side: the real steps "
        "that trained the zoo policies among the footage's drivers.",
        *_constant_action_lines({"PPO in the small-footage world model": small}),
        "",
        _machine(small),
    ]


def _steps(count: int | None) -> str:
    """A step count of a Dyna round's training, or what None there means."""
    return "its own" if count is None else f"{count:,}"


def _rl_dyna_section() -> list[str]:
    """The Dyna loop's rounds for each PPO seed (``experiments.dyna_rl``): real return against
    the real frames used so far, weighed against the real-trained run of ``_rl_section``."""
    dyna, real = _load("rl_dyna/metrics.json"), _load("rl/real_ppo.json")
    if dyna is None or real is None:
        return _not_measured("make rl-dyna", "and `make rl` for the real run")
    config = dyna["config"]
    return [
        f"PPO ({config['rl']['total_steps']:,} steps a round) starts in a world model made "
        "as the one above from the first 80 footage episodes alone (round 0: none of the "
        f"policy's own episodes yet). After each round the policy drives "
        f"{config['episodes_per_round']} real episodes (actions sampled), the model trains on "
        "from the previous round's on the footage plus every round's episodes (its starting "
        f"model's last run again, with {_steps(config['dynamics_steps'])} dynamics and "
        f"{_steps(config['finetune_steps'])} fine-tune steps), and PPO goes on from where it "
        f"was, for at most {config['rounds']} rounds while a round's episodes, even at full "
        f"length, fit the {config['frame_budget']:,}-frame budget (`make rl-dyna`). Each PPO "
        "seed runs the whole loop with its own episodes and models. Real frames counted: the "
        "footage, held-out episodes included, and the seed's rounds' episodes.",
        "",
        *_dyna_rounds_lines(dyna, real),
    ]


def _rl_dyna_fresh_section() -> list[str]:
    """The Dyna loop with PPO started afresh in each round's model (``policy_each_round=
    fresh``), round by round as ``_rl_dyna_section``'s."""
    fresh, real = _load("rl_dyna_fresh/metrics.json"), _load("rl/real_ppo.json")
    if fresh is None or real is None:
        return _not_measured("make rl-dyna-fresh", "and `make rl` for the real run")
    return [
        "The same loop from the same starting model and budget, but PPO starts from scratch "
        "in each round's model (`policy_each_round=fresh`, `make rl-dyna-fresh`, run for the "
        "PPO seed whose policy above stayed at FASTER): the previous round's policy only "
        "drives that round's real episodes. A policy that collapsed onto an action the "
        "starting model over-rates is then not carried into a model that has seen that action "
        "fail.",
        "",
        *_dyna_rounds_lines(fresh, real),
        *_dyna_imagined_actions_lines(),
    ]


def _rl_select_section() -> list[str]:
    """PPO candidates in the Dyna loop's starting model, one kept per selection on a few
    counted real episodes (``experiments.rl_select``): every candidate's returns, the kept
    one's share of the real-trained return and the real frames each selection used."""
    select, real = _load("rl_select/metrics.json"), _load("rl/real_ppo.json")
    if select is None or real is None:
        return _not_measured("make rl-select", "and `make rl` for the real run")
    config = select["config"]
    lines = [
        f"{config['candidates']} PPO runs ({config['rl']['total_steps']:,} steps each, "
        "different seeds) train in the Dyna loop's starting model (footage of the first 80 "
        f"episodes alone); each then drives {config['episodes_per_candidate']} real episodes "
        "with the actions it would be deployed with (deterministic), from the same starts for "
        "every candidate of a selection, and the candidate whose episodes returned most is "
        "kept (`make rl-select`). Those choosing episodes count as real frames beside the "
        "footage; the evaluation below (the real return, as in every RL table) runs on other "
        "starts and counts for nothing. Each selection trains its own PPO seeds.",
        "",
        "| selection | PPO seed | choosing return (mean) | real return (mean) | of the "
        "real-trained return | imagined return (last 20 episodes) | PPO wall-clock | kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    finals = []
    for selection in select["selections"]:
        for candidate in selection["candidates"]:
            kept = candidate["ppo_seed"] == selection["kept_ppo_seed"]
            share = candidate["real_return_mean"] / real["real_return_mean"]
            imagined = candidate["imagined_return_last"]
            lines.append(
                f"| {selection['seed']} | {candidate['ppo_seed']} | "
                f"{candidate['choosing_return_mean']:.2f} over "
                f"{len(candidate['choosing_returns'])} episodes | "
                f"{candidate['real_return_mean']:.2f} over {len(candidate['real_returns'])} "
                f"episodes | {100 * share:.0f}% | {_return_or_dash(imagined)} | "
                f"{candidate['train_seconds']} s | {'**kept**' if kept else ''} |"
            )
        share = selection["real_return_mean"] / real["real_return_mean"]
        frames = selection["real_frames"] / real["real_interactions"]
        finals.append(
            f"selection {selection['seed']} (PPO seed {selection['kept_ppo_seed']} kept) "
            f"{100 * share:.0f}% with {selection['real_frames']:,} real frames "
            f"({100 * frames:.1f}%)"
        )
    candidates = {
        f"PPO seed {c['ppo_seed']}": c
        for selection in select["selections"]
        for c in selection["candidates"]
    }
    return [*lines, *_aim_lines("Kept policies", finals, real, candidates, select)]


def _dyna_imagined_actions_lines() -> list[str]:
    """Each constant action's imagined return in the Dyna run's models
    (``experiments.bench.dyna_imagined_actions``), the best in bold; none until measured."""
    result = _load("dyna_imagined_actions.json")
    if result is None:
        return []
    names = list(result["models"][0]["mean_returns"])
    lines = [
        "",
        f"What each constant action earns in the models PPO trained in: {result['envs']} "
        "imagined episodes a model and action from the same starts, the env's own termination "
        "draws (`python -m experiments.bench.dyna_imagined_actions`, on "
        f"`{result['dyna_results']}`); each model's best in bold.",
        "",
        f"| model | {' | '.join(names)} |",
        f"|---|{'---|' * len(names)}",
    ]
    for row in result["models"]:
        means = row["mean_returns"]
        best = max(means, key=means.get)
        cells = [f"**{means[n]:.2f}**" if n == best else f"{means[n]:.2f}" for n in names]
        lines.append(f"| {row['model']} | {' | '.join(cells)} |")
    return [*lines, "", _machine(result)]


def _dyna_rounds_lines(dyna: Mapping[str, Any], real: Mapping[str, Any]) -> list[str]:
    """A Dyna run's rounds table (each seed's real return and real frames after each round,
    against the real-trained run), each seed's last round in words, the constant action each
    round acts like, and the machine line."""
    lines = [
        "| PPO seed | round | real frames used | real return (mean) | of the real-trained "
        "return | imagined return (last 20 episodes) | PPO wall-clock |",
        "|---|---|---|---|---|---|---|",
    ]
    finals = []
    for loop in dyna["loops"]:
        for row in loop["rounds"]:
            imagined = row["imagined_return_last"]
            frames = f"{100 * row['real_frames'] / real['real_interactions']:.1f}%"
            share = f"{100 * row['real_return_mean'] / real['real_return_mean']:.0f}%"
            lines.append(
                f"| {loop['seed']} | {row['round']} | {row['real_frames']:,} ({frames}) | "
                f"{row['real_return_mean']:.2f} over {len(row['real_returns'])} episodes | "
                f"{share} | {_return_or_dash(imagined)} | "
                f"{row['train_seconds']} s |"
            )
        stopped = ", then stopped by the budget" if loop["stopped_by_budget"] else ""
        finals.append(
            f"seed {loop['seed']} {share} with {frames} after round {row['round']}{stopped}"
        )
    rounds = {
        f"seed {loop['seed']} round {r['round']}": r
        for loop in dyna["loops"]
        for r in loop["rounds"]
    }
    return [
        *lines,
        *_aim_lines(
            "After each seed's last round",
            finals,
            real,
            rounds,
            dyna,
            _same_seeds_in_the_real_env([loop["seed"] for loop in dyna["loops"]]),
        ),
    ]


def _aim_lines(
    which: str,
    finals: list[str],
    real: Mapping[str, Any],
    runs: Mapping[str, Mapping[str, Any]],
    result: dict[str, Any],
    between: list[str] | None = None,
) -> list[str]:
    """The sentence weighing ``which`` runs' ``finals`` against the real-trained run and the
    aim, ``between``, the constant action each of ``runs`` acts like on the evaluation starts
    of ``result``'s config, and the machine line."""
    eval_seed = {"eval_seed": result["config"]["rl"]["eval_seed"]}
    return [
        "",
        f"{which}, of the real-trained return ({real['real_return_mean']:.2f}) and its real "
        f"interactions: {'; '.join(finals)} (aim: ≥ 90% with ≤ 10%).",
        *(between or []),
        *_constant_action_lines(
            {label: {**run, "config": eval_seed} for label, run in runs.items()}
        ),
        "",
        _machine(result),
    ]


def _same_seeds_in_the_real_env(seeds: list[int]) -> list[str]:
    """What PPO trained in the real env returns with each of ``seeds`` (``_rl_seeds_section``),
    once every one is measured: the reference seed by seed."""
    runs = _rl_seed_runs()
    if not all(seed in runs for seed in seeds):
        return []
    returns = "; ".join(f"seed {seed} {runs[seed][0]['real_return_mean']:.2f}" for seed in seeds)
    return ["", f"PPO in the real env with the same seeds (Across PPO seeds above): {returns}."]


def _risk_words(planner: dict[str, Any]) -> str:
    """How a planner config weighs a crash beyond the return it forfeits, as a clause."""
    if not planner.get("risk_aversion"):
        return ""
    return f", risk aversion {planner['risk_aversion']:g}, floor {planner['risk_floor']:g}"


def _method_words(planner: dict[str, Any]) -> str:
    """A planner config's search method, with MPPI's temperature."""
    if planner["method"] == "mppi":
        return f"MPPI (temperature {planner['temperature']:g})"
    return str(planner["method"]).upper()


def _against_the_cem_oracle(folder: str, cem_folder: str) -> list[str]:
    """A line for an MPPI run: each model-based planner's return as a share of the CEM
    oracle's on the same starts (empty unless both runs are there and drove the same seeds)."""
    mppi, cem = _load(f"{folder}/metrics.json"), _load(f"{cem_folder}/metrics.json")
    if mppi is None or cem is None or mppi["seeds"] != cem["seeds"]:
        return []
    oracles = {run["planner"]["method"]: run["results"]["oracle_planner"] for run in (mppi, cem)}
    cem_oracle = oracles["cem"]["mean_return"]
    shares = [
        f"{label} with MPPI gets {mppi['results'][name]['mean_return'] / cem_oracle:.0%}"
        for name, label in (
            ("wfm_planner", "the world-model planner"),
            ("latent_planner", "the latent planner"),
        )
        if name in mppi["results"]
    ]
    return [
        f"On the same starts the CEM oracle returns {cem_oracle:.2f} and the MPPI one "
        f"{oracles['mppi']['mean_return']:.2f}: {', '.join(shares)} of the CEM oracle's "
        "return.",
        "",
    ]


def _planner_methods_section() -> list[str]:
    r = _load("planner_methods.json")
    command = "python -m experiments.bench.planner_methods"
    if r is None:
        return _not_measured(command)
    lines = [
        f"`{command}`: the latent planner over `{r['latent_checkpoint']}` with the demo's "
        f"budget and crash weighting, searching with each method, on the {r['episodes']} "
        f"fresh starts of the planner-risk table (seeds {r['seeds'][0]}–{r['seeds'][1]}), "
        "paired start by start against CEM. Both act on the best sequence they scored; MPPI "
        "refits each step's distribution to every sequence weighted by exp(score / "
        "temperature) instead of to the elites.",
        "",
        "| method | mean return (± s.e.) | episodes that crash | mean speed | decision latency "
        "(mean / p95) | paired gain over CEM (better / worse) |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["methods"]:
        gain = row["gain_over_cem"]
        lines.append(
            f"| {row['setting']} | {row['mean_return']:.2f} ± {row['return_sem']:.2f} | "
            f"{row['crashes']} of {r['episodes']} | {row['mean_speed_mps']:.1f} m/s | "
            f"{row['latency_ms_mean']:.1f} / {row['latency_ms_p95']:.1f} ms | "
            + (
                "–"
                if gain is None
                else f"{gain['mean']:+.2f} ± {gain['sem']:.2f} ({gain['better']} / {gain['worse']})"
            )
            + " |"
        )
    clear = [
        row["setting"]
        for row in r["methods"]
        if row["gain_over_cem"] is not None and _clear_gain(row["gain_over_cem"])
    ]
    lines += [
        "",
        f"Gaining more than two standard errors over CEM: {', '.join(clear)}."
        if clear
        else "No MPPI setting gains more than two standard errors over CEM.",
        "",
        _machine(r),
    ]
    return lines


def _mpc_section(
    folder: str = "mpc", config_name: str = "mpc_demo", overrides: str = ""
) -> list[str]:
    r = _load(f"{folder}/metrics.json")
    command = f"python -m experiments.mpc_demo --config-name {config_name}{overrides}"
    if r is None:
        return _not_measured(command)
    p = r["planner"]
    robot = r.get("task") == "robot"
    outcome = "success rate" if robot else "crash rate"
    extras = ""
    if p.get("terminal_value"):
        extras += f", terminal value {p['terminal_value']:g} for a plan still running"
    extras += _risk_words(p)
    if r.get("decode_rounds"):
        extras += f", world-model frames drawn in {r['decode_rounds']} rounds"
    if r.get("temperature", 1.0) != 1.0:
        extras += f", token temperature {r['temperature']:g}"
    lines = [
        f"{len(r['seeds'])} real episodes per controller (`{command}`); planners: "
        f"{_method_words(p)}, horizon {p['horizon']}, population {p['population']}, "
        f"{p['elites']} elites, {p['iterations']} iterations{extras}, re-planned every step. "
        "Aim: ≥ 90% of the oracle's return at ≤ 100 ms a decision.",
        "",
    ]
    speeds = all(
        {"mean_speed_mps", "mean_right_lane_term"} <= set(m) for m in r["results"].values()
    )
    driven = " mean speed | right-lane term |" if speeds else ""
    lines += [
        f"| controller | mean return | {outcome} |{driven} decision latency (mean / p95) |",
        "|---|---|---|---|" + ("---|---|" if speeds else ""),
    ]
    for name, m in r["results"].items():
        rate = m["success_rate"] if robot else m["crash_rate"]
        cells = (
            f" {m['mean_speed_mps']:.1f} m/s | {m['mean_right_lane_term']:.2f} |" if speeds else ""
        )
        lines.append(
            f"| {name} | {m['mean_return']:.2f} | {rate:.2f} |{cells} "
            f"{m['latency_ms_mean']:.1f} / {m['latency_ms_p95']:.1f} ms |"
        )
    if speeds:
        lines += [
            "",
            "Mean speed and right-lane term over every step driven: highway-env rewards speed "
            "from 20 to 30 m/s and the right-lane term (1 in the rightmost lane, 0 in the "
            "leftmost); a crash ends the episode.",
        ]
    if r.get("latent_checkpoint"):
        lines += [
            "",
            f"`latent_planner` plans over the latent world model `{r['latent_checkpoint']}` "
            "(no pixels imagined; `python -m experiments.train_latent_world_model`) with the "
            "same budget"
            + (
                "; `wfm_planner` over the pixel world model."
                if "wfm_planner" in r["results"]
                else "."
            ),
        ]
    for prefix, label in (("wfm", "World-model planner"), ("latent", "Latent world-model planner")):
        fraction = r.get(f"{prefix}_fraction_of_oracle_return")
        gain = r.get(f"{prefix}_fraction_of_oracle_gain_over_floor")
        if fraction is not None:
            lines += [
                "",
                f"{label}: {100 * fraction:.0f}% of the oracle's return{_share_words(r, prefix)}.",
            ]
        elif gain is not None:
            lines += [
                "",
                f"Returns are negative, so the share is of the oracle's gain over the "
                f"`{r['floor_policy']}` policy: the {label[0].lower() + label[1:]} gets "
                f"{100 * gain:.0f}% of it.",
            ]
    return [*lines, *_stale_latent_note(r, command), "", _machine(r)]


SHARE_INTERVAL_MIN_STARTS = 8
"""Fewer starts than this give no interval for a planner's share of the oracle's return: a
bootstrap over a handful of episodes says little."""
SHARE_CONFIDENCE = 0.95
SHARE_RESAMPLES = 10_000


def _share_words(r: dict[str, Any], prefix: str) -> str:
    """`` (95% interval over its n starts, ...: a%–b%)`` after a planner's share of the
    oracle's return, resampling the starts both drove (a fixed seed: the same run, the same
    words); empty for runs on too few starts or without each episode's return (runs from
    before they were kept)."""
    planner = r["results"][f"{prefix}_planner"].get("returns")
    oracle = r["results"]["oracle_planner"].get("returns")
    if planner is None or oracle is None or len(planner) < SHARE_INTERVAL_MIN_STARTS:
        return ""
    share = share_with_ci(
        planner, oracle, np.random.default_rng(0), SHARE_RESAMPLES, SHARE_CONFIDENCE
    )
    return (
        f" ({SHARE_CONFIDENCE:.0%} interval over its {len(planner)} starts, resampled in "
        f"pairs: {share.low:.0%}–{share.high:.0%})"
    )


def _latent_model_section(
    folder: Path = ROOT / "world_models" / "zoo" / "driving_latent",
) -> list[str]:
    if not (folder / "metrics.json").exists():
        return ["Not trained yet: run `make train-latent-world-model`."]
    m = json.loads((folder / "metrics.json").read_text())
    info = json.loads((folder / "config.json").read_text())["info"]
    steps = ", ".join(str(i + 1) for i in range(len(m["reward_mae_by_step"])))
    extra = info["frames"].get("extra", 0) + info["frames"].get("more", 0)
    runs = training_chain(info)
    steps_total = sum(run["train_config"]["steps"] for run in runs)
    made = (
        f"`make train-latent-world-model`: {steps_total:,} steps in {len(runs)} runs on {info['frames']['train']:,} frames of `make "
        f"record`'s footage" + (f" plus {extra:,} frames of more recordings" if extra else "")
    )
    return [
        f"The latent world model the `latent_planner` plans over ({made}), "
        f"on {m['windows']:,} held-out windows: open-loop from each window's real context under "
        "its real actions, no pixels imagined.",
        "",
        f"| steps ahead | {' | '.join(steps.split(', '))} |",
        f"|---|{'---|' * len(m['reward_mae_by_step'])}",
        f"| reward MAE | {' | '.join(f'{v:.3f}' for v in m['reward_mae_by_step'])} |",
        f"| end AUC | {' | '.join(f'{v:.3f}' for v in m['end_auc_by_step'])} |",
        "",
        f"End calibration over those steps: mean predicted end probability "
        f"{m['end_mean_probability']:.3f} against a true end rate of {m['end_rate']:.3f} "
        f"(Brier {m['end_brier']:.3f}).",
        "",
        _machine(m),
    ]


def _zoo_weights_since(run: dict[str, Any]) -> str | None:
    """The SHA-256 of the zoo model a run's latent planner is named after, when it differs
    from the weights the run recorded (None: the same weights, or no such zoo model)."""
    zoo_model = world_models.ZOO_DIR / str(run.get("latent_checkpoint"))
    if not (zoo_model / "config.json").exists():
        return None
    current = world_models.weights_sha256(zoo_model)
    return None if current == run.get("latent_weights_sha256") else current


def _stale_latent_note(r: dict[str, Any], command: str) -> list[str]:
    """A line under an MPC run whose latent planner planned over other weights than the zoo
    model of that name holds now (the run's recorded SHA-256 against the file's)."""
    recorded = r.get("latent_weights_sha256")
    current = _zoo_weights_since(r)
    if recorded is None or current is None:
        return []
    return [
        "",
        f"This run's `latent_planner` planned over an earlier `{r['latent_checkpoint']}` than "
        f"the zoo's now (weights SHA-256 {recorded[:12]}, the zoo's "
        f"{current[:12]}): rerun `{command}` to measure the committed one.",
    ]


def _mpc_crashes_section(folder: str = "mpc_crashes") -> list[str]:
    r = _load(f"{folder}/crashes.json")
    command = "python -m experiments.mpc_crashes"
    if r is None:
        return _not_measured(command, "`make mpc-crashes`") if folder == "mpc_crashes" else []
    if folder != "mpc_crashes":
        risk = r["planner"].get("risk_aversion", 0.0)
        command += f" planner.risk_aversion={risk:g} out_dir=experiments/results/{folder}"
    s = r["summary"]
    seeds = r["seeds"]
    intro = (
        f"`{command}`: the latent planner over `{r['latent_checkpoint']}` (the MPC demo's "
        f"budget{_risk_words(r['planner']) or ', without risk aversion'}) drives "
        f"{s['episodes']} real episodes (seeds {seeds[0]}–{seeds[-1]}; mean return "
        f"{r['mean_return']:.2f})"
    )
    if not s["crashes"]:
        return [
            f"{intro}: none of them crashes, so there is no crash to diagnose.",
            *_stale_latent_note(r, command),
            "",
            _machine(r),
        ]
    lines = [
        f"{intro}; for each crash, highway-env's ground truth names the car it hit and where "
        "that car was at each step before, beside the model's probability that the plan it "
        "chose would end in a crash.",
        "",
        "| crashes | " + " | ".join(s["by_kind"]) + " | a lane change among the last 2 actions |",
        "|---|" + "---|" * (len(s["by_kind"]) + 1),
        f"| {s['crashes']} of {s['episodes']} | "
        + " | ".join(str(v) for v in s["by_kind"].values())
        + f" | {s['lane_change_in_last_2_actions']} |",
        "",
        f"The other car was in view a median {s['steps_in_view_before_median']:g} steps before "
        "the crash; the model gave the plan it chose a median crash probability of "
        f"{s['plan_crash_probability_2_steps_before_median']:.3f} two steps before and "
        f"{s['plan_crash_probability_1_step_before_median']:.3f} one step before. "
        f"{s['foreseeable_missed']} of {s['crashes']} crashes were foreseeable and missed (the "
        "car in view for at least 2 steps, the plan rated below 0.5 two steps before)"
        + (
            f": {'all' if s['foreseeable_missed'] == s['crashes'] else 'most'} are errors of "
            "the model, not of what the 64×64 view shows."
            if 2 * s["foreseeable_missed"] > s["crashes"]
            else "; the rest came too soon after the car came into view, or were rated risky."
        )
        + f" Frames before each crash: `experiments/results/{folder}/crashes.png`.",
    ]
    return [*lines, *_stale_latent_note(r, command), "", _machine(r)]


def _plan_labels_section() -> list[str]:
    r = _load("plan_labels/metrics.json")
    command = "python -m experiments.plan_labels"
    if r is None:
        return _not_measured(command, "`make plan-labels`")
    c, labels = r["config"], r["labels"]
    lines = [
        f"`{command} models=[{','.join(c['models'])}]`: the latent planner over "
        f"`{c['latent_checkpoint']}` (the MPC demo's budget) drives {c['episodes']} real "
        f"episodes (seeds {c['seed']}–{c['seed'] + c['episodes'] - 1}); at each of its "
        f"{labels['decisions']:,} decisions its {c['best_plans']} best-rated candidate plans "
        f"and {c['random_plans']} random ones are played on clones of highway-env "
        f"({labels['plans']:,} plans, {labels['simulator_steps']:,} simulator steps; "
        f"{labels['plans_crashing']:.0%} of them crash). Each model then rates the same "
        "candidates from the same real frames, decision by decision, as the planner would "
        f"(expected return with terminal value {c['planner']['terminal_value']:g}"
        f"{_risk_words(c['planner'])}).",
        "",
        "| model | its best-rated plan crashes | … while a safe plan was on the table "
        "| crash AUC within a decision | return Spearman within a decision "
        "| regret (real return lost to its pick) |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in r["models"].items():
        auc, rho = m["crash_auc_mean"], m["return_spearman_mean"]
        lines.append(
            f"| `{name}` | {m['pick_crashes']:.0%} | "
            f"{m['pick_crashes_with_a_safe_plan_on_the_table']:.0%} | "
            f"{auc:.3f} | {rho:.3f} | {m['regret_mean']:.2f} |"
            if auc is not None and rho is not None
            else f"| `{name}` | {m['pick_crashes']:.0%} | – | – | – | {m['regret_mean']:.2f} |"
        )
    lines += [
        "",
        "A plan crashing here is not a crash of the planner: it re-plans every step and acts "
        "on the first action only. The oracle planner ranks candidates by these real returns, "
        "so its pick never crashes while a safe plan is on the table; the rows above are how "
        "far each model's ranking is from that.",
    ]
    return [*lines, *_stale_latent_note(r, command), "", _machine(r)]


def _committed_planner_cells(committed: dict[str, Any]) -> str:
    """The committed latent model's two table cells in a bench over ``DemoPlannerStarts``:
    the MPC starts' return (share of the oracle's) and crashes, the fresh starts' return and
    crashes."""
    return (
        f"{committed['mpc_mean_return']:.2f} ({committed['mpc_oracle_share']:.0%}), "
        f"{committed['mpc_crashes']} crashed | "
        f"{committed['fresh_mean_return']:.2f}, {committed['fresh_crashes']} crashed"
    )


def _planner_cells(model: dict[str, Any]) -> str:
    """A measured latent model's two table cells in such a bench (``measure_model``'s row):
    as the committed model's, the fresh starts' return with its standard error."""
    mpc, fresh = model["mpc_starts"], model["fresh_starts"]
    return (
        f"{mpc['mean_return']:.2f} ({mpc['oracle_share']:.0%}), {mpc['crashes']} crashed | "
        f"{fresh['mean_return']:.2f} ± {fresh['return_sem']:.2f}, {fresh['crashes']} crashed"
    )


def _latent_footage_section() -> list[str]:
    r = _load("latent_footage.json")
    command = "python -m experiments.bench.latent_footage"
    if r is None:
        return _not_measured(command, "`make latent-footage`, after `make record`")
    committed = r["committed"]
    first, last = r["fresh_seeds"]
    rounds = committed["dyna_rounds"]
    committed_name = f"the zoo's `{committed['checkpoint']}` at {r['machine']['commit']}" + (
        f", after {rounds} Dyna rounds" if rounds else ""
    )
    lines = [
        f"`{command}` (`make latent-footage`): latent models trained on `make record`'s "
        "footage alone, on three times as much (two more recordings of 3,000 episodes with "
        "other simulator seeds, the same drivers; the zoo's `driving_latent` is the float16 "
        "export of the 9,000-step one, `make train-latent-world-model`) and on five times as "
        "much (four more), each after 3,000 training steps and after 6,000 more; none had a "
        "Dyna round. The MPC demo's planner "
        f"({r['setting']}) drives over each on the {len(r['mpc_seeds'])} starts of the latent "
        f"MPC run (the oracle planner returned {r['oracle_mean_return']:.2f} there) and on the "
        f"{last - first + 1} starts of `make planner-risk` (seeds {first}–{last}). Held-out "
        "end AUC and reward MAE: open loop on the same held-out footage, 1 and 5 steps ahead.",
        "",
        "| latent model | end AUC 1 / 5 steps | reward MAE 1 / 5 steps | MPC starts: return "
        "(share of the oracle's), crashes | fresh starts: return ± s.e., crashes |",
        "|---|---|---|---|---|",
        f"| {committed_name} | – | – | {_committed_planner_cells(committed)} |",
    ]
    for name, m in r["models"].items():
        auc, mae = m["end_auc_by_step"], m["reward_mae_by_step"]
        lines.append(
            f"| {name} | {auc[0]:.3f} / {auc[-1]:.3f} | {mae[0]:.3f} / {mae[-1]:.3f} | "
            f"{_planner_cells(m)} |"
        )
    best_name, best = max(r["models"].items(), key=lambda kv: kv[1]["mpc_starts"]["oracle_share"])
    lines += [
        "",
        f"Best on the MPC starts: {best_name}, {best['mpc_starts']['oracle_share']:.0%} of the "
        f"oracle's return ({committed_name}: {committed['mpc_oracle_share']:.0%}; aim 90%).",
        "",
        _machine(r),
    ]
    return lines


def _plan_label_training_section() -> list[str]:
    r = _load("plan_label_training.json")
    command = "python -m experiments.bench.plan_label_training"
    if r is None:
        return _not_measured(command, "`make plan-label-training`")
    committed = r["committed"]
    first, last = r["fresh_seeds"]
    committed_name = f"the zoo's `{committed['checkpoint']}` at {r['machine']['commit']}"

    def labels_cells(m: dict[str, Any]) -> str:
        return (
            f"{m['pick_crashes_with_a_safe_plan_on_the_table']:.0%} | {m['crash_auc_mean']:.3f} | "
            f"{m['regret_mean']:.2f}"
        )

    lines = [
        f"`{command}` (`make plan-label-training`): the zoo's latent model fine-tuned from its "
        "weights on its own footage (`make train-latent-world-model`'s) alone, the control, and "
        "on that footage plus plan labels: each labelled plan is stepped from its decision's "
        "real frames and learns the real rewards and ends (`plan_labels_dirs`; 128 plans in "
        "every batch beside the footage's 256 windows). The first labels are `make "
        "plan-labels`'; the second round's are the same labelling with the planner over the "
        "first tuned model (32 episodes, seeds 9100–9131). Every labels folder's last part (8 "
        "episodes) is held out: the label columns rank its candidates as `make plan-labels` "
        "does. The MPC demo's planner "
        f"({r['setting']}) drives over each model on the {len(r['mpc_seeds'])} starts of the "
        f"latent MPC run (the oracle returned {r['oracle_mean_return']:.2f}) and on the "
        f"{last - first + 1} fresh starts of `make planner-risk` (seeds {first}–{last}), "
        "paired start by start against the zoo model there.",
        "",
        "| latent model | held-out labels: its pick crashes with a safe plan on the table "
        "| crash AUC | regret | MPC starts: return (share of the oracle's), crashes "
        "| fresh starts: return ± s.e., crashes | paired gain over the zoo model ± s.e. "
        "(better / worse starts) |",
        "|---|---|---|---|---|---|---|",
        f"| {committed_name} | {labels_cells(committed['held_out_labels'])} | "
        f"{_committed_planner_cells(committed)} | – |",
    ]
    in_make_order = sorted(r["models"], key=lambda n: [*PLAN_LABEL_MODELS, n].index(n))
    for name in in_make_order:
        m = r["models"][name]
        gain = m["fresh_gain_over_committed"]
        lines.append(
            f"| {name} | {labels_cells(m['held_out_labels'])} | {_planner_cells(m)} | "
            f"{gain['mean']:+.2f} ± {gain['sem']:.2f} ({gain['better']} / {gain['worse']}) |"
        )
    clear = [n for n in in_make_order if _clear_gain(r["models"][n]["fresh_gain_over_committed"])]
    lines += [
        "",
        "Better / worse counts the fresh starts on which a model returned more / less than the "
        "zoo model: a crash forfeits the rest of an episode, so a few crashes outweigh many "
        "small gains. "
        + (
            f"A paired gain of more than two standard errors: {', '.join(clear)}."
            if clear
            else "No model gains more than two standard errors over the zoo model."
        ),
    ]
    return [*lines, "", _machine(r)]


def _clear_gain(gain: dict[str, Any]) -> bool:
    """Whether a paired gain exceeds two standard errors."""
    return bool(gain["mean"] > 2 * gain["sem"])


def _safer_and_richer_lines(base: dict[str, Any], others: list[dict[str, Any]]) -> list[str]:
    """The settings that crash less than ``base`` and return more, and whether any of them
    returns more by more than the two standard errors."""
    better = sorted(
        (
            o
            for o in others
            if o["crashes"] < base["crashes"] and o["mean_return"] > base["mean_return"]
        ),
        key=lambda o: -o["mean_return"],
    )
    if not better:
        return []
    clear = [
        o
        for o in better
        if o["mean_return"] - base["mean_return"] > base["return_sem"] + o["return_sem"]
    ]
    return [
        "",
        f"Fewer crashes and more return than {base['setting']}: "
        + "; ".join(
            f"{o['setting']} ({o['crashes']} crashes, {o['mean_return']:.2f}, "
            f"+{o['mean_return'] - base['mean_return']:.2f})"
            for o in better
        )
        + (
            f"; by more than the two standard errors: {', '.join(o['setting'] for o in clear)}."
            if clear
            else "; none by more than the two standard errors."
        ),
    ]


def _planner_risk_section() -> list[str]:
    r = _load("planner_risk.json")
    command = "python -m experiments.bench.planner_risk"
    if r is None:
        return _not_measured(command, "`make planner-risk`")
    rows = r["settings"]
    lines = [
        f"`{command}`: the latent planner over `{r['latent_checkpoint']}` (the MPC demo's "
        f"budget) drives the same {r['episodes']} real episodes (seeds "
        f"{r['seeds'][0]}–{r['seeds'][1]}, used by no other measure) under each way of "
        "weighing a crash: the terminal value a plan still running is credited, or risk "
        "aversion λ with floor κ (`PlannerConfig.risk_aversion`, `risk_floor`: the plan's "
        "score gains −λ·log(risk + κ), risk being the model's chance that the plan ends "
        "within its horizon).",
        "",
    ]
    speeds = all("mean_speed_mps" in row for row in rows)
    lines += [
        "| setting | mean return (± s.e.) | episodes that crash | return of those that do not "
        + ("| mean speed " if speeds else "")
        + "| decision latency (mean / p95) |",
        "|---|---|---|---|---|" + ("---|" if speeds else ""),
    ]
    for row in rows:
        safe = row["mean_return_without_crash"]
        lines.append(
            f"| {row['setting']} | {row['mean_return']:.2f} ± {row['return_sem']:.2f} | "
            f"{row['crashes']} of {r['episodes']} | "
            + (f"{safe:.2f}" if safe is not None else "–")
            + (f" | {row['mean_speed_mps']:.1f} m/s" if speeds else "")
            + f" | {row['latency_ms_mean']:.1f} / {row['latency_ms_p95']:.1f} ms |"
        )
    base, others = rows[0], rows[1:]
    # the fewest crashes at a mean return within the two standard errors of the first setting
    close = [
        o
        for o in others
        if base["mean_return"] - o["mean_return"] <= base["return_sem"] + o["return_sem"]
    ]
    lines.append("")
    if close:
        pick = min(close, key=lambda o: (o["crashes"], -o["mean_return"]))
        slower = all(
            o["mean_return_without_crash"] is not None
            and o["mean_return_without_crash"] < base["mean_return_without_crash"]
            for o in others
            if o["crashes"] < base["crashes"]
        )
        lines.append(
            f"Against {base['setting']}: {pick['setting']} crashes in {pick['crashes']} of "
            f"{r['episodes']} episodes instead of {base['crashes']}, for a mean return "
            f"{base['mean_return'] - pick['mean_return']:.2f} lower (within the two standard "
            "errors). Its episodes that do not crash return "
            f"{pick['mean_return_without_crash']:.2f} against "
            f"{base['mean_return_without_crash']:.2f}: it avoids crashes by driving slower"
            + (
                ", as every setting that crashes less does. The model's crash risk does not "
                "tell a fast safe plan from a fast doomed one well enough for a planner to "
                "keep the speed and drop the crashes."
                if slower
                else "."
            )
            + f" Plot: `{r['figure']}`."
        )
        lines += _safer_and_richer_lines(base, others)
    else:
        lines.append(
            f"Every other setting returns less than {base['setting']} by more than the two "
            f"standard errors. Plot: `{r['figure']}`."
        )
    return [*lines, *_stale_latent_note(r, command), "", _machine(r)]


def _zoo_dyna_round(last_round: int) -> str:
    """Which Dyna round the zoo's ``driving_latent`` is (from the run folder its config names),
    said against the last round measured."""
    info = json.loads((world_models.ZOO_DIR / "driving_latent" / "config.json").read_text())["info"]
    run_dir = Path(info["train_config"]["run_dir"]).name
    zoo_round = int(run_dir.removeprefix("round_")) if run_dir.startswith("round_") else None
    if zoo_round == last_round:
        return (
            "the last round, exported, is the zoo's `driving_latent` (`make dyna-latent-planner`)"
        )
    if zoo_round is None:
        return (
            "the zoo's `driving_latent` is none of these rounds: a model trained on more "
            "footage (`make train-latent-world-model`, Footage for the latent model) replaced "
            "the 8th"
        )
    return (
        f"the zoo's `driving_latent` is round {zoo_round} (`make dyna-latent-planner` runs "
        f"{zoo_round} rounds and exports the last); the rounds after it were run with "
        f"`rounds={last_round}` and not exported"
    )


def _dyna_section() -> list[str]:
    r = _load("dyna_latent_planner/metrics.json")
    command = "python -m experiments.dyna_latent_planner"
    if r is None:
        return _not_measured(command)
    c = r["config"]
    oracle = r["oracle_mean_return"]
    baseline = r["baseline"]
    lines = [
        f"Dyna for the latent planner (`{command}`): each round drives "
        f"{c['episodes_per_round']} real episodes with the planner ({c['epsilon']:.0%} of its "
        f"actions replaced by random ones), fine-tunes the latent model "
        f"{c['finetune']['steps']:,} steps on the footage plus every round's planner episodes "
        f"({c['finetune']['extra_footage_share']:.0%} of each batch from them), then drives the "
        f"{len(r['seeds'])} evaluation starts of the run above (seeds "
        f"{r['seeds'][0]}–{r['seeds'][-1]}) with the same budget"
        f"{_risk_words(c['planner']) or ', without risk aversion'}. Round 0 is a model trained on "
        f"`make record`'s footage alone (`make dyna-latent-planner`'s first command); "
        f"{_zoo_dyna_round(len(r['rounds']) - 1)}. Plot: "
        "`experiments/results/dyna_latent_planner/dyna_latent_planner.png`.",
        "",
        "The last column measures each round's model on the next round's footage: the real "
        "episodes its own planner drove, before it is fine-tuned on them.",
        "",
        "| round | planner frames trained on | mean return | of the oracle's | crash rate "
        "| end AUC 1 / 5 steps ahead (held-out footage) | end AUC 1 / 5 (its planner's next "
        "episodes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row, share in zip(r["rounds"], r["fraction_of_oracle_return"], strict=True):
        of_oracle = f"{100 * share:.0f}%" if share is not None else "–"
        auc = row["end_auc_by_step"]
        ahead = row.get("next_episodes_end_auc_by_step")
        on_next = f"{ahead[0]:.3f} / {ahead[-1]:.3f}" if ahead else "–"
        lines.append(
            f"| {row['round']} | {row['planner_frames']:,} | {row['mean_return']:.2f} | "
            f"{of_oracle} | {row['crash_rate']:.2f} | {auc[0]:.3f} / {auc[-1]:.3f} | {on_next} |"
        )
    lines += [
        "",
        f"Same starts: oracle planner {oracle:.2f}" if oracle is not None else "No oracle run",
    ]
    lines[-1] += f"; `{baseline['name']}` {baseline['mean_return']:.2f}."
    lines += _next_episodes_lines(r["rounds"])
    return [*lines, "", _machine(r), "", *_fresh_starts_lines()]


def _next_episodes_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Whether a round's model predicting its planner's next episodes well goes with the
    planner driving well."""
    scored = [r for r in rows if r.get("next_episodes_end_auc_by_step")]
    if len(scored) < 3:
        return []
    auc = [r["next_episodes_end_auc_by_step"][0] for r in scored]
    rho = float(stats.spearmanr(auc, [r["mean_return"] for r in scored]).statistic)
    return [
        "",
        f"Over rounds {scored[0]['round']}–{scored[-1]['round']}, how well a model predicts "
        f"the ends of its own planner's next episodes one step ahead (AUC "
        f"{min(auc):.3f}–{max(auc):.3f}) and how well that planner drives are unrelated "
        f"(Spearman rho {rho:+.2f}): the rounds do not make the model better at predicting "
        "where its planner goes, and the models that predicted it best did not drive best.",
    ]


def _as_measured(run: dict[str, Any]) -> str:
    """The latent model an MPC run planned over, named with the commit it was measured at
    when the zoo's model of that name has other weights now."""
    name = f"`{run['latent_checkpoint']}`"
    if _zoo_weights_since(run) is not None:
        return f"{name} as committed at {run['machine']['commit']}, since replaced"
    return name


def _fresh_starts_lines() -> list[str]:
    """The starting and the last Dyna model on starts no round was measured on."""
    base, dyna = (
        _load("mpc_latent_fresh/base/metrics.json"),
        _load("mpc_latent_fresh/dyna/metrics.json"),
    )
    if base is None or dyna is None:
        return []
    before = np.array(base["results"]["latent_planner"]["returns"])
    after = np.array(dyna["results"]["latent_planner"]["returns"])
    gain = after - before
    error = gain.std(ddof=1) / np.sqrt(len(gain))
    seeds = dyna["seeds"]
    command = (
        "python -m experiments.mpc_demo run_pixel_planner=false run_oracle=false "
        f"episodes={len(seeds)} seed={seeds[0]} latent_checkpoint=CHECKPOINT "
        f"planner.risk_aversion={dyna['planner'].get('risk_aversion', 0.0):g} "
        "out_dir=experiments/results/mpc_latent_fresh/NAME"
    )
    longer = _load("mpc_latent_fresh/dyna12/metrics.json")
    rows = [
        ("starting model (`base`)", base["results"]["latent_planner"]),
        (f"after Dyna (`dyna`: {_as_measured(dyna)})", dyna["results"]["latent_planner"]),
        *(
            [
                (
                    f"after 12 rounds (`dyna12`: `{longer['latent_checkpoint']}`, not in the zoo)",
                    longer["results"]["latent_planner"],
                )
            ]
            if longer is not None
            else []
        ),
        *((f"`{name}`", m) for name, m in dyna["results"].items() if name != "latent_planner"),
    ]
    return [
        f"On {len(seeds)} starts no round was measured on (seeds {seeds[0]}–{seeds[-1]}; "
        f"`{command}`):",
        "",
        "| controller | mean return | crash rate |",
        "|---|---|---|",
        *(f"| {name} | {m['mean_return']:.2f} | {m['crash_rate']:.2f} |" for name, m in rows),
        "",
        f"Paired over the starts, Dyna gains {gain.mean():+.2f} ± {error:.2f} (standard error); "
        f"better on {int((gain > 0).sum())} starts, worse on {int((gain < 0).sum())}.",
        "",
        _machine(dyna),
    ]


def _budget(name: str) -> str:
    """``"h8_p256_i3"`` -> ``"horizon 8, population 256, 3 iterations"`` (``demo_`` prefix:
    the MPC demo's budget)."""
    demo = name.startswith("demo_")
    h, p, i = (int(part[1:]) for part in name.removeprefix("demo_").split("_"))
    return f"horizon {h}, population {p}, {i} iterations" + (" (the MPC demo's)" if demo else "")


def _cuda_section() -> list[str]:
    r = _load("cuda_check.json")
    if r is None:
        return ["Not measured: `python -m experiments.bench.cuda_check` needs a GPU."]
    core = r["wfm_core_steps_per_second"]
    latency = r["latent_planner_decision_ms"]
    train = r["training_step"]
    wm, lat = train["world_model_dynamics_bf16"], train["latent_world_model"]
    gym_row = r["wfm_gym_batch1"]
    return [
        'The committed driving models with `device="auto"` on a lent GPU machine '
        f"({r['machine']['gpu']}; `python -m experiments.bench.cuda_check`, which refuses to "
        "run without CUDA). CI and this project's own machine have no GPU.",
        "",
        "| what | figure |",
        "|---|---|",
        f'| `gym.make("WFM-Driving-v0", device="auto")`, batch 1 | '
        f"{gym_row['steps_per_second']} steps/s (model on `{gym_row['model_device']}`, "
        f"observations host `{gym_row['observation_dtype']}` arrays) |",
        *(
            f"| world-model core, {n:,} envs | {value:,.0f} steps/s |"
            for n, value in sorted((int(k.removeprefix("batch")), v) for k, v in core.items())
        ),
        *(f"| latent planner decision, {_budget(name)} | {latency[name]} ms |" for name in latency),
        f"| world-model training step (unrolled dynamics loss, bf16, batch {wm['batch']}, "
        f"horizon {wm['horizon']}) | {wm['ms']} ms ({wm['windows_per_second']:,.0f} windows/s) |",
        f"| latent world-model training step (batch {lat['batch']}, horizon {lat['horizon']}) | "
        f"{lat['ms']} ms ({lat['windows_per_second']:,.0f} windows/s) |",
        f"| peak GPU memory | {r['peak_gpu_memory_gib']} GiB |",
        "",
        "Training steps run the trainers' own loss functions on windows of episodes the world "
        "model imagines from its committed starts (that machine has no ffmpeg to read footage).",
        "",
        _machine(r),
    ]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _curation_bullets(
    run: dict[str, Any], cuts_extra: str = "", dedup_extra: str = "", shards_extra: str = ""
) -> list[str]:
    """One bullet per curation stage (cuts, filter, dedup, shards, retrieval) of a curation
    run, for any footage source; the extras add a source's own detail to a stage's line."""
    s = run["summary"]
    cuts = s["split"]["cuts"]
    retrieval = run["held_out_text_to_clip"]
    drops = ", ".join(f"{n} {reason}" for reason, n in s["filter"]["dropped"].items())
    recall10 = f", recall@10 {retrieval['recall@10']:.2f}" if "recall@10" in retrieval else ""
    return [
        f"- shot splitting: {s['split']['clips']} clips; cuts precision "
        f"{cuts['precision']:.3f}, recall {cuts['recall']:.3f} ({cuts['tp']} of "
        f"{cuts['tp'] + cuts['fn']} true cuts{cuts_extra})",
        f"- filtering: kept {s['filter']['kept']}, dropped {drops or 'none'}",
        f"- semantic dedup at ε={s['dedup']['epsilon']} over {s['dedup']['clusters']} "
        f"clusters: removed {s['dedup']['removed']}, kept {s['dedup']['kept']}{dedup_extra}",
        f"- shards: {s['shard']['shards']}{shards_extra}; search index: "
        f"{s['index']['clips']} clips",
        f"- text→clip retrieval on the {retrieval['clips']} clips of held-out parts: "
        f"recall@1 {retrieval['recall@1']:.2f}, recall@5 {retrieval['recall@5']:.2f}{recall10} "
        f"(identical captions count as hits; strict recall@5 {retrieval['recall@5_strict']:.2f})",
    ]


def _curation_section() -> list[str]:
    lines: list[str] = []
    run = _load("curation_run.json")
    if run is None:
        lines += ["Curation run not measured yet: run `python -m experiments.bench.curation_run`."]
    else:
        s = run["summary"]
        fractions = ", ".join(
            f"ε={eps}: {_pct(f)}" for eps, f in s["dedup"]["removed_fraction_per_epsilon"].items()
        )
        groups = ", ".join(f"`{g}` {n}" for g, n in s["shard"]["clips_per_group"].items())
        lines += [
            f"`python -m experiments.curate` over {s['split']['parts']} footage parts (the "
            "64×64 footage plus copies of its first parts at 48×48 and 40×60; "
            "`python -m experiments.bench.curation_run`):",
            "",
            *_curation_bullets(
                run,
                cuts_extra=f"; {len(s['split']['quarantined'])} parts quarantined",
                dedup_extra=f" (removed fraction {fractions})",
                shards_extra=f" ({groups})",
            ),
            "",
            _machine(run),
            "",
        ]
    shots = _load("shot_boundaries.json")
    if shots is not None:
        frames_only = shots["frames_only"]["tolerance_0"]
        limited = shots["with_time_limit"]["tolerance_0"]
        limited_frames = shots["with_time_limit"]["max_shot_frames"]
        lines += [
            "### Shot boundaries",
            "",
            f"All {shots['parts']} parts, {shots['frames']} frames, {shots['true_cuts']} true "
            "episode cuts (`python -m experiments.bench.shot_boundaries`), exact frame:",
            "",
            "| detector | precision | recall | F1 |",
            "|---|---|---|---|",
            f"| frames only | {frames_only['precision']:.3f} | {frames_only['recall']:.3f} | "
            f"{frames_only['f1']:.3f} |",
            f"| frames + known {limited_frames}-frame shot limit (curate.yaml) | "
            f"{limited['precision']:.3f} | "
            f"{limited['recall']:.3f} | {limited['f1']:.3f} |",
            "",
            f"Detection runs at {shots['frames_per_second']:.0f} frames/s. The misses of frames "
            "alone are time-limit resets that look like more traffic.",
            "",
            _machine(shots),
            "",
        ]
    planted = _load("dedup_planted.json")
    if planted is not None:
        lines += [
            "### Dedup on planted near-duplicates",
            "",
            f"{planted['originals']} held-out clips, each with copies "
            f"({', '.join(planted['copies_per_original'])}); embedded by the curation's video "
            "encoder (`python -m experiments.bench.dedup_planted`). Aim ≥ 0.95 both.",
            "",
            "Scored two ways: against the planted copies (a drop is right when it drops a "
            "copy), and against exact brute force over all pairs (one cluster, so no pair is "
            "missed for falling into two k-means clusters; its precision is 1 by construction, "
            "its recall counts the pairs the partition splits).",
            "",
            "| ε | planted: precision | planted: recall | originals removed (of them "
            "pixel-identical) | all pairs: precision | all pairs: recall | = brute force in "
            "clusters |",
            "|---|---|---|---|---|---|---|",
        ]
        for eps, r in planted["per_epsilon"].items():
            exact = r.get("against_all_pairs", {})
            exact_cells = f"{exact['precision']:.3f} | {exact['recall']:.3f}" if exact else "– | –"
            lines.append(
                f"| {eps} | {r['precision']:.3f} | {r['recall']:.3f} | {r['originals_removed']} "
                f"({r['natural_duplicates']}) | {exact_cells} | "
                f"{'yes' if r['equals_brute_force'] else '**no**'} |"
            )
        lines += [
            "",
            "Removed originals are look-alike drives (mostly empty roads, whose lane marks scroll "
            "periodically): 2–4 grey levels apart on average, where a re-encode is "
            f"{planted['reencode_pixel_gap_p95']:.1f} (95th percentile); only those within that "
            "are counted as pixel-identical.",
            "",
            _machine(planted),
            "",
        ]
    scale = _load("dedup_scale.json")
    if scale is not None:
        lines += [
            "### Dedup throughput and memory",
            "",
            "Random-but-clustered 384-d embeddings, k = N/1000, blocks of 4096 "
            "(`python -m experiments.bench.dedup_scale`). Aim: 1M under 5 minutes, memory "
            "bounded by the block size.",
            "",
            "| N | blockwise time | peak memory above the data | naive full matrix |",
            "|---|---|---|---|",
        ]
        rows: list[tuple[int, str]] = []
        for row in scale["blockwise"]:
            b = row["blockwise"]
            naive = next((n for n in scale["naive"] if n["n"] == row["n"]), None)
            too_big = (
                f"does not fit ({naive['needs_bytes'] / 2**30:,.0f} GiB)"
                if naive and not naive.get("fits", True)
                else ""
            )
            rows.append(
                (
                    row["n"],
                    f"| {row['n']:,} | {b['seconds']:.1f} s | {b['peak_above_start_mib']:.0f} MiB "
                    f"| {too_big} |",
                )
            )
        for naive in scale["naive"]:
            if naive.get("fits"):
                rows.append(
                    (
                        naive["n"],
                        f"| {naive['n']:,} | {naive['blockwise']['seconds']:.1f} s | "
                        f"{naive['blockwise']['peak_above_start_mib']:.0f} MiB | "
                        f"{naive['naive']['seconds']:.1f} s, "
                        f"{naive['naive']['peak_above_start_mib']:.0f} MiB, same decisions: "
                        f"{'yes' if naive['naive']['same_keep'] else '**no**'} |",
                    )
                )
        lines += [line for _, line in sorted(rows)]
        lines += ["", _machine(scale), ""]
    lines += _search_lines()
    return lines


def _search_lines() -> list[str]:
    lines: list[str] = []
    search = _load("search_speed.json")
    if search is not None:
        c = search["config"]
        lines += [
            "### Clip search",
            "",
            f"Milvus Lite, {c['clips']:,} random-but-clustered {c['dim']}-d clips, "
            f"{c['queries']} held-out queries, one query per request "
            "(`python -m experiments.bench.search_speed`); insert "
            f"{search['insert']['clips_per_s']:,.0f} clips/s.",
            "",
            "| index | recall@10 vs exact | p50 | p99 | per query, 100 per request |",
            "|---|---|---|---|---|",
        ]
        for name, r in search.items():
            if isinstance(r, dict) and "recall@10" in r:
                lines.append(
                    f"| {name} | {r['recall@10']:.3f} | {r['p50_ms']:.1f} ms | "
                    f"{r['p99_ms']:.1f} ms | {r['batched_ms_per_query']:.2f} ms |"
                )
        e = search["exact_numpy"]
        lines += [
            f"| exact (numpy, blockwise) | 1.000 | {e['p50_ms']:.1f} ms | {e['p99_ms']:.1f} ms | "
            f"{e['batched_ms_per_query']:.2f} ms |",
            "",
            "milvus-lite 3.2.2 spends ~40 ms per request walking its rows in Python, so "
            "approximate indexes barely beat FLAT here; batch queries, or use a Milvus server.",
            "",
            _machine(search),
            "",
        ]
    text = _load("text_retrieval.json")
    if text is not None:
        r = text["retrieval"]
        lines += [
            "### Text → clip retrieval (encoder design study)",
            "",
            f"A video encoder trained {text['steps']} steps on {text['train_clips']} clips "
            f"(whole episodes plus sub-windows) of parts other than {text['held_out_parts']}; "
            f"{text['held_out_clips']} held-out clips (`python -m "
            "experiments.bench.text_retrieval`).",
            "",
            "| | recall@1 | recall@5 | recall@10 |",
            "|---|---|---|---|",
            f"| identical captions count | {r['recall@1']:.2f} | {r['recall@5']:.2f} | "
            f"{r['recall@10']:.2f} |",
            f"| the clip itself only | {r['recall@1_strict']:.2f} | {r['recall@5_strict']:.2f} | "
            f"{r['recall@10_strict']:.2f} |",
            f"| chance | {r['chance@1']:.2f} | {r['chance@5']:.2f} | {r['chance@10']:.2f} |",
            "",
            _machine(text),
            "",
        ]
    return lines


def _tokenizer_cells(name: str, v: dict[str, Any], variants: dict[str, Any], speed: Any) -> str:
    """One row of the tokenizer table."""
    h = v["h264"]
    floor = "" if h["on_target_fraction"] >= 1 else "†"
    sibling = variants.get(f"{name}_noncausal")
    noncausal = (
        f"{sibling['psnr']:.2f} / {sibling['ssim']:.3f}"
        if sibling and v["causal"]
        else ("(this is it)" if not v["causal"] else "–")
    )
    codebook = v.get("codebook")
    usage = (
        f"{_pct(codebook['used_fraction'])} / {codebook['perplexity']:,.0f} of "
        f"{codebook['codebook_size']:,}"
        if codebook
        else "–"
    )
    s = (speed or {}).get("variants", {}).get(name)
    fps = "–"
    if s:
        fps = f"{s['encode_fps']:,.0f} / {s['decode_fps']:,.0f}"
        if s.get("stream_encode_fps") is not None:
            fps += f" ({s['stream_encode_fps']:,.0f} / {s['stream_decode_fps']:,.0f})"
    c = v["causality"]
    if c["passed"]:
        check = "pass" if v["causal"] else "**passes** (unexpected)"
    else:
        check = "**fail**" if v["causal"] else "fails, as expected"
    check += f" (max Δ {c['max_abs_diff']:.2g})"
    return (
        f"| {name} | {v['ratio']} | {'CV' if v['kind'] == 'continuous' else 'DV'} | "
        f"{v['bits_per_pixel']:.4f} ({v['clip_bits_per_pixel']:.4f}) | {v['psnr']:.2f} | {v['ssim']:.3f} | "
        f"{h['psnr']:.2f} / {h['ssim']:.3f} @ {h['bits_per_pixel']:.4f}{floor} | {noncausal} | "
        f"{usage} | {fps} | {check} |"
    )


def _tokenizer_sections() -> list[str]:
    """The family table, then one table per ``tokenizer_quality_<x>.json`` (variants measured
    apart, e.g. on another curation), each with its ``tokenizer_speed_<x>.json``."""
    lines = _tokenizer_section("tokenizer_quality", "tokenizer_speed")
    for path in sorted(RESULTS_DIR.glob("tokenizer_quality_*.json")):
        suffix = path.stem.removeprefix("tokenizer_quality")
        lines += ["", f"### `{path.stem}`", ""]
        lines += _tokenizer_section(path.stem, f"tokenizer_speed{suffix}")
    return lines


def _tokenizer_section(quality_name: str, speed_name: str) -> list[str]:
    quality, speed = _load(f"{quality_name}.json"), _load(f"{speed_name}.json")
    if quality is None:
        speed_too = "" if speed else " and `python -m experiments.bench.tokenizer_speed`"
        return [
            f"Not measured yet: run `python -m experiments.bench.tokenizer_quality`{speed_too} "
            "(after training: `python -m experiments.train_tokenizer tokenizer=<variant>`)."
        ]
    variants = quality["variants"]
    if not variants:
        return [
            "No trained tokenizer found under `runs/tokenizer/`: train them with "
            "`python -m experiments.train_tokenizer tokenizer=<variant>`, then run "
            "`python -m experiments.bench.tokenizer_quality`."
        ]
    first = next(iter(variants.values()))
    rate = (
        "the variant's code on that clip"
        if first["h264"].get("rate") == "clip"
        else "the variant's long-video bits per pixel"
    )
    lines = [
        f"{quality['clips_measured']} held-out curated 64×64 clips ({quality['frames_measured']} "
        f"frames; H.264 on the first {quality['h264_clips']}) coded and decoded by each variant "
        "(`python -m experiments.bench.tokenizer_quality`, `python -m "
        "experiments.bench.tokenizer_speed`). PSNR/SSIM are per frame, averaged over frames; "
        "SSIM is the mean over RGB channels (11×11 Gaussian window, σ 1.5). Bits per pixel count "
        "the code only (DV: log2 of the codebook per token; CV: bf16 latents), for long videos "
        "(in brackets: on these short clips, whose frame 0 is coded alone). H.264 is libx264, "
        "veryslow, tune psnr, 4:2:0 or 4:4:4 (the better), its quantizer searched per clip to "
        f"match {rate}, counted on the elementary stream; the number after @ is the bpp it "
        "achieved.",
        "",
        "| variant | ratio (T×H×W) | kind | bits/pixel | PSNR | SSIM | H.264 PSNR / SSIM @ bpp | "
        "non-causal PSNR / SSIM | codebook used / perplexity | encode / decode frames/s "
        "(streaming) | causality |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_tokenizer_cells(name, v, variants, speed) for name, v in variants.items()]
    notes = []
    if any(v["h264"]["on_target_fraction"] < 1 for v in variants.values()):
        notes.append(
            "† below H.264's floor on some clips: even at QP 51 a 64×64 clip needs about "
            "0.035–0.06 bpp (an I-frame plus a header and skip flags per frame), so it gets "
            "more bits than the tokenizer there."
        )
    c = first["causality"]
    notes.append(
        f"Causality: on {c['clips']} held-out clips, frames after t (several t) replaced by noise "
        "or by another clip; the check passes when the latents (and DV tokens) of every latent "
        "frame covering only frames ≤ t stay bit-identical."
    )
    if quality.get("missing"):
        notes.append(
            f"Not trained yet: {', '.join(quality['missing'])} (`python -m "
            "experiments.train_tokenizer tokenizer=<variant>`)."
        )
    for note in notes:
        lines += ["", note]
    lines += ["", _machine(quality), ""]
    if speed is None:
        lines += ["Speed not measured yet: run `python -m experiments.bench.tokenizer_speed`."]
    else:
        b, st = speed["batch"], speed["streaming"]
        lines += [
            f"Speed: batches of {b['clips']} clips of {b['frames']} frames, and (streaming) one "
            f"{st['frames']}-frame video coded {st['chunk_frames']} frames / "
            f"{st['chunk_latents']} latents at a time with `wfm_sim.tokenizer.streaming`, "
            f"{speed['torch_threads']} torch threads.",
            "",
            _machine(speed),
        ]
    return lines


SINGLE_SPEED_MODEL = "model trained on one camera speed per episode"
"""How the camera tables name the camera-conditioned model trained on footage whose camera
never turned (``*_single_speed_model.json``), scored on the same windows."""


def _camera_section() -> list[str]:
    r = _load("camera_control.json")
    if r is None:
        return _not_measured("python -m experiments.bench.camera_control")
    rows = [
        ("true camera path (the model is given the real poses)", r["true_camera_path"]),
        ("camera frozen at the start pose", r["camera_frozen_at_start"]),
        ("copy the last real frame", r["copy_last_frame"]),
    ]
    single = _load("camera_control_single_speed_model.json")
    if single is not None:
        rows += [
            (f"{SINGLE_SPEED_MODEL}: true camera path", single["true_camera_path"]),
            (f"{SINGLE_SPEED_MODEL}: camera frozen", single["camera_frozen_at_start"]),
        ]
    gain = r["last_step_gain_over_frozen_db"]
    return [
        f"{r['windows']} windows (one every {r['window_stride']} steps) of "
        f"{r['held_out_episodes']} held-out moving-camera episodes; in each, "
        f"{r['rollout_steps']} frames imagined under the true torques and compared with the "
        "real renders from the same poses, while the camera sweeps "
        f"{r['mean_azimuth_sweep_deg']:.0f}° of azimuth on average "
        f"({r['mean_azimuth_change_per_step_deg']:.1f}° a step) "
        "(`python -m experiments.bench.camera_control`).",
        "",
        f"| conditioning | PSNR mean (dB) | PSNR at step {r['rollout_steps']} | SSIM mean |",
        "|---|---|---|---|",
        *[
            f"| {label} | {v['psnr_mean']:.2f} | {v['psnr_last']:.2f} | {v['ssim_mean']:.3f} |"
            for label, v in rows
        ],
        "",
        *(
            [
                f"The {SINGLE_SPEED_MODEL} is the same config trained on footage recorded "
                "without `camera_turn_steps` (the record and train configs of commit b2abddd), "
                f"scored on the same windows (`--checkpoint {single['checkpoint']} --name "
                "camera_control_single_speed_model`; `camera_counterfactual` likewise).",
                "",
            ]
            if single is not None
            else []
        ),
        f"What knowing the poses adds at step {r['rollout_steps']} (true path minus frozen, "
        f"dB): {gain['wider_half']:+.2f} on the half of the windows whose camera sweeps "
        f"furthest, {gain['narrower_half']:+.2f} on the other half. The film strip "
        "(`experiments/results/camera_control.png`) shows the widest-sweep window: the last "
        "real context frame, then every fourth step; rows real, true path, frozen.",
        "",
        _machine(r),
    ]


def _camera_counterfactual_section() -> list[str]:
    r = _load("camera_counterfactual.json")
    if r is None:
        return _not_measured("python -m experiments.bench.camera_counterfactual")
    steps = r["rollout_steps"]
    lines = [
        f"The same {r['windows']} windows, replayed in the real Pusher (same seeds, same torques; "
        f"replayed frames {r['replay_psnr_vs_footage']:.1f} dB from the footage) and rendered "
        "from the last context frame on along camera paths the footage never took: `stop` (the "
        "camera stays put) and `reverse` (it turns back, mirroring the recorded path; "
        f"{r['mean_reverse_azimuth_divergence_deg']:.0f}° of azimuth from it at most, on "
        "average). The model imagines each path told that path, and told the recorded one "
        "(`python -m experiments.bench.camera_counterfactual`).",
        "",
        f"| path | told | PSNR mean (dB) | PSNR at step {steps} | SSIM mean |",
        "|---|---|---|---|---|",
    ]
    told = {
        "told_this_path": "this path",
        "told_recorded_path": "the recorded path",
        "copy_last_frame": "(copy the last real frame)",
    }
    single = _load("camera_counterfactual_single_speed_model.json")
    for path in ("stop", "reverse"):
        entries = [(label, r[path][key]) for key, label in told.items()]
        if single is not None:
            entries += [
                (f"{label} ({SINGLE_SPEED_MODEL})", single[path][key])
                for key, label in list(told.items())[:2]
            ]
        for label, v in entries:
            lines.append(
                f"| {path} | {label} | {v['psnr_mean']:.2f} | {v['psnr_last']:.2f} | "
                f"{v['ssim_mean']:.3f} |"
            )

    def gains(result: dict) -> str:
        return "; ".join(
            f"`{path}` {g['mean_db']:+.2f} dB on average, {g['last_step_db']:+.2f} at step "
            f"{steps}, better at step {steps} in {100 * g['windows_better']:.0f}% of windows"
            for path, g in result["gain_of_the_right_path"].items()
        )

    lines += [
        "",
        f"Told the right path instead of the recorded one: {gains(r)}"
        + (f" (the {SINGLE_SPEED_MODEL}: {gains(single)})" if single is not None else "")
        + ". Film strip of the widest reversal: `experiments/results/camera_counterfactual.png`"
        " (rows: real renders, told the reversed path, told the recorded path).",
        "",
        _machine(r),
    ]
    return lines


_CURATED_ROBOT_MODELS = {
    "world_model_quality_robot_unseen": "raw footage, episodes split 90/10 (committed `robot`)",
    "world_model_quality_robot_curated_unseen": "curated shards (`data/curated/robot/shards`)",
}
"""The robot world models compared on unseen footage; each result also exists for the still
arm's episodes alone (``<name>_still``)."""


def _robot_curation_section() -> list[str]:
    """The robot footage through the driving curation (configs only) and a model trained on
    its shards, against the committed model trained on the raw footage."""
    run = _load("curation_run_robot.json")
    if run is None:
        return [
            "Not measured yet: run `python -m experiments.bench.curation_run --config-name "
            "curate_robot --work data/curated/robot --name curation_run_robot`."
        ]
    s = run["summary"]
    removed = "; ".join(
        f"{n} × “{text}”"
        for text, n in sorted(
            run.get("captions_removed_by_dedup", {}).items(), key=lambda kv: -kv[1]
        )
    )
    lines = [
        f"`python -m experiments.curate --config-name curate_robot` over {s['split']['parts']} "
        "Pusher footage parts (the same stages as driving; `curate_robot.yaml` sets the "
        "source's shot thresholds, filters and the `pusher` captioner; "
        "`python -m experiments.bench.curation_run --config-name curate_robot --work "
        "data/curated/robot --name curation_run_robot`):",
        "",
        *_curation_bullets(run, dedup_extra=f" (removed: {removed})" if removed else ""),
    ]
    captions = sorted(run.get("captions", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    if captions:
        lines += ["", f"{len(captions)} distinct captions; the most common of the kept clips:", ""]
        lines += [f"- {n} × “{text}”" for text, n in captions[:5]]
    results = {
        (name, suffix): _load(f"{name}{suffix}.json")
        for suffix in ("", "_still")
        for name in _CURATED_ROBOT_MODELS
    }
    first = next((r for (_, suffix), r in results.items() if not suffix and r), None)
    if first is not None:
        lines += [
            "",
            f"Both robot world models (the same config, `train_world_model_robot.yaml`) on "
            f"{first['rollout_episodes']} episodes recorded afterwards with another seed that "
            "neither trained on (`make record-robot-unseen`; `python -m "
            "experiments.bench.world_model_quality --checkpoint CKPT --unseen-footage "
            "data/footage/robot_unseen [--behaviour still] --name NAME`). PSNR in dB; a still "
            "arm's frames do not change, so copying the last frame is nearly exact there and "
            "lifts its mean over all episodes:",
            "",
            "| trained on | episodes | next frame | 16-step mean | at step 16 | reward MAE |",
            "|---|---|---|---|---|---|",
        ]
        for suffix, episodes in (("", "all"), ("_still", "still arm")):
            for name, label in _CURATED_ROBOT_MODELS.items():
                r = results[name, suffix]
                if r is None:
                    continue
                lines.append(
                    f"| {label} | {episodes} ({r['rollout_episodes']}) | "
                    f"{r['next_frame_psnr']:.2f} | {r['rollout16_psnr_mean']:.2f} | "
                    f"{r['rollout16_psnr_last']:.2f} | {r['reward_mae']:.3f} |"
                )
            base = results[next(iter(_CURATED_ROBOT_MODELS)), suffix]
            if base is not None:
                lines.append(
                    f"| copy last frame | {episodes} | {base['next_frame_psnr_copy_last']:.2f} | "
                    f"{base['rollout16_psnr_mean_copy_last']:.2f} | "
                    f"{base['rollout16_psnr_last_copy_last']:.2f} | |"
                )
    return [*lines, "", _machine(run)]


def _robot_section() -> list[str]:
    return [
        "### Robot footage through the curation",
        "",
        *_robot_curation_section(),
        "",
        "### Policy ranking: WFM-Robot-v0 against the real Pusher",
        "",
        *_ranking_section(
            "ranking_robot", "python -m experiments.rank_policies --config-name rank_policies_robot"
        ),
        "",
        "### Robot world model on held-out footage",
        "",
        *_quality_section(
            "world_model_quality_robot",
            "python -m experiments.bench.world_model_quality --checkpoint robot "
            "--footage data/footage/robot --name world_model_quality_robot",
            "Pusher's, about -0.3 to -2.5",
        ),
        "",
        "### Camera-conditioned robot world model",
        "",
        *_camera_section(),
        "",
        "#### Camera paths the footage never took",
        "",
        *_camera_counterfactual_section(),
        "",
        "### MPC planning in the real Pusher",
        "",
        *_mpc_section("mpc_robot", "mpc_demo_robot"),
        "",
        "### RL in WFM-Robot-v0 against RL in the real Pusher",
        "",
        *_rl_section("rl_robot", "train_rl_robot", real_sim="Pusher", constant_actions=False),
    ]


_BACKEND_NAMES = {
    "maskgit": "MaskGIT world model (the committed default)",
    "diffusion": "diffusion WFM, post-trained from pre-training",
    "diffusion_scratch": "diffusion WFM, post-training only (scratch)",
    "autoregressive": "autoregressive WFM, post-trained from pre-training",
    "autoregressive_scratch": "autoregressive WFM, post-training only (scratch)",
}


def _backend_rows(r: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(the measured backends of a wfm_backends result in table order, the untrained ones)."""
    order = [k for k in _BACKEND_NAMES if k in r["backends"]]
    order += sorted(set(r["backends"]) - set(order))
    backends = {k: r["backends"][k] for k in order if r["backends"][k].get("trained")}
    missing = [k for k in order if not r["backends"][k].get("trained")]
    return backends, missing


def _backend_table(r: dict[str, Any]) -> list[str]:
    """One wfm_backends result as a table, with the copy-last-frame row and its note."""
    backends, missing = _backend_rows(r)
    first = next(iter(backends.values()))
    lines = [
        "| backend | next-frame PSNR / SSIM | 16-step PSNR / SSIM (mean) | ego error (px) | FD | "
        "reward MAE | crash recall / precision | frames/s | parameters |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in backends.items():
        lines.append(
            f"| {_BACKEND_NAMES.get(name, name)} | {m['next_frame_psnr']:.2f} / "
            f"{m['next_frame_ssim']:.3f} | {m['rollout16_psnr_mean']:.2f} / "
            f"{m['rollout16_ssim_mean']:.3f} | {m['ego_shift_error_px']:.2f} | "
            f"{m['frechet_distance']:.3f} | {m['reward_mae']:.3f} | {m['end_recall']:.2f} / "
            f"{m['end_precision']:.2f} | {m['frames_per_second_batch1']:.1f} / "
            f"{m['frames_per_second_batch64']:.1f} | {m['parameters'] / 1e6:.2f} M |"
        )
    lines.append(
        f"| copy the last real frame | {first['next_frame_psnr_copy_last']:.2f} / "
        f"{first['next_frame_ssim_copy_last']:.3f} | {first['rollout16_psnr_mean_copy_last']:.2f}"
        f" / {first['rollout16_ssim_mean_copy_last']:.3f} | – | "
        f"{first['frechet_distance_copy_last']:.3f} | – | – | – | – |"
    )
    if missing:
        lines += ["", f"Not trained when measured: {', '.join(missing)} (`make post-train`)."]
    if r.get("note"):
        lines += ["", f"Note: {r['note'].rstrip('.')}."]
    return lines


def _pretraining_gain(backends: dict[str, dict[str, Any]]) -> list[str]:
    """What pre-training buys: each WFM post-trained from pre-training against the same network
    post-trained from scratch on the same data and steps."""
    pairs = [k for k in ("diffusion", "autoregressive") if {k, f"{k}_scratch"} <= set(backends)]
    if not pairs:
        return []
    lines = [
        "What pre-training buys (post-trained from the pre-trained WFM minus the same network "
        "post-trained from scratch, same data and steps; FD: lower is better):",
        "",
        "| backend | next-frame PSNR | 16-step PSNR | 16-step SSIM | ego error (px) | FD |",
        "|---|---|---|---|---|---|",
    ]
    for name in pairs:
        a, b = backends[name], backends[f"{name}_scratch"]
        lines.append(
            f"| {name} | {a['next_frame_psnr'] - b['next_frame_psnr']:+.2f} dB | "
            f"{a['rollout16_psnr_mean'] - b['rollout16_psnr_mean']:+.2f} dB | "
            f"{a['rollout16_ssim_mean'] - b['rollout16_ssim_mean']:+.3f} | "
            f"{a['ego_shift_error_px'] - b['ego_shift_error_px']:+.2f} | "
            f"{a['frechet_distance'] - b['frechet_distance']:+.3f} |"
        )
    return lines


def _backend_rankings() -> list[str]:
    """The spine's policy ranking re-run on each backend."""
    rows = [("maskgit", _load("ranking/metrics.json"))] + [
        (name, _load(f"ranking_{name}/metrics.json")) for name in ("diffusion", "autoregressive")
    ]
    measured = [(name, res) for name, res in rows if res is not None]
    if len(measured) < 2:
        return []
    lines = [
        "The policy ranking of the spine re-run on each backend (`python -m "
        "experiments.rank_policies backend=<backend> end_reading=drawn out_dir=experiments/"
        "results/ranking_<backend>`, their termination heads reading the drawn frame; 95% "
        "bootstrap intervals in each report):",
        "",
        "| backend | temperature | Spearman ρ | Kendall τ | MMRV | regret@1 | WFM evaluation "
        "time |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in measured:
        m = res["metrics"]
        lines.append(
            f"| {name} | {res['extra'].get('temperature', 1.0):g} | "
            f"{m['spearman']['value']:.3f} | {m['kendall']['value']:.3f} | "
            f"{m['mmrv']['value']:.3f} | {m['regret_at_1']['value']:.3f} | "
            f"{res['extra']['evaluation_seconds']['wfm']} s |"
        )
    return lines


def _backends_section() -> list[str]:
    r = _load("wfm_backends.json")
    if r is None:
        return _not_measured("python -m experiments.bench.wfm_backends")
    backends, _ = _backend_rows(r)
    lines = [
        f"{r['held_out_episodes']} held-out episodes of the committed driving model (4 real "
        "frames of context, then the true actions); next frame over every held-out transition, "
        "16-step rollouts from each episode's start (`python -m experiments.bench.wfm_backends`"
        "). Every imagined frame is drawn as WFM-Driving-v0 draws it (seeded uniforms: sampled "
        "tokens, or the diffusion noise). Ego error: the road's per-step image shift (speed, "
        "lane change) in imagined against real frames, in pixels. FD: Fréchet distance of "
        "16-frame clips in the curation's video-embedding space. Frames/s: imagined and "
        "decoded, batch 1 / batch 64.",
        "",
        *_backend_table(r),
        "",
        "Tokenizer reconstruction PSNR (each backend's ceiling): "
        + ", ".join(f"{name} {m['tokenizer_psnr']:.2f}" for name, m in backends.items())
        + ".",
    ]
    gain = _pretraining_gain(backends)
    if gain:
        lines += ["", *gain]
    greedy = _load("wfm_backends_greedy.json")
    if greedy is not None:
        lines += [
            "",
            "The same with each model's most likely frame instead of a draw (`--draws greedy`: "
            "top tokens; for diffusion, zero initial noise, which is not a sample of its "
            "distribution and which the pre-trained diffusion WFM handles worst):",
            "",
            *_backend_table(greedy),
        ]
    rankings = _backend_rankings()
    if rankings:
        lines += ["", *rankings]
    lines += ["", _machine(r)]
    return lines


def _guardrail_section() -> list[str]:
    package = Path(__file__).resolve().parents[2] / "wfm_sim" / "guardrail"
    classifier = json.loads((package / "prompt_classifier.json").read_text())
    video = json.loads((package / "video_guard_driving.json").read_text())
    held = classifier["info"]["metrics"]["held_out"]
    n_held = sum(held[k] for k in ("true_positives", "false_positives", "true_negatives"))
    n_held += held["false_negatives"]
    lines = [
        f"Prompt classifier (logistic regression over MiniLM embeddings, "
        f"{classifier['info']['examples']} hand-labelled prompts, `python -m wfm_sim.guardrail "
        f"train-prompt-classifier`), on its {n_held} held-out prompts: accuracy "
        f"{held['accuracy']:.3f}, precision {held['precision']:.3f}, recall {held['recall']:.3f} "
        "(the phrase blocklist runs before it).",
        "",
        f"Video post-guard (`python -m wfm_sim.guardrail calibrate-video-guard`): thresholds at "
        f"the {video['percentile']}th percentile × {video['margin']} of "
        f"{video['calibration']['frames']} real frames (tokenizer reconstruction error "
        f"{video['reconstruction']:.2f}, shift-compensated frame change "
        f"{video['temporal']:.2f} grey levels); on "
        f"{video['evaluation']['held_out_episodes']} held-out episodes:",
        "",
        "| clips | passed / refused |",
        "|---|---|",
    ]
    for name, m in video["evaluation"].items():
        if isinstance(m, dict) and "pass_rate" in m:
            lines.append(f"| {name} | {_pct(m['pass_rate'])} passed |")
        elif isinstance(m, dict) and "refusal_rate" in m:
            lines.append(f"| {name} (corrupted) | {_pct(m['refusal_rate'])} refused |")
    return lines


_GENERATOR_NAMES = {
    "text2world_diffusion": "diffusion WFM, Text2World from the shipped prompts",
    "episodes_maskgit": "episodes of the MaskGIT world model, zoo policies driving",
    "episodes_diffusion": "episodes of the post-trained diffusion WFM, zoo policies driving",
    "episodes_autoregressive": "episodes of the post-trained autoregressive WFM, zoo policies "
    "driving",
}


def _synthetic_section() -> list[str]:
    r = _load("synthetic_yield.json")
    if r is None:
        return _not_measured("python -m experiments.bench.synthetic_yield")
    lines = [
        f"Synthetic data through the guardrails: {r['clips_per_generator']} clips per generator "
        "with the shipped `experiments/conf/synthesize.yaml` (`python -m "
        "experiments.bench.synthetic_yield`); written clips are footage that curation and "
        "training read.",
        "",
        "| generator | passed the video guard | rejected (check: clips) | frames written | "
        "clips/s |",
        "|---|---|---|---|---|",
    ]
    measured = [k for k, v in r.items() if isinstance(v, dict) and "trained" in v]
    for name in sorted(measured, key=[*_GENERATOR_NAMES, *measured].index):
        m = r[name]
        label = _GENERATOR_NAMES.get(name, name)
        if not m["trained"]:
            lines.append(f"| {label} | not trained | – | – | – |")
            continue
        rejected = ", ".join(f"{k}: {v}" for k, v in m["rejected"].items()) or "none"
        lines.append(
            f"| {label} | {m['written']} / {m['generated']} ({_pct(m['pass_rate'])}) | "
            f"{rejected} | {m['frames_written']} | {m['clips_per_second']} |"
        )
    return [*lines, "", _machine(r)]


def render() -> str:
    """The whole BENCHMARKS.md text."""
    sections = [
        "# Benchmarks",
        "",
        "Generated by `python -m experiments.bench.summarize` from `experiments/results/*.json`;"
        " every number here comes from a script in `experiments/` that anyone can rerun.",
        "",
        "## Policy ranking: WFM-Driving-v0 against the real highway-env",
        "",
        *_ranking_section(),
        "",
        *_wide_ranking_section(),
        "",
        *_salient_section(),
        "",
        *_diagnosis_section(),
        "",
        *_crash_frames_section(),
        "",
        *_noise_section(),
        "",
        "## World model on held-out footage",
        "",
        *_quality_section(),
        "",
        *_family_model_section(),
        "## Environment speed",
        "",
        *_speed_section(),
        "",
        "### On a GPU",
        "",
        *_cuda_section(),
        "",
        "## RL inside the world model",
        "",
        *_rl_section(),
        "",
        "### Across PPO seeds",
        "",
        *_rl_seeds_section(),
        "",
        "### With a tenth of the real run's interactions",
        "",
        *_rl_small_footage_section(),
        "",
        "### Dyna: the model trained on the policy's own real episodes",
        "",
        *_rl_dyna_section(),
        "",
        "### Dyna with PPO started afresh each round",
        "",
        *_rl_dyna_fresh_section(),
        "",
        "### PPO candidates chosen on a few real episodes",
        "",
        *_rl_select_section(),
        "",
        "## MPC planning in the real env",
        "",
        *_mpc_section(),
        "",
        "The planner over the latent world model alone against the same oracle, on more episodes "
        "(the first 4 seeds are those above):",
        "",
        *_mpc_section(
            "mpc_latent",
            overrides=" run_pixel_planner=false episodes=12 out_dir=experiments/results/mpc_latent",
        ),
        "",
        "The same on three times as many starts (`make mpc-latent`; the first 12 are those above), for a "
        "narrower interval around the latent planner's share of the oracle's return:",
        "",
        *_mpc_section(
            "mpc_latent36",
            overrides=" run_pixel_planner=false episodes=36 out_dir=experiments/results/mpc_latent36",
        ),
        "",
        *_latent_model_section(),
        "",
        "### CEM against MPPI",
        "",
        "Every planner of `make mpc`, searching with MPPI instead of CEM (the same budget and "
        "starts):",
        "",
        *_mpc_section(
            "mpc_mppi", overrides=" planner.method=mppi out_dir=experiments/results/mpc_mppi"
        ),
        "",
        *_against_the_cem_oracle("mpc_mppi", "mpc"),
        "The latent planner and the oracle of the 12-episode run above, searching with MPPI:",
        "",
        *_mpc_section(
            "mpc_latent_mppi",
            overrides=" run_pixel_planner=false episodes=12 planner.method=mppi "
            "out_dir=experiments/results/mpc_latent_mppi",
        ),
        "",
        *_against_the_cem_oracle("mpc_latent_mppi", "mpc_latent"),
        *_planner_methods_section(),
        "",
        "### Dyna: fine-tuning the latent model on the planner's own driving",
        "",
        *_dyna_section(),
        "",
        "### Where the latent planner crashes",
        "",
        *_mpc_crashes_section(),
        "",
        *_mpc_crashes_section("mpc_crashes_risk0"),
        "",
        "### How the latent model ranks the plans its planner weighs",
        "",
        *_plan_labels_section(),
        "",
        "### How the latent planner weighs a crash",
        "",
        *_planner_risk_section(),
        "",
        "### Footage for the latent model",
        "",
        *_latent_footage_section(),
        "",
        "### Training the latent model on plan labels",
        "",
        *_plan_label_training_section(),
        "",
        "## Robotics: MuJoCo Pusher through the same pipeline",
        "",
        *_robot_section(),
        "",
        "## Curation",
        "",
        *_curation_section(),
        "",
        "## Video tokenizers",
        "",
        *_tokenizer_sections(),
        "",
        "## World foundation model backends",
        "",
        *_backends_section(),
        "",
        "## Guardrails",
        "",
        *_guardrail_section(),
        "",
        "### Synthetic data",
        "",
        *_synthetic_section(),
    ]
    return "\n".join(sections)


def main() -> None:
    """Write BENCHMARKS.md at the repository root."""
    with atomic_path(ROOT / "BENCHMARKS.md") as tmp:
        tmp.write_text(render())
    print(ROOT / "BENCHMARKS.md")


if __name__ == "__main__":
    main()
