"""Exact top-k search (chunked and not) and TREC run files."""

from __future__ import annotations

import numpy as np
import pytest

from sbmoe.io.collection import DataFormatError
from sbmoe.io.runs import read_trec_run, write_trec_run
from sbmoe.retrieval.search import chunks, search


def _brute_force(queries, docs, ids, k):
    scores = queries @ docs.T
    run = {}
    for row, qid in enumerate(ids):
        order = np.argsort(-scores[row], kind="stable")[:k]
        run[qid] = {f"d{j}": float(scores[row, j]) for j in order}
    return run


def test_top_k_on_a_hand_example():
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    docs = np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-1.0, 0.5]], dtype=np.float32)
    ids = ["d0", "d1", "d2", "d3"]
    run = search(queries, [(ids, docs)], ["qa", "qb", "qc"], k=2)
    # scores: qa (3, 0, 1, -1), qb (0, 2, 1, 0.5), qc (3, 2, 2, -0.5)
    assert run["qa"] == {"d0": 3.0, "d2": 1.0}
    assert run["qb"] == {"d1": 2.0, "d2": 1.0}
    assert set(run["qc"]) <= {"d0", "d1", "d2"} and run["qc"]["d0"] == 3.0 and len(run["qc"]) == 2
    assert list(run) == ["qa", "qb", "qc"]


def test_search_equals_brute_force_and_chunking_changes_nothing():
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((13, 8)).astype(np.float32)
    docs = rng.standard_normal((101, 8)).astype(np.float32)
    doc_ids = [f"d{j}" for j in range(101)]
    query_ids = [f"q{i}" for i in range(13)]
    expected = _brute_force(queries, docs, query_ids, 10)
    whole = search(queries, [(doc_ids, docs)], query_ids, k=10)
    pieces = search(queries, chunks(doc_ids, docs, size=7), query_ids, k=10, query_batch_size=4)
    assert len(list(chunks(doc_ids, docs, size=7))) == 15
    for qid in query_ids:
        assert list(expected[qid]) == sorted(whole[qid], key=lambda d: -whole[qid][d])
        assert set(whole[qid]) == set(pieces[qid]) == set(expected[qid])
        for doc, score in expected[qid].items():
            assert whole[qid][doc] == pytest.approx(score, abs=1e-5)
            assert pieces[qid][doc] == pytest.approx(score, abs=1e-5)


def test_k_larger_than_the_corpus():
    docs = np.eye(3, dtype=np.float32)
    queries = np.array([[0.1, 0.2, 0.3]], dtype=np.float32)
    run = search(queries, chunks(["a", "b", "c"], docs, size=2), ["q"], k=1000)
    assert run == {"q": pytest.approx({"a": 0.1, "b": 0.2, "c": 0.3})}
    assert set(run["q"]) == {"a", "b", "c"}


def test_empty_corpus_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        search(np.ones((1, 2), dtype=np.float32), [], ["q"], k=5)


def test_trec_round_trip(tmp_path):
    run = {"q1": {"d1": 0.5, "d2": 2.25, "d3": -1.0}, "q2": {"d9": 1.0, "d8": 1.0}}
    path = tmp_path / "runs" / "run.trec"
    write_trec_run(path, run, tag="mytag")
    lines = path.read_text().splitlines()
    assert lines[:3] == ["q1 Q0 d2 1 2.25 mytag", "q1 Q0 d1 2 0.5 mytag", "q1 Q0 d3 3 -1.0 mytag"]
    assert lines[3:] == [
        "q2 Q0 d9 1 1.0 mytag",
        "q2 Q0 d8 2 1.0 mytag",
    ]  # ties by document id, descending (trec_eval's)
    assert read_trec_run(path) == run
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.trec"]


def test_malformed_run_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.trec"
    path.write_text("q1 Q0 d1 1 2.0 tag\n\nq1 Q0 d2 2 1.0\n")
    with pytest.raises(DataFormatError, match="found 5") as caught:
        read_trec_run(path)
    assert f"{path}:3:" in str(caught.value) and caught.value.line == 3
    path.write_text("q1 Q0 d1 1 high tag\n")
    with pytest.raises(DataFormatError, match="not a number") as caught:
        read_trec_run(path)
    assert f"{path}:1:" in str(caught.value)
