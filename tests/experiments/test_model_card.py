"""The model card's reproduction commands follow a checkpoint's lineage and rebuild its
footage's recorder settings."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import world_models
from experiments.code_salience import measure_into
from experiments.config import to_dataclass
from experiments.model_card import _commands, record_command, salience_lines
from wfm_sim.io import write_json_atomic
from wfm_sim.sources.recorder import RecorderConfig
from world_models.model import SALIENCE_FILE


def _report(run: str, init: str = "", started_from: dict | None = None) -> dict:
    config = {
        "run_dir": f"runs/{run}",
        "export_dir": f"runs/{run}/checkpoint",
        "tokenizer_steps": 0 if init else 3000,
        "dynamics_steps": 6000,
        "finetune_steps": 800,
        "init_checkpoint": init,
        "model": {"decode_rounds": 8 if init else 4},
    }
    return {"train_config": config, "started_from": started_from}


def test_a_checkpoint_trained_further_lists_the_commands_of_its_start_first() -> None:
    first = _report("v2")
    commands = _commands(_report("v4", "runs/v2/checkpoint", first), "train_world_model").split(
        "\n"
    )
    assert len(commands) == 2
    assert "run_dir=runs/v2 " in commands[0] and "init_checkpoint" not in commands[0]
    assert "model.decode_rounds=4" in commands[0]
    assert commands[1].endswith("model.decode_rounds=8 init_checkpoint=runs/v2/checkpoint")
    assert "tokenizer_steps=0" in commands[1]


def test_a_checkpoint_from_random_weights_has_one_command() -> None:
    assert len(_commands(_report("v1"), "train_world_model").splitlines()) == 1


def test_a_heads_stage_is_part_of_the_command() -> None:
    report = _report("v5", "runs/v4/checkpoint", _report("v4"))
    report["train_config"]["imagined_head_steps"] = 1500
    last = _commands(report, "train_world_model").splitlines()[-1]
    assert "imagined_head_steps=1500 init_checkpoint=runs/v4/checkpoint" in last
    assert "imagined_head_steps" not in _commands(_report("v1"), "train_world_model")


def test_a_family_tokenizer_is_trained_by_the_first_command(tmp_path: Path) -> None:
    tokenizer = tmp_path / "dv_1x4x4" / "checkpoint"
    train_config = {
        "steps": 3000,
        "batch": 16,
        "clip_frames": 5,
        "min_clip_frames": 1,
        "threads": 2,
    }
    write_json_atomic(
        tokenizer / "training.json", {"name": "dv_1x4x4", "train_config": train_config}
    )
    report = _report("family")
    report["train_config"]["tokenizer_checkpoint"] = str(tokenizer)
    commands = _commands(report, "train_world_model").splitlines()
    assert commands[0] == (
        "python -m experiments.train_tokenizer tokenizer=dv_1x4x4 steps=3000 batch=16 "
        "clip_frames=5 min_clip_frames=1 threads=2"
    )
    assert commands[1].endswith(f"tokenizer_checkpoint={tokenizer}")
    further = _commands(_report("more", "runs/family/checkpoint", report), "train_world_model")
    assert len(further.splitlines()) == 3


def test_the_record_command_rebuilds_the_footages_recorder_config(tmp_path: Path) -> None:
    recorded = RecorderConfig(
        out_dir=str(tmp_path),
        source="pusher",
        sim={"moving_camera": True, "azimuth_range": [50.0, 130.0], "camera_turn_steps": [4, 12]},
        episodes=120,
        episodes_per_part=12,
        seed=1,
        fps=20,
    )
    write_json_atomic(tmp_path / "footage.json", {"recorder": dataclasses.asdict(recorded)})
    command = record_command(str(tmp_path))
    assert command.startswith("python -m experiments.record ")
    overrides = shlex.split(command)[3:]
    conf_dir = Path(__file__).resolve().parents[2] / "experiments" / "conf"
    with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
        cfg = compose(config_name="record", overrides=overrides)
    assert to_dataclass(cfg, RecorderConfig) == recorded


def test_the_card_says_where_the_token_salience_was_measured(
    tmp_path: Path, tiny_checkpoint: Path, tiny_footage: Path
) -> None:
    training = json.loads((tiny_checkpoint / "training.json").read_text())
    trained = world_models.load(tiny_checkpoint)
    assert "measured on the training frames" in salience_lines(trained, tiny_checkpoint, training)
    # Measured again on other footage (the command a checkpoint trained before salience
    # existed gets it from), the card gives the commands that record and measure it.
    folder, apart = tmp_path / "checkpoint", tmp_path / "footage_apart"
    shutil.copytree(tiny_checkpoint, folder)
    shutil.copytree(tiny_footage, apart)
    written = measure_into(str(folder), str(apart), episodes=3)
    assert written == folder / SALIENCE_FILE
    lines = salience_lines(world_models.load(folder), folder, training)
    assert "python -m experiments.record" in lines
    assert f"python -m experiments.code_salience --checkpoint {folder} --footage " in lines
    assert "--episodes 3" in lines
    with pytest.raises(ValueError, match="episodes must be at least 1"):
        measure_into(str(folder), str(apart), episodes=0)
