"""The router as a PyTerrier transformer, beside its experts in pt.Experiment, on a SciFact slice."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pt = pytest.importorskip("pyterrier")
pyterrier_dr = pytest.importorskip("pyterrier_dr")
pytest.importorskip("pyterrier_pisa")
ir_measures = pytest.importorskip("ir_measures")

from sbmoe.evaluation.metrics import evaluate  # noqa: E402
from sbmoe.io.collection import Collection, document_text  # noqa: E402
from sbmoe.io.runs import trec_order  # noqa: E402
from sbmoe.models.encoder import TINY_RANDOM_MODEL, EncoderConfig  # noqa: E402
from sbmoe.models.retriever import ModelConfig, Retriever  # noqa: E402
from sbmoe.retrieval.bm25 import bm25_retriever, build_index  # noqa: E402
from sbmoe.retrieval.pyterrier import SBMoEBiEncoder  # noqa: E402
from sbmoe.selection.experts import hard_routing, query_features, soft_routing, utilities  # noqa: E402
from sbmoe.selection.pyterrier import RoutedRetriever, base_encoder, results_to_run  # noqa: E402
from sbmoe.selection.router import RouterConfig, train_router  # noqa: E402

MINI = Path(__file__).resolve().parent / "data" / "mini" / "scifact"
EXPERTS = ["bm25", "zeroshot"]


def topics_of(collection):
    judged = collection.judged_queries()
    return pd.DataFrame({"qid": list(judged), "query": list(judged.values())})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """BM25 (PISA) and a dense retriever (tiny random encoder, FlexIndex) over the slice's corpus, and a
    router trained on the training queries."""
    folder = tmp_path_factory.mktemp("routing")
    model = folder / "model"
    config = ModelConfig(
        EncoderConfig(TINY_RANDOM_MODEL, normalize=True, query_max_length=32, doc_max_length=64),
        variant="finetune",
        seed=7,
    )
    config.encoder_trained = False
    Retriever(config).save(model)
    test = Collection.load(MINI, "test")
    docs = [{"docno": d, "text": document_text(doc)} for d, doc in test.corpus.items()]
    encoder = SBMoEBiEncoder.from_pretrained(model, batch_size=32)
    flex = pyterrier_dr.FlexIndex(str(folder / "mini.flex"))
    (encoder >> flex).index(docs)
    experts = {
        "bm25": bm25_retriever(build_index(test.corpus, folder / "bm25"), k=100),
        "zeroshot": encoder >> flex.retriever(num_results=100),
    }
    train = Collection.load(MINI, "train")
    topics = topics_of(train)
    qids = topics["qid"].tolist()
    runs = [results_to_run(experts[name](topics), qids) for name in EXPERTS]
    encode = base_encoder(model)
    features = query_features(topics["query"].tolist(), ["length", "bm25"], runs[0], qids)
    router, _ = train_router(
        EXPERTS,
        encode(topics["query"].tolist()),
        features,
        utilities(runs, train.qrels, qids),
        RouterConfig(epochs=100),
        progress=False,
    )
    return {"experts": experts, "router": router, "encode": encode, "test": test, "model": model, "folder": folder}


def test_router_in_pt_experiment_matches_the_library(setup):
    test, experts, router = setup["test"], setup["experts"], setup["router"]
    topics = topics_of(test)
    qrels = pd.DataFrame(
        [(q, d, g) for q, docs in test.qrels.items() for d, g in docs.items()], columns=["qid", "docno", "label"]
    )
    hard = RoutedRetriever(router, experts, setup["encode"], mode="hard", num_results=100)
    soft = RoutedRetriever(router, experts, setup["encode"], mode="soft", num_results=100)
    table = pt.Experiment(
        [experts["bm25"], experts["zeroshot"], hard, soft],
        topics,
        qrels,
        [ir_measures.nDCG @ 10],
        names=["bm25", "zeroshot", "router-hard", "router-soft"],
    )
    measured = dict(zip(table["name"], table["nDCG@10"]))

    qids = topics["qid"].tolist()
    runs = [results_to_run(experts[name](topics), qids) for name in EXPERTS]
    features = query_features(topics["query"].tolist(), router.config.features, runs[0], qids)
    weights = router.weights(setup["encode"](topics["query"].tolist()), features)
    ours = {
        "router-hard": hard_routing(runs, qids, np.argmax(weights, axis=1), 100),
        "router-soft": soft_routing(runs, qids, weights, 100),
    }
    for name, run in ours.items():
        assert measured[name] == pytest.approx(evaluate(run, test.qrels, ["ndcg@10"])["metrics"]["ndcg@10"], abs=1e-4)
    assert measured["bm25"] > measured["zeroshot"]  # a random encoder against BM25

    results = hard(topics)
    assert {"qid", "query", "docno", "score", "rank", "expert"} <= set(results.columns)
    assert set(results["expert"]) <= set(EXPERTS)
    for qid, group in results.groupby("qid"):
        assert group["docno"].is_unique and list(group["rank"]) == list(range(len(group)))
        assert group["score"].is_monotonic_decreasing
        chosen = group["expert"].iloc[0]
        expert = runs[EXPERTS.index(chosen)][qid]  # the expert's own ranking, in trec_eval's order
        assert list(group["docno"]) == [doc for doc, _ in trec_order(expert)]


def test_router_saved_by_the_pipeline_loads_into_pyterrier(setup):
    folder = setup["folder"] / "router"
    setup["router"].save(folder)
    routed = RoutedRetriever.from_folder(folder, setup["experts"], setup["model"], num_results=100)
    topics = topics_of(setup["test"]).head(5)
    direct = RoutedRetriever(setup["router"], setup["experts"], setup["encode"], num_results=100)
    pd.testing.assert_frame_equal(routed(topics), direct(topics))
    with pytest.raises(ValueError, match="no transformer given"):
        RoutedRetriever(setup["router"], {"bm25": setup["experts"]["bm25"]}, setup["encode"])
    with pytest.raises(ValueError, match="qid and query"):
        direct(pd.DataFrame({"qid": ["1"]}))
