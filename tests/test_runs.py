"""TREC run files: scores written at full precision (float32 scores read back exactly), documents in
trec_eval's order (checked against trec_eval itself, through pytrec_eval), malformed lines named by
file and line."""

from __future__ import annotations

import random

import numpy as np
import pytest
import pytrec_eval

from sbmoe.io.errors import DataFormatError
from sbmoe.io.runs import format_score, read_trec_run, trec_order, write_trec_run


def trec_eval_ranks(docs: dict[str, float]) -> list[str]:
    """The order in which trec_eval ranks ``docs``, found by making each document in turn the one
    relevant document of its own query: its reciprocal rank gives its rank."""
    qrels = {f"q{i}": {doc: 1} for i, doc in enumerate(docs)}
    run = {f"q{i}": dict(docs) for i in range(len(docs))}
    reciprocal = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)
    rank = {doc: round(1 / reciprocal[f"q{i}"]["recip_rank"]) for i, doc in enumerate(docs)}
    return sorted(docs, key=rank.get)


def test_trec_eval_breaks_ties_by_document_id_descending():
    # byte order, greater first: lower case after upper case, a longer id after its prefix, digits as characters
    tied = {doc: 1.0 for doc in ["a", "b", "B", "aa", "d10", "d9", "D1", "_x", "0", "é"]}
    assert trec_eval_ranks(tied) == ["é", "d9", "d10", "b", "aa", "a", "_x", "D1", "B", "0"]
    assert [doc for doc, _ in trec_order(tied)] == trec_eval_ranks(tied)


def test_trec_order_is_trec_eval_order_on_random_runs():
    rng = random.Random(7)
    alphabet = "abAB019_-.é"
    for _ in range(20):
        ids = {"".join(rng.choices(alphabet, k=rng.randint(1, 4))) for _ in range(40)}
        docs = {doc: float(rng.choice([0.5, 0.25, -1.0, 3.0, rng.random()])) for doc in ids}  # many ties
        assert [doc for doc, _ in trec_order(docs)] == trec_eval_ranks(docs)


def test_trec_eval_compares_scores_in_single_precision():
    # trec_eval stores a score as a C float: doubles that round to the same float32 tie, and the
    # greater document id comes first even with the lower double
    close = {"a": 0.5 + 1e-9, "b": 0.5, "c": 0.5 - 1e-9, "d": float(np.nextafter(np.float32(0.5), np.float32(1)))}
    assert trec_eval_ranks(close) == ["d", "c", "b", "a"]
    assert trec_order(close) == [("d", close["d"]), ("c", close["c"]), ("b", 0.5), ("a", close["a"])]
    rng = random.Random(3)
    for _ in range(20):  # fusion-like doubles, many of them a float32 rounding apart
        docs = {f"d{i}": 1 / 61 + rng.choice([0.0, 1e-10, 2e-10, 1e-8, 1e-6]) * rng.random() for i in range(40)}
        assert [doc for doc, _ in trec_order(docs)] == trec_eval_ranks(docs)


def test_float32_scores_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.standard_normal(500).astype(np.float32),
            (rng.random(200) * 1e-30).astype(np.float32),
            (rng.random(200) * 1e30).astype(np.float32),
            np.nextafter(np.float32(0.3), np.float32(1.0), dtype=np.float32)[None],  # one ulp apart
            np.float32(0.3)[None],
        ]
    )
    run = {"q": {f"d{i}": float(value) for i, value in enumerate(values)}}
    write_trec_run(tmp_path / "run.trec", run, "tag")
    back = read_trec_run(tmp_path / "run.trec")
    assert back == run  # the very doubles that were written
    assert np.array_equal(np.array([back["q"][f"d{i}"] for i in range(len(values))], dtype=np.float32), values)
    assert back["q"][f"d{len(values) - 2}"] > back["q"][f"d{len(values) - 1}"]  # one float32 ulp stays distinct


def test_double_scores_round_trip_exactly(tmp_path):
    # fusion and routing scores are doubles: sums that differ in their last bit stay distinct
    run = {"q": {"a": (0.1 + 0.2) + 0.3, "b": 0.1 + (0.2 + 0.3), "c": 0.1 + 0.2, "d": 0.3, "e": 1e-300, "f": -2.5e17}}
    assert run["q"]["a"] != run["q"]["b"]
    write_trec_run(tmp_path / "run.trec", run, "tag")
    assert read_trec_run(tmp_path / "run.trec") == run
    # 0.6 and the next double up are one float32 for trec_eval, as are 0.3 and the next double up
    assert [doc for doc, _ in trec_order(read_trec_run(tmp_path / "run.trec")["q"])] == ["b", "a", "d", "c", "e", "f"]
    assert format_score(np.float32(0.1)) == repr(float(np.float32(0.1))) == "0.10000000149011612"
    assert format_score(np.float64(0.3)) == "0.3"


@pytest.mark.parametrize("score", [float("nan"), float("inf"), -float("inf")])
def test_a_score_that_is_not_finite_is_not_written(tmp_path, score):
    with pytest.raises(ValueError, match="finite"):
        write_trec_run(tmp_path / "run.trec", {"q": {"d": score}}, "tag")
    assert not (tmp_path / "run.trec").exists()


def test_tie_order_and_ranks_written(tmp_path):
    run = {"q2": {"d1": 0.5, "d10": 0.5, "d9": 0.5, "x": 2.0}, "q1": {"b": 1.0, "a": 1.0, "c": 1.5}}
    write_trec_run(tmp_path / "run.trec", run, "t")
    assert (tmp_path / "run.trec").read_text().splitlines() == [
        "q2 Q0 x 1 2.0 t",
        "q2 Q0 d9 2 0.5 t",
        "q2 Q0 d10 3 0.5 t",
        "q2 Q0 d1 4 0.5 t",
        "q1 Q0 c 1 1.5 t",
        "q1 Q0 b 2 1.0 t",
        "q1 Q0 a 3 1.0 t",
    ]
    # the file's ranks are trec_eval's ranks
    for qid, docs in run.items():
        assert trec_eval_ranks(docs) == [
            line.split()[2] for line in (tmp_path / "run.trec").read_text().splitlines() if line.startswith(qid + " ")
        ]


@pytest.mark.parametrize(
    "lines, line, message",
    [
        (["q1 Q0 d1 1 2.0 tag", "", "q1 Q0 d2 2 1.0"], 3, "expected 6 fields"),
        (["q1 Q0 d1 1 2.0 tag", "q1 Q0 d2 two 1.0 tag"], 2, "rank 'two' is not an integer"),
        (["q1 Q0 d1 1 high tag"], 1, "score 'high' is not a number"),
        (["q1 Q0 d1 1 nan tag"], 1, "score 'nan' is not a number"),
        (["q1 Q0 d1 1 0.5 tag", "q1 Q0 d1 2 0.4 tag"], 2, "document 'd1' is ranked twice for query 'q1'"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, lines, line, message):
    path = tmp_path / "bad.trec"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as raised:
        read_trec_run(path)
    assert str(raised.value).startswith(f"{path}:{line}:") and message in str(raised.value)
    assert raised.value.line == line


def test_an_empty_run_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "empty.trec"
    path.write_text("\n")
    with pytest.raises(DataFormatError, match="no results") as raised:
        read_trec_run(path)
    assert str(path) in str(raised.value)
