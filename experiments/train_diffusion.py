"""Pre-train the diffusion world model (Text2World, then Video2World) on tokenizer latents.

    python -m experiments.train_diffusion                          # -> runs/diffusion/cv_4x8x8
    python -m experiments.train_diffusion text2world_steps=200 video2world_steps=200
    torchrun --standalone --nproc_per_node=2 -m experiments.train_diffusion threads=1

Needs a trained continuous tokenizer (``make tokenizer-cv_4x8x8``; ``tokenizer_dir``) and the
curated shards (``shards_dir``). Interrupted runs resume from ``run_dir``; TensorBoard logs:
``tensorboard --logdir runs/diffusion``.
"""

from __future__ import annotations

import json

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from experiments.config import to_dataclass
from wfm_sim.distributed import is_main_process
from wfm_sim.training.diffusion import DiffusionTrainConfig, train_diffusion

ConfigStore.instance().store(name="train_diffusion_schema", node=DiffusionTrainConfig)


@hydra.main(version_base=None, config_path="conf", config_name="train_diffusion")
def main(cfg: DictConfig) -> None:
    """Train (or resume), export both stages, and print their held-out measurements."""
    config = to_dataclass(cfg, DiffusionTrainConfig)
    exports = train_diffusion(config)
    if not is_main_process():
        return
    for stage, folder in exports.items():
        report = json.loads((folder / "training.json").read_text())
        scores = report["held_out_denoising"]
        line = ", ".join(f"{k} {v['mean']:.4f}" for k, v in scores.items())
        print(f"{stage} in {folder}: held-out EDM error (mean over sigmas) {line}")
        if "held_out_video2world" in report:
            v2w = report["held_out_video2world"]
            print(
                f"  sampled continuation latent RMSE {v2w['rmse']:.4f} "
                f"(copy-last {v2w['copy_last_rmse']:.4f}), {v2w['seconds_per_clip']:.3f} s/clip"
            )


if __name__ == "__main__":
    main()
