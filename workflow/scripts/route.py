"""Snakemake script: route every test set of a training set with its router; fuse; the oracle.

input.router (the router folder); params.testsets ({testset: sbmoe.selection.routing.ExpertInputs settings}),
params.metrics, params.k, params.tag; output.runs (<testset>/<system>.trec), output.evaluation
(every expert and routed system per test set), output.choices (per query: the router's choice and
weights, the experts' nDCG@10).
"""

from sbmoe.pipeline.joblog import log_to
from sbmoe.selection.routing import ExpertInputs, route_stage

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]):
    route_stage(
        smk.input.router,
        {name: ExpertInputs(**inputs) for name, inputs in smk.params.testsets.items()},
        smk.output.runs,
        smk.output.evaluation,
        smk.output.choices,
        metrics=list(smk.params.metrics),
        k=smk.params.k,
        tag=smk.params.tag,
    )
