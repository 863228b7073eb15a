"""Metrics on hand-computed runs: nDCG@10, Recall@100, MRR@10, P@1; relevance thresholds; self hits;
judged queries missing from the run; ties; the cross-check against trec_eval."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import pytest

from sbmoe.evaluation.metrics import METRICS, TOLERANCE, EvaluationMismatchError, evaluate, rank_order
from sbmoe.evaluation.trec_eval import trec_eval_scores
from sbmoe.io.collection import load_corpus, load_qrels
from sbmoe.io.runs import read_trec_run, write_trec_run

QRELS = {
    "q1": {"d1": 1, "d3": 1},  # binary
    "q2": {"d5": 2, "d6": 1},  # graded
    "q3": {"d9": 1},  # judged, missing from the run
    "q4": {"d1": 0},  # only a non-relevant judgement: not scored
}
RUN = {
    "q1": {"d2": 0.9, "d1": 0.8, "d4": 0.7, "d3": 0.6},
    "q2": {"d6": 0.9, "d7": 0.5, "d5": 0.4},
    "q4": {"d1": 1.0},
    "q5": {"d1": 1.0},  # not judged: ignored
}


def log2(x):
    return math.log(x, 2)


# nDCG with linear gains (trec_eval's, and BEIR's):
# q1: relevant at ranks 2 and 4 -> (1/log2 3 + 1/log2 5) / (1 + 1/log2 3)
NDCG_Q1 = (1 / log2(3) + 1 / log2(5)) / (1 + 1 / log2(3))
# q2: grade 1 at rank 1, grade 2 at rank 3 -> (1 + 2/log2 4) / (2 + 1/log2 3)
NDCG_Q2 = (1 + 2 / log2(4)) / (2 + 1 / log2(3))


def test_metrics_by_hand():
    result = evaluate(RUN, QRELS, ["ndcg@10", "recall@100", "mrr@10", "precision@1"])
    per_query = result["per_query"]
    assert per_query["ndcg@10"] == pytest.approx({"q1": NDCG_Q1, "q2": NDCG_Q2, "q3": 0.0})
    assert NDCG_Q1 == pytest.approx(0.650921, abs=1e-6) and NDCG_Q2 == pytest.approx(0.760188, abs=1e-6)
    assert per_query["recall@100"] == pytest.approx({"q1": 1.0, "q2": 1.0, "q3": 0.0})
    assert per_query["mrr@10"] == pytest.approx({"q1": 0.5, "q2": 1.0, "q3": 0.0})
    assert per_query["precision@1"] == pytest.approx({"q1": 0.0, "q2": 1.0, "q3": 0.0})
    metrics = result["metrics"]
    assert metrics["ndcg@10"] == pytest.approx((NDCG_Q1 + NDCG_Q2) / 3)
    assert metrics["recall@100"] == pytest.approx(2 / 3)
    assert metrics["mrr@10"] == pytest.approx(0.5)
    assert metrics["precision@1"] == pytest.approx(1 / 3)
    assert list(metrics) == ["ndcg@10", "recall@100", "mrr@10", "precision@1"]
    assert result["num_queries"] == 3


def test_cutoffs_apply():
    # a relevant document at rank 11 counts for recall@100 and not for nDCG@10 or MRR@10
    run = {"q": {f"x{i}": 100.0 - i for i in range(10)} | {"rel": 1.0}}
    result = evaluate(run, {"q": {"rel": 1}}, ["ndcg@10", "mrr@10", "recall@100", "ndcg@3"])
    assert result["metrics"] == pytest.approx({"ndcg@10": 0.0, "mrr@10": 0.0, "recall@100": 1.0, "ndcg@3": 0.0})


def test_relevance_threshold_for_graded_qrels():
    result = evaluate(RUN, QRELS, ["ndcg@10", "recall@100", "mrr@10", "precision@1"], relevance_threshold=2)
    # nDCG keeps the grades as given
    assert result["per_query"]["ndcg@10"] == pytest.approx({"q1": NDCG_Q1, "q2": NDCG_Q2, "q3": 0.0})
    # binary metrics: only d5 (grade 2, rank 3) is relevant for q2; q1 and q3 have no relevant
    # document left and are not scored for them
    assert result["per_query"]["mrr@10"] == pytest.approx({"q2": 1 / 3})
    assert result["per_query"]["precision@1"] == pytest.approx({"q2": 0.0})
    assert result["per_query"]["recall@100"] == pytest.approx({"q2": 1.0})
    assert result["metrics"]["mrr@10"] == pytest.approx(1 / 3)
    assert result["relevance_threshold"] == 2
    with pytest.raises(ValueError, match="relevance_threshold"):
        evaluate(RUN, QRELS, relevance_threshold=0)


def test_drop_self_hits():
    run = {"a1": {"a1": 5.0, "d1": 4.0, "d2": 3.0}}
    qrels = {"a1": {"d1": 1}}
    kept = evaluate(run, qrels, ["mrr@10", "precision@1"])
    dropped = evaluate(run, qrels, ["mrr@10", "precision@1"], drop_self_hits=True)
    assert kept["metrics"] == pytest.approx({"mrr@10": 0.5, "precision@1": 0.0})
    assert dropped["metrics"] == pytest.approx({"mrr@10": 1.0, "precision@1": 1.0})
    assert dropped["drop_self_hits"] is True and kept["drop_self_hits"] is False


def test_judged_query_missing_from_the_run_scores_zero():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    result = evaluate({"q1": {"d1": 1.0}}, qrels, ["ndcg@10", "recall@100"])
    assert result["per_query"]["ndcg@10"] == {"q1": 1.0, "q2": 0.0}
    assert result["metrics"] == pytest.approx({"ndcg@10": 0.5, "recall@100": 0.5})
    # an empty result list and an absent query are the same
    assert evaluate({"q1": {"d1": 1.0}, "q2": {}}, qrels, ["ndcg@10"])["metrics"]["ndcg@10"] == pytest.approx(0.5)
    # and a run with none of the judged queries scores zero everywhere
    nothing = evaluate({"other": {"d1": 1.0}}, qrels)
    assert nothing["metrics"] == {m: 0.0 for m in METRICS}
    assert evaluate({}, qrels, ["mrr@10"])["per_query"]["mrr@10"] == {"q1": 0.0, "q2": 0.0}


def test_perfect_run_scores_one():
    qrels = {"q1": {"d1": 2, "d2": 1}, "q2": {"d3": 1}}
    run = {"q1": {"d1": 3.0, "d2": 2.0, "d9": 1.0}, "q2": {"d3": 1.0}}
    result = evaluate(run, qrels)
    assert result["metrics"]["ndcg@10"] == pytest.approx(1.0)
    assert result["metrics"]["recall@100"] == pytest.approx(1.0)
    assert result["metrics"]["mrr@10"] == pytest.approx(1.0)
    assert result["metrics"]["precision@1"] == pytest.approx(1.0)
    assert result["metrics"]["map@100"] == pytest.approx(1.0)
    assert set(result["metrics"]) == set(METRICS)


def _random_study(seed: int, queries: int = 40, docs: int = 300):
    """Graded qrels and a run with tied scores, some self hits and some queries left out."""
    rng = random.Random(seed)
    ids = [str(rng.randrange(1, 10 ** rng.randint(1, 6))) for _ in range(docs)]
    qrels = {
        f"{i}": {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(ids, rng.randint(1, 8))} for i in range(queries)
    }
    run = {}
    for qid in list(qrels)[: queries - 3]:
        retrieved = rng.sample(ids, 150) + rng.sample(list(qrels[qid]), 1) + [qid]
        run[qid] = {d: round(rng.random(), 2) for d in retrieved}  # two decimals: many ties
    return run, qrels


@pytest.mark.parametrize("threshold, drop", [(1, False), (2, True)])
def test_ranx_and_trec_eval_agree_on_random_runs(threshold, drop):
    run, qrels = _random_study(seed=threshold)
    metrics = ["ndcg@10", "ndcg@3", "recall@100", "mrr@10", "map@100", "precision@1", "precision@10"]
    result = evaluate(run, qrels, metrics, relevance_threshold=threshold, drop_self_hits=drop)
    assert result["cross_check"]["max_difference"] <= TOLERANCE
    assert result["cross_check"]["implementation"] == "trec_eval (pytrec_eval)"
    assert 0 < result["metrics"]["ndcg@10"] < 1 and 0 < result["metrics"]["recall@100"] < 1


@pytest.mark.parametrize("relevant, reciprocal_rank", [("b", 1.0), ("a", 0.5)])
def test_ties_are_broken_as_trec_eval_breaks_them(relevant, reciprocal_rank):
    # trec_eval ranks equal scores by document id descending: b before a; ranx alone keeps no fixed order
    run = {"q": {"a": 1.0, "b": 1.0, "c": 0.5}}
    result = evaluate(run, {"q": {relevant: 1}}, ["mrr@10", "precision@1"])
    assert result["metrics"] == pytest.approx({"mrr@10": reciprocal_rank, "precision@1": float(relevant == "b")})
    assert trec_eval_scores(run, {"q": {relevant: 1}}, ["mrr@10"])["mrr@10"]["q"] == reciprocal_rank
    assert rank_order(run) == {"q": {"b": 3.0, "a": 2.0, "c": 1.0}}


def test_mrr_cutoff_with_ties_at_the_cutoff():
    # ranks in trec_eval's order: z, y, x (all tied), then w; the relevant x is at rank 3
    run = {"q": {"x": 2.0, "y": 2.0, "z": 2.0, "w": 1.0}}
    for k, expected in ((2, 0.0), (3, 1 / 3), (10, 1 / 3)):
        result = evaluate(run, {"q": {"x": 1}}, [f"mrr@{k}"])
        assert result["metrics"][f"mrr@{k}"] == pytest.approx(expected)


def test_a_wrong_ranx_result_stops_the_evaluation_naming_both_values(monkeypatch):
    import ranx

    real = ranx.evaluate

    def corrupted(qrels, run, metrics, **kwargs):  # as if ranx had run a wrong kernel for one query
        result = real(qrels, run, metrics, **kwargs)
        run.scores["ndcg@10"]["q1"] = 0.1
        return result

    monkeypatch.setattr(ranx, "evaluate", corrupted)
    with pytest.raises(EvaluationMismatchError) as raised:
        evaluate(RUN, QRELS, ["recall@100", "ndcg@10"], run_name="runs/x.trec")
    message = str(raised.value)
    assert message.startswith("runs/x.trec: ranx and trec_eval disagree on ndcg@10")
    assert f"mean {(0.1 + NDCG_Q2) / 3:.12g} (ranx) vs {(NDCG_Q1 + NDCG_Q2) / 3:.12g} (trec_eval)" in message
    assert f"query 'q1': 0.1 vs {NDCG_Q1:.12g}" in message


def test_metric_without_a_cross_check_is_refused():
    with pytest.raises(ValueError, match="hit_rate@10"):
        evaluate(RUN, QRELS, ["ndcg@10", "hit_rate@10"])


@pytest.mark.slow
@pytest.mark.parametrize("dataset, queries", [("scifact", 300), ("cranfield", 225)])
def test_cost_of_the_cross_check(tmp_path, dataset, queries):
    """What the trec_eval cross-check (and the explicit ranking ranx needs) adds to scoring one run of a
    demo test set, every query with 1000 documents: against ranx (numba's cache warm) and against
    reading and scoring the run, the evaluate job's work per run."""
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "data" / dataset
    if not (folder / "corpus.jsonl").is_file():
        pytest.skip(f"{dataset} is not at {folder}")
    qrels = load_qrels(folder / "qrels" / "test.tsv")
    ids = list(load_corpus(folder / "corpus.jsonl"))
    rng = random.Random(0)
    run = {}
    for qid, judged in qrels.items():
        others = [d for d in rng.sample(ids, 1000 + len(judged)) if d not in judged][: 1000 - len(judged)]
        run[qid] = {d: rng.random() for d in [*others, *judged]}
    write_trec_run(tmp_path / "run.trec", run, "bench")
    evaluate(read_trec_run(tmp_path / "run.trec"), qrels)  # numba's cache warm, as in every job after the first
    started = time.perf_counter()
    run = read_trec_run(tmp_path / "run.trec")
    reading = time.perf_counter() - started
    started = time.perf_counter()
    result = evaluate(run, qrels)
    scoring = time.perf_counter() - started
    started = time.perf_counter()
    rank_order(run)
    ordering = time.perf_counter() - started
    started = time.perf_counter()
    graded = {q: {d: g for d, g in docs.items() if g > 0} for q, docs in qrels.items()}
    for metrics in (["ndcg@10", "ndcg@3"], ["recall@100", "mrr@10", "map@100", "precision@1"]):
        trec_eval_scores({q: run[q] for q in graded if graded[q]}, {q: d for q, d in graded.items() if d}, metrics)
    checking = time.perf_counter() - started
    ranx = scoring - ordering - checking
    print(
        f"{dataset} run ({len(run)} queries x 1000 documents): read {reading:.2f} s, score {scoring:.2f} s = "
        f"ranx {ranx:.2f} s + tie-breaking {ordering:.2f} s + trec_eval cross-check {checking:.2f} s; "
        f"cross-check / ranx = {checking / ranx:.2f}; "
        f"added / (read + score) = {(ordering + checking) / (reading + scoring):.0%}"
    )
    assert result["num_queries"] == queries and result["cross_check"]["max_difference"] <= TOLERANCE
    assert {len(docs) for docs in run.values()} == {1000}
