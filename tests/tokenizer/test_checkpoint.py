from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.tokenizer.conftest import random_video
from wfm_sim.tokenizer import VideoTokenizer, VideoTokenizerConfig, load_tokenizer, save_tokenizer

Make = Callable[..., VideoTokenizer]


def test_checkpoint_round_trip_restores_weights_and_codes(
    make_tokenizer: Make, tmp_path: Path
) -> None:
    tokenizer = make_tokenizer(kind="discrete", temporal_compression=8, fsq_levels=(8, 8, 8))
    folder = save_tokenizer(tokenizer, tmp_path / "ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["fsq_levels"] == [8, 8, 8]
    loaded = load_tokenizer(folder, expected=tokenizer.config)
    assert loaded.config == tokenizer.config and not loaded.training
    for name, tensor in tokenizer.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    video = random_video(1, 9)
    with torch.no_grad():
        assert torch.equal(loaded.encode_indices(video), tokenizer.encode_indices(video))


def test_a_checkpoint_of_another_config_is_refused(make_tokenizer: Make, tmp_path: Path) -> None:
    folder = save_tokenizer(make_tokenizer(), tmp_path / "ckpt")
    other = VideoTokenizerConfig(width=8, temporal_compression=8)
    with pytest.raises(ValueError, match="cv_4x8x8, not the expected cv_8x8x8"):
        load_tokenizer(folder, expected=other)
    # weights that do not fit the stored config are named, not a bare RuntimeError
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "width": 16}))
    with pytest.raises(ValueError, match="do not fit"):
        load_tokenizer(folder)
    with pytest.raises(FileNotFoundError, match="not a tokenizer checkpoint"):
        load_tokenizer(tmp_path / "nowhere")
