"""``macros.tex``: one LaTeX macro for every number the paper's text states.

The numbers come from the generated artefacts (the tables' CSVs, the significance report, the
training logs and the t-SNE description), so the text always agrees with the tables. Every macro
of :func:`macro_descriptions` (those of :data:`MACROS`, and those of :data:`METRIC_MACROS` for each
reported metric) is always defined; a number the results cannot give (e.g. no learned-gate system
was run) reads ``--``. Macro names are letters only, as LaTeX requires.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sbmoe.analysis.figures.training import read_training_log
from sbmoe.analysis.latex import MISSING, format_quantity, format_text_score, join_words, latex_escape
from sbmoe.analysis.routing_macros import routing_macros
from sbmoe.analysis.training_setup import training_setup
from sbmoe.io.atomic import atomic_path, write_text
from sbmoe.systems.labels import metric_label
from sbmoe.systems.names import parse_system

MACROS = {
    "NumEncoders": "encoders in Table I, with their noun (1 encoder, 2 encoders)",
    "NumSystems": "systems (system id and pooling) in Table I, with their noun",
    "NumSeeds": "largest number of seeds behind a Table I cell, with its noun",
    "NumInDomain": "in-domain test sets in Table I, with their noun",
    "NumZeroShot": "zero-shot test sets in Table II, with their noun",
    "ZeroShotSets": "the zero-shot test sets by benchmark (BEIR test sets, other test collections)",
    "HeadDataset": "first test set of Table I",
    "HeadEncoder": "first encoder of Table I",
    "HeadFTNdcg": "FT nDCG@10 on the first test set",
    "HeadBestNdcg": "best nDCG@10 of a trained MoE or adapter system on the first test set",
    "HeadBestSystem": "that system's label",
    "InDomainWins": "encoder-test set pairs where a MoE or adapter system beats FT in nDCG@10",
    "InDomainPairs": "encoder-test set pairs with FT and at least one MoE or adapter system",
    "NumSignificant": "comparisons significant after correction",
    "NumComparisons": "comparisons tested",
    "SigTest": "name of the paired test",
    "SigCorrection": "name of the multiple-comparison correction",
    "SigAlpha": "significance level",
    "SigPermutations": "permutations of the randomization test",
    "SigFamilySize": "largest correction family",
    "ZeroShotTrainset": "the training set of the zero-shot models",
    "ZeroShotFTAverage": "FT average nDCG@10 over the zero-shot test sets (first encoder)",
    "ZeroShotBestAverage": "best average nDCG@10 of a MoE or adapter system (first encoder)",
    "ZeroShotBestSystem": "that system's label",
    "ReproCompared": "published numbers with a result of ours beside them",
    "ReproRan": "yes when a published number has a result of ours beside it, else no",
    "GateGradPaper": "largest gate gradient norm of an SB-MoE model with the paper's combination (every seed)",
    "GateGradLearned": "mean gate gradient norm of SB-MoE models with the learned combination (every seed)",
    "EntropyPaper": "mean last-epoch routing entropy, paper's combination",
    "EntropyLearned": "mean last-epoch routing entropy, learned combination",
    "MaxEpochs": "most epochs in a training log",
    "TrainingSetup": "the training settings of the study, beside the authors'",
    "ExpertRows": "routings (system, test set and seed) summarised by Table III",
    "AllActivatedDocs": "routings in which every employed expert received a document",
    "AllActivatedQueries": "routings in which every employed expert received a query",
    "TsneQuery": "id of the t-SNE query",
    "TsneSeed": "seed that chose it",
    "TsneCandidates": "queries it was chosen among",
    "TsneDepth": "documents per query in the t-SNE",
    "RoutingExperts": "expert retrievers the router chooses among",
    "RoutingExpertList": "their labels",
    "RoutingSets": "test sets (with the training set of their router) in the routing table",
    "RoutingHeadDataset": "first test set of the routing table",
    "RoutingHeadBestSingle": "its best single retriever (by nDCG@10)",
    "RoutingHeadBestSingleNdcg": "that retriever's nDCG@10",
    "RoutingHeadHardNdcg": "nDCG@10 of hard routing on the first test set",
    "RoutingHeadSoftNdcg": "nDCG@10 of soft routing on the first test set",
    "RoutingHeadRrfNdcg": "nDCG@10 of RRF on the first test set",
    "RoutingHeadWsumNdcg": "nDCG@10 of the tuned WSUM fusion on the first test set",
    "RoutingHeadOracleNdcg": "nDCG@10 of the oracle on the first test set",
    "RoutingHeadGain": "best router nDCG@10 minus the best single retriever's, first test set",
    "RoutingHeadTopExpert": "the retriever the router sends most first-test-set queries to",
    "RoutingHeadTopShare": "the percentage of queries it receives",
    "RoutingRouterWins": "test sets where a router beats the best single retriever in nDCG@10",
    "RoutingFusionWins": "test sets where a fusion beats the best single retriever in nDCG@10",
    "RoutingSignificant": "router and fusion comparisons significant against the best single retriever",
    "RoutingComparisons": "router and fusion comparisons tested",
    "RoutingBMComparison": "our BM25 nDCG@10 beside BEIR's published one, per test set",
    "RoutingBMMaxDiff": "largest absolute difference from BEIR's published BM25 nDCG@10",
}
# Macros stated once per reported metric (analysis.metrics), named after the metric (see
# metric_macro_name): {prefix: description}, placed after the macro named in _METRIC_MACROS_AFTER.
METRIC_MACROS = {"ReproMeanAbsDiff": "mean absolute difference from the published {label}"}
_METRIC_MACROS_AFTER = "ReproRan"
_DIGITS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
_NAME = re.compile(r"^[A-Za-z]+$")
_NDCG = "ndcg@10"  # the metric of the macros named ...Ndcg and of the comparisons the text states in words
_NOT_MOE = ("zeroshot", "finetune")  # variants without MoE (FT at any learning rate)


def metric_macro_name(metric: str, metrics: Sequence[str]) -> str:
    """The letters a metric's macros end with: its name in CamelCase (``ndcg@10`` -> ``Ndcg``,
    ``hit_rate`` -> ``HitRate``), followed by its cutoff in words (``NdcgAtThree``) when another of
    ``metrics`` has the same name."""
    name, _, cutoff = metric.partition("@")
    letters = "".join(part.capitalize() for part in re.split(r"[^A-Za-z]+", name) if part)
    if sum(other.partition("@")[0] == name for other in metrics) > 1 and cutoff:
        letters += "At" + "".join(_DIGITS[int(digit)] for digit in cutoff)
    return letters


def macro_descriptions(metrics: Sequence[str]) -> dict[str, str]:
    """Every macro ``macros.tex`` defines for the reported ``metrics``, with what it states: those of
    :data:`MACROS` and, for each metric, those of :data:`METRIC_MACROS`."""
    described = {}
    for name, description in MACROS.items():
        described[name] = description
        if name == _METRIC_MACROS_AFTER:
            for prefix, template in METRIC_MACROS.items():
                for metric in metrics:
                    described[prefix + metric_macro_name(metric, metrics)] = template.format(label=metric_label(metric))
    return described


def render_macros(values: Mapping[str, str]) -> str:
    """``\\newcommand`` lines for ``values`` (already LaTeX text), names checked to be letters only."""
    lines = ["% Generated by sbmoe.analysis.paper; numbers from the pipeline's results. Do not edit."]
    for name, value in values.items():
        if not _NAME.match(name):
            raise ValueError(f"macro name {name!r} must be letters only")
        lines.append(rf"\newcommand{{\{name}}}{{{value}}}")
    return "\n".join(lines) + "\n"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """A count with its noun in the right number: ``1 encoder``, ``2 encoders``."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _is_moe(systems: pd.Series) -> pd.Series:
    return ~systems.map(lambda system: parse_system(system)["variant"]).isin(_NOT_MOE)


def _in_domain_macros(table: pd.DataFrame) -> dict:
    if table.empty:
        return {}
    ndcg = table[table["metric"] == _NDCG]
    values = {
        "NumEncoders": counted(table["encoder"].nunique(), "encoder"),
        "NumSystems": counted(len(table[["system", "pooling"]].drop_duplicates()), "system"),
        "NumSeeds": counted(int(table["seeds"].max()), "seed"),
        "NumInDomain": counted(len(table[["trainset", "testset"]].drop_duplicates()), "in-domain test set"),
    }
    wins = pairs = 0
    for _, cell in ndcg.groupby(["encoder", "trainset", "testset"], sort=False):
        ft, moe = cell[cell["system"] == "finetune"], cell[_is_moe(cell["system"])]
        if len(ft) and len(moe):
            pairs += 1
            wins += int(moe["mean"].max() > ft["mean"].iloc[0])
    values.update(InDomainWins=str(wins), InDomainPairs=str(pairs))
    if ndcg.empty:
        return values
    first = ndcg.iloc[0]
    head = ndcg[(ndcg["encoder"] == first["encoder"]) & (ndcg["testset"] == first["testset"])]
    head = head[head["trainset"] == first["trainset"]]
    values.update(HeadDataset=latex_escape(first["dataset"]), HeadEncoder=latex_escape(first["encoder"]))
    values.update(_ft_and_best(head, "HeadFTNdcg", "HeadBestNdcg", "HeadBestSystem"))
    return values


def _ft_and_best(rows: pd.DataFrame, ft_name: str, best_name: str, system_name: str) -> dict:
    """FT's mean, and the best MoE (or adapter) system's mean and label, among ``rows``."""
    values = {}
    ft = rows[rows["system"] == "finetune"]
    if len(ft):
        values[ft_name] = format_text_score(ft["mean"].iloc[0])
    moe = rows[_is_moe(rows["system"])]
    if len(moe):
        best = moe.loc[moe["mean"].idxmax()]
        values.update({best_name: format_text_score(best["mean"]), system_name: latex_escape(best["label"])})
    return values


def zero_shot_sets(testsets: Mapping[str, str], benchmarks: Mapping[str, str | None]) -> str:
    """The zero-shot test sets in words, by the benchmark each comes from (``benchmarks``: test set
    id -> benchmark name, None for a test collection of its own): ``2 BEIR test sets (NFCorpus and
    SciFact) and the Cranfield test collection``. ``testsets``: id -> label, in table order."""
    groups: dict[str | None, list[str]] = {}
    for testset, label in testsets.items():
        groups.setdefault(benchmarks.get(testset), []).append(latex_escape(label))
    parts = [
        f"{counted(len(labels), f'{benchmark} test set')} ({join_words(labels)})"
        for benchmark, labels in groups.items()
        if benchmark
    ]
    if None in groups:
        collections = "test collection" if len(groups[None]) == 1 else "test collections"
        parts.append(f"the {join_words(groups[None])} {collections}")
    return join_words(parts)


def _zero_shot_macros(
    table: pd.DataFrame, benchmarks: Mapping[str, str | None], dataset_labels: Mapping[str, str]
) -> dict:
    if table.empty:
        return {}
    averages = table[(table["testset"] == "average") & (table["metric"] == _NDCG)]
    averages = averages[(averages["encoder"] == table["encoder"].iloc[0]) & averages["mean"].notna()]
    tested = table[table["testset"] != "average"]
    labels = dict(zip(tested["testset"], tested["dataset"]))
    values = {
        "NumZeroShot": counted(len(labels), "zero-shot test set"),
        "ZeroShotSets": zero_shot_sets(labels, benchmarks),
        "ZeroShotTrainset": latex_escape(dataset_labels.get(table["trainset"].iloc[0], table["trainset"].iloc[0])),
    }
    values.update(_ft_and_best(averages, "ZeroShotFTAverage", "ZeroShotBestAverage", "ZeroShotBestSystem"))
    return values


def _reproduction_macros(table: pd.DataFrame, metrics: Sequence[str]) -> dict:
    if table.empty:
        return {}
    compared = table[table["difference"].notna()]
    values = {"ReproCompared": str(len(compared)), "ReproRan": "yes" if len(compared) else "no"}
    for metric in metrics:
        differences = compared.loc[compared["metric"] == metric, "difference"]
        if len(differences):
            values["ReproMeanAbsDiff" + metric_macro_name(metric, metrics)] = format_text_score(
                float(differences.abs().mean())
            )
    return values


def _significance_macros(report: Mapping) -> dict:
    if not report:
        return {}
    comparisons = report["comparisons"]
    values = {
        "NumComparisons": str(len(comparisons)),
        "NumSignificant": str(sum(bool(c["significant"]) for c in comparisons)),
        "SigTest": "Fisher's randomization test" if report["test"] == "randomization" else "the paired t-test",
        "SigCorrection": "Holm" if report["correction"] == "holm" else "Bonferroni",
        "SigAlpha": str(report["alpha"]),
        "SigFamilySize": str(max((c["family_size"] for c in comparisons), default=0)),
    }
    if report.get("permutations"):
        values["SigPermutations"] = f"{report['permutations']:,}".replace(",", "{,}")
    return values


def _training_macros(logs: Sequence[tuple[Mapping, str | Path]]) -> dict:
    grads = {"paper": [], "learned": []}
    entropies = {"paper": [], "learned": []}
    epochs = []
    for keys, path in logs:
        frame = read_training_log(path)
        epochs.append(int(frame["epoch"].max()))
        parsed = parse_system(keys["system"])
        if parsed["variant"] != "sbmoe":
            continue
        norms = pd.to_numeric(frame["gate_grad_norm"], errors="coerce").dropna()
        grads[parsed["combination"]].extend(norms.tolist())
        entropy = pd.to_numeric(frame["routing_entropy"], errors="coerce").dropna()
        if len(entropy):
            entropies[parsed["combination"]].append(float(entropy.iloc[-1]))
    values = {"MaxEpochs": str(max(epochs))} if epochs else {}
    if grads["paper"]:
        values["GateGradPaper"] = format_quantity(float(np.max(grads["paper"])))
    if grads["learned"]:
        values["GateGradLearned"] = format_quantity(float(np.mean(grads["learned"])))
    for combination, name in (("paper", "EntropyPaper"), ("learned", "EntropyLearned")):
        if entropies[combination]:
            values[name] = format_text_score(float(np.mean(entropies[combination])))
    return values


def _experts_macros(table: pd.DataFrame) -> dict:
    if table.empty:
        return {}
    per_row = table.drop_duplicates(["encoder", "trainset", "system", "pooling", "seed", "testset", "side"])
    full = per_row[per_row["activated"] == per_row["employed"]]
    keys = ["encoder", "trainset", "system", "pooling", "seed", "testset"]
    return {
        "ExpertRows": str(len(per_row[keys].drop_duplicates())),
        "AllActivatedDocs": str(int((full["side"] == "documents").sum())),
        "AllActivatedQueries": str(int((full["side"] == "queries").sum())),
    }


def _tsne_macros(description: Mapping) -> dict:
    if not description:
        return {}
    return {
        "TsneQuery": latex_escape(description["qid"]),
        "TsneSeed": str(description["seed"]),
        "TsneCandidates": str(description["candidates"]),
        "TsneDepth": str(description["depth"]),
    }


def paper_macros(
    in_domain: pd.DataFrame | None = None,
    zero_shot: pd.DataFrame | None = None,
    reproduction: pd.DataFrame | None = None,
    experts: pd.DataFrame | None = None,
    significance: Mapping | None = None,
    logs: Sequence[tuple[Mapping, str | Path]] = (),
    tsne: Mapping | None = None,
    routing: pd.DataFrame | None = None,
    routing_figure: Mapping | None = None,
    *,
    metrics: Sequence[str],
    training: Sequence[Mapping] = (),
    benchmarks: Mapping[str, str | None] | None = None,
    dataset_labels: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The value (LaTeX text) of every macro of :func:`macro_descriptions` for the reported ``metrics``.

    ``in_domain``, ``zero_shot``, ``reproduction`` and ``experts`` are the CSVs of the tables of
    :mod:`sbmoe.analysis.tables` modules (as DataFrames); ``significance`` the report of
    :func:`sbmoe.evaluation.significance.significance_report`; ``logs`` ``(keys, path)`` pairs of training
    logs; ``tsne`` the description returned by :func:`sbmoe.analysis.figures.tsne.tsne_figure`; ``routing``
    the routing table's CSV and ``routing_figure`` the description returned by
    :func:`sbmoe.analysis.figures.routing.routing_figure`; ``benchmarks`` maps a test set id to the
    benchmark it comes from (:func:`sbmoe.data.table.benchmark`; None or absent: a test collection
    of its own), so the text names BEIR only for BEIR's test sets; ``dataset_labels`` the display
    name of a dataset id (the training set's, which the tables' CSVs do not hold); ``training`` the
    study's distinct training settings (:meth:`sbmoe.pipeline.design.Study.training_settings`).
    """
    values = dict.fromkeys(macro_descriptions(metrics), MISSING)
    empty = pd.DataFrame()
    values.update(_in_domain_macros(in_domain if in_domain is not None else empty))
    zero_shot = zero_shot if zero_shot is not None else empty
    values.update(_zero_shot_macros(zero_shot, benchmarks or {}, dataset_labels or {}))
    values.update(_reproduction_macros(reproduction if reproduction is not None else empty, metrics))
    values.update(_experts_macros(experts if experts is not None else empty))
    values.update(_significance_macros(significance or {}))
    values.update(_training_macros(logs))
    values["TrainingSetup"] = latex_escape(training_setup(training))
    values.update(_tsne_macros(tsne or {}))
    values.update(routing_macros(routing if routing is not None else empty, routing_figure or {}))
    return values


def write_macros(path: str | Path, values: Mapping[str, str]) -> None:
    """Write ``macros.tex`` atomically."""
    write_text(path, render_macros(values))


def load_table(path: str | Path) -> pd.DataFrame:
    """A table's CSV as written by :meth:`sbmoe.analysis.latex.Table.write` (empty for a table without rows)."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def build_paper(main_tex: str | Path, generated: Mapping[str, str | Path], output_pdf: str | Path) -> None:
    """Compile ``main_tex`` with latexmk, the ``generated`` files (``{path under generated/: source}``)
    placed beside it, in a scratch folder beside ``output_pdf`` (removed by the next build if this
    one is killed); the PDF is moved to ``output_pdf`` only if the build succeeds.
    The LaTeX log is printed when it fails."""
    with atomic_path(output_pdf) as pdf:
        folder = pdf.parent / "build"
        folder.mkdir()
        shutil.copy(main_tex, folder / "main.tex")
        for name, source in generated.items():
            target = folder / "generated" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
        completed = subprocess.run(
            ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
            cwd=folder,
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0:
            log = (folder / "main.log").read_text(errors="replace") if (folder / "main.log").exists() else ""
            raise RuntimeError(f"latexmk failed on {main_tex}:\n{completed.stdout[-4000:]}\n{log[-4000:]}")
        os.replace(folder / "main.pdf", pdf)
