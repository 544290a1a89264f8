"""Curate footage into training shards, a catalog and a clip search index.

    python -m experiments.curate                       # data/footage/driving -> data/curated/driving
    python -m experiments.curate executor=ray          # the same stages as Ray tasks
    python -m experiments.curate dedup.epsilon=0.02    # looser dedup (stages before it are reused)

Stages: shot splitting, filtering, captioning, embedding, semantic dedup, sharding, indexing.
Each stage stores its output batch by batch under ``work_dir/stages``; a re-run resumes.
"""

from __future__ import annotations

import json

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from experiments.config import to_dataclass
from wfm_sim.curation.pipeline import CurationConfig, curate

ConfigStore.instance().store(name="curation_schema", node=CurationConfig)


@hydra.main(version_base=None, config_path="conf", config_name="curate")
def main(cfg: DictConfig) -> None:
    """Run (or resume) the curation and print what each stage kept and dropped."""
    result = curate(to_dataclass(cfg, CurationConfig))
    print(json.dumps(result.summary, indent=2))
    print(
        f"shards in {result.shards_dir}, catalog {result.catalog}, search index {result.index_uri}"
    )


if __name__ == "__main__":
    main()
