"""Snakemake script: train a router on a held-out split, and tune the WSUM fusion weights there.

params.experts (expert names, in the order of the runs), params.split (the split as
sbmoe.selection.routing.ExpertInputs: runs, queries, dataset, split, relevance_threshold, drop_self_hits),
params.router (sbmoe.selection.router.RouterConfig settings), params.wsum_step (grid step of the WSUM weights);
output.router (the router folder).
"""

from sbmoe.pipeline.joblog import log_to
from sbmoe.selection.router import RouterConfig
from sbmoe.selection.routing import ExpertInputs, train_router_stage

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]) as log:
    description = train_router_stage(
        list(smk.params.experts),
        ExpertInputs(**smk.params.split),
        smk.output.router,
        RouterConfig(**smk.params.router),
        fusion_step=smk.params.wsum_step,
    )
    training = description["training"]
    log.info(
        "router trained on %d %s queries (%d tell the experts apart); cross-validated utility per l2 %s, "
        "l2 %s kept; last epoch %s; WSUM weights %s",
        description["queries"],
        description["split"],
        description["informative_queries"],
        training["cross_validation"],
        training["l2"],
        training["epochs"][-1],
        description["wsum_weights"],
    )
