"""The evidence of a claim in each setting the study ran: which systems are compared where
(:class:`Study`, :class:`Scores`, :func:`model_comparisons`, :func:`routing_comparisons`), their
mean per-query difference with its bootstrap interval and TOST p-value (:func:`metric_evidence`),
and the corrected p-value of the study's paired test (:func:`p_values`): from the significance
reports where the comparison is in one of their families, else tested here over the claim's own
family. The verdicts themselves are :mod:`sbmoe.analysis.claims.verdicts`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sbmoe.evaluation.effects import bootstrap_interval, tost
from sbmoe.evaluation.significance import average_over_seeds, correct, paired_test
from sbmoe.selection.comparison import best_single
from sbmoe.systems.labels import display_label, system_label

FUSIONS = ("rrf", "wsum")


# ---------------------------------------------------------------------------------------------
# What the study ran


@dataclass
class Study:
    """The configuration's side of the verdicts: encoders (key -> name_or_path), in-domain and
    zero-shot pairs, significance settings, dataset labels and the routing encoder."""

    encoders: Mapping[str, str]
    in_domain: Mapping[str, Sequence[str]]
    zero_shot: Mapping[str, Sequence[str]] = field(default_factory=dict)
    significance: Mapping = field(default_factory=dict)
    dataset_labels: Mapping[str, str] = field(default_factory=dict)
    routing_encoder: str | None = None

    @property
    def alpha(self) -> float:
        return float(self.significance.get("alpha", 0.01))

    def split_of(self, trainset: str, testset: str) -> str:
        return "in-domain" if testset in self.in_domain.get(trainset, []) else "zero-shot"

    def pairs(self, scope: Mapping) -> list[tuple[str, str, str]]:
        """``(trainset, testset, split)`` of every pair in ``scope``, in-domain first."""
        found = []
        for split, pairs in (("in-domain", self.in_domain), ("zero-shot", self.zero_shot)):
            if scope["testsets"] in (split, "any"):
                found += [(train, test, split) for train, tests in pairs.items() for test in tests]
        allowed = scope.get("trainsets")
        return [pair for pair in found if allowed is None or pair[0] in allowed]

    def encoders_in(self, scope: Mapping, classes: Mapping[str, Sequence[str]]) -> list[str]:
        wanted = scope["encoders"]
        if wanted == "any":
            return list(self.encoders)
        return [key for key, path in self.encoders.items() if path in classes[wanted]]


def is_reproduction(original: Mapping, encoder_path: str, trainset: str, testset: str | None, split: str) -> bool:
    """A setting is a reproduction when its encoder and (training set, test set) are the original's."""
    if encoder_path not in original["encoders"]:
        return False
    pairs = original.get("in_domain" if split == "in-domain" else "zero_shot") or {}
    return trainset in pairs and (testset is None or testset in pairs[trainset])


class Scores:
    """Per-query scores, averaged over seeds, of the study's evaluations (the DataFrame of
    :func:`sbmoe.evaluation.results.load_results`), by encoder, training set, test set, system and pooling."""

    def __init__(self, results: pd.DataFrame):
        keys = ["encoder", "trainset", "testset", "system", "pooling"]
        self._per_seed = (
            {} if results.empty else {key: list(frame["per_query"]) for key, frame in results.groupby(keys, sort=False)}
        )

    def get(self, encoder: str, trainset: str, testset: str, system: str, pooling: str, metric: str) -> dict | None:
        per_seed = self._per_seed.get((encoder, trainset, testset, system, pooling))
        if not per_seed or any(metric not in scores for scores in per_seed):
            return None
        return average_over_seeds([scores[metric] for scores in per_seed])


# ---------------------------------------------------------------------------------------------
# Evidence


def _expand(template: str, experts: int | None) -> str:
    return template.replace("{experts}", str(experts)) if experts is not None else template


def system_pairs(claim: Mapping) -> list[list[tuple]]:
    """The (A, B) system pairs of a claim, as ``[(a system, a pooling), (b system, b pooling), E]``,
    grouped into alternatives: with ``experts.use: first`` one group of alternatives in the order of
    ``experts.values`` (the first the study ran is used), else one group per pair."""
    experts = claim.get("experts")
    values = experts["values"] if experts else [None]
    a_names = claim["a"]["system"] if isinstance(claim["a"]["system"], list) else [claim["a"]["system"]]
    pairs = []
    for name in a_names:
        options = [
            (
                (_expand(name, e), claim["a"].get("pooling", "none")),
                (_expand(claim["b"]["system"], e), claim["b"].get("pooling", "none")),
                e,
            )
            for e in values
        ]
        options = [option for option in options if option[0] != option[1]]
        if experts and experts.get("use", "first") == "first":
            pairs.append(options)
        else:
            pairs += [[option] for option in options]
    return [group for group in pairs if group]


def paired_differences(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    common = sorted(set(a) & set(b))
    return common, np.array([a[qid] - b[qid] for qid in common], dtype=float)


def metric_evidence(a: Mapping[str, float], b: Mapping[str, float], delta: float, defaults: Mapping) -> dict:
    """Mean difference, bootstrap interval and TOST p-value of A − B on the queries both evaluated."""
    common, differences = paired_differences(a, b)
    if not common:
        raise ValueError("the two systems share no query")
    low, high = bootstrap_interval(differences, defaults["resamples"], defaults["confidence"], defaults["seed"])
    return {
        "num_queries": len(common),
        "mean_a": float(np.mean([a[q] for q in common])),
        "mean_b": float(np.mean([b[q] for q in common])),
        "difference": float(differences.mean()),
        "ci_low": low,
        "ci_high": high,
        "tost_p": tost(differences, delta),
    }


@dataclass
class Comparison:
    """One setting of a claim: who is compared where, and the per-query scores of each metric."""

    encoder: str
    trainset: str
    testset: str
    split: str
    a: tuple[str, str]
    b: tuple[str, str]
    experts: int | None
    scores: dict[str, tuple[dict, dict]]  # metric -> (A's scores, B's scores)
    a_label: str = ""
    b_label: str = ""


def _both(pair: tuple) -> bool:
    return pair[0] is not None and pair[1] is not None


def model_comparisons(
    claim: Mapping, study: Study, scores: Scores, metrics: Sequence[str], classes: Mapping[str, Sequence[str]]
) -> list[Comparison]:
    """Every setting of a per-query claim the study ran: both systems evaluated on the first metric."""
    found = []
    for trainset, testset, split in study.pairs(claim["scope"]):
        for encoder in study.encoders_in(claim["scope"], classes):
            for alternatives in system_pairs(claim):
                for a, b, experts in alternatives:
                    per_metric = {
                        m: (
                            scores.get(encoder, trainset, testset, *a, m),
                            scores.get(encoder, trainset, testset, *b, m),
                        )
                        for m in metrics
                    }
                    if not _both(per_metric[metrics[0]]):
                        continue
                    found.append(
                        Comparison(
                            encoder,
                            trainset,
                            testset,
                            split,
                            a,
                            b,
                            experts,
                            {m: pair for m, pair in per_metric.items() if _both(pair)},
                            display_label(*a),
                            display_label(*b),
                        )
                    )
                    break
    return found


def resolve_baseline(name: str, per_system: Mapping[str, Mapping], experts: Sequence[str]) -> str | None:
    """A routing claim's B: ``best-single`` (the expert with the best mean nDCG@10), ``best-fusion``
    (the better fusion by mean nDCG@10) or a system named as is."""
    if name == "best-single":
        present = [expert for expert in experts if expert in per_system]
        return best_single(per_system, present) if present else None
    if name == "best-fusion":
        present = [fusion for fusion in FUSIONS if fusion in per_system]
        return best_single(per_system, present) if present else None
    return name if name in per_system else None


def routing_comparisons(
    claim: Mapping, study: Study, routing: Mapping, experts: Sequence[str], metrics: Sequence[str]
) -> list[Comparison]:
    """Every setting of a routing claim: ``routing`` is ``{trainset: {testset: {system: evaluation}}}``."""
    scope, found = claim["scope"], []
    a_names = claim["a"]["system"] if isinstance(claim["a"]["system"], list) else [claim["a"]["system"]]
    for trainset, per_testset in routing.items():
        if scope.get("trainsets") is not None and trainset not in scope["trainsets"]:
            continue
        for testset, per_system in per_testset.items():
            split = study.split_of(trainset, testset)
            baseline = resolve_baseline(claim["b"]["system"], per_system, experts)
            if scope["testsets"] not in (split, "any") or baseline is None:
                continue
            for name in (n for n in a_names if n in per_system):
                per_metric = {
                    m: (per_system[name]["per_query"][m], per_system[baseline]["per_query"][m])
                    for m in metrics
                    if m in per_system[name]["per_query"] and m in per_system[baseline]["per_query"]
                }
                if metrics[0] in per_metric:
                    label = system_label(baseline)
                    b_label = f"best single ({label})" if claim["b"]["system"] == "best-single" else label
                    found.append(
                        Comparison(
                            study.routing_encoder or "",
                            trainset,
                            testset,
                            split,
                            (name, "none"),
                            (baseline, "none"),
                            None,
                            per_metric,
                            system_label(name),
                            b_label,
                        )
                    )
    return found


# ---------------------------------------------------------------------------------------------
# p-values: the significance report's families where the comparison is in one, else the claim's own


def significance_index(report: Mapping | None) -> dict[tuple, dict]:
    """Comparisons with FT of the significance report, by (encoder, trainset, testset, metric, system, pooling)."""
    return {
        (c["encoder"], c["trainset"], c["testset"], c["metric"], c["system"], c["pooling"]): c
        for c in (report or {}).get("comparisons", [])
    }


def routing_index(report: Mapping | None) -> dict[tuple, dict]:
    """Comparisons with the best single retriever, by (trainset, testset, metric, system)."""
    return {(c["trainset"], c["testset"], c["metric"], c["system"]): c for c in (report or {}).get("comparisons", [])}


def reported_p(comparison: Comparison, metric: str, tests: Mapping, routed: Mapping, claim: Mapping) -> dict | None:
    """The corrected p-value of a comparison that one of the study's significance families holds."""
    if comparison.b == ("finetune", "none"):
        found = tests.get((comparison.encoder, comparison.trainset, comparison.testset, metric, *comparison.a))
        if found:
            return {
                "p_value": found["p_corrected"],
                "family_size": found["family_size"],
                "family": "significance.json: the systems compared with FT on this test set and metric",
            }
    if claim["evidence"] == "routing" and claim["b"]["system"] == "best-single":
        found = routed.get((comparison.trainset, comparison.testset, metric, comparison.a[0]))
        if found and found["baseline"] == comparison.b[0]:
            return {
                "p_value": found["p_corrected"],
                "family_size": found["family_size"],
                "family": "routing_significance.json: the fusions and routers compared with the best single retriever",
            }
    return None


def p_values(
    claim: Mapping,
    comparisons: Sequence[Comparison],
    metrics: Sequence[str],
    tests: Mapping,
    routed: Mapping,
    settings: Mapping,
) -> dict[tuple[int, str], dict]:
    """``{(comparison index, metric): {p_value, family_size, family}}``; comparisons outside the
    study's families are tested here with its test and corrected over the claim's comparisons on
    the same encoder, training set, test set and metric."""
    found, pending = {}, {}
    for index, comparison in enumerate(comparisons):
        for metric in (m for m in metrics if m in comparison.scores):
            reported = reported_p(comparison, metric, tests, routed, claim)
            if reported:
                found[(index, metric)] = reported
            else:
                key = (comparison.encoder, comparison.trainset, comparison.testset, metric)
                pending.setdefault(key, []).append(index)
    test, correction = settings.get("test", "randomization"), settings.get("correction", "bonferroni")
    for (_, _, _, metric), members in pending.items():
        raw = []
        for index in members:
            a, b = comparisons[index].scores[metric]
            common = sorted(set(a) & set(b))
            raw.append(
                paired_test(
                    [a[q] for q in common],
                    [b[q] for q in common],
                    test=test,
                    permutations=settings.get("permutations", 10_000),
                    seed=settings.get("seed", 0),
                )
            )
        compared = f"{len(members)} comparison" + ("" if len(members) == 1 else "s")
        family = f"computed: {test} test, {correction} over this claim's {compared} on this test set and metric"
        for index, p in zip(members, correct(raw, correction)):
            found[(index, metric)] = {"p_value": p, "family_size": len(members), "family": family}
    return found
