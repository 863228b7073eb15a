"""Significance of every system against FT: ``sbmoe.evaluation.significance.significance_report``.

Snakemake contract
------------------
input.evals          list of evaluation JSONs
params.eval_keys     list of key dicts (encoder, trainset, system, seed, testset, pooling),
                     one per ``input.evals`` entry, in the same order
params.metrics       metric names to test (the reported metrics, analysis.metrics)
params.baseline      baseline system id (default ``"finetune"``)
params.test          ``"randomization"`` (default) or ``"t-test"``
params.correction    ``"holm"`` (default) or ``"bonferroni"``
params.alpha         significance level for corrected p-values (default 0.01)
params.permutations  sign flips of the randomization test (default 10000)
params.seed          seed of the randomization test (default 0)
output.json          the report: settings and one record per (dataset, metric, system)
log[0]               the job's log
"""

from sbmoe.evaluation.results import load_results
from sbmoe.evaluation.significance import DEFAULT_PERMUTATIONS, significance_report
from sbmoe.io.atomic import write_json
from sbmoe.pipeline.joblog import log_to

params = snakemake.params  # noqa: F821 (injected by Snakemake)
with log_to(snakemake.log[0]):  # noqa: F821
    results = load_results(zip(params.eval_keys, snakemake.input.evals, strict=True))  # noqa: F821
    report = significance_report(
        results,
        metrics=params.metrics,
        baseline=getattr(params, "baseline", "finetune"),
        test=getattr(params, "test", "randomization"),
        correction=getattr(params, "correction", "holm"),
        alpha=getattr(params, "alpha", 0.01),
        permutations=getattr(params, "permutations", DEFAULT_PERMUTATIONS),
        seed=getattr(params, "seed", 0),
    )
    write_json(snakemake.output.json, report)  # noqa: F821
