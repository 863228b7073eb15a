"""The pipeline's stages of routing over whole retrievers (:mod:`sbmoe.selection.experts`), as functions of
paths: training the router on a held-out split, and routing a test set's queries with it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sbmoe.evaluation.metrics import METRICS, evaluate
from sbmoe.io.atomic import atomic_path, write_json
from sbmoe.io.collection import check_split_queries, load_qrels, load_queries
from sbmoe.io.encoded import Encoded
from sbmoe.io.runs import read_trec_run, write_trec_run
from sbmoe.retrieval.fusion import align, tune_wsum
from sbmoe.selection.experts import UTILITY, query_features, routed_runs, utilities
from sbmoe.selection.router import Router, RouterConfig, read_description, train_router
from sbmoe.systems.names import BM25

# ---------------------------------------------------------------------------------------------
# Stages: functions of paths, for the pipeline


@dataclass
class ExpertInputs:
    """One collection split as the router sees it: the experts' runs, the base encoder's pooled
    query embeddings (an ``Encoded`` npz), and the BEIR folder with ``qrels/<split>.tsv``."""

    runs: list[str | os.PathLike]
    queries: str | os.PathLike
    dataset: str | os.PathLike
    split: str = "test"
    relevance_threshold: int = 1
    drop_self_hits: bool = False


def _load_split(inputs: ExpertInputs, experts: Sequence[str], groups: Sequence[str]):
    """(qids, runs, embeddings, features, qrels) of one split, the runs aligned to its judged queries."""

    if len(inputs.runs) != len(experts):
        raise ValueError(f"{len(experts)} experts but {len(inputs.runs)} runs for {inputs.dataset} {inputs.split}")
    dataset = Path(inputs.dataset)
    texts = load_queries(dataset / "queries.jsonl")
    qrels = load_qrels(dataset / "qrels" / f"{inputs.split}.tsv", queries=texts)
    check_split_queries(dataset, inputs.split, qrels)  # the router must not learn on queries it is scored on
    pooled = Encoded.load(inputs.queries)
    if set(pooled.ids) != set(qrels):
        raise ValueError(
            f"{inputs.queries}: its queries are not the judged queries of {dataset}/qrels/{inputs.split}.tsv"
        )
    qids = pooled.ids
    runs = align([read_trec_run(path) for path in inputs.runs], qids)
    bm25 = runs[list(experts).index(BM25)] if BM25 in experts else None
    features = query_features([texts[q] for q in qids], groups, bm25, qids)
    return qids, runs, pooled.embeddings, features, qrels


def train_router_stage(
    experts: Sequence[str],
    inputs: ExpertInputs,
    output: str | os.PathLike,
    config: RouterConfig | None = None,
    fusion_metric: str = UTILITY,
    fusion_step: float = 0.1,
) -> dict:
    """Train the gate on one held-out split and tune the WSUM fusion weights (a grid of
    ``fusion_step``) on the same queries; save both in the folder ``output``
    (:meth:`sbmoe.selection.router.Router.save`). Returns the saved description."""

    config = config or RouterConfig()
    qids, runs, embeddings, features, qrels = _load_split(inputs, experts, config.features)
    utility = utilities(runs, qrels, qids, UTILITY, inputs.relevance_threshold, inputs.drop_self_hits)
    router, log = train_router(experts, embeddings, features, utility, config)
    extra = {
        "dataset": str(inputs.dataset),
        "split": inputs.split,
        "queries": len(qids),
        "informative_queries": int((utility.max(axis=1) > utility.min(axis=1)).sum()),
        "expert_utility": dict(zip(experts, utility.mean(axis=0).tolist())),
        "wsum_weights": tune_wsum(runs, qrels, fusion_metric, fusion_step),
        "wsum_metric": fusion_metric,
        "wsum_step": fusion_step,
        "training": log,
    }
    router.save(output, extra)
    return read_description(output)


def route_stage(
    router_folder: str | os.PathLike,
    testsets: Mapping[str, ExpertInputs],
    runs_output: str | os.PathLike,
    evaluation_output: str | os.PathLike,
    choices_output: str | os.PathLike,
    metrics: Sequence[str] = METRICS,
    k: int = 1000,
    tag: str = "routing",
) -> None:
    """Route every test set with a trained router.

    Writes ``<runs_output>/<testset>/<system>.trec`` for each system of :data:`ROUTED`; the
    evaluation of every expert and routed system (``{testset: {system: evaluation}}``, as
    :func:`sbmoe.evaluation.metrics.evaluate` returns it); and the choices (``{testset: {"experts",
    "queries": {qid: {"router", "weights", "utility"}}}}``).
    """

    router = Router.load(router_folder)
    description = read_description(router_folder)
    experts = router.experts
    evaluations, choices = {}, {}
    with atomic_path(runs_output) as runs_tmp:
        runs_tmp.mkdir()
        for testset, inputs in testsets.items():
            qids, runs, embeddings, features, qrels = _load_split(inputs, experts, router.config.features)
            conventions = (inputs.relevance_threshold, inputs.drop_self_hits)
            utility = utilities(runs, qrels, qids, UTILITY, *conventions)
            weights = router.weights(embeddings, features)
            systems = routed_runs(runs, qids, weights, utility, description["wsum_weights"], k)
            folder = runs_tmp / testset
            folder.mkdir()
            for name, run in systems.items():
                write_trec_run(folder / f"{name}.trec", run, f"{tag}-{name}")
            # every run scored as a reader of its file scores it: the routed runs as written (a run
            # that retrieved nothing at all is an empty file, which is no run to read back)
            every = {name: (run, inputs.runs[i]) for i, (name, run) in enumerate(zip(experts, runs))}
            for name, run in systems.items():
                written = folder / f"{name}.trec"
                read = align([read_trec_run(written)], qids)[0] if any(run.values()) else run
                every[name] = (read, Path(runs_output) / testset / written.name)
            evaluations[testset] = {
                name: evaluate(run, qrels, list(metrics), *conventions, run_name=str(path))
                for name, (run, path) in every.items()
            }
            choices[testset] = {
                "experts": experts,
                "queries": {
                    qid: {"router": experts[int(np.argmax(w))], "weights": w.tolist(), "utility": u.tolist()}
                    for qid, w, u in zip(qids, weights, utility)
                },
            }
        write_json(evaluation_output, evaluations)
        write_json(choices_output, choices)
