"""Train one causal video tokenizer on the curated driving shards and export it.

    python -m experiments.train_tokenizer tokenizer=cv_4x8x8        # -> runs/tokenizer/cv_4x8x8
    python -m experiments.train_tokenizer tokenizer=dv_8x16x16 steps=500

Variants (experiments/conf/tokenizer/): cv/dv x 4x8x8, 8x8x8, 8x16x16, plus cv_4x8x8_noncausal
and dv_4x8x8_noncausal. Interrupted runs resume from ``run_dir``; TensorBoard logs:
``tensorboard --logdir runs/tokenizer``.
"""

from __future__ import annotations

import json

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from experiments.config import to_dataclass
from wfm_sim.tokenizer.training import TokenizerTrainConfig, train_tokenizer

ConfigStore.instance().store(name="train_tokenizer_schema", node=TokenizerTrainConfig)


@hydra.main(version_base=None, config_path="conf", config_name="train_tokenizer")
def main(cfg: DictConfig) -> None:
    """Train (or resume), export, and print the held-out scores."""
    config = to_dataclass(cfg, TokenizerTrainConfig)
    export_dir = train_tokenizer(config)
    report = json.loads((export_dir / "training.json").read_text())
    print(
        f"{report['name']} in {export_dir}: held-out PSNR {report['held_out']['psnr']:.2f} dB, "
        f"SSIM {report['held_out']['ssim']:.4f}, {report['bits_per_pixel']:.4f} bits/pixel"
    )


if __name__ == "__main__":
    main()
