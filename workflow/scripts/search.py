"""Snakemake script: for each model of the job, encode a test set's queries and search them over the
routed corpus shards, once per pooling of the model.

input.models (model folders), input.dataset, input.pooled or input.prefix (query cache, or absent); the corpus:
input.corpus (shard folders of <pooling>.npz, one model), or, for a frozen encoder, input.pooled_corpus
(pooled shards, routed here into output.corpus[i]/<shard>/<pooling>.npz); params.models (per model:
poolings, tag), params.split, params.batch_size, params.k; output.queries[i] (folder of
<pooling>.npz) and output.runs[i] (folder of <pooling>.trec) for models[i].
"""

from pathlib import Path

from sbmoe.pipeline.joblog import log_to
from sbmoe.pipeline.stages import encode_stage, search_stage

smk = snakemake  # noqa: F821 (set by Snakemake)


def encode(model, kind, folder, poolings, pooled=None, prefix=None):
    folder.mkdir(parents=True, exist_ok=True)
    encode_stage(
        model,
        smk.input.dataset,
        kind,
        poolings,
        [folder / f"{p}.npz" for p in poolings],
        split=smk.params.split,
        pooled=pooled,
        prefix=prefix,
        batch_size=smk.params.batch_size,
    )


with log_to(smk.log[0]):
    routed = smk.output.get("corpus")
    for i, (model, settings) in enumerate(zip(smk.input.models, smk.params.models, strict=True)):
        poolings = list(settings["poolings"])
        queries, runs = Path(smk.output.queries[i]), Path(smk.output.runs[i])
        encode(model, "queries", queries, poolings, smk.input.get("pooled") or None, smk.input.get("prefix") or None)
        if routed:
            corpus = [Path(routed[i]) / str(shard) for shard in range(len(smk.input.pooled_corpus))]
            for folder, pooled in zip(corpus, smk.input.pooled_corpus):
                encode(model, "corpus", folder, poolings, pooled)
        else:
            corpus = [Path(folder) for folder in smk.input.corpus]
        runs.mkdir(parents=True, exist_ok=True)
        for pooling in poolings:
            search_stage(
                queries / f"{pooling}.npz",
                [folder / f"{pooling}.npz" for folder in corpus],
                runs / f"{pooling}.trec",
                k=smk.params.k,
                tag=f"{settings['tag']}-{pooling}",
            )
