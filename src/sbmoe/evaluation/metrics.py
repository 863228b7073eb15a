"""Scoring runs with ranx: mean and per-query values of the study's metrics.

nDCG uses the graded judgements as given. The binary metrics (recall, MRR, MAP, precision)
count a document relevant when its grade is at least ``relevance_threshold``; queries left with
no relevant document are not scored for them (trec_eval's convention). ``drop_self_hits``
removes a retrieved document whose id equals the query id, as BEIR's evaluator does on ArguAna
and Quora. Documents are ranked as trec_eval ranks them: by score compared in single precision,
equal scores by document id descending (:func:`sbmoe.io.runs.trec_order`, the order of the TREC
run file).

Every evaluation is computed twice and stops with :class:`EvaluationMismatchError`, naming the run,
the query and both values, when any per-query value differs by more than :data:`TOLERANCE`: by ranx,
fed the ranking made explicit (:func:`rank_order`: ranx keeps no fixed order among equal scores),
and by trec_eval (:mod:`sbmoe.evaluation.trec_eval`), fed the scores themselves, as ``trec_eval qrels
run`` reads them from the run file, so that it breaks ties its own way. ranx runs holding
:func:`sbmoe.evaluation.numba_cache.cache_lock`.
"""

from __future__ import annotations

import warnings

import numpy as np

from sbmoe.evaluation.numba_cache import cache_folder, cache_lock
from sbmoe.evaluation.trec_eval import parse_metric, trec_eval_scores
from sbmoe.io.collection import Qrels
from sbmoe.io.runs import Run, rank_scores

METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100", "precision@1", "ndcg@3")
RANX_METRICS = (
    "hits",
    "hit_rate",
    "precision",
    "recall",
    "f1",
    "mrr",
    "map",
    "dcg",
    "dcg_burges",
    "ndcg",
    "ndcg_burges",
    "bpref",
)


def metric_problem(metric: str) -> str | None:
    """Why ``metric`` cannot be computed here (``name`` or ``name@k`` of a ranx metric, k ≥ 1), else None."""
    name, _, cutoff = metric.partition("@")
    if name not in RANX_METRICS:
        return f"unknown metric {metric!r} (expected one of {', '.join(RANX_METRICS)}, optionally @k)"
    if "@" in metric and not (cutoff.isdigit() and int(cutoff) >= 1):
        return f"metric {metric!r}: the cutoff after '@' must be a positive integer"
    return None


# Both implementations compute in double precision, each value from at most k terms in [0, 1]: their
# rounding differs by less than 1e-13. A real disagreement moves a value by far more: swapping the
# relevant document at rank 99 with a non-relevant one at rank 100 changes AP@100 by 1/(9900 R),
# above 1e-7 for up to R = 1,000 relevant documents.
TOLERANCE = 1e-9


class EvaluationMismatchError(RuntimeError):
    """ranx and trec_eval disagree on a run."""


def _is_graded(metric: str) -> bool:
    return metric.split("@")[0] == "ndcg"


def rank_order(run: Run) -> Run:
    """The run with its ranking made explicit for ranx: each query's documents in trec_eval's order
    (:func:`sbmoe.io.runs.trec_order`), scored ``n, n-1, ..., 1``, so that no two tie."""
    return {qid: rank_scores(docs) for qid, docs in run.items()}


def _ranx_scores(run: Run, judgements: Qrels, metrics: list[str]) -> dict[str, dict[str, float]]:
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate as ranx_evaluate

    ranx_run = RanxRun(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranx_evaluate(RanxQrels(judgements), ranx_run, list(metrics), make_comparable=True)
    return {metric: {q: float(value) for q, value in ranx_run.scores.get(metric, {}).items()} for metric in metrics}


def check_agreement(
    ranx: dict[str, dict[str, float]], reference: dict[str, dict[str, float]], run_name: str = "the run"
) -> float:
    """The largest difference between the per-query values of ranx and trec_eval; above
    :data:`TOLERANCE` an :class:`EvaluationMismatchError` names the metric, both means and the
    query that differs most, with both of its values."""
    largest = 0.0
    for metric, expected in reference.items():
        got = ranx[metric]
        query = max(expected, key=lambda q: abs(got[q] - expected[q]), default=None)
        if query is None:
            continue
        difference = abs(got[query] - expected[query])
        if difference > TOLERANCE:
            raise EvaluationMismatchError(
                f"{run_name}: ranx and trec_eval disagree on {metric}: mean {np.mean(list(got.values())):.12g} (ranx) "
                f"vs {np.mean(list(expected.values())):.12g} (trec_eval); query {query!r}: {got[query]:.12g} vs "
                f"{expected[query]:.12g} (tolerance {TOLERANCE:g}); no evaluation is returned. If it happens "
                f"again, delete numba's cache {cache_folder()}."
            )
        largest = max(largest, difference)
    return largest


def evaluate(
    run: Run,
    qrels: Qrels,
    metrics: tuple[str, ...] | list[str] = METRICS,
    relevance_threshold: int = 1,
    drop_self_hits: bool = False,
    run_name: str = "the run",
) -> dict:
    """Return ``{"metrics": {m: mean}, "per_query": {m: {qid: value}}, ...}`` for ``run`` against ``qrels``.

    A judged query missing from the run scores zero. ``run_name`` names the run in errors (the
    run file's path). ``run`` holds the scores as the run file does (:func:`sbmoe.io.runs.read_trec_run`).
    """
    for metric in metrics:
        parse_metric(metric)
    if relevance_threshold < 1:
        raise ValueError(f"relevance_threshold must be at least 1, got {relevance_threshold}")
    if drop_self_hits:
        run = {qid: {d: s for d, s in docs.items() if d != qid} for qid, docs in run.items()}
    graded = {q: {d: g for d, g in docs.items() if g > 0} for q, docs in qrels.items()}
    binary = {q: {d: 1 for d, g in docs.items() if g >= relevance_threshold} for q, docs in qrels.items()}
    by_judgements = [
        (graded, [m for m in metrics if _is_graded(m)]),
        (binary, [m for m in metrics if not _is_graded(m)]),
    ]
    if graded == binary:  # binary qrels (every positive grade 1, threshold 1): one pass scores every metric
        by_judgements = [(graded, list(metrics))]
    groups = []
    for judgements, chosen in by_judgements:
        judgements = {q: docs for q, docs in judgements.items() if docs}
        if chosen and judgements:
            groups.append((judgements, chosen, {q: run[q] for q in judgements if run.get(q)}))
    ranx_scores = {}
    with cache_lock():
        for judgements, chosen, retrieved in groups:
            if retrieved:  # ranx cannot build an empty run: with no judged query retrieved, every value is 0
                ranx_scores.update(_ranx_scores(rank_order(retrieved), judgements, chosen))
    means, per_query, largest = {}, {}, 0.0
    for judgements, chosen, retrieved in groups:
        computed = {m: {q: ranx_scores.get(m, {}).get(q, 0.0) for q in judgements} for m in chosen}
        largest = max(largest, check_agreement(computed, trec_eval_scores(retrieved, judgements, chosen), run_name))
        for metric in chosen:
            per_query[metric] = computed[metric]
            means[metric] = float(np.mean(list(computed[metric].values())))
    return {
        "metrics": {m: means[m] for m in metrics if m in means},
        "per_query": {m: per_query[m] for m in metrics if m in per_query},
        "relevance_threshold": relevance_threshold,
        "drop_self_hits": drop_self_hits,
        "num_queries": len([q for q, docs in qrels.items() if any(g > 0 for g in docs.values())]),
        "cross_check": {"implementation": "trec_eval (pytrec_eval)", "max_difference": largest},
    }
