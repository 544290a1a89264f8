"""Pre-train the autoregressive world model (next-token, then text-conditioned Video2World)
on the FSQ tokens of a discrete video tokenizer.

    python -m experiments.train_autoregressive                     # -> runs/autoregressive/dv_4x8x8
    python -m experiments.train_autoregressive pretrain_steps=200 video2world_steps=100
    torchrun --standalone --nproc_per_node=2 -m experiments.train_autoregressive threads=1

Needs a trained discrete tokenizer (``make tokenizer-dv_4x8x8``; ``tokenizer_dir``) and the
curated shards (``shards_dir``). Interrupted runs resume from ``run_dir``; TensorBoard logs:
``tensorboard --logdir runs/autoregressive``.
"""

from __future__ import annotations

import json

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from experiments.config import to_dataclass
from wfm_sim.distributed import is_main_process
from wfm_sim.training.autoregressive import AutoregressiveTrainConfig, train_autoregressive

ConfigStore.instance().store(name="train_autoregressive_schema", node=AutoregressiveTrainConfig)


@hydra.main(version_base=None, config_path="conf", config_name="train_autoregressive")
def main(cfg: DictConfig) -> None:
    """Train (or resume), export both stages, and print their held-out measurements."""
    config = to_dataclass(cfg, AutoregressiveTrainConfig)
    exports = train_autoregressive(config)
    if not is_main_process():
        return
    for stage, folder in exports.items():
        report = json.loads((folder / "training.json").read_text())
        for context, scores in report.get("held_out", {}).items():
            print(
                f"{stage} ({context}): held-out cross-entropy {scores['before']['cross_entropy']:.3f}"
                f" -> {scores['after']['cross_entropy']:.3f} nats/token (perplexity "
                f"{scores['after']['perplexity']:.1f}; unigram "
                f"{scores['unigram_cross_entropy']:.3f}, uniform {report['uniform_cross_entropy']:.3f})"
            )
        if "held_out_video2world" in report:
            v2w = report["held_out_video2world"]
            print(
                f"  continuation token accuracy: sampled {v2w['sampled_token_accuracy']:.3f}, "
                f"greedy {v2w['greedy_token_accuracy']:.3f}, copy-last "
                f"{v2w['copy_last_token_accuracy']:.3f}"
            )
        if "decoding" in report:
            speed = report["decoding"]
            print(
                f"  decoding: {speed['cached_tokens_per_second']:.0f} tokens/s cached, "
                f"{speed['uncached_tokens_per_second']:.0f} uncached (x{speed['speedup']:.1f}), "
                f"same tokens: {speed['same_tokens']}"
            )
        print(f"  exported to {folder}")


if __name__ == "__main__":
    main()
