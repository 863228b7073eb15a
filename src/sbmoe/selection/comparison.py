"""What the report says of routing over whole retrievers: how the queries split over the experts, the
best single expert of a test set, and the significance of every fusion and router against it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from sbmoe.evaluation.results import REPORTED_METRICS
from sbmoe.evaluation.significance import compare_to_baseline
from sbmoe.selection.experts import UTILITY, best_experts

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
    metrics: Sequence[str] = REPORTED_METRICS,
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
                    test=test,
                    correction=correction,
                    alpha=alpha,
                    permutations=permutations,
                    seed=seed,
                )
                for name, outcome in family["systems"].items():
                    comparisons.append(
                        {
                            "trainset": trainset,
                            "testset": testset,
                            "metric": metric,
                            "system": name,
                            "baseline": baseline,
                            "family_size": family["family_size"],
                            **outcome,
                        }
                    )
    return {
        "baseline": "the best single expert (mean nDCG@10) of each test set",
        "test": test,
        "correction": correction,
        "alpha": alpha,
        "permutations": permutations if test == "randomization" else None,
        "seed": seed,
        "comparisons": comparisons,
    }
