"""Curation: long footage -> clips that are split, filtered, captioned, embedded, deduplicated,
sharded and indexed for search (Cosmos' video curator at laptop scale).

One module per stage (``shots``, ``filters``, ``captions``, ``embed``, ``dedup``), the clip
format (``clips``), the batch runner (``runner``: in-process or Ray) and ``pipeline.curate``,
which runs them all; ``python -m experiments.curate`` is its command.
"""
