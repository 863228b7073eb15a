"""How closely our improvements over FT reproduce the published ones (Breuer et al., SIGIR 2020).

For each published setting (dataset × number of experts × metric of ``workflow/reference_numbers.yaml``)
with a counterpart of ours: the absolute difference of each number (ours − paper, FT and SB-MoE),
the Effect Ratio ER = (ours_E − ours_FT) / (paper_E − paper_FT), 1 when our improvement equals the
published one, and ΔRI = RI_paper − RI_ours with RI = (E − FT) / FT, 0 when the relative improvements
agree. ER and ΔRI are computed by the field's library, ``repro_eval``, on mean scores (one
pseudo-topic holding the mean); a published improvement of zero leaves ER undefined (NaN).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import pandas as pd
from repro_eval.measure.overall_effects import DRI, ER

MEAN_TOPIC = "mean"


def _as_run(value: float) -> dict:
    return {MEAN_TOPIC: {"score": float(value)}}


def effect_ratio(paper_ft: float, paper_moe: float, ours_ft: float, ours_moe: float) -> float:
    """Breuer et al.'s Effect Ratio of our improvement over FT to the published one."""
    if paper_moe == paper_ft or any(map(math.isnan, (paper_ft, paper_moe, ours_ft, ours_moe))):
        return math.nan
    return float(ER(_as_run(paper_moe), _as_run(paper_ft), _as_run(ours_moe), _as_run(ours_ft))["score"])


def delta_relative_improvement(paper_ft: float, paper_moe: float, ours_ft: float, ours_moe: float) -> float:
    """Breuer et al.'s ΔRI: the published relative improvement over FT minus ours."""
    if paper_ft == 0 or ours_ft == 0 or any(map(math.isnan, (paper_ft, paper_moe, ours_ft, ours_moe))):
        return math.nan
    return float(DRI(_as_run(paper_moe), _as_run(paper_ft), _as_run(ours_moe), _as_run(ours_ft))["score"])


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _mean_over_seeds(
    results: pd.DataFrame, encoder: str, pair: tuple[str, str], system: str, pooling: str, metric: str
) -> float:
    rows = results[
        (results["encoder"] == encoder)
        & (results["trainset"] == pair[0])
        & (results["testset"] == pair[1])
        & (results["system"] == system)
        & (results["pooling"] == pooling)
    ]
    values = rows[metric].dropna() if metric in rows else pd.Series(dtype=float)
    return float(values.mean()) if len(values) else math.nan


def reproduction_measures(
    results: pd.DataFrame,
    reference: Mapping,
    datasets: Sequence[tuple[str, str]],
    encoder: str,
    combination: str = "paper",
    pooling: str = "top1",
    dataset_labels: Mapping[str, str] | None = None,
) -> list[dict]:
    """ER, ΔRI and absolute differences for every published (dataset, E, metric) we ran.

    ``reference`` is :func:`sbmoe.analysis.tables.reproduction.load_reference`'s; a published dataset matches
    one of our ``(trainset, testset)`` ``datasets`` when its name equals the test set id or label,
    ignoring case and punctuation. Ours are means over seeds of ``encoder``'s FT and
    ``sbmoe-<combination>-e<E>`` (with ``pooling``).
    """
    if results.empty:
        return []
    by_name = {}
    for trainset, testset in datasets:
        for name in (testset, (dataset_labels or {}).get(testset, testset)):
            by_name.setdefault(_normalised(name), (trainset, testset))
    records = []
    configurations = list(reference["configurations"])
    for metric, per_dataset in reference["metrics"].items():
        for name, values in per_dataset.items():
            pair = by_name.get(_normalised(name))
            if pair is None:
                continue
            published = dict(zip(configurations, map(float, values)))
            ours_ft = _mean_over_seeds(results, encoder, pair, "finetune", "none", metric)
            for experts in (c for c in configurations if c != "FT"):
                ours_moe = _mean_over_seeds(results, encoder, pair, f"sbmoe-{combination}-e{experts}", pooling, metric)
                if math.isnan(ours_ft) or math.isnan(ours_moe):
                    continue
                paper_ft, paper_moe = published["FT"], published[experts]
                records.append(
                    {
                        "dataset": name,
                        "trainset": pair[0],
                        "testset": pair[1],
                        "encoder": encoder,
                        "experts": int(experts),
                        "metric": metric,
                        "paper_ft": paper_ft,
                        "paper_moe": paper_moe,
                        "ours_ft": ours_ft,
                        "ours_moe": ours_moe,
                        "difference_ft": ours_ft - paper_ft,
                        "difference_moe": ours_moe - paper_moe,
                        "effect_ratio": effect_ratio(paper_ft, paper_moe, ours_ft, ours_moe),
                        "delta_ri": delta_relative_improvement(paper_ft, paper_moe, ours_ft, ours_moe),
                    }
                )
    return records
