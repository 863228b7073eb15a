"""Exact dot-product search over the full corpus, in chunks so memory stays bounded.

Runs are plain dicts, ``run[qid][doc_id] = score``, and are written as TREC run files
(``qid Q0 doc_id rank score tag``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .atomic import write_text
from .collection import DataFormatError

Run = dict[str, dict[str, float]]


def search(
    queries: np.ndarray,
    corpus_chunks: Iterable[tuple[list[str], np.ndarray]],
    query_ids: list[str],
    k: int = 1000,
    query_batch_size: int = 1024,
    device: str = "cpu",
) -> Run:
    """Top-``k`` documents per query by dot product.

    ``corpus_chunks`` yields ``(doc_ids, embeddings)`` pieces of the corpus (e.g. the shards of an
    encoded corpus); only one piece and the running top-``k`` are held at a time.
    """
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(device)
    best_scores = torch.empty((len(q), 0), device=device)
    best_index = torch.empty((len(q), 0), dtype=torch.long, device=device)
    all_ids: list[str] = []
    for doc_ids, embeddings in tqdm(corpus_chunks, desc="search", unit="chunk"):
        d = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32)).to(device)
        values, index = [], []
        for start in range(0, len(q), query_batch_size):
            top = torch.topk(q[start : start + query_batch_size] @ d.T, min(k, len(d)), dim=1)
            values.append(top.values)
            index.append(top.indices + len(all_ids))
        merged_scores = torch.cat([best_scores, torch.cat(values)], dim=1)
        merged_index = torch.cat([best_index, torch.cat(index)], dim=1)
        top = torch.topk(merged_scores, min(k, merged_scores.shape[1]), dim=1)
        best_scores, best_index = top.values, merged_index.gather(1, top.indices)
        all_ids.extend(doc_ids)
    if not all_ids:
        raise ValueError("the corpus is empty")
    scores, index = best_scores.cpu().numpy(), best_index.cpu().numpy()
    return {
        qid: {all_ids[i]: float(s) for i, s in zip(index[row], scores[row])} for row, qid in enumerate(query_ids)
    }


def chunks(ids: list[str], embeddings: np.ndarray, size: int = 100_000):
    """Split one in-memory encoded corpus into pieces for :func:`search`."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size], embeddings[start : start + size]


def write_trec_run(path: str | os.PathLike, run: Run, tag: str) -> None:
    """Write a run in TREC format, documents ranked by score (ties by document id), atomically."""
    lines = []
    for qid in run:
        ranked = sorted(run[qid].items(), key=lambda item: (-item[1], item[0]))
        lines.extend(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}" for rank, (doc, score) in enumerate(ranked, start=1))
    write_text(path, "\n".join(lines) + "\n")


def read_trec_run(path: str | os.PathLike) -> Run:
    """Read a TREC run file; a line without six fields is an error naming the file and line."""
    path = Path(path)
    run: Run = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 6:
                raise DataFormatError(path, number, f"expected 6 fields (qid Q0 doc rank score tag), found {len(fields)}")
            try:
                score = float(fields[4])
            except ValueError:
                raise DataFormatError(path, number, f"score {fields[4]!r} is not a number") from None
            run.setdefault(fields[0], {})[fields[2]] = score
    return run
