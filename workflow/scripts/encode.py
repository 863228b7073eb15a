"""Snakemake script: encode and route one shard of a test set's corpus, once per pooling.

input.model, input.dataset, input.prefix (the shard's cached prefix states, or absent); params.kind,
params.split, params.shard, params.num_shards, params.poolings, params.batch_size; output.folder
(one <pooling>.npz per pooling).
"""

from pathlib import Path

from sbmoe.pipeline.joblog import log_to
from sbmoe.pipeline.stages import encode_stage

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]):
    folder = Path(smk.output.folder)
    folder.mkdir(parents=True, exist_ok=True)
    encode_stage(
        smk.input.model,
        smk.input.dataset,
        smk.params.kind,
        list(smk.params.poolings),
        [folder / f"{p}.npz" for p in smk.params.poolings],
        split=smk.params.split,
        shard=smk.params.shard,
        num_shards=smk.params.num_shards,
        batch_size=smk.params.batch_size,
        prefix=smk.input.get("prefix") or None,
    )
