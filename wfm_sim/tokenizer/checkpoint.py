"""Tokenizer checkpoints: a folder of ``model.safetensors`` (weights only, so loading runs no
code) and ``config.json`` (the ``VideoTokenizerConfig``), each written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from wfm_sim.io import atomic_path, write_json_atomic
from wfm_sim.tokenizer.config import VideoTokenizerConfig
from wfm_sim.tokenizer.network import VideoTokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_tokenizer(tokenizer: VideoTokenizer, directory: str | Path) -> Path:
    """Write ``tokenizer``'s weights and config into ``directory``; returns the folder."""
    folder = Path(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tokenizer.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp))
    write_json_atomic(folder / CONFIG_FILE, tokenizer.config.to_dict())
    return folder


def read_tokenizer_config(directory: str | Path) -> VideoTokenizerConfig:
    """The config a checkpoint folder was saved with."""
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {directory} is not a tokenizer checkpoint")
    return VideoTokenizerConfig.from_dict(json.loads(path.read_text()))


def load_tokenizer(
    directory: str | Path,
    expected: VideoTokenizerConfig | None = None,
    device: str | torch.device = "cpu",
) -> VideoTokenizer:
    """Rebuild the tokenizer saved in ``directory`` (in eval mode, on ``device``).

    Raises ``ValueError`` if ``expected`` is given and the checkpoint's config differs, or if
    the weights do not fit the config.
    """
    config = read_tokenizer_config(directory)
    if expected is not None and config != expected:
        diff = {
            k: (v, expected.to_dict()[k])
            for k, v in config.to_dict().items()
            if v != expected.to_dict()[k]
        }
        raise ValueError(
            f"checkpoint {directory} holds {config.name}, not the expected {expected.name}; "
            f"differing fields (saved, expected): {diff}"
        )
    tokenizer = VideoTokenizer(config)
    try:
        tokenizer.load_state_dict(load_file(str(Path(directory) / WEIGHTS_FILE)))
    except RuntimeError as error:
        raise ValueError(
            f"weights in {directory} do not fit its config {config.name}: {error}"
        ) from error
    return tokenizer.to(device).eval()
