"""Number-of-experts bar chart (``sbmoe.analysis.figures.expert_count.expert_count_figure``).

Snakemake contract
------------------
input.evals            list of evaluation JSONs
params.eval_keys       list of key dicts (encoder, trainset, system, seed, testset, pooling),
                       one per ``input.evals`` entry, in the same order
params.datasets        list of [trainset, testset] pairs, in x order
params.encoder         optional with one encoder in the evaluations
params.combination     ``"paper"`` (default) or ``"learned"``: SB-MoE systems ``sbmoe-<c>-e<E>``
params.pooling         ``"top1"`` (default) or ``"all"``
params.metrics         the reported metrics (analysis.metrics), one subplot each
params.dataset_labels  optional {testset id: display name}
output.pdf, output.png the figure
output.json            the values plotted
log[0]                 the job's log
"""

from sbmoe.analysis.figures.expert_count import expert_count_figure
from sbmoe.evaluation.results import load_results
from sbmoe.io.atomic import write_json
from sbmoe.pipeline.joblog import log_to

params, output = snakemake.params, snakemake.output  # noqa: F821 (injected by Snakemake)
with log_to(snakemake.log[0]):  # noqa: F821
    plotted = expert_count_figure(
        load_results(zip(params.eval_keys, snakemake.input.evals, strict=True)),  # noqa: F821
        [tuple(pair) for pair in params.datasets],
        output.pdf,
        output.png,
        encoder=getattr(params, "encoder", None),
        combination=getattr(params, "combination", "paper"),
        pooling=getattr(params, "pooling", "top1"),
        metrics=params.metrics,
        dataset_labels=getattr(params, "dataset_labels", None),
    )
    write_json(output.json, plotted)
