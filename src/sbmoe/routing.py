"""Mixture-of-Experts routing over whole retrievers: a gate reads the query and picks one of several
expert retrievers (hard routing) or weights their runs (soft routing).

The retrieval analogue of SB-MoE's gate, one level up: the experts are complete retrievers (BM25,
the zero-shot encoder, trained systems of the study), each with its run for every query.

- An expert is named ``bm25``, ``zeroshot`` or a system of the study with its inference pooling
  (``finetune``, ``sbmoe-learned-e6/top1``; see :func:`parse_expert`).
- The **utility** of an expert for a query is its per-query nDCG@10 against the qrels.
- The gate (:class:`sbmoe.router.Router`) reads the query's embedding from the base encoder and,
  optionally, cheap query features (:data:`FEATURES`): the query's length and the statistics of its
  BM25 scores. It is trained on queries the experts were not trained on (a held-out split) to pick
  the expert with the highest utility.
- **Hard routing** returns the chosen expert's run; **soft routing** fuses the runs with the gate's
  per-query weights (:func:`sbmoe.fusion.per_query_fusion`, scores min-max normalised as ranx
  does); the **oracle** picks the expert with the highest utility for each test query, the ceiling
  any router can reach. The baselines are the single experts and their fusions (RRF, and WSUM with
  weights tuned on the router's training split).

This module needs no PyTorch (the pipeline's analysis reads it); the gate lives in
:mod:`sbmoe.router`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .atomic import atomic_path, write_json
from .collection import Qrels, load_qrels, load_queries
from .evaluation import evaluate
from .fusion import align, fuse, per_query_fusion, top_k, tune_wsum
from .results import display_label
from .runs import Run, read_trec_run, write_trec_run
from .systems import poolings

if TYPE_CHECKING:
    from .router import RouterConfig

BM25 = "bm25"
UTILITY = "ndcg@10"
FEATURES = {"length": ("log_length",), "bm25": ("bm25_top1", "bm25_mean10", "bm25_std10")}
ROUTED = ("rrf", "wsum", "router-hard", "router-soft", "oracle")
ROUTED_LABELS = {
    "rrf": "Fusion (RRF)",
    "wsum": "Fusion (WSUM)",
    "router-hard": "Router (hard)",
    "router-soft": "Router (soft)",
    "oracle": "Oracle",
}


# ---------------------------------------------------------------------------------------------
# Experts


def parse_expert(name: str) -> tuple[str, str | None]:
    """``(system, pooling)`` of an expert name: ``bm25`` → ``("bm25", None)``; ``zeroshot`` and
    ``finetune`` → pooling ``none``; ``sbmoe-learned-e6/top1`` → ``("sbmoe-learned-e6", "top1")``;
    a system named without its pooling is read with its first (``top1`` for SB-MoE)."""
    if name == BM25:
        return BM25, None
    system, _, pooling = name.partition("/")
    allowed = poolings(system)  # raises ValueError for an unknown system
    pooling = pooling or allowed[0]
    if pooling not in allowed:
        raise ValueError(f"expert {name!r}: system {system} is read with pooling {allowed}, not {pooling!r}")
    return system, pooling


def expert_label(name: str) -> str:
    """The label tables and figures show for an expert (``BM25``, ``FT``, ``SB-MoE TOP-1 E=6 ...``)."""
    system, pooling = parse_expert(name)
    return "BM25" if system == BM25 else display_label(system, pooling)


def system_label(name: str) -> str:
    """The label of an expert or of a routed system (:data:`ROUTED`)."""
    return ROUTED_LABELS.get(name) or expert_label(name)


# ---------------------------------------------------------------------------------------------
# Utilities and features


def utilities(
    runs: Sequence[Run],
    qrels: Qrels,
    qids: Sequence[str],
    metric: str = UTILITY,
    relevance_threshold: int = 1,
    drop_self_hits: bool = False,
) -> np.ndarray:
    """The per-query ``metric`` of each run: a ``(len(qids), len(runs))`` matrix (0 for a query
    without a relevant document)."""
    matrix = np.zeros((len(qids), len(runs)))
    for column, run in enumerate(runs):
        per_query = evaluate(run, qrels, [metric], relevance_threshold, drop_self_hits)["per_query"].get(metric, {})
        matrix[:, column] = [per_query.get(qid, 0.0) for qid in qids]
    return matrix


def feature_names(groups: Sequence[str]) -> list[str]:
    unknown = [g for g in groups if g not in FEATURES]
    if unknown:
        raise ValueError(f"unknown query features {unknown}; choose among {list(FEATURES)}")
    return [name for group in groups for name in FEATURES[group]]


def query_features(texts: Sequence[str], groups: Sequence[str], bm25: Run | None = None,
                   qids: Sequence[str] | None = None) -> np.ndarray:
    """Cheap features of each query, ``(len(texts), F)``: ``length`` = log(1 + whitespace tokens);
    ``bm25`` = its BM25 run's top score, mean and standard deviation of its top 10 (0 without hits).
    ``bm25`` needs the BM25 run and the query ids (in the order of ``texts``)."""
    columns = []
    for group in groups:
        if group == "length":
            columns.append(np.log1p([len(text.split()) for text in texts])[:, None])
        elif group == BM25:
            if bm25 is None or qids is None or len(qids) != len(texts):
                raise ValueError("the bm25 query features need the BM25 run and the query ids")
            stats = np.zeros((len(qids), 3))
            for row, qid in enumerate(qids):
                top = np.sort(np.fromiter(bm25.get(qid, {}).values(), dtype=float))[::-1][:10]
                if top.size:
                    stats[row] = (top[0], top.mean(), top.std())
            columns.append(stats)
        else:
            feature_names([group])
    return np.concatenate(columns, axis=1) if columns else np.zeros((len(texts), 0))


# ---------------------------------------------------------------------------------------------
# Routing


def best_experts(utility: np.ndarray, tolerance: float = 1e-9) -> np.ndarray:
    """For each query, a distribution shared equally by the experts with the highest utility."""
    best = utility >= utility.max(axis=1, keepdims=True) - tolerance
    return best / best.sum(axis=1, keepdims=True)


def oracle_choices(utility: np.ndarray) -> np.ndarray:
    """The expert with the highest utility for each query (the first of those that tie)."""
    return np.argmax(np.asarray(utility), axis=1)


def hard_routing(runs: Sequence[Run], qids: Sequence[str], choices: Sequence[int], k: int = 1000) -> Run:
    """Each query's ranking (its top ``k``) from the run of its chosen expert."""
    if len(qids) != len(choices):
        raise ValueError(f"{len(qids)} queries but {len(choices)} choices")
    return {qid: top_k(runs[int(c)].get(qid, {}), k) for qid, c in zip(qids, choices)}


def soft_routing(runs: Sequence[Run], qids: Sequence[str], weights: np.ndarray, k: int = 1000) -> Run:
    """Each query's rankings fused with its own gate weights (one-hot weights give hard routing)."""
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(qids), len(runs)):
        raise ValueError(f"weights must be (queries, experts) = {(len(qids), len(runs))}, got {weights.shape}")
    return per_query_fusion(runs, {qid: row for qid, row in zip(qids, weights)}, k)


def routed_runs(runs: Sequence[Run], qids: Sequence[str], weights: np.ndarray, utility: np.ndarray,
                wsum_weights: Sequence[float], k: int = 1000) -> dict[str, Run]:
    """Every system of :data:`ROUTED` for one test set: the two fusions, hard and soft routing by the
    gate's ``weights``, and the oracle (by the test ``utility``)."""
    aligned = align(runs, qids)
    return {
        "rrf": fuse(aligned, "rrf", k=k),
        "wsum": fuse(aligned, "wsum", wsum_weights, k=k),
        "router-hard": hard_routing(aligned, qids, np.argmax(weights, axis=1), k),
        "router-soft": soft_routing(aligned, qids, weights, k),
        "oracle": hard_routing(aligned, qids, oracle_choices(utility), k),
    }


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
    from .model import Encoded

    if len(inputs.runs) != len(experts):
        raise ValueError(f"{len(experts)} experts but {len(inputs.runs)} runs for {inputs.dataset} {inputs.split}")
    dataset = Path(inputs.dataset)
    texts = load_queries(dataset / "queries.jsonl")
    qrels = load_qrels(dataset / "qrels" / f"{inputs.split}.tsv", queries=texts)
    pooled = Encoded.load(inputs.queries)
    if set(pooled.ids) != set(qrels):
        raise ValueError(f"{inputs.queries}: its queries are not the judged queries of {dataset}/qrels/{inputs.split}.tsv")
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
    (:meth:`sbmoe.router.Router.save`). Returns the saved description."""
    from .router import RouterConfig, read_description, train_router

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
    metrics: Sequence[str] = ("ndcg@10", "recall@100"),
    k: int = 1000,
    tag: str = "routing",
) -> None:
    """Route every test set with a trained router.

    Writes ``<runs_output>/<testset>/<system>.trec`` for each system of :data:`ROUTED`; the
    evaluation of every expert and routed system (``{testset: {system: evaluation}}``, as
    :func:`sbmoe.evaluation.evaluate` returns it); and the choices (``{testset: {"experts",
    "queries": {qid: {"router", "weights", "utility"}}}}``).
    """
    from .router import Router, read_description

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
            every = {**dict(zip(experts, runs)), **systems}
            evaluations[testset] = {name: evaluate(run, qrels, list(metrics), *conventions) for name, run in every.items()}
            choices[testset] = {
                "experts": experts,
                "queries": {
                    qid: {"router": experts[int(np.argmax(w))], "weights": w.tolist(), "utility": u.tolist()}
                    for qid, w, u in zip(qids, weights, utility)
                },
            }
        write_json(evaluation_output, evaluations)
        write_json(choices_output, choices)


# ---------------------------------------------------------------------------------------------
# Analysis


def choice_shares(choices: Mapping) -> dict:
    """How one test set's queries split over the experts: the router's hard choices, the mean of its
    soft weights, and the oracle (a query shares its unit equally among the experts that tie for the
    best utility; queries on which every expert scores the same are left out and counted)."""
    experts = choices["experts"]
    queries = list(choices["queries"].values())
    hard = np.zeros(len(experts))
    for query in queries:
        hard[experts.index(query["router"])] += 1
    soft = np.mean([query["weights"] for query in queries], axis=0) if queries else np.zeros(len(experts))
    utility = np.array([query["utility"] for query in queries]).reshape(len(queries), len(experts))
    informative = utility.max(axis=1) > utility.min(axis=1) if queries else np.zeros(0, dtype=bool)
    oracle = best_experts(utility[informative]).sum(axis=0) if informative.any() else np.zeros(len(experts))
    return {
        "experts": experts,
        "queries": len(queries),
        "router": (hard / max(len(queries), 1)).tolist(),
        "soft": list(map(float, soft)),
        "oracle": (oracle / max(int(informative.sum()), 1)).tolist(),
        "oracle_queries": int(informative.sum()),
    }


def best_single(evaluations: Mapping[str, Mapping], experts: Sequence[str], metric: str = UTILITY) -> str:
    """The expert with the highest mean ``metric`` on one test set (the first on ties)."""
    means = [evaluations[name]["metrics"].get(metric, math.nan) for name in experts]
    return experts[int(np.nanargmax(means))]


def significance_against_best_single(
    evaluations: Mapping[str, Mapping[str, Mapping[str, Mapping]]],
    experts_of: Mapping[str, Sequence[str]],
    metrics: Sequence[str] = ("ndcg@10", "recall@100"),
    systems: Sequence[str] = ("rrf", "wsum", "router-hard", "router-soft"),
    test: str = "randomization",
    correction: str = "bonferroni",
    alpha: float = 0.01,
    permutations: int = 10_000,
    seed: int = 0,
) -> dict:
    """Every fusion and router against the best single expert (by mean nDCG@10) of the same test set.

    ``evaluations`` is ``{trainset: {testset: {system: evaluation}}}`` (the routing stage's outputs)
    and ``experts_of`` the experts of each training set's router. The correction family is the
    ``systems`` compared on one test set and one metric. Returns the settings and a list
    ``comparisons`` of flat records.
    """
    from .significance import compare_to_baseline

    comparisons = []
    for trainset, per_testset in evaluations.items():
        for testset, per_system in per_testset.items():
            baseline = best_single(per_system, experts_of[trainset])
            for metric in metrics:
                if any(metric not in per_system[name]["per_query"] for name in [baseline, *systems]):
                    continue
                family = compare_to_baseline(
                    per_system[baseline]["per_query"][metric],
                    {name: per_system[name]["per_query"][metric] for name in systems},
                    test=test, correction=correction, alpha=alpha, permutations=permutations, seed=seed,
                )
                for name, outcome in family["systems"].items():
                    comparisons.append({
                        "trainset": trainset, "testset": testset, "metric": metric, "system": name,
                        "baseline": baseline, "family_size": family["family_size"], **outcome,
                    })
    return {
        "baseline": "the best single expert (mean nDCG@10) of each test set",
        "test": test,
        "correction": correction,
        "alpha": alpha,
        "permutations": permutations if test == "randomization" else None,
        "seed": seed,
        "comparisons": comparisons,
    }
