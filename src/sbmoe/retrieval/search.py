"""Exact dot-product search over the full corpus, in chunks so memory stays bounded."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from sbmoe.io.runs import Run


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
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
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
    return {qid: {all_ids[i]: float(s) for i, s in zip(index[row], scores[row])} for row, qid in enumerate(query_ids)}


def chunks(ids: list[str], embeddings: np.ndarray, size: int = 100_000):
    """Split one in-memory encoded corpus into pieces for :func:`search`."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size], embeddings[start : start + size]
