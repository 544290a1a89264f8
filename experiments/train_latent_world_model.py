"""Train the latent world model that MPC plans over at MLP speed, and write its model card.

    python -m experiments.train_latent_world_model                   # into runs/latent_world_model/driving
    python -m experiments.train_latent_world_model export_dir=world_models/zoo/driving_latent steps=2000

It reads the footage the driving world model was trained on (``make record``) and codes it
with that model's frozen tokenizer. Interrupted runs resume from ``run_dir``; TensorBoard
logs under ``run_dir/tb``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from experiments.bench.common import machine_facts
from experiments.config import to_dataclass
from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.training.latent_world_model import (
    LatentTrainConfig,
    train_latent_world_model,
    training_chain,
)


def _override(name: str, value: object) -> str:
    """One Hydra command-line override (a list as ``'name=[a,b]'``)."""
    if isinstance(value, list):
        return f"'{name}=[{','.join(str(v) for v in value)}]'"
    return f"{name}={value}"


def training_commands(info: dict[str, Any]) -> list[str]:
    """The commands that trained an exported latent model, oldest first: a run that started
    from another latent model (``init_checkpoint``) is preceded by the commands that made
    that one (``training_chain``)."""
    defaults = LatentTrainConfig()
    return [
        "python -m experiments.train_latent_world_model "
        + " ".join(
            _override(k, v) for k, v in run["train_config"].items() if v != getattr(defaults, k)
        )
        for run in training_chain(info)
    ]


def _made_by(info: dict[str, Any]) -> str:
    commands = training_commands(info)
    if len(commands) == 1:
        return f"Made by: `{commands[0]}`"
    return "Made by, in turn:\n\n" + "\n".join(f"    {c}" for c in commands)


def write_latent_model_card(
    export_dir: Path, config: LatentTrainConfig, made_by: str | None = None
) -> Path:
    """MODEL_CARD.md beside the checkpoint: the command and config that made it (``made_by``:
    Markdown that replaces the single training command, for a chain such as Dyna), the data it
    saw and its held-out measures."""
    info = json.loads((export_dir / "config.json").read_text())["info"]
    metrics = json.loads((export_dir / "metrics.json").read_text())
    weights_mb = (export_dir / "model.safetensors").stat().st_size / 1e6
    extra = "".join(
        f"; plus {info['episodes'][kind]} episodes ({info['frames'][kind]} frames){how} from "
        f"{', '.join(f'`{d}`' for d in folders)}"
        for kind, folders, how in (
            ("more", config.more_footage_dirs, ""),
            (
                "extra",
                config.extra_footage_dirs,
                f", {config.extra_footage_share:.0%} of each batch",
            ),
        )
        if info["episodes"].get(kind, 0)
    )
    labelled = info.get("plan_labels")
    if labelled:
        extra += (
            f"; plus {labelled['train_plans']} labelled plans from "
            f"{', '.join(f'`{d}`' for d in config.plan_labels_dirs)} "
            "(candidate plans of real decisions played on clones of highway-env, "
            f"`python -m experiments.plan_labels`; {config.plan_label_batch} in each batch at "
            f"weight {config.plan_label_weight}), {labelled['held_out_plans']} more held out "
            "(`plan_labels_held_out` below)"
        )
    rows = "\n".join(f"| {k} | {v} |" for k, v in metrics.items() if k != "machine")
    text = f"""# Latent world model for planning

A state-vector world model of highway-fast driving: the `{config.world_model}` world model's
frozen frame tokenizer codes the last frames, an MLP steps the state under an action and
predicts the step's reward and whether it ends the episode (a crash). It imagines no pixels:
`policies.planners.LatentModelPlanner` scores a CEM population in milliseconds.

{made_by or _made_by(info)}

Data: `{info["footage_dir"]}`, {info["episodes"]["train"]} training episodes
({info["frames"]["train"]} frames), {info["episodes"]["held_out"]} held out (the source world
model's split){extra}. Weights: {weights_mb:.1f} MB. Wall-clock of the run that finished it:
{info["wall_seconds_this_run"]} s on this machine.

Held-out measures: open-loop from each window's real context under its real actions
(`wfm_sim.training.latent_world_model.score_latent_model`), step 1 first.

| measure | value |
|---|---|
{rows}
"""
    path = export_dir / "MODEL_CARD.md"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def describe_export(
    export_dir: Path, config: LatentTrainConfig, made_by: str | None = None
) -> Path:
    """Stamp an exported checkpoint's metrics.json with the machine facts and write its
    model card (``made_by`` as in ``write_latent_model_card``); returns the card's path."""
    metrics_path = export_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    write_json_atomic(metrics_path, {**metrics, "machine": machine_facts()})
    return write_latent_model_card(export_dir, config, made_by)


ConfigStore.instance().store(name="train_latent_world_model_schema", node=LatentTrainConfig)


@hydra.main(version_base=None, config_path="conf", config_name="train_latent_world_model")
def main(cfg: DictConfig) -> None:
    """Train, export, write the model card and print where they are."""
    config = to_dataclass(cfg, LatentTrainConfig)
    export_dir = train_latent_world_model(config)
    card = describe_export(export_dir, config)
    print(f"latent world model in {export_dir}; model card {card}")


if __name__ == "__main__":
    main()
