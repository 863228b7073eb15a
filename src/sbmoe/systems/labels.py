"""Every label the tables, figures and the paper show, in one place, and the order of their rows.

A variant's own label is its registry entry's (:attr:`sbmoe.systems.registry.Variant.label`); the
labels of what a system adds to it (pooling, learned gate, training overrides), of metrics and of
routing over retrievers are here.
"""

from __future__ import annotations

from sbmoe.systems.names import (
    BM25,
    OVERRIDES,
    format_rate,
    parse_expert,
    system_settings,
)
from sbmoe.systems.registry import POOLINGS, VARIANTS

POOLING_LABELS = {"top1": "TOP-1", "all": "ALL"}
OVERRIDE_LABELS = {"encoder_lr": "encoder lr", "moe_lr": "MoE lr"}
LEARNED_LABEL = "learned gate"  # what the learned combination adds to a label
METRIC_LABELS = {
    "ndcg@10": "nDCG@10",
    "recall@100": "R@100",
    "mrr@10": "MRR@10",
    "map@100": "MAP@100",
    "precision@1": "P@1",
    "ndcg@3": "nDCG@3",
}
_METRIC_NAME_LABELS = {"ndcg": "nDCG", "recall": "R", "precision": "P"}
BM25_LABEL = "BM25"
ROUTED_LABELS = {  # routing over retrievers: the fusions, the routers and the oracle
    "rrf": "Fusion (RRF)",
    "wsum": "Fusion (WSUM)",
    "router-hard": "Router (hard)",
    "router-soft": "Router (soft)",
    "oracle": "Oracle",
}


def metric_label(metric: str) -> str:
    """The label a table or figure shows for a metric: :data:`METRIC_LABELS`' entry, else one made from
    its name (``map@1000`` -> ``MAP@1000``, ``ndcg@5`` -> ``nDCG@5``)."""
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    name, at, cutoff = metric.partition("@")
    return _METRIC_NAME_LABELS.get(name, name.upper()) + at + cutoff


def display_label(system: str, pooling: str = "none", experts: bool = True) -> str:
    """The label a table or figure shows, e.g. ``SB-MoE TOP-1 E=6 (learned gate)``, ``Regular MoE E=4 k=2``,
    ``FT (encoder lr 2e-5)``. A variant read with several poolings names the pooling.

    ``experts=False`` leaves out the ``E=<experts>`` (and ``k=``) part.
    """
    parsed = system_settings(system)
    spec = VARIANTS[parsed["variant"]]
    label = spec.label
    if len(spec.poolings) > 1:
        if pooling not in spec.poolings:
            raise ValueError(
                f"{spec.label} system {system!r} needs pooling {' or '.join(spec.poolings)}, got {pooling!r}"
            )
        label += f" {POOLING_LABELS[pooling]}"
    if experts and "experts" in spec.parts:
        label += f" E={parsed['num_experts']}"
    if experts and "top_k" in spec.parts:
        label += f" k={parsed['top_k']}"
    if parsed["combination"] == "learned":
        label += f" ({LEARNED_LABEL})"
    if parsed["overrides"]:
        label += (
            " (" + ", ".join(f"{OVERRIDE_LABELS[k]} {format_rate(v)}" for k, v in parsed["overrides"].items()) + ")"
        )
    return label


def system_order(system: str, pooling: str = "none") -> tuple:
    """Sort key for rows: Zero-shot, FT, then the authors' combination before ours; within each, the
    variants in their registry order (Adapter, RANDOM-GATE, SB-MoE, Regular MoE); then by number of
    experts (and k), a system before its overridden settings, then TOP-1 before ALL."""
    parsed = system_settings(system)
    combination = 1 if parsed["combination"] == "learned" else 0
    return (
        combination,
        VARIANTS[parsed["variant"]].order,
        parsed["num_experts"] or 0,
        parsed["top_k"] or 0,
        tuple(parsed["overrides"].get(key, 0.0) for key in OVERRIDES),
        POOLINGS.index(pooling) if pooling in POOLINGS else len(POOLINGS),
    )


def expert_label(name: str) -> str:
    """The label tables and figures show for an expert of routing over retrievers (``BM25``, ``FT``,
    ``SB-MoE TOP-1 E=6 ...``)."""
    system, pooling = parse_expert(name)
    return BM25_LABEL if system == BM25 else display_label(system, pooling)


def system_label(name: str) -> str:
    """The label of an expert or of a routed system (:data:`ROUTED_LABELS`)."""
    return ROUTED_LABELS.get(name) or expert_label(name)
