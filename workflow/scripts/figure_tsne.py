"""t-SNE of one query and its top documents, coloured by expert (``sbmoe.figures.tsne_figure``).

Snakemake contract
------------------
input.runs         list of TREC run files, one per panel (e.g. FT, then SB-MoE systems)
input.queries      list of query npz files, one per panel, same order
input.corpus       list of corpus npz files, one per panel, same order
input.qrels        the test set's qrels (BEIR TSV)
params.labels      list of panel titles, same order
params.seed        seed choosing the query and seeding t-SNE (default 0)
params.depth       documents per query (default 1000)
params.min_grade   smallest relevant grade (default 1; 2 for TREC DL)
params.perplexity  t-SNE perplexity (default 30)
output.pdf, output.png  the figure
output.json        the chosen query id, the seed and per-panel counts (read by paper_macros)
"""

from sbmoe.atomic import write_json
from sbmoe.collection import load_qrels
from sbmoe.figures import TsnePanel, tsne_figure

inputs, params, output = snakemake.input, snakemake.params, snakemake.output  # noqa: F821
panels = [
    TsnePanel(label, run, queries, corpus)
    for label, run, queries, corpus in zip(params.labels, inputs.runs, inputs.queries, inputs.corpus, strict=True)
]
description = tsne_figure(
    panels,
    load_qrels(inputs.qrels),
    output.pdf,
    output.png,
    seed=getattr(params, "seed", 0),
    depth=getattr(params, "depth", 1000),
    min_grade=getattr(params, "min_grade", 1),
    perplexity=getattr(params, "perplexity", 30.0),
)
write_json(output.json, description)
