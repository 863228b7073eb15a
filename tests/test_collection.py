"""BEIR-layout reading: contents, errors that name the file and line, validation split, per-split corpus."""

from __future__ import annotations

import json
import shutil

import pytest

from sbmoe.io.collection import (
    Collection,
    DataFormatError,
    corpus_path,
    document_text,
    load_corpus,
    load_qrels,
    load_queries,
    split_validation,
    write_qrels,
)


def _write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_collection_loads(tiny_collection):
    collection = Collection.load(tiny_collection, "train")
    assert len(collection.corpus) == 50
    assert len(collection.queries) == 40
    assert sorted(collection.qrels, key=lambda q: int(q[1:])) == [f"q{i}" for i in range(30)]
    assert collection.qrels["q7"] == {"d7": 1}
    assert collection.corpus["d3"]["title"] == "w9"
    assert collection.corpus["x0"]["title"] == ""
    judged = collection.judged_queries()
    assert set(judged) == set(collection.qrels)
    assert judged["q5"] == collection.queries["q5"]
    test = Collection.load(tiny_collection, "test")
    assert set(test.qrels) == {f"q{i}" for i in range(30, 40)}


def test_small_files_read_exactly(tmp_path):
    corpus = _write_lines(
        tmp_path / "corpus.jsonl",
        [
            json.dumps({"_id": "d1", "title": "Title One", "text": "body one"}),
            "",
            json.dumps({"_id": 2, "text": "body two"}),
            json.dumps({"_id": "d3", "title": None, "text": "body three"}),
        ],
    )
    assert load_corpus(corpus) == {
        "d1": {"title": "Title One", "text": "body one"},
        "2": {"title": "", "text": "body two"},
        "d3": {"title": "", "text": "body three"},
    }
    queries = _write_lines(tmp_path / "queries.jsonl", [json.dumps({"_id": "q1", "text": "what is one"})])
    assert load_queries(queries) == {"q1": "what is one"}
    qrels = _write_lines(tmp_path / "qrels.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t2", "q1\t2\t0", "q2\td3\t1.0"])
    assert load_qrels(qrels) == {"q1": {"d1": 2, "2": 0}, "q2": {"d3": 1}}


def test_document_text_is_title_space_text():
    assert document_text({"title": "A Title", "text": "the body"}) == "A Title the body"
    assert document_text({"title": "", "text": "the body"}) == "the body"
    assert document_text({"text": "the body"}) == "the body"


def _assert_names(error: DataFormatError, path, line):
    message = str(error)
    assert str(path) in message
    assert f"{path}:{line}:" in message
    assert error.path == str(path)
    assert error.line == line


def test_bad_json_line_names_file_and_line(tmp_path):
    path = _write_lines(
        tmp_path / "corpus.jsonl",
        [
            json.dumps({"_id": "d1", "text": "fine"}),
            json.dumps({"_id": "d2", "text": "fine"}),
            '{"_id": "d3", "text": "broken"',
        ],
    )
    with pytest.raises(DataFormatError, match="not valid JSON") as caught:
        load_corpus(path)
    _assert_names(caught.value, path, 3)


def test_missing_id_names_file_and_line(tmp_path):
    path = _write_lines(
        tmp_path / "queries.jsonl",
        [
            json.dumps({"_id": "q1", "text": "fine"}),
            json.dumps({"id": "q2", "text": "no underscore id"}),
        ],
    )
    with pytest.raises(DataFormatError, match="_id") as caught:
        load_queries(path)
    _assert_names(caught.value, path, 2)


def test_duplicate_and_textless_records_name_the_line(tmp_path):
    path = _write_lines(
        tmp_path / "corpus.jsonl", [json.dumps({"_id": "d1", "text": "a"}), json.dumps({"_id": "d1", "text": "b"})]
    )
    with pytest.raises(DataFormatError, match="duplicate") as caught:
        load_corpus(path)
    _assert_names(caught.value, path, 2)
    path = _write_lines(tmp_path / "queries.jsonl", [json.dumps({"_id": "q1"})])
    with pytest.raises(DataFormatError, match="text") as caught:
        load_queries(path)
    _assert_names(caught.value, path, 1)


def test_qrels_wrong_column_count_names_file_and_line(tmp_path):
    path = _write_lines(tmp_path / "test.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q1\td2\t0\textra"])
    with pytest.raises(DataFormatError, match="found 4") as caught:
        load_qrels(path)
    _assert_names(caught.value, path, 3)
    path = _write_lines(tmp_path / "two.tsv", ["q1 d1 1"])  # spaces, not tabs: one column
    with pytest.raises(DataFormatError, match="found 1") as caught:
        load_qrels(path)
    _assert_names(caught.value, path, 1)


def test_qrel_naming_unknown_query_names_file_and_line(tmp_path):
    path = _write_lines(tmp_path / "test.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q9\td1\t1"])
    with pytest.raises(DataFormatError, match="'q9'") as caught:
        load_qrels(path, queries={"q1": "one"})
    _assert_names(caught.value, path, 3)
    with pytest.raises(DataFormatError, match="'d1'") as caught:
        load_qrels(path, corpus={"d2": {"title": "", "text": ""}})
    _assert_names(caught.value, path, 2)


@pytest.mark.parametrize("score", ["high", "", "inf"])
def test_non_numeric_score_names_file_and_line(tmp_path, score):
    path = _write_lines(tmp_path / "test.tsv", ["q1\td1\t1", f"q1\td2\t{score}"])
    with pytest.raises(DataFormatError, match="not a number") as caught:
        load_qrels(path)
    _assert_names(caught.value, path, 2)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataFormatError, match="missing corpus file") as caught:
        load_corpus(tmp_path / "corpus.jsonl")
    assert caught.value.line is None and str(tmp_path / "corpus.jsonl") in str(caught.value)
    with pytest.raises(DataFormatError, match="does not exist"):
        Collection.load(tmp_path / "nowhere")


def test_collection_load_checks_qrels_against_queries(tmp_path, tiny_collection):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_collection, folder)
    with (folder / "qrels" / "test.tsv").open("a") as handle:
        handle.write("q99\td1\t1\n")
    with pytest.raises(DataFormatError, match="q99") as caught:
        Collection.load(folder, "test")
    assert caught.value.line == 12  # header, 10 judgements, then the bad one


def test_split_validation_seeded_and_disjoint():
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(100)}
    train, valid = split_validation(qrels, 0.05, seed=42)
    assert len(valid) == 5 and len(train) == 95
    assert not set(train) & set(valid)
    assert set(train) | set(valid) == set(qrels)
    assert all(train[q] == qrels[q] for q in train) and all(valid[q] == qrels[q] for q in valid)
    again_train, again_valid = split_validation(dict(reversed(list(qrels.items()))), 0.05, seed=42)
    assert again_valid == valid and again_train == train  # the order of the input does not matter
    other = [set(split_validation(qrels, 0.05, seed=s)[1]) for s in (1, 2, 3)]
    assert any(o != set(valid) for o in other)
    assert len(split_validation({"q1": {"d": 1}, "q2": {"d": 1}}, 0.01, seed=0)[1]) == 1  # at least one
    with pytest.raises(ValueError, match="fraction"):
        split_validation(qrels, 1.0, seed=0)


def test_corpus_split_file_preferred(tmp_path, tiny_collection):
    folder = tmp_path / "nq-like"
    shutil.copytree(tiny_collection, folder)
    assert corpus_path(folder, "train") == folder / "corpus.jsonl"
    _write_lines(
        folder / "corpus.train.jsonl",
        [json.dumps({"_id": f"d{i}", "title": "", "text": "train doc"}) for i in range(30)],
    )
    assert corpus_path(folder, "train") == folder / "corpus.train.jsonl"
    assert corpus_path(folder, "test") == folder / "corpus.jsonl"
    train = Collection.load(folder, "train")
    assert len(train.corpus) == 30 and train.corpus["d0"]["text"] == "train doc"
    assert len(Collection.load(folder, "test").corpus) == 50


def test_write_qrels_round_trip(tmp_path):
    qrels = {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}}
    path = tmp_path / "out" / "qrels.tsv"
    write_qrels(path, qrels)
    assert path.read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    assert load_qrels(path) == qrels
    assert sorted(p.name for p in path.parent.iterdir()) == ["qrels.tsv"]
