"""Mixture-of-Experts routing over whole retrievers: a gate reads the query and picks one of several
expert retrievers (hard routing) or weights their runs (soft routing).

The retrieval analogue of SB-MoE's gate, one level up: the experts are complete retrievers (BM25,
the zero-shot encoder, trained systems of the study), each with its run for every query.

- An expert is named ``bm25``, ``zeroshot`` or a system of the study with its inference pooling
  (``finetune``, ``sbmoe-learned-e6/top1``; see :func:`sbmoe.systems.names.parse_expert`; their labels
  are :func:`sbmoe.systems.labels.expert_label`).
- The **utility** of an expert for a query is its per-query nDCG@10 against the qrels.
- The gate (:class:`sbmoe.selection.router.Router`) reads the query's embedding from the base encoder and,
  optionally, cheap query features (:data:`FEATURES`): the query's length and the statistics of its
  BM25 scores. It is trained on queries the experts were not trained on (a held-out split) to pick
  the expert with the highest utility.
- **Hard routing** returns the chosen expert's run; **soft routing** fuses the runs with the gate's
  per-query weights (:func:`sbmoe.retrieval.fusion.per_query_fusion`, scores min-max normalised as ranx
  does); the **oracle** picks the expert with the highest utility for each test query, the ceiling
  any router can reach. The baselines are the single experts and their fusions (RRF, and WSUM with
  weights tuned on the router's training split).

This module holds the experts, their utilities and features, and hard and soft routing; it needs no
PyTorch (the analysis reads it). The gate lives in :mod:`sbmoe.selection.router`, the pipeline's
stages in :mod:`sbmoe.selection.routing`, the comparisons the report prints in
:mod:`sbmoe.selection.comparison`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sbmoe.evaluation.metrics import evaluate
from sbmoe.io.collection import Qrels
from sbmoe.io.runs import Run
from sbmoe.retrieval.fusion import align, fuse, per_query_fusion, top_k
from sbmoe.systems.names import BM25

UTILITY = "ndcg@10"
FEATURES = {"length": ("log_length",), "bm25": ("bm25_top1", "bm25_mean10", "bm25_std10")}
ROUTED = ("rrf", "wsum", "router-hard", "router-soft", "oracle")


# ---------------------------------------------------------------------------------------------
# Utilities and features


def utilities(
    runs: Sequence[Run],
    qrels: Qrels,
    qids: Sequence[str],
    metric: str = UTILITY,
    relevance_threshold: int = 1,
    drop_self_hits: bool = False,
) -> np.ndarray:
    """The per-query ``metric`` of each run: a ``(len(qids), len(runs))`` matrix (0 for a query
    without a relevant document)."""
    matrix = np.zeros((len(qids), len(runs)))
    for column, run in enumerate(runs):
        per_query = evaluate(run, qrels, [metric], relevance_threshold, drop_self_hits)["per_query"].get(metric, {})
        matrix[:, column] = [per_query.get(qid, 0.0) for qid in qids]
    return matrix


def feature_names(groups: Sequence[str]) -> list[str]:
    unknown = [g for g in groups if g not in FEATURES]
    if unknown:
        raise ValueError(f"unknown query features {unknown}; choose among {list(FEATURES)}")
    return [name for group in groups for name in FEATURES[group]]


def query_features(
    texts: Sequence[str], groups: Sequence[str], bm25: Run | None = None, qids: Sequence[str] | None = None
) -> np.ndarray:
    """Cheap features of each query, ``(len(texts), F)``: ``length`` = log(1 + whitespace tokens);
    ``bm25`` = its BM25 run's top score, mean and standard deviation of its top 10 (0 without hits).
    ``bm25`` needs the BM25 run and the query ids (in the order of ``texts``)."""
    columns = []
    for group in groups:
        if group == "length":
            columns.append(np.log1p([len(text.split()) for text in texts])[:, None])
        elif group == BM25:
            if bm25 is None or qids is None or len(qids) != len(texts):
                raise ValueError("the bm25 query features need the BM25 run and the query ids")
            stats = np.zeros((len(qids), 3))
            for row, qid in enumerate(qids):
                top = np.sort(np.fromiter(bm25.get(qid, {}).values(), dtype=float))[::-1][:10]
                if top.size:
                    stats[row] = (top[0], top.mean(), top.std())
            columns.append(stats)
        else:
            feature_names([group])
    return np.concatenate(columns, axis=1) if columns else np.zeros((len(texts), 0))


# ---------------------------------------------------------------------------------------------
# Routing


def best_experts(utility: np.ndarray, tolerance: float = 1e-9) -> np.ndarray:
    """For each query, a distribution shared equally by the experts with the highest utility."""
    best = utility >= utility.max(axis=1, keepdims=True) - tolerance
    return best / best.sum(axis=1, keepdims=True)


def oracle_choices(utility: np.ndarray) -> np.ndarray:
    """The expert with the highest utility for each query (the first of those that tie)."""
    return np.argmax(np.asarray(utility), axis=1)


def hard_routing(runs: Sequence[Run], qids: Sequence[str], choices: Sequence[int], k: int = 1000) -> Run:
    """Each query's ranking (its top ``k``) from the run of its chosen expert."""
    if len(qids) != len(choices):
        raise ValueError(f"{len(qids)} queries but {len(choices)} choices")
    return {qid: top_k(runs[int(c)].get(qid, {}), k) for qid, c in zip(qids, choices)}


def soft_routing(runs: Sequence[Run], qids: Sequence[str], weights: np.ndarray, k: int = 1000) -> Run:
    """Each query's rankings fused with its own gate weights (one-hot weights give hard routing)."""
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(qids), len(runs)):
        raise ValueError(f"weights must be (queries, experts) = {(len(qids), len(runs))}, got {weights.shape}")
    return per_query_fusion(runs, {qid: row for qid, row in zip(qids, weights)}, k)


def routed_runs(
    runs: Sequence[Run],
    qids: Sequence[str],
    weights: np.ndarray,
    utility: np.ndarray,
    wsum_weights: Sequence[float],
    k: int = 1000,
) -> dict[str, Run]:
    """Every system of :data:`ROUTED` for one test set: the two fusions, hard and soft routing by the
    gate's ``weights``, and the oracle (by the test ``utility``)."""
    aligned = align(runs, qids)
    return {
        "rrf": fuse(aligned, "rrf", k=k),
        "wsum": fuse(aligned, "wsum", wsum_weights, k=k),
        "router-hard": hard_routing(aligned, qids, np.argmax(weights, axis=1), k),
        "router-soft": soft_routing(aligned, qids, weights, k),
        "oracle": hard_routing(aligned, qids, oracle_choices(utility), k),
    }
