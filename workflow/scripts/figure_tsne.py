"""t-SNE of one query and its top documents, coloured by expert (``sbmoe.analysis.figures.tsne.tsne_figure``).

Snakemake contract (one panel per model, e.g. FT, then SB-MoE systems)
------------------
params.labels         list of panel titles
params.poolings       list of the panels' poolings (``none`` for FT, ``top1``/``all`` for SB-MoE);
                      they pick ``<pooling>.trec`` / ``<pooling>.npz`` inside the pipeline's folders
input.runs            one entry per panel: a TREC run file or the pipeline's runs folder
input.queries         one entry per panel: a query npz or the pipeline's queries folder
input.corpus          flat list, panel after panel: corpus npz files, shard folders or folders of shard folders
params.corpus_shards  optional list: how many ``input.corpus`` entries each panel has (default 1)
input.qrels           the test set's qrels (BEIR TSV), or its BEIR folder (qrels/test.tsv inside)
params.seed           seed choosing the query and seeding t-SNE (default 0)
params.depth          documents per query (default 1000)
params.min_grade      smallest relevant grade (default 1; 2 for TREC DL)
params.perplexity     t-SNE perplexity (default 30)
output.pdf, output.png  the figure
output.json           the chosen query id, the seed and per-panel counts (read by paper_macros)
log[0]                the job's log
"""

from pathlib import Path

from sbmoe.analysis.figures.tsne import TsnePanel, tsne_figure
from sbmoe.evaluation.results import corpus_files, group_by_counts, pooling_file
from sbmoe.io.atomic import write_json
from sbmoe.io.collection import load_qrels
from sbmoe.pipeline.joblog import log_to

inputs, params, output = snakemake.input, snakemake.params, snakemake.output  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    corpus = group_by_counts(list(inputs.corpus), getattr(params, "corpus_shards", None))
    panels = [
        TsnePanel(
            label,
            pooling_file(run, pooling, ".trec"),
            pooling_file(queries, pooling, ".npz"),
            corpus_files(shards, pooling),
        )
        for label, pooling, run, queries, shards in zip(
            params.labels, params.poolings, inputs.runs, inputs.queries, corpus, strict=True
        )
    ]
    description = tsne_figure(
        panels,
        load_qrels(Path(inputs.qrels) / "qrels" / "test.tsv" if Path(inputs.qrels).is_dir() else inputs.qrels),
        output.pdf,
        output.png,
        seed=getattr(params, "seed", 0),
        depth=getattr(params, "depth", 1000),
        min_grade=getattr(params, "min_grade", 1),
        perplexity=getattr(params, "perplexity", 30.0),
    )
    write_json(output.json, description)
