"""A trained model inside PyTerrier: pyterrier-dr indexing, retrieval and pt.Experiment on SciFact."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pt = pytest.importorskip("pyterrier")
pyterrier_dr = pytest.importorskip("pyterrier_dr")
ir_measures = pytest.importorskip("ir_measures")

from sbmoe.evaluation.metrics import evaluate  # noqa: E402
from sbmoe.io.collection import Collection, document_text  # noqa: E402
from sbmoe.models.encoder import TINY_RANDOM_MODEL, EncoderConfig  # noqa: E402
from sbmoe.models.retriever import ModelConfig, Retriever  # noqa: E402
from sbmoe.retrieval.pyterrier import SBMoEBiEncoder  # noqa: E402
from sbmoe.retrieval.search import chunks, search  # noqa: E402

MINI = Path(__file__).resolve().parent / "data" / "mini" / "scifact"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "sbmoe"
    config = ModelConfig(
        EncoderConfig(TINY_RANDOM_MODEL, normalize=True, query_max_length=32, doc_max_length=64),
        variant="sbmoe",
        num_experts=3,
        seed=7,
    )
    config.encoder_trained = False
    Retriever(config).save(folder)
    return folder


def test_pyterrier_pipeline_matches_the_library(model, tmp_path):
    collection = Collection.load(MINI, "test")
    encoder = SBMoEBiEncoder.from_pretrained(model, pooling="top1", batch_size=32)
    docs = pd.DataFrame(
        {"docno": list(collection.corpus), "text": [document_text(d) for d in collection.corpus.values()]}
    )
    index = pyterrier_dr.FlexIndex(str(tmp_path / "mini.flex"))
    (encoder >> index).index(docs.to_dict("records"))

    judged = collection.judged_queries()
    topics = pd.DataFrame({"qid": list(judged), "query": list(judged.values())})
    qrels = pd.DataFrame(
        [(q, d, g) for q, docs_ in collection.qrels.items() for d, g in docs_.items()],
        columns=["qid", "docno", "label"],
    )
    pipeline = encoder >> index.retriever(num_results=100)
    experiment = pt.Experiment([pipeline], topics, qrels, [ir_measures.nDCG @ 10], names=["sbmoe"])
    pt_ndcg = float(experiment["nDCG@10"].iloc[0])

    retriever = Retriever.load(model)
    q = retriever.encode(topics["query"].tolist(), "query", "top1", progress=False)
    d = retriever.encode(docs["text"].tolist(), "doc", "top1", progress=False)
    run = search(q.embeddings, chunks(docs["docno"].tolist(), d.embeddings), topics["qid"].tolist(), k=100)
    ours = evaluate(run, collection.qrels, ["ndcg@10"])["metrics"]["ndcg@10"]
    assert pt_ndcg == pytest.approx(ours, abs=1e-4)
    assert 0 < pt_ndcg < 1

    # the query encoder adds the vectors the library computes
    encoded = encoder.query_encoder()(topics.head(3))
    np.testing.assert_allclose(np.stack(encoded["query_vec"]), q.embeddings[:3], atol=1e-5)


def test_pooling_must_fit_the_model(model):
    with pytest.raises(ValueError, match="pooling"):
        SBMoEBiEncoder.from_pretrained(model, pooling="none")


def test_a_regular_moe_model_in_pyterrier(tmp_path):
    config = ModelConfig(
        EncoderConfig(TINY_RANDOM_MODEL, normalize=True, query_max_length=32, doc_max_length=64),
        variant="regular-moe",
        num_experts=3,
        top_k=2,
        moe_layers=[-1],
        seed=7,
    )
    Retriever(config).save(tmp_path / "regular")
    encoder = SBMoEBiEncoder.from_pretrained(tmp_path / "regular")
    assert repr(encoder) == "SBMoEBiEncoder(regular-moe-e3-k2, pooling='top1')"
    topics = pd.DataFrame({"qid": ["1", "2", "3"], "query": ["vitamin d", "bone density in women", "genes"]})
    encoded = encoder.query_encoder()(topics)
    expected = Retriever.load(tmp_path / "regular").encode(topics["query"].tolist(), "query", "none", progress=False)
    np.testing.assert_allclose(np.stack(encoded["query_vec"]), expected.embeddings, atol=1e-6)
