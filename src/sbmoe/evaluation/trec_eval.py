"""The study's metrics computed by trec_eval (through ``pytrec_eval``), independently of ranx.

:func:`sbmoe.evaluation.metrics.evaluate` scores every run with ranx and with this module and stops when
they disagree. The two implementations share nothing: ranx hashes document ids and runs numba
kernels compiled into an on-disk cache; trec_eval is the C program TREC itself uses.

The metric names are ranx's, each with a cutoff: ``ndcg@k`` is trec_eval's ``ndcg_cut_k`` (linear
gains), ``recall@k`` its ``recall_k``, ``precision@k`` its ``P_k`` (divided by ``k`` even when
fewer documents were retrieved), ``map@k`` its ``map_cut_k`` (divided by the number of relevant
documents), and ``mrr@k`` its ``recip_rank`` when the first relevant document is within the top
``k``, else 0.

trec_eval is given the run's scores, not a ranking: it orders each query's documents itself (score
descending, kept in single precision; equal scores by document id descending), as ``trec_eval
qrels run`` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

MEASURES = {"ndcg": "ndcg_cut", "recall": "recall", "precision": "P", "map": "map_cut", "mrr": "recip_rank"}
_METRIC = re.compile(r"^(?P<name>[a-z]+)@(?P<k>[1-9][0-9]*)$")


def parse_metric(metric: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; a metric trec_eval cannot recompute is a ``ValueError``."""
    match = _METRIC.match(metric)
    if not match or match["name"] not in MEASURES:
        raise ValueError(
            f"metric {metric!r} is not one of {', '.join(f'{m}@k' for m in MEASURES)} (k a positive integer)"
        )
    return match["name"], int(match["k"])


def trec_eval_scores(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[str],
) -> dict[str, dict[str, float]]:
    """``{metric: {qid: value}}`` for every query of ``qrels``; a query the run lacks scores 0.

    ``qrels`` holds the relevant documents only (grade > 0). ``run`` holds the scores of the run
    file; trec_eval breaks their ties by its own rule.
    """
    import pytrec_eval

    parsed = {metric: parse_metric(metric) for metric in metrics}
    cutoffs: dict[str, set[int]] = {}
    for name, k in parsed.values():
        if name != "mrr":
            cutoffs.setdefault(MEASURES[name], set()).add(k)
    requested = {f"{measure}.{','.join(map(str, sorted(ks)))}" for measure, ks in cutoffs.items()}
    if any(name == "mrr" for name, _ in parsed.values()):
        requested.add("recip_rank")
    judged = {q: dict(docs) for q, docs in qrels.items()}
    values = pytrec_eval.RelevanceEvaluator(judged, requested).evaluate(run) if requested else {}
    scores = {}
    for metric, (name, k) in parsed.items():
        if name == "mrr":  # recip_rank has no cutoff: 1/rank counts when rank <= k, i.e. when 1/rank >= 1/k
            reciprocal = {q: float(values.get(q, {}).get("recip_rank", 0.0)) for q in qrels}
            scores[metric] = {q: value if value >= 1.0 / k else 0.0 for q, value in reciprocal.items()}
        else:
            key = f"{MEASURES[name]}_{k}"
            scores[metric] = {q: float(values.get(q, {}).get(key, 0.0)) for q in qrels}
    return scores
