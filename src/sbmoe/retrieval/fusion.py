"""Fusing the runs of several retrievers into one: ranx's reciprocal rank fusion (RRF) and weighted
sum (WSUM, weights tuned with ``ranx.optimize_fusion``), and a weighted sum whose weights change
from query to query (the soft routing of :mod:`sbmoe.selection.routing`).

Scores are normalised as ranx's ``min-max`` normalisation does before a weighted sum: per query,
``(s - min) / max(max - min, 1e-9)``, so each run's best document scores 1 and its worst 0. A
document missing from a run adds nothing from that run. Runs are plain dicts
(``run[qid][doc_id] = score``, :mod:`sbmoe.io.runs`); every result keeps the top ``k`` documents.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from sbmoe.io.collection import Qrels
from sbmoe.io.runs import Run, rank_scores, trec_order

NORM_EPSILON = 1e-9  # ranx's floor on max - min
RRF_K = 60  # ranx's default (Cormack et al.)
METHODS = ("rrf", "wsum")


def align(runs: Sequence[Run], qids: Sequence[str]) -> list[Run]:
    """Every run restricted to ``qids``, in that order; a query a run lacks gets an empty ranking."""
    return [{qid: dict(run.get(qid, {})) for qid in qids} for run in runs]


def top_k(ranking: Mapping[str, float], k: int) -> dict[str, float]:
    """The ``k`` best documents of one query's ranking, best first, in trec_eval's order (equal
    scores by document id descending, :func:`sbmoe.io.runs.trec_order`), the order they are written
    and evaluated in."""
    return dict(trec_order(ranking)[:k])


def min_max(ranking: Mapping[str, float]) -> dict[str, float]:
    """One query's scores min-max normalised as ranx does (an empty ranking stays empty)."""
    if not ranking:
        return {}
    scores = np.fromiter(ranking.values(), dtype=float, count=len(ranking))
    low, high = scores.min(), scores.max()
    scale = max(high - low, NORM_EPSILON)
    return {doc: float((score - low) / scale) for doc, score in ranking.items()}


def weighted_sum(rankings: Sequence[Mapping[str, float]], weights: Sequence[float], k: int = 1000) -> dict[str, float]:
    """One query: the weighted sum of the min-max normalised rankings. Rankings with weight 0 bring
    no documents, so one-hot weights give back the chosen ranking's order."""
    if len(rankings) != len(weights):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights")
    if any(w < 0 for w in weights):
        raise ValueError(f"fusion weights must be non-negative, got {list(weights)}")
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        if weight == 0:
            continue
        for doc, score in min_max(ranking).items():
            fused[doc] = fused.get(doc, 0.0) + float(weight) * score
    return top_k(fused, k)


def per_query_fusion(runs: Sequence[Run], weights: Mapping[str, Sequence[float]], k: int = 1000) -> Run:
    """The weighted sum of ``runs`` with its own weights for each query (``weights[qid]``, one per
    run); the queries are those of ``weights``."""
    return {qid: weighted_sum([run.get(qid, {}) for run in runs], w, k) for qid, w in weights.items()}


def _ranx_run(run: Run):
    from ranx import Run as RanxRun

    return RanxRun({qid: dict(docs) for qid, docs in run.items()})


def fuse(runs: Sequence[Run], method: str, weights: Sequence[float] | None = None, k: int = 1000) -> Run:
    """Fuse runs over the same queries with ranx: ``rrf`` (k = 60) or ``wsum`` (``weights``, one per
    run, on min-max normalised scores)."""
    from ranx import fuse as ranx_fuse

    if method not in METHODS:
        raise ValueError(f"fusion method must be one of {METHODS}, got {method!r}")
    if len(runs) < 2:
        raise ValueError("fusion needs at least two runs")
    qids = list(runs[0])
    if any(list(run) != qids for run in runs):
        raise ValueError("the runs to fuse must hold the same queries (see fusion.align)")
    if method == "wsum" and (weights is None or len(weights) != len(runs)):
        raise ValueError(f"wsum needs one weight per run, got {weights!r} for {len(runs)} runs")
    if not any(docs for run in runs for docs in run.values()):
        return {qid: {} for qid in qids}
    params = {"k": RRF_K} if method == "rrf" else {"weights": [float(w) for w in weights]}
    if method == "rrf":  # RRF reads ranks: each run's ties broken in trec_eval's order, not ranx's own
        runs = [{qid: rank_scores(docs) for qid, docs in run.items()} for run in runs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety notes
        fused = ranx_fuse([_ranx_run(run) for run in runs], norm="min-max", method=method, params=params)
    out = fused.to_dict()
    return {qid: top_k({doc: float(s) for doc, s in out.get(qid, {}).items()}, k) for qid in qids}


def tune_wsum(runs: Sequence[Run], qrels: Qrels, metric: str = "ndcg@10", step: float = 0.1) -> list[float]:
    """WSUM weights (a grid of ``step``, summing to 1) that maximise ``metric`` on ``qrels``, found by
    ``ranx.optimize_fusion``. Only judged queries with a relevant document take part."""
    from ranx import Qrels as RanxQrels
    from ranx import optimize_fusion

    judged = {qid: {doc: grade for doc, grade in docs.items() if grade > 0} for qid, docs in qrels.items()}
    judged = {qid: docs for qid, docs in judged.items() if docs}
    if not judged:
        raise ValueError("no judged query with a relevant document to tune the fusion weights on")
    aligned = align(runs, list(judged))
    if not any(docs for run in aligned for docs in run.values()):
        raise ValueError("the runs retrieve nothing for the queries the fusion weights are tuned on")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = optimize_fusion(
            RanxQrels(judged),
            [_ranx_run(run) for run in aligned],
            norm="min-max",
            method="wsum",
            metric=metric,
            step=step,
            show_progress=False,
        )
    return [float(w) for w in best["weights"]]
