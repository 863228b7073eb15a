"""``macros.tex`` for paper/main.tex (``sbmoe.analysis.paper.paper_macros``).

Snakemake contract (every input optional; a macro whose input is missing reads ``--``)
------------------
input.in_domain      Table I CSV (tables.py, table in_domain)
input.zero_shot      Table II CSV (tables.py, table zero_shot)
input.reproduction   reproduction CSV (tables.py, table reproduction)
input.experts        Table III CSV (tables.py, table experts)
input.significance   significance report JSON (significance.py)
input.tsne           t-SNE description JSON (figure_tsne.py)
input.routing        routing table CSV (tables.py, table routing)
input.routing_figure routing figure description JSON (figure_routing.py)
input.logs           list of training logs (JSON lines)
params.log_keys      list of key dicts (at least ``system``), one per ``input.logs`` entry
params.metrics       the reported metrics (analysis.metrics): each gets its own macros
params.benchmarks    optional {dataset id: benchmark name or None} (sbmoe.data.table.benchmark)
params.dataset_labels optional {dataset id: display name}
params.training      optional list of the study's distinct training settings (Study.training_settings)
output.tex           macros.tex
log[0]               the job's log
"""

import json

from sbmoe.analysis.paper import load_table, paper_macros, write_macros
from sbmoe.pipeline.joblog import log_to

inputs, params = snakemake.input, snakemake.params  # noqa: F821 (injected by Snakemake)


def optional_table(name):
    path = getattr(inputs, name, None)
    return load_table(path) if path else None


def optional_json(name):
    path = getattr(inputs, name, None)
    if not path:
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


with log_to(snakemake.log[0]):  # noqa: F821
    values = paper_macros(
        in_domain=optional_table("in_domain"),
        zero_shot=optional_table("zero_shot"),
        reproduction=optional_table("reproduction"),
        experts=optional_table("experts"),
        significance=optional_json("significance"),
        logs=list(zip(getattr(params, "log_keys", []), getattr(inputs, "logs", []), strict=True)),
        tsne=optional_json("tsne"),
        routing=optional_table("routing"),
        routing_figure=optional_json("routing_figure"),
        metrics=params.metrics,
        benchmarks=getattr(params, "benchmarks", None),
        dataset_labels=getattr(params, "dataset_labels", None),
        training=getattr(params, "training", ()),
    )
    write_macros(snakemake.output.tex, values)  # noqa: F821
