"""The values of the paper's macros about routing over whole retrievers: the experts, how often a router
or a fusion beats the best single retriever, the first test set's numbers, and BM25 against BEIR's."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from sbmoe.analysis.latex import MISSING, format_text_score, join_words, latex_escape

NDCG = "ndcg@10"  # the metric the routing sentences state
_HEAD_SYSTEMS = (
    ("router-hard", "RoutingHeadHardNdcg"),
    ("router-soft", "RoutingHeadSoftNdcg"),
    ("rrf", "RoutingHeadRrfNdcg"),
    ("wsum", "RoutingHeadWsumNdcg"),
    ("oracle", "RoutingHeadOracleNdcg"),
)


def routing_macros(table: pd.DataFrame, figure: Mapping) -> dict:
    """Macro values from the routing table's CSV and the routing figure's description."""
    if table.empty:
        return {}
    ndcg = table[table["metric"] == NDCG]
    experts = ndcg.loc[ndcg["kind"] == "expert", ["system", "label"]].drop_duplicates("system")
    pairs = list(dict.fromkeys(zip(ndcg["trainset"], ndcg["testset"])))
    values = {
        "RoutingExperts": str(len(experts)),
        "RoutingExpertList": latex_escape(join_words(list(experts["label"]))),
        "RoutingSets": str(len(pairs)),
    }
    values.update(_wins(ndcg, pairs))
    tested = table[table["kind"].isin(["router", "fusion"]) & table["p_value"].notna()]
    values.update(
        RoutingComparisons=str(len(tested)), RoutingSignificant=str(int(tested["significant"].astype(bool).sum()))
    )
    values.update(_head_set(ndcg, pairs[0], experts, figure))
    values.update(_bm25_against_beir(ndcg))
    return values


def _wins(ndcg: pd.DataFrame, pairs: list[tuple[str, str]]) -> dict:
    """On how many test sets a router, and a fusion, beats the best single retriever."""
    router_wins = fusion_wins = 0
    for pair in pairs:
        rows = ndcg[(ndcg["trainset"] == pair[0]) & (ndcg["testset"] == pair[1])]
        best = rows.loc[rows["is_baseline"].astype(bool), "mean"].max()
        router_wins += int(rows.loc[rows["kind"] == "router", "mean"].max() > best)
        fusion_wins += int(rows.loc[rows["kind"] == "fusion", "mean"].max() > best)
    return {"RoutingRouterWins": str(router_wins), "RoutingFusionWins": str(fusion_wins)}


def _head_set(ndcg: pd.DataFrame, pair: tuple[str, str], experts: pd.DataFrame, figure: Mapping) -> dict:
    """The numbers of the first test set the text walks through, and the expert its router picks most."""
    head = ndcg[(ndcg["trainset"] == pair[0]) & (ndcg["testset"] == pair[1])]
    by_system = dict(zip(head["system"], head["mean"]))
    baseline = head[head["is_baseline"].astype(bool)].iloc[0]
    routers = head.loc[head["kind"] == "router", "mean"]
    values = {
        "RoutingHeadDataset": latex_escape(head["dataset"].iloc[0]),
        "RoutingHeadBestSingle": latex_escape(baseline["label"]),
        "RoutingHeadBestSingleNdcg": format_text_score(baseline["mean"]),
        "RoutingHeadGain": format_text_score(float(routers.max() - baseline["mean"])) if len(routers) else MISSING,
    }
    for system, name in _HEAD_SYSTEMS:
        if system in by_system:
            values[name] = format_text_score(by_system[system])
    for share in (figure or {}).get("pairs", []):
        if (share["trainset"], share["testset"]) == pair:
            top = int(np.argmax(share["router"]))
            label = experts.set_index("system")["label"].get(share["experts"][top], share["experts"][top])
            values.update(
                RoutingHeadTopExpert=latex_escape(label), RoutingHeadTopShare=f"{100 * share['router'][top]:.0f}"
            )
    return values


def _bm25_against_beir(ndcg: pd.DataFrame) -> dict:
    """Our BM25 against BEIR's published BM25 on the test sets both have."""
    ours = ndcg[ndcg["system"] == "bm25"].set_index("testset")["mean"]
    published = ndcg[ndcg["kind"] == "published"].drop_duplicates("testset")
    compared = [
        (row["dataset"], ours[row["testset"]], row["mean"]) for _, row in published.iterrows() if row["testset"] in ours
    ]
    if not compared:
        return {}
    text = join_words(
        [
            f"{format_text_score(mine)} on {dataset} (BEIR: {format_text_score(theirs)})"
            for dataset, mine, theirs in compared
        ]
    )
    return {
        "RoutingBMComparison": latex_escape(text),
        "RoutingBMMaxDiff": format_text_score(max(abs(mine - theirs) for _, mine, theirs in compared)),
    }
