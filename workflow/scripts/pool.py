"""Snakemake script: a frozen encoder's pooled embeddings of a dataset's queries or corpus shard.

input.model, input.dataset; params.kind ("queries"/"corpus"), params.split, params.shard,
params.num_shards, params.batch_size; output.pooled (.npz).
"""

from sbmoe.pipeline.joblog import log_to
from sbmoe.pipeline.stages import pool_stage

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]):
    pool_stage(
        smk.input.model,
        smk.input.dataset,
        smk.params.kind,
        smk.output.pooled,
        split=smk.params.split,
        shard=smk.params.shard,
        num_shards=smk.params.num_shards,
        batch_size=smk.params.batch_size,
    )
