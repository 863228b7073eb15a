"""How each router's choices split over the expert retrievers (``sbmoe.analysis.figures.routing.routing_figure``).

Snakemake contract
------------------
input.choices          one choices JSON per routed training set (route.py)
params.trainsets       the training set of each ``input.choices`` entry
params.pairs           list of [trainset, testset], in plot order
params.dataset_labels  optional {testset id: display name}
output.pdf, output.png the figure
output.json            the shares plotted
log[0]                 the job's log
"""

import json

from sbmoe.analysis.figures.routing import routing_figure
from sbmoe.io.atomic import write_json
from sbmoe.pipeline.joblog import log_to

params, output = snakemake.params, snakemake.output  # noqa: F821 (injected by Snakemake)
with log_to(snakemake.log[0]):  # noqa: F821
    choices = {}
    for trainset, path in zip(params.trainsets, snakemake.input.choices, strict=True):  # noqa: F821
        with open(path, encoding="utf-8") as handle:
            choices[trainset] = json.load(handle)
    plotted = routing_figure(
        choices,
        [tuple(pair) for pair in params.pairs],
        output.pdf,
        output.png,
        dataset_labels=getattr(params, "dataset_labels", None),
    )
    write_json(output.json, plotted)
