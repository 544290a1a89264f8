"""Clip search: index clip embeddings in Milvus, answer text / clip / video queries, and show
where the data around a query set is sparse.

``ClipIndex`` (the vector store; Milvus Lite file or Milvus server), ``ClipSearchEngine`` (it
plus the embedders), ``exact_search`` (the numpy reference) and ``density_report``.
"""

from wfm_sim.search.density import DensityReport, DensityRow, density_report
from wfm_sim.search.engine import ClipSearchEngine
from wfm_sim.search.index import (
    INDEX_TYPES,
    ClipIndex,
    IndexOpenError,
    SearchHit,
    SearchIndexConfig,
    exact_search,
    recall_at_k,
    unit_rows,
)

__all__ = [
    "INDEX_TYPES",
    "ClipIndex",
    "ClipSearchEngine",
    "DensityReport",
    "DensityRow",
    "IndexOpenError",
    "SearchHit",
    "SearchIndexConfig",
    "density_report",
    "exact_search",
    "recall_at_k",
    "unit_rows",
]
