"""Snakemake script: score the runs of several models, one JSON per model.

params.evaluation: one entry per model, in the order of output.json: {runs (one folder of
<pooling>.trec per test set), testsets, qrels, thresholds, drop_self_hits, poolings};
params.metrics. Each output is {testset: {pooling: evaluation}}.
"""

from pathlib import Path

from sbmoe.evaluation.metrics import evaluate
from sbmoe.io.atomic import write_json
from sbmoe.io.collection import load_qrels
from sbmoe.io.runs import read_trec_run
from sbmoe.pipeline.joblog import log_to

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]):
    qrels = {}
    for model, output in zip(smk.params.evaluation, smk.output.json, strict=True):
        results = {}
        for testset, runs, qrels_path, threshold, drop in zip(
            model["testsets"], model["runs"], model["qrels"], model["thresholds"], model["drop_self_hits"]
        ):
            judged = qrels.setdefault(qrels_path, load_qrels(qrels_path))
            results[testset] = {}
            for pooling in model["poolings"]:
                run = Path(runs) / f"{pooling}.trec"
                results[testset][pooling] = evaluate(
                    read_trec_run(run), judged, smk.params.metrics, threshold, drop, run_name=str(run)
                )
        write_json(output, results)
