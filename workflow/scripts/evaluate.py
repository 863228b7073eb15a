"""Snakemake script: score every run of one model on each of its test sets.

input.runs (one folder of <pooling>.trec per test set); params.evaluation: testsets, qrels,
thresholds and drop_self_hits (lists in the order of input.runs); params.poolings, params.metrics;
output.json: {testset: {pooling: evaluation}}.
"""

from pathlib import Path

from sbmoe.atomic import write_json
from sbmoe.evaluation import evaluate
from sbmoe.collection import load_qrels
from sbmoe.joblog import log_to
from sbmoe.runs import read_trec_run

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]):
    results = {}
    settings = smk.params.evaluation
    for testset, runs, qrels_path, threshold, drop in zip(settings["testsets"], smk.input.runs, settings["qrels"],
                                                         settings["thresholds"], settings["drop_self_hits"]):
        qrels = load_qrels(qrels_path)
        results[testset] = {
            pooling: evaluate(read_trec_run(Path(runs) / f"{pooling}.trec"), qrels, smk.params.metrics, threshold, drop)
            for pooling in smk.params.poolings
        }
    write_json(smk.output.json, results)
