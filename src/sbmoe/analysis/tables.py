"""The paper's tables as booktabs LaTeX tabulars, with the same numbers as tidy CSV.

Each builder returns a :class:`Table`: ``latex`` is a bare ``tabular`` (no float wrapper, so the
paper ``\\input``s it inside its own ``table`` environment with its own caption) and ``frame``
holds the numbers behind it, one row per cell, unrounded.

- :func:`in_domain_table` (Table I): encoder x system rows, dataset x metric columns.
- :func:`zero_shot_table` (Table II): datasets as rows, encoder x system columns, an Average row.
- :func:`experts_table` (Table III): experts employed vs experts activated, and the share of
  queries and documents routed to each expert.
- :func:`reproduction_table`: our FT and expert-count results beside the authors' published ones.

Scores are means over seeds printed with three decimals and no leading zero (``.244``); a small
``± std`` follows when there are several seeds. Bold marks the best value of a column within one
encoder (Table I) or of a row within one encoder (Table II), compared at the printed precision. A
dagger marks a system whose difference from the baseline is significant after correction, as
recorded in the significance report (:func:`sbmoe.evaluation.significance.significance_report`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sbmoe.io.atomic import write_text
from sbmoe.io.errors import DataFormatError, read_yaml
from sbmoe.systems.names import variant_of
from sbmoe.evaluation.results import aggregate_seeds, place_untrained
from sbmoe.selection.comparison import best_single
from sbmoe.systems.labels import METRIC_LABELS, display_label, system_label, system_order

MISSING = "--"
_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


@dataclass
class Table:
    """A LaTeX tabular and the tidy DataFrame of the numbers it shows."""

    latex: str
    frame: pd.DataFrame

    def write(self, tex_path: str | Path, csv_path: str | Path) -> None:
        """Write the tabular and the CSV, each atomically."""
        write_text(tex_path, self.latex)
        write_text(csv_path, self.frame.to_csv(index=False))


def latex_escape(text: object) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_LATEX_SPECIALS.get(char, char) for char in str(text))


def format_score(value: float, digits: int = 3) -> str:
    """A score in [0, 1] as the tables print it: ``.244``; ``--`` when missing."""
    if value is None or math.isnan(value):
        return MISSING
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("0.") else text


def format_difference(value: float, digits: int = 3) -> str:
    """A signed difference as LaTeX text: ``+.007``, ``$-$.003``; ``--`` when missing."""
    if value is None or math.isnan(value):
        return MISSING
    magnitude = format_score(abs(value), digits)
    sign = "+" if round(value, digits) >= 0 else "$-$"
    return sign + magnitude


def label_of(name: str, labels: Mapping[str, str] | None) -> str:
    """The display label of a dataset or encoder id (the id itself when none is given)."""
    return (labels or {}).get(name, name)


def significant_cells(report: Mapping | None) -> dict[tuple, dict]:
    """Index a significance report by (encoder, trainset, testset, metric, system, pooling)."""
    if not report:
        return {}
    return {
        (c["encoder"], c["trainset"], c["testset"], c["metric"], c["system"], c["pooling"]): c
        for c in report["comparisons"]
    }


def _score_cell(mean: float, std: float, seeds: int, bold: bool, dagger: bool, digits: int) -> str:
    if mean is None or math.isnan(mean):
        return MISSING
    text = format_score(mean, digits)
    if bold:
        text = rf"\textbf{{{text}}}"
    if dagger:
        text += r"$^{\dagger}$"
    if seeds > 1:
        text += rf"\,{{\scriptsize$\pm${format_score(std, digits)}}}"
    return text


def _best_flags(values: Sequence[float], digits: int) -> list[bool]:
    """Which values equal the maximum at the printed precision."""
    rounded = [round(v, digits) if not math.isnan(v) else -math.inf for v in values]
    best = max(rounded, default=-math.inf)
    return [r == best and best > -math.inf for r in rounded]


def _tabular(columns: str, header: Sequence[str], blocks: Sequence[Sequence[str]]) -> str:
    lines = [rf"\begin{{tabular}}{{{columns}}}", r"\toprule", *header, r"\midrule"]
    for number, block in enumerate(blocks):
        if number:
            lines.append(r"\midrule")
        lines.extend(block)
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _row(cells: Iterable[str]) -> str:
    return " & ".join(cells) + r" \\"


def _stacked(label: str) -> str:
    """A long system label broken into lines for a column header (``E=...`` and ``(...)`` apart)."""
    parts = [latex_escape(part) for part in re.split(r" (?=E=|\()", label)]
    if len(parts) == 1:
        return parts[0]
    return r"\begin{tabular}[b]{@{}c@{}}" + r"\\".join(parts) + r"\end{tabular}"


def _ordered_systems(frame: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = dict.fromkeys(zip(frame["system"], frame["pooling"]))
    return sorted(pairs, key=lambda pair: system_order(*pair))


def _select_systems(results: pd.DataFrame, systems: Sequence[str] | None) -> pd.DataFrame:
    return results if systems is None else results[results["system"].isin(list(systems))]


def _summaries(results: pd.DataFrame, metrics: Sequence[str]) -> dict[tuple, dict]:
    """Seed-aggregated cells keyed by (encoder, system, pooling, trainset, testset)."""
    summary = aggregate_seeds(results, metrics)
    return {
        (row["encoder"], row["system"], row["pooling"], row["trainset"], row["testset"]): row
        for row in summary.to_dict("records")
    }


def _cell_record(cell: Mapping, metric: str, best: bool, test: Mapping, dataset_labels) -> dict:
    return {
        "encoder": cell["encoder"],
        "system": cell["system"],
        "pooling": cell["pooling"],
        "label": cell["label"],
        "trainset": cell["trainset"],
        "testset": cell["testset"],
        "dataset": label_of(cell["testset"], dataset_labels),
        "metric": metric,
        "mean": cell[metric],
        "std": cell[f"{metric}_std"],
        "seeds": cell["seeds"],
        "best": best,
        "p_value": test.get("p_value"),
        "p_corrected": test.get("p_corrected"),
        "significant": bool(test.get("significant")),
    }


def in_domain_table(
    results: pd.DataFrame,
    datasets: Sequence[tuple[str, str]],
    significance: Mapping | None = None,
    metrics: Sequence[str] = ("ndcg@10", "recall@100"),
    systems: Sequence[str] | None = None,
    dataset_labels: Mapping[str, str] | None = None,
    encoder_labels: Mapping[str, str] | None = None,
    digits: int = 3,
) -> Table:
    """Table I: rows encoder x system, columns dataset x metric (mean over seeds).

    ``datasets`` lists the ``(trainset, testset)`` pairs shown, in column order; ``systems``
    restricts the system ids shown (all present by default); the untrained encoder (``zeroshot``)
    is shown under every training set. Bold: best of a column within an encoder. Dagger:
    significant difference from the baseline of the significance report.
    """
    pairs = [tuple(pair) for pair in datasets]
    chosen = place_untrained(_select_systems(results, systems), list(dict.fromkeys(t for t, _ in pairs)))
    chosen = chosen[[pair in pairs for pair in zip(chosen["trainset"], chosen["testset"])]]
    cells = _summaries(chosen, metrics)
    lookup = significant_cells(significance)
    records, blocks = [], []
    for encoder in dict.fromkeys(chosen["encoder"]):
        rows = _ordered_systems(chosen[chosen["encoder"] == encoder])
        texts = [[] for _ in rows]
        for trainset, testset in pairs:
            for metric in metrics:
                found = [cells.get((encoder, system, pooling, trainset, testset)) for system, pooling in rows]
                means = [cell[metric] if cell else math.nan for cell in found]
                for text, cell, best in zip(texts, found, _best_flags(means, digits)):
                    if cell is None:
                        text.append(MISSING)
                        continue
                    key = (encoder, trainset, testset, metric, cell["system"], cell["pooling"])
                    record = _cell_record(cell, metric, best, lookup.get(key, {}), dataset_labels)
                    records.append(record)
                    text.append(
                        _score_cell(record["mean"], record["std"], record["seeds"], best, record["significant"], digits)
                    )
        encoder_text = latex_escape(label_of(encoder, encoder_labels))
        blocks.append(
            [
                _row([encoder_text if index == 0 else "", latex_escape(display_label(*row)), *text])
                for index, (row, text) in enumerate(zip(rows, texts))
            ]
        )
    width = len(metrics)
    header = [
        _row(
            ["", ""]
            + [rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(label_of(t, dataset_labels))}}}" for _, t in pairs]
        ),
        "".join(rf"\cmidrule(lr){{{3 + i * width}-{2 + (i + 1) * width}}}" for i in range(len(pairs))),
        _row(["Encoder", "System"] + [METRIC_LABELS.get(m, latex_escape(m)) for _ in pairs for m in metrics]),
    ]
    latex = _tabular("ll" + "c" * (width * len(pairs)), header, blocks)
    return Table(latex, pd.DataFrame(records))


def zero_shot_table(
    results: pd.DataFrame,
    trainset: str,
    testsets: Sequence[str],
    significance: Mapping | None = None,
    metrics: Sequence[str] = ("ndcg@10",),
    systems: Sequence[str] | None = None,
    dataset_labels: Mapping[str, str] | None = None,
    encoder_labels: Mapping[str, str] | None = None,
    digits: int = 3,
) -> Table:
    """Table II: datasets as rows (models trained on ``trainset``), encoder x system (x metric)
    columns, and an Average row (the mean over datasets, ``--`` for a column missing a dataset).

    Bold: best of a row within an encoder and metric. Dagger as in :func:`in_domain_table`.
    """
    chosen = place_untrained(_select_systems(results, systems), [trainset])
    chosen = chosen[(chosen["trainset"] == trainset) & chosen["testset"].isin(list(testsets))]
    cells = _summaries(chosen, metrics)
    lookup = significant_cells(significance)
    columns = [
        (encoder, system, pooling)
        for encoder in dict.fromkeys(chosen["encoder"])
        for system, pooling in _ordered_systems(chosen[chosen["encoder"] == encoder])
    ]
    groups = {}  # (encoder, metric) -> column positions compared for bold
    for position, ((encoder, _, _), metric) in enumerate((c, m) for c in columns for m in metrics):
        groups.setdefault((encoder, metric), []).append(position)

    def bold_flags(means: list[float]) -> list[bool]:
        flags = [False] * len(means)
        for positions in groups.values():
            for position, best in zip(positions, _best_flags([means[p] for p in positions], digits)):
                flags[position] = best
        return flags

    records, body, averages = [], [], {}
    for testset in testsets:
        found = [cells.get((e, s, p, trainset, testset)) for e, s, p in columns for _ in metrics]
        cycle = list(metrics) * len(columns)
        means = [cell[metric] if cell else math.nan for cell, metric in zip(found, cycle)]
        texts = []
        for cell, metric, best in zip(found, cycle, bold_flags(means)):
            if cell is None:
                texts.append(MISSING)
                continue
            key = (cell["encoder"], trainset, testset, metric, cell["system"], cell["pooling"])
            record = _cell_record(cell, metric, best, lookup.get(key, {}), dataset_labels)
            records.append(record)
            texts.append(
                _score_cell(record["mean"], record["std"], record["seeds"], best, record["significant"], digits)
            )
        body.append(_row([latex_escape(label_of(testset, dataset_labels)), *texts]))
        for position, mean in enumerate(means):
            averages.setdefault(position, []).append(mean)
    average_means = [float(np.mean(averages[p])) if averages else math.nan for p in range(len(columns) * len(metrics))]
    average_texts = []
    for position, best in enumerate(bold_flags(average_means)):
        encoder, system, pooling = columns[position // len(metrics)]
        metric = metrics[position % len(metrics)]
        average_texts.append(_score_cell(average_means[position], math.nan, 1, best, False, digits))
        records.append(
            {
                "encoder": encoder,
                "system": system,
                "pooling": pooling,
                "label": display_label(system, pooling),
                "trainset": trainset,
                "testset": "average",
                "dataset": "Average",
                "metric": metric,
                "mean": average_means[position],
                "best": best,
            }
        )
    average_row = _row(["Average", *average_texts])

    width = len(metrics)
    encoders = list(dict.fromkeys(encoder for encoder, _, _ in columns))
    spans = [sum(1 for c in columns if c[0] == encoder) * width for encoder in encoders]
    starts = np.cumsum([2, *spans[:-1]])
    header = [
        _row(
            [""]
            + [
                rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(label_of(encoder, encoder_labels))}}}"
                for encoder, span in zip(encoders, spans)
            ]
        ),
        "".join(rf"\cmidrule(lr){{{start}-{start + span - 1}}}" for start, span in zip(starts, spans)),
        _row(
            ["Dataset"]
            + [
                rf"\multicolumn{{{width}}}{{c}}{{{_stacked(display_label(system, pooling))}}}"
                if width > 1
                else _stacked(display_label(system, pooling))
                for _, system, pooling in columns
            ]
        ),
    ]
    if width > 1:
        header.append(_row([""] + [METRIC_LABELS.get(m, latex_escape(m)) for _ in columns for m in metrics]))
    latex = _tabular("l" + "c" * (width * len(columns)), header, [body, [average_row]])
    return Table(latex, pd.DataFrame(records))


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
    may be left out when the results hold one encoder. Columns: metric x configuration (FT and the
    numbers of experts, published or ours); rows: per dataset, the paper's value, ours (mean over
    seeds) and the difference (ours - paper); ``--`` where either is missing.
    """
    metrics = list(reference["metrics"])
    if encoder is None:
        encoders = sorted(set(results["encoder"]))
        if len(encoders) != 1:
            raise ValueError(f"results hold encoders {encoders}; say which one to compare")
        encoder = encoders[0]
    ours = results[results["encoder"] == encoder]
    is_moe = (ours["variant"] == "sbmoe") & (ours["combination"] == combination) & (ours["pooling"] == pooling)
    family = ours[(ours["system"] == "finetune") | is_moe]
    configurations = list(reference["configurations"])
    configurations += sorted(set(family["num_experts"].dropna().astype(int)) - {c for c in configurations if c != "FT"})
    cells = _summaries(family, metrics)
    by_name = {}
    for trainset, testset in datasets:
        for name in (testset, label_of(testset, dataset_labels)):
            by_name.setdefault(_normalised(name), (trainset, testset))
    names = list(dict.fromkeys(name for per_metric in reference["metrics"].values() for name in per_metric))

    records, blocks = [], []
    for name in names:
        pair = by_name.get(_normalised(name))
        lines = {"paper": [], "ours": [], "difference": []}
        for metric in metrics:
            published = dict(zip(reference["configurations"], reference["metrics"][metric].get(name, [])))
            for configuration in configurations:
                system = "finetune" if configuration == "FT" else f"sbmoe-{combination}-e{configuration}"
                cell = (
                    cells.get((encoder, system, "none" if configuration == "FT" else pooling, *pair)) if pair else None
                )
                paper_value = float(published[configuration]) if configuration in published else math.nan
                ours = cell[metric] if cell else math.nan
                records.append(
                    {
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
                )
                lines["paper"].append(format_score(paper_value, digits))
                lines["ours"].append(format_score(ours, digits))
                lines["difference"].append(format_difference(ours - paper_value, digits))
        blocks.append(
            [
                _row([latex_escape(name), "Paper", *lines["paper"]]),
                _row(["", "Ours", *lines["ours"]]),
                _row(["", r"$\Delta$", *lines["difference"]]),
            ]
        )
    width = len(configurations)
    header = [
        _row(["", ""] + [rf"\multicolumn{{{width}}}{{c}}{{{METRIC_LABELS.get(m, latex_escape(m))}}}" for m in metrics]),
        "".join(rf"\cmidrule(lr){{{3 + i * width}-{2 + (i + 1) * width}}}" for i in range(len(metrics))),
        _row(["Dataset", ""] + [_configuration_label(c) for _ in metrics for c in configurations]),
    ]
    latex = _tabular("ll" + "c" * (width * len(metrics)), header, blocks)
    return Table(latex, pd.DataFrame(records))


def read_routing(paths: str | Path | Sequence[str | Path]) -> tuple[np.ndarray, int]:
    """The expert each text was routed to and the number of experts, from encoded-texts npz files
    (one file, or the shards of a corpus).

    The number of experts is the width of the ``gate`` array (0 for a model without a gate).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    experts, widths = [], set()
    for path in paths:
        with np.load(path, allow_pickle=False) as encoded:
            experts.append(np.asarray(encoded["experts"], dtype=int))
            widths.add(int(encoded["gate"].shape[1]))
    if len(widths) != 1:
        raise ValueError(f"{paths}: shards disagree on the number of experts ({sorted(widths)})")
    employed = widths.pop()
    routed = np.concatenate(experts)
    if employed and ((routed < 0) | (routed >= employed)).any():
        raise ValueError(f"{paths}: expert indices outside [0, {employed})")
    return routed, employed


def expert_usage(experts: np.ndarray, employed: int) -> dict:
    """How many texts each of ``employed`` experts received; ``activated`` = experts with >= 1 text."""
    counts = np.bincount(np.asarray(experts, dtype=int), minlength=employed)[:employed]
    texts = int(counts.sum())
    return {
        "employed": employed,
        "activated": int(np.count_nonzero(counts)),
        "texts": texts,
        "counts": counts.tolist(),
        "shares": (counts / texts).tolist() if texts else [0.0] * employed,
    }


def _shares_text(shares: Sequence[float]) -> str:
    return "/".join(f"{round(100 * share)}" for share in shares)


def experts_table(
    records: Iterable[tuple[Mapping, str | Path, str | Path | Sequence[str | Path]]],
    dataset_labels: Mapping[str, str] | None = None,
    encoder_labels: Mapping[str, str] | None = None,
) -> Table:
    """Table III: experts employed (E) vs experts activated, for queries and documents.

    ``records`` are ``(keys, queries_npz, corpus_npz)``, the corpus as one npz or a list of its
    shards; records of systems without a gate are left out. Activated = experts that received at
    least one text (the routing actually taken, the npz ``experts`` array). The share columns give
    the percentage of texts per expert. A seed column appears when the records hold several seeds. The CSV has one row per record, side
    (``queries`` / ``documents``) and expert.
    """
    rows = []
    for keys, queries_path, corpus_path in records:
        if not variant_of(keys["system"]).gated:
            continue
        usage = {}
        for side, path in (("queries", queries_path), ("documents", corpus_path)):
            experts, employed = read_routing(path)
            if employed == 0:
                raise ValueError(f"{path}: system {keys['system']} has a gate but the npz holds no gate weights")
            usage[side] = expert_usage(experts, employed)
        rows.append((dict(keys), usage))
    rows.sort(
        key=lambda row: (
            row[0]["encoder"],
            system_order(row[0]["system"], row[0]["pooling"]),
            row[0]["testset"],
            str(row[0]["seed"]),
        )
    )
    several_seeds = len({str(keys["seed"]) for keys, _ in rows}) > 1
    several_encoders = len({keys["encoder"] for keys, _ in rows}) > 1

    records_out, body = [], []
    for keys, usage in rows:
        label = display_label(keys["system"], keys["pooling"])
        cells = [latex_escape(label_of(keys["encoder"], encoder_labels))] if several_encoders else []
        cells += [latex_escape(label), latex_escape(label_of(keys["testset"], dataset_labels))]
        cells += [latex_escape(keys["seed"])] if several_seeds else []
        cells += [
            str(usage["queries"]["employed"]),
            str(usage["queries"]["activated"]),
            str(usage["documents"]["activated"]),
            _shares_text(usage["queries"]["shares"]),
            _shares_text(usage["documents"]["shares"]),
        ]
        body.append(_row(cells))
        for side, side_usage in usage.items():
            for expert, (count, share) in enumerate(zip(side_usage["counts"], side_usage["shares"])):
                records_out.append(
                    {
                        **{key: keys[key] for key in ("encoder", "trainset", "system", "pooling", "seed", "testset")},
                        "label": label,
                        "side": side,
                        "employed": side_usage["employed"],
                        "activated": side_usage["activated"],
                        "texts": side_usage["texts"],
                        "expert": expert,
                        "count": count,
                        "share": share,
                    }
                )
    names = (["Encoder"] if several_encoders else []) + ["System", "Dataset"] + (["Seed"] if several_seeds else [])
    header = [
        _row(
            [""] * (len(names) + 1) + [r"\multicolumn{2}{c}{Activated}", r"\multicolumn{2}{c}{Share per expert (\%)}"]
        ),
        rf"\cmidrule(lr){{{len(names) + 2}-{len(names) + 3}}}\cmidrule(lr){{{len(names) + 4}-{len(names) + 5}}}",
        _row(names + ["E", "Queries", "Docs", "Queries", "Docs"]),
    ]
    latex = _tabular("l" * len(names) + "ccc" + "ll", header, [body])
    return Table(latex, pd.DataFrame(records_out))


_ROUTING_BLOCKS = (("fusion", ("rrf", "wsum")), ("router", ("router-hard", "router-soft")), ("oracle", ("oracle",)))


def load_bm25_reference(path: str | Path) -> dict[str, float]:
    """BEIR's published BM25 nDCG@10 per dataset (``workflow/bm25_reference.yaml``)."""
    reference = read_yaml(path, "BEIR's published BM25 nDCG@10 per dataset")
    values = reference.get("ndcg@10") if isinstance(reference, dict) else None
    if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
        raise DataFormatError(path, None, "expected 'ndcg@10' mapping dataset names to published nDCG@10 values")
    return {str(name): float(value) for name, value in values.items()}


def routing_table(
    evaluations: Mapping[str, Mapping[str, Mapping[str, Mapping]]],
    experts: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    significance: Mapping | None = None,
    bm25_reference: Mapping[str, float] | None = None,
    metrics: Sequence[str] = ("ndcg@10", "recall@100"),
    dataset_labels: Mapping[str, str] | None = None,
    digits: int = 3,
) -> Table:
    """Routing over whole retrievers: each expert, the fusions (RRF, WSUM), the router (hard and
    soft) and the oracle, per ``(trainset, testset)`` pair (the router of ``trainset`` on ``testset``).

    ``evaluations`` is ``{trainset: {testset: {system: evaluation}}}`` (the routing stage's JSON).
    Bold: best of a column apart from the oracle. Underline: the best single expert (by nDCG@10),
    the baseline of the significance tests; dagger: different from it after correction (the report
    of :func:`sbmoe.selection.routing.significance_against_best_single`). A last row gives BEIR's published
    BM25 nDCG@10 where ``bm25_reference`` has the test set.
    """
    pairs = [tuple(pair) for pair in pairs]
    tests = {(c["trainset"], c["testset"], c["metric"], c["system"]): c for c in (significance or {}).get("comparisons", [])}
    blocks_of = [("expert", tuple(experts)), *_ROUTING_BLOCKS]
    rows = [(kind, name) for kind, names in blocks_of for name in names]
    texts = {row: [] for row in rows}
    records = []
    published = []
    for trainset, testset in pairs:
        systems = evaluations[trainset][testset]
        baseline = best_single(systems, list(experts))
        for metric in metrics:
            means = [systems[name]["metrics"].get(metric, math.nan) if name in systems else math.nan for _, name in rows]
            contenders = [m if kind != "oracle" else math.nan for (kind, _), m in zip(rows, means)]
            for (kind, name), mean, best in zip(rows, means, _best_flags(contenders, digits)):
                outcome = tests.get((trainset, testset, metric, name), {})
                text = _score_cell(mean, math.nan, 1, best, bool(outcome.get("significant")), digits)
                if name == baseline and not math.isnan(mean):
                    text = rf"\underline{{{text}}}"
                texts[(kind, name)].append(text)
                if math.isnan(mean):
                    continue
                records.append({
                    "trainset": trainset, "testset": testset, "dataset": label_of(testset, dataset_labels),
                    "system": name, "label": system_label(name), "kind": kind, "metric": metric, "mean": mean,
                    "best": best, "baseline": baseline, "is_baseline": name == baseline,
                    "p_value": outcome.get("p_value"), "p_corrected": outcome.get("p_corrected"),
                    "significant": bool(outcome.get("significant")),
                    "num_queries": systems[name].get("num_queries"),
                })
            value = (bm25_reference or {}).get(testset, math.nan) if metric == "ndcg@10" else math.nan
            published.append(rf"\textit{{{format_score(value, digits)}}}" if not math.isnan(value) else MISSING)
            if not math.isnan(value):
                records.append({"trainset": trainset, "testset": testset, "dataset": label_of(testset, dataset_labels),
                                "system": "bm25-beir", "label": "BM25 (BEIR, published)", "kind": "published",
                                "metric": metric, "mean": value})
    blocks = [[_row([latex_escape(system_label(name)), *texts[(kind, name)]]) for name in names] for kind, names in blocks_of]
    if bm25_reference and any(t in bm25_reference for _, t in pairs):
        blocks.append([_row([r"\textit{BM25 (BEIR, published)}", *published])])
    width = len(metrics)
    trainsets = {t for t, _ in pairs}

    def column_label(trainset: str, testset: str) -> str:
        label = latex_escape(label_of(testset, dataset_labels))
        if testset != trainset or len(trainsets) > 1:
            label = _stacked(f"{label_of(testset, dataset_labels)} (router: {label_of(trainset, dataset_labels)})")
        return label

    header = [
        _row([""] + [rf"\multicolumn{{{width}}}{{c}}{{{column_label(*pair)}}}" for pair in pairs]),
        "".join(rf"\cmidrule(lr){{{2 + i * width}-{1 + (i + 1) * width}}}" for i in range(len(pairs))),
        _row(["System"] + [METRIC_LABELS.get(m, latex_escape(m)) for _ in pairs for m in metrics]),
    ]
    latex = _tabular("l" + "c" * (width * len(pairs)), header, blocks)
    return Table(latex, pd.DataFrame(records))
