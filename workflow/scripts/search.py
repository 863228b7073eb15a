"""Snakemake script: encode a test set's queries and search them over the encoded corpus shards,
once per pooling of the model.

input.model, input.dataset, input.pooled (query cache, or absent), input.corpus (shard folders of
<pooling>.npz); params.split, params.poolings, params.batch_size, params.k, params.tag;
output.queries (folder of <pooling>.npz), output.runs (folder of <pooling>.trec).
"""

from pathlib import Path

from sbmoe.joblog import log_to
from sbmoe.stages import encode_stage, search_stage

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]):
    queries, runs = Path(smk.output.queries), Path(smk.output.runs)
    queries.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    encode_stage(smk.input.model, smk.input.dataset, "queries", list(smk.params.poolings),
                 [queries / f"{p}.npz" for p in smk.params.poolings], split=smk.params.split,
                 pooled=smk.input.get("pooled") or None, batch_size=smk.params.batch_size)
    for pooling in smk.params.poolings:
        search_stage(queries / f"{pooling}.npz", [Path(shard) / f"{pooling}.npz" for shard in smk.input.corpus],
                     runs / f"{pooling}.trec", k=smk.params.k, tag=f"{smk.params.tag}-{pooling}")
