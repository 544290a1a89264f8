"""The curation run on the recorded footage: what each stage kept and dropped, and how long the
whole run took (a resumed run only re-reads what is stored, so time a fresh ``--work``).

    python -m experiments.bench.curation_run [--work data/curated/driving]
    python -m experiments.bench.curation_run --config-name curate_robot --work data/curated/robot --name curation_run_robot
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from hydra import compose, initialize

import experiments.curate  # noqa: F401  (registers the curation config schema)
from experiments.bench.common import write_result
from experiments.config import to_dataclass
from wfm_sim.curation.embed import retrieval_recall_at_k
from wfm_sim.curation.pipeline import EMBEDDINGS_NAME, CurationConfig, curate
from wfm_sim.data.shards import read_catalog


def held_out_retrieval(work: Path) -> dict[str, float | int]:
    """Text-to-clip recall@1/5/10 of the curation's encoder over the clips of the footage parts
    it never trained on (each caption against all those clips; identical captions count)."""
    held_parts = set(json.loads((work / "encoder" / "split.json").read_text())["held_out_parts"])
    catalog = read_catalog(work / "shards").to_pandas().set_index("clip_id")
    table = pq.read_table(work / EMBEDDINGS_NAME).to_pandas()
    held = table[[int(catalog.loc[c, "part"]) in held_parts for c in table["clip_id"]]]
    videos = np.stack(held["video_embedding"].to_numpy()).astype(np.float32)
    texts = np.stack(held["text_embedding"].to_numpy()).astype(np.float32)
    recalls: dict[str, float | int] = {"clips": len(held)}
    for k in (1, 5, 10):
        recalls[f"recall@{k}"] = retrieval_recall_at_k(videos, texts, k)
        recalls[f"recall@{k}_strict"] = retrieval_recall_at_k(videos, texts, k, None)
    return recalls


def caption_counts(work: Path, kept: bool = True) -> dict[str, int]:
    """How many clips that semantic dedup kept (or, with ``kept=False``, removed) carry each
    caption."""
    catalog = read_catalog(work / "shards").to_pandas()
    captioned = catalog[catalog["caption"].notna()]
    chosen = captioned[captioned["dedup_kept"].fillna(False).astype(bool) == kept]
    return {str(k): int(v) for k, v in chosen["caption"].value_counts().items()}


def main() -> None:
    """Run (or resume) the curation with experiments/conf/<config-name>.yaml; write
    experiments/results/<name>.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config-name", default="curate")
    parser.add_argument("--work", default="data/curated/driving")
    parser.add_argument("--name", default="curation_run", help="result file stem")
    args = parser.parse_args()
    with initialize(version_base=None, config_path="../conf"):
        cfg = compose(args.config_name, overrides=[f"work_dir={args.work}"])
    config = to_dataclass(cfg, CurationConfig)
    started = time.perf_counter()
    result = curate(config)
    seconds = time.perf_counter() - started
    path = write_result(
        args.name,
        {
            "config_name": args.config_name,
            "work_dir": args.work,
            "seconds_this_run": round(seconds, 1),
            "summary": result.summary,
            "held_out_text_to_clip": held_out_retrieval(result.work_dir),
            "captions": caption_counts(result.work_dir),
            "captions_removed_by_dedup": caption_counts(result.work_dir, kept=False),
        },
    )
    print(path)


if __name__ == "__main__":
    main()
