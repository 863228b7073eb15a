"""Snakemake script: encode a test set's queries and search them over the routed corpus shards,
once per pooling of the model.

input.model, input.dataset, input.pooled or input.prefix (query cache, or absent); the corpus: input.corpus (shard
folders of <pooling>.npz), or, for a frozen encoder, input.pooled_corpus (pooled shards, routed here
into output.corpus/<shard>/<pooling>.npz); params.split, params.poolings, params.batch_size,
params.k, params.tag; output.queries (folder of <pooling>.npz), output.runs (folder of <pooling>.trec).
"""

from pathlib import Path

from sbmoe.joblog import log_to
from sbmoe.stages import encode_stage, search_stage

smk = snakemake  # noqa: F821 (set by Snakemake)
poolings = list(smk.params.poolings)


def encode(kind, folder, pooled=None, prefix=None):
    folder.mkdir(parents=True, exist_ok=True)
    encode_stage(smk.input.model, smk.input.dataset, kind, poolings, [folder / f"{p}.npz" for p in poolings],
                 split=smk.params.split, pooled=pooled, prefix=prefix, batch_size=smk.params.batch_size)


with log_to(smk.log[0]):
    queries, runs = Path(smk.output.queries), Path(smk.output.runs)
    encode("queries", queries, smk.input.get("pooled") or None, smk.input.get("prefix") or None)
    if "corpus" in smk.output.keys():
        corpus = [Path(smk.output.corpus) / str(shard) for shard in range(len(smk.input.pooled_corpus))]
        for folder, pooled in zip(corpus, smk.input.pooled_corpus):
            encode("corpus", folder, pooled)
    else:
        corpus = [Path(folder) for folder in smk.input.corpus]
    runs.mkdir(parents=True, exist_ok=True)
    for pooling in poolings:
        search_stage(queries / f"{pooling}.npz", [folder / f"{pooling}.npz" for folder in corpus],
                     runs / f"{pooling}.trec", k=smk.params.k, tag=f"{smk.params.tag}-{pooling}")
