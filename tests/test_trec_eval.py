"""trec_eval's values of the study's metrics, by hand: cutoffs, MAP over all relevant documents,
P@k over k, MRR within the cutoff, queries missing from the run, metric names."""

from __future__ import annotations

import math

import pytest

from sbmoe.evaluation.trec_eval import parse_metric, trec_eval_scores

QRELS = {"q1": {"d1": 1, "d3": 2}, "q2": {"d5": 1}, "q3": {"d9": 1}}
RUN = {
    "q1": {"d2": 5.0, "d1": 4.0, "d4": 3.0, "d3": 2.0},  # relevant at ranks 2 and 4
    "q2": {"d6": 3.0, "d7": 2.0, "d5": 1.0},  # relevant at rank 3
}


def test_values_by_hand():
    scores = trec_eval_scores(RUN, QRELS, ["ndcg@10", "ndcg@3", "recall@2", "precision@5", "map@3", "mrr@2", "mrr@10"])
    # linear gains: q1 has grade 1 at rank 2 and grade 2 at rank 4; ideal order is 2, 1
    ideal = 2 + 1 / math.log2(3)
    assert scores["ndcg@10"]["q1"] == pytest.approx((1 / math.log2(3) + 2 / math.log2(5)) / ideal)
    assert scores["ndcg@3"]["q1"] == pytest.approx((1 / math.log2(3)) / ideal)
    assert scores["recall@2"] == pytest.approx({"q1": 0.5, "q2": 0.0, "q3": 0.0})
    assert scores["precision@5"] == pytest.approx({"q1": 2 / 5, "q2": 1 / 5, "q3": 0.0})  # over k, not over retrieved
    # MAP@3 divides by all relevant documents: q1 finds one of two (at rank 2) within 3
    assert scores["map@3"] == pytest.approx({"q1": (1 / 2) / 2, "q2": (1 / 3) / 1, "q3": 0.0})
    assert scores["mrr@2"] == pytest.approx({"q1": 0.5, "q2": 0.0, "q3": 0.0})  # q2's first hit is at rank 3
    assert scores["mrr@10"] == pytest.approx({"q1": 0.5, "q2": 1 / 3, "q3": 0.0})
    assert set(scores["mrr@10"]) == set(QRELS)


def test_empty_run_scores_zero():
    assert trec_eval_scores({}, QRELS, ["ndcg@10", "mrr@10"]) == {
        "ndcg@10": {"q1": 0.0, "q2": 0.0, "q3": 0.0},
        "mrr@10": {"q1": 0.0, "q2": 0.0, "q3": 0.0},
    }


@pytest.mark.parametrize("metric", ["hit_rate@10", "ndcg", "ndcg@0", "NDCG@10", "map@-1"])
def test_metric_without_a_trec_eval_counterpart_is_an_error(metric):
    with pytest.raises(ValueError, match=r"ndcg@k, recall@k, precision@k, map@k, mrr@k"):
        parse_metric(metric)
    assert parse_metric("precision@1") == ("precision", 1)
