"""Scoring runs with ranx: mean and per-query values of the study's metrics.

nDCG uses the graded judgements as given. The binary metrics (recall, MRR, MAP, precision)
count a document relevant when its grade is at least ``relevance_threshold``; queries left with
no relevant document are not scored for them (trec_eval's convention). ``drop_self_hits``
removes a retrieved document whose id equals the query id, as BEIR's evaluator does on ArguAna
and Quora.
"""

from __future__ import annotations

import warnings

import numpy as np

from .collection import Qrels
from .runs import Run

METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100", "precision@1", "ndcg@3")
RANX_METRICS = ("hits", "hit_rate", "precision", "recall", "f1", "mrr", "map", "dcg", "dcg_burges", "ndcg",
                "ndcg_burges", "bpref")


def metric_problem(metric: str) -> str | None:
    """Why ``metric`` cannot be computed here (``name`` or ``name@k`` of a ranx metric, k ≥ 1), else None."""
    name, _, cutoff = metric.partition("@")
    if name not in RANX_METRICS:
        return f"unknown metric {metric!r} (expected one of {', '.join(RANX_METRICS)}, optionally @k)"
    if "@" in metric and not (cutoff.isdigit() and int(cutoff) >= 1):
        return f"metric {metric!r}: the cutoff after '@' must be a positive integer"
    return None


def _is_graded(metric: str) -> bool:
    return metric.split("@")[0] in ("ndcg", "dcg")


def evaluate(
    run: Run,
    qrels: Qrels,
    metrics: tuple[str, ...] | list[str] = METRICS,
    relevance_threshold: int = 1,
    drop_self_hits: bool = False,
) -> dict:
    """Return ``{"metrics": {m: mean}, "per_query": {m: {qid: value}}, ...}`` for ``run`` against ``qrels``.

    A judged query missing from the run scores zero.
    """
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate as ranx_evaluate

    if relevance_threshold < 1:
        raise ValueError(f"relevance_threshold must be at least 1, got {relevance_threshold}")
    if drop_self_hits:
        run = {qid: {d: s for d, s in docs.items() if d != qid} for qid, docs in run.items()}
    graded = {q: {d: g for d, g in docs.items() if g > 0} for q, docs in qrels.items()}
    binary = {q: {d: 1 for d, g in docs.items() if g >= relevance_threshold} for q, docs in qrels.items()}
    means, per_query = {}, {}
    for judgements, chosen in ((graded, [m for m in metrics if _is_graded(m)]), (binary, [m for m in metrics if not _is_graded(m)])):
        judgements = {q: docs for q, docs in judgements.items() if docs}
        if not chosen or not judgements:
            continue
        retrieved = {q: run[q] for q in judgements if run.get(q)}
        scores = {}
        if retrieved:  # ranx cannot build an empty run: with no judged query retrieved, every value is 0
            ranx_run = RanxRun(retrieved)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ranx_evaluate(RanxQrels(judgements), ranx_run, list(chosen), make_comparable=True)
            scores = ranx_run.scores
        for metric in chosen:
            values = {q: float(scores.get(metric, {}).get(q, 0.0)) for q in judgements}
            per_query[metric] = values
            means[metric] = float(np.mean(list(values.values())))
    return {
        "metrics": {m: means[m] for m in metrics if m in means},
        "per_query": {m: per_query[m] for m in metrics if m in per_query},
        "relevance_threshold": relevance_threshold,
        "drop_self_hits": drop_self_hits,
        "num_queries": len([q for q, docs in qrels.items() if any(g > 0 for g in docs.values())]),
    }
