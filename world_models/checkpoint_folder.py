"""The checkpoint folder the pre-trained WFMs (diffusion, autoregressive) share: weights in
``model.safetensors`` and a ``config.json`` naming the format, the model config, the tokenizer
config the model reads latents of, and free-form info. Loading runs no code from the folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.tokenizer.config import VideoTokenizerConfig
from world_models.model import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointMismatchError,
    exported_state,
    read_config_payload,
)


def write_checkpoint(
    folder: str | Path,
    model: nn.Module,
    fmt: str,
    config_key: str,
    config: dict[str, Any],
    tokenizer: VideoTokenizerConfig | None = None,
    info: dict[str, Any] | None = None,
    weights_dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``model``'s weights and config.json (``config`` under ``config_key``) into
    ``folder``, each file atomically; returns the folder. ``weights_dtype`` float16 halves
    the file (for checkpoints committed to the repository); loading casts back."""
    folder = Path(folder)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(exported_state(model, weights_dtype), str(tmp), metadata={"format": fmt})
    write_json_atomic(
        folder / CONFIG_FILE,
        {
            "format": fmt,
            config_key: config,
            "tokenizer": tokenizer.to_dict() if tokenizer is not None else None,
            "info": info or {},
        },
    )
    return folder


def read_checkpoint(
    folder: str | Path, fmt: str, config_key: str, kind: str
) -> tuple[dict[str, Any], VideoTokenizerConfig | None, dict[str, Any]]:
    """(the model config as stored, the tokenizer config or None, info) of a folder written
    by ``write_checkpoint``; refuses a missing config.json or another format, naming ``kind``
    (e.g. "a diffusion")."""
    path, payload = read_config_payload(folder, kind)
    if payload.get("format") != fmt:
        raise CheckpointMismatchError(
            f"{path} has format {payload.get('format')!r}; this code reads {fmt!r}"
        )
    tokenizer = payload.get("tokenizer")
    return (
        payload[config_key],
        VideoTokenizerConfig.from_dict(tokenizer) if tokenizer else None,
        payload.get("info", {}),
    )


def refuse_other_config(folder: str | Path, saved: Any, expected: Any | None) -> None:
    """Raise ``CheckpointMismatchError`` listing the differing fields when ``expected`` (a
    config dataclass with ``to_dict``) is given and is not ``saved``."""
    if expected is None or saved == expected:
        return
    stored, wanted = saved.to_dict(), expected.to_dict()
    diff = {k: (v, wanted[k]) for k, v in stored.items() if wanted[k] != v}
    raise CheckpointMismatchError(
        f"checkpoint {folder} was saved with another config: (saved, expected) {diff}"
    )


def load_weights(folder: str | Path, model: nn.Module, device: str | torch.device) -> nn.Module:
    """``model`` with the folder's weights, in eval mode on ``device``; weights that do not
    fit it raise ``CheckpointMismatchError``."""
    state = load_file(str(Path(folder) / WEIGHTS_FILE))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointMismatchError(
            f"weights in {folder} do not fit its config.json: {error}"
        ) from error
    return model.to(device).eval()
