"""Training curves from the training logs (``sbmoe.analysis.figures.training.training_curves_figure``).

Snakemake contract
------------------
input.logs         list of training logs (JSON lines, one per epoch)
params.labels      list of line labels (e.g. display labels of the systems), same order
output.pdf, output.png  the figure
output.json        epochs and best epoch per log
log[0]             the job's log
"""

from sbmoe.analysis.figures.training import training_curves_figure
from sbmoe.io.atomic import write_json
from sbmoe.pipeline.joblog import log_to

inputs, params, output = snakemake.input, snakemake.params, snakemake.output  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    described = training_curves_figure(list(zip(params.labels, inputs.logs, strict=True)), output.pdf, output.png)
    write_json(output.json, described)
