"""Counts of a dataset in BEIR layout: documents, queries and, per split, judged queries and
judgements, with mean lengths in whitespace tokens (the paper's table of them is
:mod:`sbmoe.analysis.tables.dataset_stats`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sbmoe.data.table import SPLIT_ORDER
from sbmoe.io.collection import document_text, load_corpus, load_qrels, load_queries


def ordered_splits(splits: Iterable[str]) -> list[str]:
    """Split names in the study's order (:data:`SPLIT_ORDER`), others after them by name."""
    rank = {split: i for i, split in enumerate(SPLIT_ORDER)}
    return sorted(set(splits), key=lambda split: (rank.get(split, len(rank)), split))


def _mean(values: Iterable[int]) -> float:
    total = count = 0
    for value in values:
        total += value
        count += 1
    return total / count if count else 0.0


def dataset_statistics(folder: str | os.PathLike) -> dict:
    """Counts of a BEIR folder: documents, queries, per split judged queries and qrels, and mean
    document (title + text) and query lengths in whitespace tokens."""
    folder = Path(folder)
    corpus = load_corpus(folder / "corpus.jsonl")
    queries = load_queries(folder / "queries.jsonl")
    splits = {}
    for split in ordered_splits(path.stem for path in (folder / "qrels").glob("*.tsv")):
        qrels = load_qrels(folder / "qrels" / f"{split}.tsv")
        splits[split] = {"judged_queries": len(qrels), "qrels": sum(map(len, qrels.values()))}
    return {
        "documents": len(corpus),
        "queries": len(queries),
        "mean_document_length": _mean(len(document_text(doc).split()) for doc in corpus.values()),
        "mean_query_length": _mean(len(text.split()) for text in queries.values()),
        "splits": splits,
    }
