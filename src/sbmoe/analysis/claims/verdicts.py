"""Claim-by-claim verdicts: does each claim of the paper (and of this study) hold in each setting run?

The claims are data (``workflow/claims.yaml``, checked against ``workflow/schemas/claims.schema.yaml``):
each compares system A with system B under a relation (``>``: A beats B; ``~``: A equivalent to B
within δ; ``!=``: A differs from B; ``=``: no gate gradient), in the settings (encoder × training
set × test set) its scope admits. For every setting and metric the evidence is the mean per-query
difference A − B (per-query scores averaged over seeds first), its paired bootstrap interval, the
corrected p-value of the study's paired test (from the significance report when the comparison is
in one of its families, else computed here over the claim's own family), the TOST p-value at ±δ
and the minimal detectable effect; :func:`decide` turns them into one verdict by one rule (the
``rule`` text of claims.yaml). A claim no setting of the configuration can test is "not tested here".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd

from sbmoe.analysis.claims.evidence import (
    Comparison,
    Scores,
    Study,
    is_reproduction,
    metric_evidence,
    model_comparisons,
    p_values,
    paired_differences,
    routing_comparisons,
    routing_index,
    significance_index,
    system_pairs,
)
from sbmoe.analysis.figures.training import read_training_log
from sbmoe.evaluation.effects import minimal_detectable_effect
from sbmoe.io.errors import DataFormatError, read_yaml
from sbmoe.systems.labels import display_label

log = logging.getLogger(__name__)

# analysis/claims/verdicts.py lies four folders below the repository root (src/sbmoe/analysis/claims).
SCHEMA = Path(__file__).resolve().parents[4] / "workflow" / "schemas" / "claims.schema.yaml"
VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive")
NOT_TESTED = "not tested here"
# The verdict under which a claim holds, by relation.
HOLDS = {">": "supported", "!=": "supported", "~": "equivalent", "=": "supported"}


# ---------------------------------------------------------------------------------------------
# Claims


def load_claims(path: str | Path, schema: str | Path = SCHEMA) -> dict:
    """The claims file, validated; an error names the file, the claim (by id) and the key."""
    claims = read_yaml(path, "the claims the study tests, in YAML")
    validator = jsonschema.Draft202012Validator(read_yaml(schema, "a JSON schema in YAML"))
    errors = sorted(validator.iter_errors(claims), key=lambda error: list(map(str, error.absolute_path)))
    if errors:
        raise DataFormatError(path, None, _schema_problem(claims, errors[0]))
    ids = [claim["id"] for claim in claims["claims"]]
    repeated = sorted({name for name in ids if ids.count(name) > 1})
    if repeated:
        raise DataFormatError(path, None, f"claim ids must be unique; repeated: {repeated}")
    for claim in claims["claims"]:
        evidence = claim.setdefault("evidence", "per-query")
        if (claim["relation"] == "=") != (evidence == "gate-gradient"):
            raise DataFormatError(
                path,
                None,
                f"claim {claim['id']!r}, key 'relation': '=' goes with evidence "
                f"gate-gradient and only with it, got {claim['relation']!r} and {evidence}",
            )
        claim.setdefault("delta", claims["defaults"]["delta"])
        claim.setdefault("original", claims["paper"])
    return claims


def _schema_problem(claims, error: jsonschema.ValidationError) -> str:
    where = list(error.absolute_path)
    if len(where) >= 2 and where[0] == "claims" and isinstance(where[1], int):
        claim = claims["claims"][where[1]]
        name = claim.get("id", f"#{where[1] + 1}") if isinstance(claim, dict) else f"#{where[1] + 1}"
        key = ".".join(map(str, where[2:])) or "(the claim itself)"
        return f"claim {name!r}, key {key!r}: {error.message}"
    return f"key {'.'.join(map(str, where)) or '(top level)'!r}: {error.message}"


# ---------------------------------------------------------------------------------------------
# The rule


def decide(relation: str, difference: float, p_value: float, tost_p: float, alpha: float) -> str:
    """The verdict of one setting and metric (the ``rule`` of claims.yaml).

    1. ``equivalent`` when TOST shows the difference within ±δ (``tost_p < alpha``);
    2. else, when the corrected ``p_value < alpha``: ``supported`` if the difference has the
       claimed sign (relation ``>``) or the relation is ``!=``, ``contradicted`` otherwise;
    3. else ``inconclusive``.
    """
    if tost_p < alpha:
        return "equivalent"
    if p_value < alpha:
        if relation == "!=" or (relation == ">" and difference > 0):
            return "supported"
        return "contradicted"
    return "inconclusive"


def inconclusive_reason(width: float, mde: float, delta: float) -> str:
    """Why an inconclusive setting could not decide: too few queries, or a difference too close to δ."""
    if mde > delta and width > delta:
        return (
            f"too few queries: the interval is {width:.3f} wide and the minimal detectable effect {mde:.3f} "
            f"exceeds delta {delta:g}"
        )
    return (
        f"neither a difference nor equivalence within delta {delta:g} shown "
        f"(interval width {width:.3f}, minimal detectable effect {mde:.3f})"
    )


def holds(relation: str, verdict: str) -> bool:
    return verdict == HOLDS[relation]


# ---------------------------------------------------------------------------------------------
# Gate gradients (the training logs)


def gate_gradient_settings(
    claim: Mapping, study: Study, logs: Sequence[tuple[Mapping, str | Path]], classes: Mapping[str, Sequence[str]]
) -> list[dict]:
    """One setting per encoder and training set: the largest gate gradient norm logged by A's
    systems (every seed and epoch) against the tolerance, with B's mean as the control."""
    a_systems = {a[0] for group in system_pairs(claim) for a, _, _ in group}
    b_systems = {b[0] for group in system_pairs(claim) for _, b, _ in group}
    encoders = set(study.encoders_in(claim["scope"], classes))
    trainsets = {train for train, _, _ in study.pairs(claim["scope"])}
    norms: dict[tuple, dict[str, list]] = {}
    for keys, path in logs:
        role = "a" if keys["system"] in a_systems else "b" if keys["system"] in b_systems else None
        if role is None or keys["encoder"] not in encoders or keys["trainset"] not in trainsets:
            continue
        values = pd.to_numeric(read_training_log(path)["gate_grad_norm"], errors="coerce").dropna()
        entry = norms.setdefault((keys["encoder"], keys["trainset"]), {"a": [], "b": [], "a_systems": set(), "logs": 0})
        entry[role].extend(values.tolist())
        entry["logs"] += role == "a"
        if role == "a":
            entry["a_systems"].add(keys["system"])
    settings = []
    for (encoder, trainset), entry in norms.items():
        if not entry["a"]:
            continue
        largest = float(np.max(entry["a"]))
        verdict = "supported" if largest <= claim["tolerance"] else "contradicted"
        systems = sorted(entry["a_systems"])
        settings.append(
            {
                "encoder": encoder,
                "trainset": trainset,
                "testset": None,
                "split": "training",
                "a": systems,
                "b": sorted(b_systems),
                "a_label": ", ".join(display_label(s, "top1") for s in systems),
                "b_label": "",
                "reproduction": is_reproduction(
                    claim["original"], study.encoders[encoder], trainset, None, "in-domain"
                ),
                "gate_gradient": {
                    "largest": largest,
                    "tolerance": claim["tolerance"],
                    "epochs": len(entry["a"]),
                    "logs": entry["logs"],
                    "control_mean": float(np.mean(entry["b"])) if entry["b"] else None,
                },
                "verdict": verdict,
                "reason": f"largest gate gradient norm {largest:.3g} against tolerance {claim['tolerance']:g}",
            }
        )
    return settings


# ---------------------------------------------------------------------------------------------
# Verdicts


def setting_record(claim: Mapping, comparison: Comparison, p_found: Mapping, study: Study, defaults: Mapping) -> dict:
    """The evidence and verdict of one setting, per metric; the first metric's verdict is the setting's."""
    per_metric = {}
    for metric, (a, b) in comparison.scores.items():
        evidence = metric_evidence(a, b, claim["delta"], defaults)
        tested = p_found[metric]
        _, differences = paired_differences(a, b)
        mde = minimal_detectable_effect(differences, study.alpha / tested["family_size"], defaults["power"])
        verdict = decide(claim["relation"], evidence["difference"], tested["p_value"], evidence["tost_p"], study.alpha)
        width = evidence["ci_high"] - evidence["ci_low"]
        per_metric[metric] = {
            **evidence,
            **tested,
            "mde": mde,
            "verdict": verdict,
            "reason": inconclusive_reason(width, mde, claim["delta"]) if verdict == "inconclusive" else "",
        }
    primary = per_metric[next(iter(comparison.scores))]
    path = study.encoders.get(comparison.encoder, "")
    return {
        "encoder": comparison.encoder,
        "trainset": comparison.trainset,
        "testset": comparison.testset,
        "split": comparison.split,
        "a": list(comparison.a),
        "b": list(comparison.b),
        "experts": comparison.experts,
        "a_label": comparison.a_label,
        "b_label": comparison.b_label,
        "reproduction": is_reproduction(
            claim["original"], path, comparison.trainset, comparison.testset, comparison.split
        ),
        "metrics": per_metric,
        "verdict": primary["verdict"],
        "reason": primary["reason"],
    }


def claim_record(claim: Mapping, settings: Sequence[dict]) -> dict:
    """A claim with its settings and a summary: how many settings give each verdict, and whether it
    holds in all, some or none of them ("not tested here" when no setting was run)."""
    counts = {verdict: sum(s["verdict"] == verdict for s in settings) for verdict in VERDICTS}
    holding = sum(holds(claim["relation"], s["verdict"]) for s in settings)
    if not settings:
        summary = NOT_TESTED
    else:
        summary = "holds" if holding == len(settings) else "holds in some settings" if holding else "does not hold"
        if not holding and counts["inconclusive"] == len(settings):
            summary = "inconclusive"
    keys = ("id", "source", "statement", "short", "relation", "evidence", "delta", "tested_by")
    return {
        **{key: claim[key] for key in keys},
        "tolerance": claim.get("tolerance"),
        "comparison": f"{_describe(claim['a'])} vs {_describe(claim['b'])}",
        "settings": list(settings),
        "counts": counts,
        "holds_in": holding,
        "summary": summary,
        "reproductions": sum(bool(s["reproduction"]) for s in settings),
    }


def _describe(side: Mapping) -> str:
    names = side["system"] if isinstance(side["system"], list) else [side["system"]]
    pooling = side.get("pooling", "none")
    return " / ".join(names) + ("" if pooling == "none" else f" ({pooling})")


def study_verdicts(
    claims: Mapping,
    study: Study,
    scores: Scores,
    significance: Mapping | None = None,
    routing: Mapping | None = None,
    routing_significance: Mapping | None = None,
    routing_experts: Sequence[str] = (),
    logs: Sequence[tuple[Mapping, str | Path]] = (),
    progress: Callable[[str], None] = log.info,
) -> dict:
    """Every claim of ``claims`` (:func:`load_claims`) with its settings' evidence and verdicts."""
    defaults, metrics = claims["defaults"], list(claims["defaults"]["metrics"])
    tests, routed = significance_index(significance), routing_index(routing_significance)
    classified = {*claims["encoders"]["light"], *claims["encoders"]["heavy"]}
    for key, path in study.encoders.items():
        if path not in classified:
            log.warning(
                "encoder %s (%s) is neither light nor heavy in the claims file: only claims over any encoder test it",
                key,
                path,
            )
    records = []
    for claim in claims["claims"]:
        progress(f"claim {claim['id']}")
        if claim["evidence"] == "gate-gradient":
            settings = gate_gradient_settings(claim, study, logs, claims["encoders"])
        else:
            if claim["evidence"] == "routing":
                comparisons = routing_comparisons(claim, study, routing or {}, routing_experts, metrics)
            else:
                comparisons = model_comparisons(claim, study, scores, metrics, claims["encoders"])
            found = p_values(claim, comparisons, metrics, tests, routed, study.significance)
            settings = [
                setting_record(claim, c, {m: found[(i, m)] for m in c.scores}, study, defaults)
                for i, c in enumerate(comparisons)
            ]
        records.append(claim_record(claim, settings))
    return {
        "rule": claims["rule"],
        "defaults": dict(defaults),
        "alpha": study.alpha,
        "significance": dict(study.significance),
        "metrics": metrics,
        "claims": records,
    }
