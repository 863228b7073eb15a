"""A trained router (:mod:`sbmoe.selection.routing`) as a PyTerrier transformer: topics in, routed results out.

``RoutedRetriever`` runs every expert retriever (any PyTerrier transformer that turns topics into
results: PISA's BM25, a pyterrier-dr pipeline, ...) on the topics, embeds the queries with the base
encoder, and returns, per query, the chosen expert's ranking (``mode="hard"``) or the rankings fused
with the gate's weights (``mode="soft"``)::

    router = RoutedRetriever.from_folder(
        "results/routing/minilm/scifact/router",
        experts={"bm25": sbmoe.retrieval.bm25.bm25_retriever("results/bm25/scifact/index"),
                 "zeroshot": encoder >> flex_index.retriever()},
        base_model="results/models/minilm/none/zeroshot/seed0/model",
    )
    pt.Experiment([bm25, dense, router], topics, qrels, ["nDCG@10"])

The expert names are the router's (``router.experts``); each needs its transformer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import pyterrier as pt

from sbmoe.io.runs import Run, trec_order
from sbmoe.models.retriever import Retriever
from sbmoe.selection.experts import hard_routing, query_features, soft_routing
from sbmoe.selection.router import Router
from sbmoe.systems.names import BM25

MODES = ("hard", "soft")


def results_to_run(results: pd.DataFrame, qids: list[str]) -> Run:
    """A PyTerrier results frame (``qid, docno, score``) as a run over ``qids`` (empty where none)."""
    run: Run = {qid: {} for qid in qids}
    for qid, docno, score in zip(results["qid"].astype(str), results["docno"].astype(str), results["score"]):
        if qid in run:
            run[qid][docno] = float(score)
    return run


def base_encoder(model_folder: str | os.PathLike, batch_size: int = 64) -> Callable[[list[str]], np.ndarray]:
    """The pooled query embeddings of a saved model's encoder (the base encoder the router reads)."""

    encoder = Retriever.load(model_folder).encoder

    def encode(texts: list[str]) -> np.ndarray:
        return encoder.pool(list(texts), "query", batch_size=batch_size, progress=False).numpy()

    return encode


class RoutedRetriever(pt.Transformer):
    """Route each topic to one expert retriever (hard) or fuse the experts' results with the gate's
    weights (soft). Output: the topic columns with ``docno``, ``score`` and ``rank`` (from 0), and
    in hard mode ``expert``, the name of the retriever that answered."""

    def __init__(
        self,
        router: Router,
        experts: Mapping[str, pt.Transformer],
        encode_queries: Callable[[list[str]], np.ndarray],
        mode: str = "hard",
        num_results: int = 1000,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        missing = [name for name in router.experts if name not in experts]
        if missing:
            raise ValueError(f"the router routes to {router.experts}; no transformer given for {missing}")
        super().__init__()
        self.router = router
        self.experts = {name: experts[name] for name in router.experts}
        self.encode_queries = encode_queries
        self.mode = mode
        self.num_results = num_results

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        experts: Mapping[str, pt.Transformer],
        base_model: str | os.PathLike,
        mode: str = "hard",
        num_results: int = 1000,
    ) -> RoutedRetriever:
        """A router saved by the pipeline (``results/routing/<encoder>/<trainset>/router``) and the
        base encoder's model folder (``results/models/<encoder>/none/zeroshot/seed0/model``)."""
        return cls(Router.load(folder), experts, base_encoder(base_model), mode, num_results)

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        for column in ("qid", "query"):
            if column not in topics.columns:
                raise ValueError(
                    f"RoutedRetriever needs a topics frame with qid and query, got columns {list(topics.columns)}"
                )
        topics = topics.drop_duplicates("qid").reset_index(drop=True)
        qids = topics["qid"].astype(str).tolist()
        texts = topics["query"].astype(str).tolist()
        names = self.router.experts
        runs = [results_to_run(self.experts[name](topics), qids) for name in names]
        features = query_features(
            texts, self.router.config.features, runs[names.index(BM25)] if BM25 in names else None, qids
        )
        weights = self.router.weights(self.encode_queries(texts), features)
        if self.mode == "hard":
            choices = np.argmax(weights, axis=1)
            routed = hard_routing(runs, qids, choices, self.num_results)
            answered = {qid: names[c] for qid, c in zip(qids, choices)}
        else:
            routed = soft_routing(runs, qids, weights, self.num_results)
        rows = []
        for position, qid in enumerate(qids):
            ranked = trec_order(routed[qid])[: self.num_results]
            extra = {"expert": answered[qid]} if self.mode == "hard" else {}
            rows.extend(
                {"_topic": position, "docno": doc, "score": score, "rank": rank, **extra}
                for rank, (doc, score) in enumerate(ranked)
            )
        columns = ["_topic", "docno", "score", "rank"] + (["expert"] if self.mode == "hard" else [])
        hits = pd.DataFrame(rows, columns=columns)
        topic_columns = topics.assign(_topic=range(len(topics)))
        keep = [c for c in topic_columns.columns if c not in ("docno", "score", "rank", "expert")]
        return topic_columns[keep].merge(hits, on="_topic").drop(columns="_topic")

    def __repr__(self) -> str:
        return f"RoutedRetriever({self.router.experts}, mode={self.mode!r})"
