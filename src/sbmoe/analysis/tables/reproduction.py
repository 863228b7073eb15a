"""The reproduction table: our FT and SB-MoE expert-count results beside the authors' published numbers."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from sbmoe.analysis.latex import Table, format_difference, format_score, latex_escape, row, spanning_header, tabular
from sbmoe.analysis.tables.cells import label_of, metric_header, summaries
from sbmoe.io.errors import DataFormatError, read_yaml

# What the table says when this configuration ran none of the published settings: config.yaml is the
# study that trains the authors' encoders on their datasets (on a GPU cluster).
NOT_RUN = (
    r"This configuration runs none of the paper's settings; \texttt{config.yaml} on a GPU cluster "
    r"runs them. \\"
)


def load_reference(path: str | Path) -> dict:
    """Read the authors' published numbers (``workflow/reference_numbers.yaml``).

    Layout: ``configurations`` (``FT`` or a number of experts, in column order) and ``metrics``:
    ``{metric: {dataset: [value per configuration]}}``.
    """
    reference = read_yaml(path, "the published numbers in YAML (configurations, metrics)")
    if not isinstance(reference, dict) or not {"configurations", "metrics"} <= set(reference):
        raise DataFormatError(path, None, "expected a mapping with 'configurations' and 'metrics'")
    configurations = reference["configurations"]
    for metric, datasets in reference["metrics"].items():
        for dataset, values in datasets.items():
            if len(values) != len(configurations):
                raise DataFormatError(
                    path, None, f"{metric} {dataset} has {len(values)} values for {len(configurations)} configurations"
                )
    return reference


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _configuration_label(configuration) -> str:
    return "FT" if configuration == "FT" else f"E={configuration}"


def reproduction_table(
    results: pd.DataFrame,
    reference: Mapping,
    datasets: Sequence[tuple[str, str]],
    metrics: Sequence[str],
    encoder: str | None = None,
    combination: str = "paper",
    pooling: str = "top1",
    dataset_labels: Mapping[str, str] | None = None,
    digits: int = 3,
) -> Table:
    """Our FT and SB-MoE expert-count results beside the authors' published numbers.

    A reference dataset is matched to one of our ``(trainset, testset)`` pairs when its name equals
    the test set id or its display label, ignoring case and punctuation (``MSMARCO`` = ``MS MARCO``).
    SB-MoE rows use ``sbmoe-<combination>-e<E>`` with the given inference ``pooling``. ``encoder``
    may be left out when the results hold one encoder. Columns: metric (of ``metrics``) x
    configuration (FT and the numbers of experts, published or ours); rows: per dataset, the paper's
    value, ours (mean over seeds) and the difference (ours - paper); ``--`` where either is missing,
    as for a metric the authors did not publish. The LaTeX shows only the published datasets this
    configuration ran (the CSV keeps every published value); when it ran none, one line
    (:data:`NOT_RUN`) names the configuration that does.
    """
    metrics = list(metrics)
    encoder = _single_encoder(results, encoder)
    ours = results[results["encoder"] == encoder]
    is_moe = (ours["variant"] == "sbmoe") & (ours["combination"] == combination) & (ours["pooling"] == pooling)
    family = ours[(ours["system"] == "finetune") | is_moe]
    configurations = list(reference["configurations"])
    configurations += sorted(set(family["num_experts"].dropna().astype(int)) - {c for c in configurations if c != "FT"})
    cells = summaries(family, metrics)
    by_name = {}
    for trainset, testset in datasets:
        for name in (testset, label_of(testset, dataset_labels)):
            by_name.setdefault(_normalised(name), (trainset, testset))
    names = list(dict.fromkeys(name for metric in metrics for name in reference["metrics"].get(metric, {})))

    records, blocks = [], []
    for name in names:
        pair = by_name.get(_normalised(name))
        setting = (encoder, combination, pooling)
        block, block_records = _dataset_rows(name, pair, setting, metrics, configurations, reference, cells, digits)
        if any(not math.isnan(record["ours"]) for record in block_records):
            blocks.append(block)  # a published dataset this configuration did not run is left out of the LaTeX
        records += block_records
    if not blocks:
        return Table(_not_run(), pd.DataFrame(records))
    width = len(configurations)
    header = [
        *spanning_header(["", ""], [(metric_header(m), width) for m in metrics]),
        row(["Dataset", ""] + [_configuration_label(c) for _ in metrics for c in configurations]),
    ]
    latex = tabular("ll" + "c" * (width * len(metrics)), header, blocks)
    return Table(latex, pd.DataFrame(records))


def _not_run() -> str:
    """The table's one line when the configuration runs none of the published settings."""
    return "\n".join([r"\begin{tabular}{l}", r"\toprule", NOT_RUN, r"\bottomrule", r"\end{tabular}", ""])


def _dataset_rows(
    name, pair, setting, metrics, configurations, reference, cells, digits
) -> tuple[list[str], list[dict]]:
    """One published dataset's rows (the paper's values, ours, the differences) and their records;
    ``pair`` is our matching (trainset, testset) or None, ``setting`` (encoder, combination, pooling)."""
    encoder, combination, pooling = setting
    lines, records = {"paper": [], "ours": [], "difference": []}, []
    for metric in metrics:
        values = dict(zip(reference["configurations"], reference["metrics"].get(metric, {}).get(name, [])))
        for configuration in configurations:
            system = "finetune" if configuration == "FT" else f"sbmoe-{combination}-e{configuration}"
            key = (encoder, system, "none" if configuration == "FT" else pooling, *pair) if pair else None
            record = _record(name, pair, encoder, configuration, metric, values, cells.get(key) if key else None)
            records.append(record)
            lines["paper"].append(format_score(record["paper"], digits))
            lines["ours"].append(format_score(record["ours"], digits))
            lines["difference"].append(format_difference(record["difference"], digits))
    block = [
        row([latex_escape(name), "Paper", *lines["paper"]]),
        row(["", "Ours", *lines["ours"]]),
        row(["", r"$\Delta$", *lines["difference"]]),
    ]
    return block, records


def _single_encoder(results: pd.DataFrame, encoder: str | None) -> str:
    if encoder is not None:
        return encoder
    encoders = sorted(set(results["encoder"]))
    if len(encoders) != 1:
        raise ValueError(f"results hold encoders {encoders}; say which one to compare")
    return encoders[0]


def _record(name, pair, encoder, configuration, metric, published: Mapping, cell: Mapping | None) -> dict:
    """One CSV record: the published value of a configuration and metric, ours and their difference."""
    paper_value = float(published[configuration]) if configuration in published else math.nan
    ours = cell[metric] if cell else math.nan
    return {
        "dataset": name,
        "trainset": pair[0] if pair else None,
        "testset": pair[1] if pair else None,
        "encoder": encoder,
        "configuration": _configuration_label(configuration),
        "metric": metric,
        "paper": paper_value,
        "ours": ours,
        "ours_std": cell[f"{metric}_std"] if cell else math.nan,
        "seeds": cell["seeds"] if cell else 0,
        "difference": ours - paper_value,
    }
