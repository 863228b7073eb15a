"""Fusing runs (sbmoe.retrieval.fusion): RRF and WSUM against hand-computed scores, the per-query
weighted sum against ranx's own WSUM, and the tuned WSUM weights against a brute-force grid search."""

import itertools

import numpy as np
import pytest
from ranx import Qrels as RanxQrels
from ranx import Run as RanxRun
from ranx import evaluate as ranx_evaluate
from ranx import fuse as ranx_fuse

from sbmoe.retrieval.fusion import align, fuse, min_max, per_query_fusion, top_k, tune_wsum, weighted_sum

# Two runs over two queries, distinct scores within each ranking (so ranks are unambiguous).
RUN_A = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d4": 0.9, "d5": 0.1}}
RUN_B = {"q1": {"d3": 5.0, "d1": 4.0, "d6": 0.5}, "q2": {"d5": 2.0}}


def order(ranking):
    return list(ranking)


def random_runs(seed, queries=12, docs=30, depth=10, runs=2):
    rng = np.random.default_rng(seed)
    qids = [f"q{i}" for i in range(queries)]
    made = [
        {
            qid: {
                f"d{d}": float(s)
                for d, s in zip(rng.choice(docs, depth, replace=False), rng.normal(size=depth), strict=True)
            }
            for qid in qids
        }
        for _ in range(runs)
    ]
    qrels = {qid: {f"d{d}": int(rng.integers(1, 3)) for d in rng.choice(docs, 4, replace=False)} for qid in qids}
    return qids, made, qrels


def test_rrf_is_the_sum_of_reciprocal_ranks():
    # 1 / (60 + rank) in each run that retrieves the document
    expected = {
        "q1": {"d1": 1 / 61 + 1 / 62, "d3": 1 / 63 + 1 / 61, "d2": 1 / 62, "d6": 1 / 63},
        "q2": {"d5": 1 / 62 + 1 / 61, "d4": 1 / 61},
    }
    fused = fuse([RUN_A, RUN_B], "rrf")
    assert list(fused) == ["q1", "q2"]
    for qid, scores in expected.items():
        assert order(fused[qid]) == sorted(scores, key=lambda doc: -scores[doc])
        assert fused[qid] == pytest.approx(scores, abs=1e-12)
    assert order(fuse([RUN_A, RUN_B], "rrf", k=2)["q1"]) == ["d1", "d3"]


def test_wsum_is_the_weighted_sum_of_min_max_scores():
    # q1: A normalised d1 1, d2 0.5, d3 0; B normalised d3 1, d1 (4 - 0.5) / 4.5, d6 0.
    # q2: A d4 1, d5 0; B has one document, whose normalised score is 0 (range floored at 1e-9).
    expected = {
        "q1": {"d1": 0.3 + 0.7 * 3.5 / 4.5, "d3": 0.7, "d2": 0.15, "d6": 0.0},
        "q2": {"d4": 0.3, "d5": 0.0},
    }
    fused = fuse([RUN_A, RUN_B], "wsum", [0.3, 0.7])
    for qid, scores in expected.items():
        assert fused[qid] == pytest.approx(scores, abs=1e-9)
        assert order(fused[qid]) == sorted(scores, key=lambda doc: (-scores[doc], doc))
    ours = per_query_fusion([RUN_A, RUN_B], {"q1": [0.3, 0.7], "q2": [0.3, 0.7]})
    for qid, scores in expected.items():
        assert ours[qid] == pytest.approx(scores, abs=1e-12)


def test_per_query_weighted_sum_matches_ranx_wsum():
    qids, runs, _ = random_runs(seed=1, runs=3)
    weights = [0.5, 0.2, 0.3]
    theirs = ranx_fuse([RanxRun(run) for run in runs], norm="min-max", method="wsum", params={"weights": weights})
    theirs = theirs.to_dict()
    ours = per_query_fusion(runs, {qid: weights for qid in qids})
    for qid in qids:
        assert set(ours[qid]) == set(theirs[qid])
        for doc, score in theirs[qid].items():
            assert ours[qid][doc] == pytest.approx(score, abs=1e-9)


def test_per_query_weights_change_from_query_to_query():
    fused = per_query_fusion([RUN_A, RUN_B], {"q2": [0.0, 1.0], "q1": [1.0, 0.0]})
    assert list(fused) == ["q2", "q1"]  # the queries of the weights, in their order
    assert fused["q1"] == {"d1": 1.0, "d2": 0.5, "d3": 0.0}  # run A alone: B's d6 is not brought in
    assert fused["q2"] == {"d5": 0.0}


def test_weighted_sum_checks_its_weights():
    with pytest.raises(ValueError, match="2 rankings but 3 weights"):
        weighted_sum([RUN_A["q1"], RUN_B["q1"]], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match=r"non-negative, got \[0.5, -0.5\]"):
        weighted_sum([RUN_A["q1"], RUN_B["q1"]], [0.5, -0.5])
    assert weighted_sum([{}, {}], [0.5, 0.5]) == {}


def test_min_max_and_top_k():
    assert min_max({"a": -2.0, "b": 2.0, "c": 0.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}
    assert min_max({"a": 7.0, "b": 7.0}) == {"a": 0.0, "b": 0.0}  # no range: every score is the minimum
    ranking = {"b": 1.0, "a": 1.0, "c": 3.0, "d": 0.5}
    # ties in trec_eval's order: document id descending
    assert list(top_k(ranking, 3).items()) == [("c", 3.0), ("b", 1.0), ("a", 1.0)]
    assert top_k(ranking, 10) == ranking and top_k(ranking, 0) == {}


def test_align_orders_queries_and_fills_the_missing():
    aligned = align([RUN_A, {"q2": {"d9": 1.0}}], ["q2", "q1", "q3"])
    assert [list(run) for run in aligned] == [["q2", "q1", "q3"]] * 2
    assert aligned[0]["q3"] == {} and aligned[1]["q1"] == {} and aligned[1]["q2"] == {"d9": 1.0}
    aligned[0]["q1"]["d1"] = 0.0
    assert RUN_A["q1"]["d1"] == 3.0  # copies, not views


def test_fuse_refuses_what_it_cannot_fuse():
    with pytest.raises(ValueError, match=r"one of \('rrf', 'wsum'\), got 'combmnz'"):
        fuse([RUN_A, RUN_B], "combmnz")
    with pytest.raises(ValueError, match="at least two runs"):
        fuse([RUN_A], "rrf")
    with pytest.raises(ValueError, match="same queries"):
        fuse([RUN_A, {"q1": RUN_B["q1"]}], "rrf")
    with pytest.raises(ValueError, match="one weight per run"):
        fuse([RUN_A, RUN_B], "wsum", [1.0])
    with pytest.raises(ValueError, match="one weight per run"):
        fuse([RUN_A, RUN_B], "wsum")
    assert fuse([{"q1": {}, "q2": {}}, {"q1": {}, "q2": {}}], "rrf") == {"q1": {}, "q2": {}}


def test_tune_wsum_finds_the_best_weights_of_the_grid():
    qids, runs, qrels = random_runs(seed=3, queries=15)
    # a second run that finds some relevant documents, so the weights matter
    for qid in qids[::2]:
        runs[1][qid].update({doc: 2.0 + grade for doc, grade in qrels[qid].items()})
    qrels["unjudged"] = {"d0": 0}  # only a non-relevant judgement: left out of the tuning
    weights = tune_wsum(runs, qrels, "ndcg@10", step=0.1)
    assert len(weights) == 2 and sum(weights) == pytest.approx(1.0)

    judged = RanxQrels({qid: qrels[qid] for qid in qids})

    def score(w):
        fused = per_query_fusion(runs, {qid: w for qid in qids}, k=1000)
        return ranx_evaluate(judged, RanxRun(fused), "ndcg@10")

    grid = [[round(a, 1), round(1 - a, 1)] for a in np.arange(0, 1.05, 0.1)]
    best = max(score(w) for w in grid)
    assert score(weights) == pytest.approx(best, abs=1e-12)
    assert min(score(w) for w in grid) < best  # the grid holds worse weights, which were not chosen
    assert tune_wsum(runs, qrels, "ndcg@10", step=0.1) == weights


def test_tune_wsum_coarse_grid_and_refusals():
    qids, runs, qrels = random_runs(seed=4)
    coarse = tune_wsum(runs, qrels, step=0.5)
    assert coarse in ([list(pair) for pair in itertools.product([0.0, 0.5, 1.0], repeat=2) if sum(pair) == 1.0])
    with pytest.raises(ValueError, match="no judged query with a relevant document"):
        tune_wsum(runs, {qid: {"d1": 0} for qid in qids})
    with pytest.raises(ValueError, match="retrieve nothing"):
        tune_wsum(runs, {"other": {"d1": 1}})
