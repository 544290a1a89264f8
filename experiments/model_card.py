"""Write a world model's MODEL_CARD.md: how it was made, on what data, and how good it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

import world_models
from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.training.evaluate import evaluate_world_model
from wfm_sim.training.imagined_heads import imagine_transitions, score_heads_on_imagination
from wfm_sim.training.world_model import load_episodes


def held_out_episodes(checkpoint: Path, footage_dir: str) -> list:
    """The held-out episodes recorded in the checkpoint's training.json (curated shard clips
    when the model was trained on shards)."""
    training = json.loads((checkpoint / "training.json").read_text())
    held = world_models.held_out_episode_ids(checkpoint)
    train_config = training["train_config"]
    episodes = load_episodes(
        footage_dir,
        training.get("shards_dir", ""),
        training.get("frame_size") or train_config["model"]["frame_size"],
        train_config.get("condition_columns", []),
    )
    return [e for e in episodes if e.episode_id in held]


SUBJECTS: dict[str, tuple[str, str, str]] = {
    "highway-env": (
        "An action-conditioned world model of highway-env's `highway-fast-v0`, seen as 64x64 "
        "RGB\ntop-down frames at one frame per 1 s decision step. It backs "
        '`gym.make("WFM-Driving-v0")`.',
        "recorded by the policy zoo and biased random drivers",
        "Cars entering the view are a guess; each position's token is drawn on its own, so an "
        "uncertain\ncar can come out partly drawn. Ego speed is not drawn in the frame, so the "
        "model infers it\nfrom motion and actions. The tokenizer keeps none of the red of crashed "
        "cars, so no imagined\nframe shows a crash (`python -m experiments.bench.crash_frames`); "
        "the termination head reads\nit from where the cars are.",
    ),
    "mujoco-pusher": (
        "An action-conditioned world model of Gymnasium's MuJoCo `Pusher-v5` (a 7-joint arm "
        "pushing\na puck to a goal), seen as 64x64 RGB frames at one frame per 0.05 s control "
        'step. It backs\n`gym.make("WFM-Robot-v0")` (or a camera-conditioned variant, when '
        "its actions end with a camera pose).",
        "recorded by a scripted pusher at several noise levels, random torques and a still arm",
        "Deterministic next-latent prediction: the arm blurs where torques leave its motion "
        "uncertain;\nthe reward head reads distances from 64x64 pixels.",
    ),
}
"""Per footage source: (what the model is, who recorded its data, its known limits)."""


def _parts(config: world_models.WorldModelConfig) -> str:
    """The tokenizer and dynamics lines of a card's parts list, for either kind of latent."""
    side = config.latent_size
    family = config.family_tokenizer()
    coder = (
        "causal frame tokenizer"
        if family is None
        else f"the tokenizer family's causal video tokenizer `{family.name}`, each frame coded "
        "as an image"
    )
    if config.discrete:
        levels = "x".join(str(level) for level in config.fsq_levels)
        return (
            f"- {coder} (discrete: {side}x{side} FSQ tokens of "
            f"{config.codebook_size} codes ({levels} levels) per frame; frame t is coded alone)\n"
            f"- token dynamics (U-Net over a context of {config.context} token grids + actions; "
            "predicts a distribution over each position's next token, sampled in the env)"
        )
    return (
        f"- {coder} (continuous latent {config.latent_channels}x{side}x{side} "
        "per frame; frame t is coded alone)\n"
        f"- latent dynamics (U-Net over a context of {config.context} latents + actions; "
        "predicts the next latent)"
    )


def _commands(training: dict, config_name: str) -> str:
    """The training commands that made a checkpoint, oldest first: a run that started from
    another checkpoint (``init_checkpoint``) is preceded by the commands that made that one."""
    cfg = training["train_config"]
    overrides = [
        f"run_dir={cfg['run_dir']}",
        f"export_dir={cfg['export_dir']}",
        f"tokenizer_steps={cfg['tokenizer_steps']}",
        f"dynamics_steps={cfg['dynamics_steps']}",
        f"finetune_steps={cfg['finetune_steps']}",
        f"model.decode_rounds={cfg['model']['decode_rounds']}",
    ]
    if cfg.get("imagined_head_steps"):
        overrides.append(f"imagined_head_steps={cfg['imagined_head_steps']}")
    if cfg.get("init_checkpoint"):
        overrides.append(f"init_checkpoint={cfg['init_checkpoint']}")
    tokenizer = cfg.get("tokenizer_checkpoint")
    if tokenizer:
        overrides.append(f"tokenizer_checkpoint={tokenizer}")
    command = f"python -m experiments.train_world_model --config-name {config_name} " + " ".join(
        overrides
    )
    earlier = training.get("started_from")
    if earlier:
        return f"{_commands(earlier, config_name)}\n{command}"
    return f"{_tokenizer_command(tokenizer)}\n{command}" if tokenizer else command


def _tokenizer_command(checkpoint: str) -> str:
    """The command that trained the family tokenizer in ``checkpoint`` (its variant and the
    settings its training.json records that differ from the variant file's)."""
    report = json.loads((Path(checkpoint) / "training.json").read_text())
    cfg = report["train_config"]
    overrides = [f"tokenizer={report['name']}", f"steps={cfg['steps']}"]
    keys = ("batch", "clip_frames", "min_clip_frames", "threads")
    overrides += [f"{key}={cfg[key]}" for key in keys]
    return "python -m experiments.train_tokenizer " + " ".join(overrides)


RECORDER_KEYS = (
    "source",
    "episodes",
    "episodes_per_part",
    "seed",
    "fps",
    "crf",
    "copies",
    "copy_parts",
)
"""The recorder settings a model card's record command names (besides ``sim``), so that it
records the same footage whatever the default config holds."""


def _hydra_value(value: Any) -> str:
    """``value`` as a Hydra command-line override value."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    return str(value)


def record_command(footage_dir: str) -> str:
    """The command that records ``footage_dir`` again, from the recorder settings in its
    footage.json (every setting and sim field spelled out: ``++`` adds or overrides)."""
    path = Path(footage_dir) / "footage.json"
    if not path.exists():
        return f"python -m experiments.record out_dir={footage_dir}"
    recorder = json.loads(path.read_text())["recorder"]
    settings = {key: recorder[key] for key in RECORDER_KEYS if key in recorder}
    overrides = [f"++{key}={_hydra_value(value)}" for key, value in settings.items()]
    overrides += [f"++sim.{key}={_hydra_value(v)}" for key, v in recorder.get("sim", {}).items()]
    quoted = [f"'{o}'" if any(c in o for c in "[],") else o for o in overrides]
    return " ".join(["python -m experiments.record", *quoted, f"out_dir={footage_dir}"])


def _schedule(cfg: dict) -> str:
    """One sentence on the last run's stages."""
    teacher_forced = cfg["model"].get("fsq_levels")
    dynamics = "teacher-forced" if teacher_forced else f"unrolled {cfg['horizon']} steps"
    return (
        f"Last run: tokenizer {cfg['tokenizer_steps']} steps (batch {cfg['tokenizer_batch']}), "
        f"dynamics {cfg['dynamics_steps']} steps (batch {cfg['dynamics_batch']}, {dynamics}), "
        f"then {cfg['finetune_steps']} steps unrolled {cfg['finetune_horizon']} steps on its own "
        "drawn frames"
        + (
            f", then {cfg['imagined_head_steps']} steps of the heads alone on the training "
            "episodes imagined whole from their real starts."
            if cfg.get("imagined_head_steps")
            else "."
        )
    )


def salience_lines(model: world_models.EnvModel, checkpoint: Path, training: dict) -> str:
    """How the checkpoint's token salience (``salience.safetensors``) was measured: on its
    training frames, or by the commands that recorded other footage and measured it there;
    empty when it has none."""
    if not isinstance(model, world_models.WorldModel) or not model.has_salience:
        return ""
    source = model.salience_source
    footage = source.get("footage", "")
    what = "Token salience (`salience.safetensors`: which tokens show cars, for `salient_priority`)"
    if footage in (training.get("footage_dir"), training.get("shards_dir")):
        return f"\n{what}: measured on the training frames.\n"
    return (
        f"\n{what}: measured on {source.get('frames', '?')} frames of footage recorded apart:\n"
        f"```\n{record_command(footage)}\npython -m experiments.code_salience --checkpoint "
        f"{checkpoint} --footage {footage} --episodes {source.get('episodes', '?')}\n```\n"
    )


def write_model_card(
    checkpoint: str | Path, footage_dir: str, config_name: str = "train_world_model"
) -> Path:
    """Measure the checkpoint on its held-out footage and write metrics.json + MODEL_CARD.md;
    ``config_name`` is the Hydra config it was trained with."""
    checkpoint = Path(checkpoint)
    model = world_models.load(checkpoint, device="cpu")
    held_out = held_out_episodes(checkpoint, footage_dir)
    metrics = evaluate_world_model(model, held_out)
    if not model.config.continuous_actions:
        # the heads on whole imagined held-out episodes: the states the env scores
        bank = imagine_transitions(model, held_out, seed=0)
        metrics.update(score_heads_on_imagination(model, bank))
    write_json_atomic(checkpoint / "metrics.json", metrics)
    training = json.loads((checkpoint / "training.json").read_text())
    params = sum(p.numel() for p in model.parameters())
    weights_mb = (checkpoint / "model.safetensors").stat().st_size / 1e6
    rows = "\n".join(
        f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in metrics.items()
    )
    cfg = training["train_config"]
    footage_json = Path(footage_dir) / "footage.json"
    source = (
        json.loads(footage_json.read_text())["source"] if footage_json.exists() else "highway-env"
    )
    subject, recorded_by, limits = SUBJECTS[source]
    conditioned = (
        f"\nEach action is extended by the next frame's {', '.join(cfg['condition_columns'])}.\n"
        if cfg.get("condition_columns")
        else ""
    )
    text = f"""# World model card: `{checkpoint.name}`

{subject}
{conditioned}
## Parts
{_parts(model.config)}
- reward and termination heads (context, actions and predicted next latent)
- {params / 1e6:.2f} M parameters, {weights_mb:.1f} MB safetensors; no pickle anywhere

## How it was made
```
{record_command(footage_dir)}
{_commands(training, config_name)}
```
Other values as in `experiments/conf/{config_name}.yaml` (the exact ones are in `training.json`).
{_schedule(cfg)}
{salience_lines(model, checkpoint, training)}
## Data
{training["episodes"]["train"]} training episodes ({training["frames"]["train"]} frames) and
{training["episodes"]["held_out"]} held-out episodes ({training["frames"]["held_out"]} frames), split by episode,
{recorded_by}. The env's start frames are the first
frames of held-out episodes (`starts.safetensors`).

## Held-out metrics (`metrics.json`, from `experiments/model_card.py`)
| metric | value |
|---|---|
{rows}

## Limits
{limits}
"""
    with atomic_path(checkpoint / "MODEL_CARD.md") as tmp:
        tmp.write_text(text)
    return checkpoint / "MODEL_CARD.md"


if __name__ == "__main__":
    import sys

    torch.set_num_threads(2)
    print(write_model_card(sys.argv[1], sys.argv[2]))
