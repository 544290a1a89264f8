"""Search the curated clips by free text, by a clip id or by an mp4, and see where data is sparse.

    python -m experiments.search_clips "the ego car crashes in dense traffic"
    python -m experiments.search_clips --clip data_footage_driving-p00003-000040-000072
    python -m experiments.search_clips --video my_drive.mp4 --k 3
    python -m experiments.search_clips --density "a car drives slowly on an empty road" "..."

Prints the top-k clips with their scores and captions; ``--density`` prints, for each query,
how far the nearest caption cluster centre and the k nearest clip captions are, and flags
queries where the curated data is sparse.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from wfm_sim.curation.dedup import kmeans
from wfm_sim.curation.pipeline import EMBEDDINGS_NAME, open_search
from wfm_sim.search import SearchHit, density_report


def _print_hits(title: str, hits: list[SearchHit]) -> None:
    print(title)
    for rank, hit in enumerate(hits, 1):
        print(f"  {rank:2d}. {hit.score:.3f}  {hit.clip_id}\n      {hit.caption}")


def main() -> None:
    """Answer one query (or a density report over several) against a curated folder."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("text", nargs="*", help="free-text queries")
    parser.add_argument("--clip", help="a clip id of the index to find neighbours of")
    parser.add_argument("--video", type=Path, help="an mp4 to find similar clips to")
    parser.add_argument("--density", action="store_true", help="density report for the texts")
    parser.add_argument("--work", default="data/curated/driving")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--clusters", type=int, default=16, help="caption clusters for --density")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if not (args.text or args.clip or args.video):
        parser.error("give a text query, --clip ID or --video FILE")
    engine = open_search(args.work, device=args.device)
    with engine.index:
        if args.density:
            # Text queries are compared with the clips' captions in MiniLM's space: text and
            # video embeddings share a space for ranking but sit apart (the modality gap).
            indexed = pq.read_table(Path(args.work) / EMBEDDINGS_NAME, columns=["text_embedding"])
            captions = np.asarray(indexed.column(0).to_pylist(), dtype=np.float32)
            centroids, _ = kmeans(captions, k=min(args.clusters, len(captions)))
            queries = np.asarray(engine.embed_text(list(args.text)), dtype=np.float32)
            report = density_report(queries, captions, centroids, k=args.k)
            print(
                f"sparse when the mean distance to the {report.k} nearest clips exceeds "
                f"{report.sparse_threshold:.3f} (the {report.percentile:.0f}th percentile "
                "among the clips themselves)"
            )
            for row, text in zip(report, args.text, strict=True):
                flag = "SPARSE" if row.sparse else "dense "
                print(
                    f"  {flag} knn {row.knn_distance:.3f}  centroid {row.centroid_distance:.3f}"
                    f"  within radius {row.neighbours_in_radius:4d}  {text}"
                )
            return
        for text in args.text:
            _print_hits(f"text: {text!r}", engine.by_text(text, args.k))
        if args.clip:
            _print_hits(f"clip: {args.clip}", engine.by_clip(args.clip, args.k))
        if args.video:
            _print_hits(f"video: {args.video}", engine.by_video_file(args.video, args.k))


if __name__ == "__main__":
    main()
