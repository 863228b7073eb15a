"""BM25 with PISA (pyterrier-pisa): indexing a BEIR corpus, retrieval, and the pipeline's stage."""

from pathlib import Path

import pytest

pytest.importorskip("pyterrier_pisa")

from sbmoe.evaluation.metrics import evaluate  # noqa: E402
from sbmoe.io.collection import Collection, load_corpus  # noqa: E402
from sbmoe.io.runs import read_trec_run  # noqa: E402
from sbmoe.retrieval.bm25 import BM25Config, bm25_stage, build_index, retrieve  # noqa: E402

MINI = Path(__file__).resolve().parent / "data" / "mini" / "scifact"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return build_index(load_corpus(MINI / "corpus.jsonl"), tmp_path_factory.mktemp("bm25") / "index")


def test_bm25_ranks_the_matching_document_first(tiny_collection, tmp_path):
    index = build_index(load_corpus(tiny_collection / "corpus.jsonl"), tmp_path / "index")
    run = retrieve(index, {"a": "w0 w1 w2", "b": "w30 w31", "c": "the of and"}, k=5)
    assert next(iter(run["a"])) == "d0" and next(iter(run["b"])) == "d10"
    assert run["c"] == {}  # stopwords only: no indexed term
    assert all(len(docs) <= 5 for docs in run.values())
    scores = list(run["a"].values())
    assert scores == sorted(scores, reverse=True)


def test_bm25_on_scifact_slice_is_effective_and_repeatable(index):
    collection = Collection.load(MINI, "test")
    queries = collection.judged_queries()
    run = retrieve(index, queries, k=100)
    assert retrieve(index, queries, k=100) == run
    ndcg = evaluate(run, collection.qrels, ["ndcg@10"])["metrics"]["ndcg@10"]
    assert ndcg > 0.5  # a lexical retriever on SciFact claims that quote their evidence
    other = retrieve(index, queries, k1=1.2, b=0.75, k=100)
    assert other != run


def test_bm25_stage_writes_a_run_per_split(tmp_path):
    bm25_stage(MINI, tmp_path / "index", tmp_path / "runs", ["test", "train"], BM25Config(k1=1.0, b=0.5), k=50)
    for split in ("test", "train"):
        run = read_trec_run(tmp_path / "runs" / f"{split}.trec")
        judged = Collection.load(MINI, split).qrels
        assert set(run) <= set(judged) and len(run) > 0.9 * len(judged)
        assert max(len(docs) for docs in run.values()) == 50


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="stemmer"):
        BM25Config(stemmer="snowball")
    with pytest.raises(ValueError, match="b must be"):
        BM25Config(b=1.5)
    with pytest.raises(ValueError, match="empty corpus"):
        build_index({}, tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not a BM25 index"):
        retrieve(tmp_path, {"q": "text"})
