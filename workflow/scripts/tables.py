"""One of the paper's tables (the modules of ``sbmoe.analysis.tables``), as a booktabs tabular and a CSV.

Snakemake contract
------------------
params.table           which table: ``"in_domain"`` (Table I), ``"zero_shot"`` (Table II),
                       ``"reproduction"``, ``"experts"`` (Table III) or ``"routing"``
params.dataset_labels  optional {testset id: display name}
params.encoder_labels  optional {encoder id: display name} (not used by ``reproduction``)
output.tex             the tabular (``\\input`` by paper/main.tex)
output.csv             the numbers behind it, one row per cell
params.metrics         the reported metrics, in column order (configuration key analysis.metrics;
                       ``zero_shot`` gets the headline metric alone); not used by ``experts``

``in_domain``, ``zero_shot`` and ``reproduction`` read evaluations:
input.evals            list of evaluation JSONs
params.eval_keys       list of key dicts (encoder, trainset, system, seed, testset, pooling),
                       one per ``input.evals`` entry, in the same order
params.systems         optional list of system ids to show (default: all present)
input.significance     optional significance report JSON (``in_domain``, ``zero_shot``): daggers
``in_domain``:     params.datasets  list of [trainset, testset] pairs, in column order
``zero_shot``:     params.trainset  the training set (e.g. MS MARCO's id);
                   params.testsets  list of test set ids, in row order
``reproduction``:  input.reference  workflow/reference_numbers.yaml;
                   params.datasets  list of [trainset, testset] pairs to match to the published
                   dataset names; params.encoder (optional with one encoder),
                   params.combination (default ``"paper"``), params.pooling (default ``"top1"``)

``experts`` reads encoded texts, one record per (model, test set, pooling):
params.npz_keys        list of key dicts, one per record
input.queries          one entry per record: its query npz, or the pipeline's queries folder
                       (holding ``<pooling>.npz``; the record's pooling picks the file)
input.corpus           flat list, record after record: its corpus npz files, shard folders or a folder of shard folders
params.corpus_shards   optional list: how many ``input.corpus`` entries each record has
                       (default 1 each)
``routing`` reads the routing stage's evaluations:
input.evals            one evaluation JSON per routed training set
params.trainsets       the training set of each ``input.evals`` entry
params.experts         the expert names, in row order
params.pairs           list of [trainset, testset] columns
input.bm25_reference   optional workflow/bm25_reference.yaml (BEIR's published BM25)
params.significance    {test, correction, alpha, permutations, seed} of the tests against the best
                       single expert (one per metric of params.metrics); output.significance
                       receives their report (JSON)
log[0]                 the job's log
"""

import json

from sbmoe.analysis.tables.experts import experts_table
from sbmoe.analysis.tables.in_domain import in_domain_table
from sbmoe.analysis.tables.reproduction import load_reference, reproduction_table
from sbmoe.analysis.tables.routing import load_bm25_reference, routing_table
from sbmoe.analysis.tables.zero_shot import zero_shot_table
from sbmoe.evaluation.results import corpus_files, group_by_counts, load_results, pooling_file
from sbmoe.io.atomic import write_json
from sbmoe.pipeline.joblog import log_to
from sbmoe.selection.comparison import significance_against_best_single

inputs, params = snakemake.input, snakemake.params  # noqa: F821 (injected by Snakemake)
labels = {
    "dataset_labels": getattr(params, "dataset_labels", None),
    "encoder_labels": getattr(params, "encoder_labels", None),
}


def significance():
    if not getattr(inputs, "significance", None):
        return None
    with open(inputs.significance, encoding="utf-8") as handle:
        return json.load(handle)


with log_to(snakemake.log[0]):  # noqa: F821
    if params.table == "experts":
        corpus = group_by_counts(list(inputs.corpus), getattr(params, "corpus_shards", None))
        records = [
            (
                keys,
                pooling_file(queries, keys["pooling"], ".npz"),
                corpus_files(shards, keys["pooling"]),
            )
            for keys, queries, shards in zip(params.npz_keys, inputs.queries, corpus, strict=True)
        ]
        table = experts_table(records, **labels)
    elif params.table == "routing":
        evaluations = {}
        for trainset, path in zip(params.trainsets, inputs.evals, strict=True):
            with open(path, encoding="utf-8") as handle:
                evaluations[trainset] = json.load(handle)
        experts = list(params.experts)
        report = significance_against_best_single(
            evaluations, {t: experts for t in evaluations}, metrics=params.metrics, **params.significance
        )
        write_json(snakemake.output.significance, report)  # noqa: F821
        reference = load_bm25_reference(inputs.bm25_reference) if getattr(inputs, "bm25_reference", None) else None
        table = routing_table(
            evaluations,
            experts,
            params.pairs,
            report,
            reference,
            metrics=params.metrics,
            dataset_labels=labels["dataset_labels"],
        )
    else:
        results = load_results(zip(params.eval_keys, inputs.evals, strict=True))
        systems = getattr(params, "systems", None)
        if params.table == "in_domain":
            table = in_domain_table(
                results, params.datasets, significance(), metrics=params.metrics, systems=systems, **labels
            )
        elif params.table == "zero_shot":
            table = zero_shot_table(
                results,
                params.trainset,
                params.testsets,
                significance(),
                metrics=params.metrics,
                systems=systems,
                **labels,
            )
        elif params.table == "reproduction":
            table = reproduction_table(
                results,
                load_reference(inputs.reference),
                params.datasets,
                params.metrics,
                encoder=getattr(params, "encoder", None),
                combination=getattr(params, "combination", "paper"),
                pooling=getattr(params, "pooling", "top1"),
                dataset_labels=labels["dataset_labels"],
            )
        else:
            raise ValueError(f"unknown table {params.table!r}")
    table.write(snakemake.output.tex, snakemake.output.csv)  # noqa: F821
