"""Snakemake script: the hidden states entering an encoder's top layers (training.train_layers N),
cached for a dataset's queries or a corpus shard and shared by every system of that encoder.

input.model, input.dataset; params.kind ("queries"/"corpus"), params.split, params.shard,
params.num_shards, params.train_layers, params.batch_size; output.prefix (folder).
"""

from sbmoe.pipeline.joblog import log_to
from sbmoe.pipeline.stages import prefix_stage

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]):
    prefix_stage(
        smk.input.model,
        smk.input.dataset,
        smk.params.kind,
        smk.output.prefix,
        smk.params.train_layers,
        split=smk.params.split,
        shard=smk.params.shard,
        num_shards=smk.params.num_shards,
        batch_size=smk.params.batch_size,
    )
